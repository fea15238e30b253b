import { OnnxDataType, OnnxGraphBuilder, type OnnxElemType } from './onnxProto';
import { topologicalOrder } from './autodiff';
import type { DType, HostArray, Sym } from './graph';
import { opDefinition, type OnnxEmitter } from './registry';

/**
 * Lowers a recorded graph to one ONNX model: every node becomes one or a few standard ONNX ops
 * (plus com.microsoft contrib ops that onnxruntime's npm build holds: FusedMatMul, Gelu), inputs
 * stay graph inputs, constants become initializers. Names are stable (`v<id>`), so the same
 * recording gives the same bytes.
 */

const ELEM: Record<DType, OnnxElemType> = { float32: OnnxDataType.FLOAT, float64: OnnxDataType.DOUBLE, int64: OnnxDataType.INT64 };
const MS = 'com.microsoft';

const bytesOf = (a: HostArray) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export interface EmittedModel {
  bytes: Uint8Array;
  /** Graph input names, in the order they were declared. */
  inputs: string[];
  /** Output names, as asked. */
  outputs: string[];
  /** Nodes of the ONNX graph (for reports: session build time scales with it). */
  nodeCount: number;
}

/** The ONNX model computing `outputs` (name -> symbol) from the graph's inputs. */
export function emitOnnx(outputs: Readonly<Record<string, Sym>>, name = 'triplex_step'): EmittedModel {
  const b = new OnnxGraphBuilder(name);
  const syms = Object.values(outputs);
  if (syms.length === 0) throw new Error('emitOnnx: no outputs');
  const graph = syms[0].graph;
  const order = topologicalOrder(syms);
  const names = new Map<number, string>();
  let nodeCount = 0;
  let temp = 0;
  const tmp = (id: number) => `t${id}_${temp++}`;
  const int64s = (values: readonly number[]) => b.tensor(`c${temp++}`, [values.length], OnnxDataType.INT64, bytesOf(BigInt64Array.from(values.map(BigInt))));
  const scalarOf = (dtype: DType, v: number) => b.tensor(`c${temp++}`, [], ELEM[dtype], bytesOf(dtype === 'float64' ? Float64Array.of(v) : dtype === 'int64' ? BigInt64Array.of(BigInt(v)) : Float32Array.of(v)));
  const op = (type: string, inputs: string[], out: string, attrs: Parameters<OnnxGraphBuilder['node']>[3] = {}, domain = '') => {
    nodeCount++;
    return b.node(type, inputs, out, attrs, domain);
  };

  const nodeOutputs = (type: string, inputs: string[], outs: string[], attrs: Parameters<OnnxGraphBuilder['node']>[3] = {}) => {
    nodeCount++;
    return b.nodeOutputs(type, inputs, outs, attrs);
  };
  const emitter: OnnxEmitter = { node: op, nodeOutputs, temp: () => `t_${temp++}`, int64s, scalar: scalarOf };

  for (const s of order) {
    const out = `v${s.id}`;
    const x = s.inputs.map((i) => names.get(i.id) as string);
    const a = s.attrs;
    switch (s.op) {
      case 'input':
        b.input(a.name as string, [...s.shape], ELEM[s.dtype]);
        names.set(s.id, a.name as string);
        continue;
      case 'const':
        b.tensor(out, [...s.shape], ELEM[s.dtype], bytesOf(graph.constants.get(s.id) as HostArray));
        break;
      case 'zeros':
        op('Expand', [scalarOf(s.dtype, 0), int64s(s.shape)], out);
        break;
      case 'add': op('Add', x, out); break;
      case 'sub': op('Sub', x, out); break;
      case 'mul': op('Mul', x, out); break;
      case 'div': op('Div', x, out); break;
      case 'neg': op('Neg', x, out); break;
      case 'exp': op('Exp', x, out); break;
      case 'log': op('Log', x, out); break;
      case 'sqrt': op('Sqrt', x, out); break;
      case 'erf':
        if (s.dtype === 'float32') op('Erf', x, out);
        // onnxruntime has no double Erf: float64 graphs (the gradient checks) take it in float32.
        else op('Cast', [op('Erf', [op('Cast', x, tmp(s.id), { to: { i: OnnxDataType.FLOAT } })], tmp(s.id))], out, { to: { i: ELEM[s.dtype] } });
        break;
      case 'tanh': op('Tanh', x, out); break;
      case 'relu': op('Relu', x, out); break;
      case 'sigmoid': op('Sigmoid', x, out); break;
      case 'softplus':
        if (s.dtype === 'float32') op('Softplus', x, out);
        // No double Softplus either: relu(x) + log(1 + exp(-|x|)), stable, in float64.
        else op('Add', [op('Relu', x, tmp(s.id)), op('Log', [op('Add', [op('Exp', [op('Neg', [op('Abs', x, tmp(s.id))], tmp(s.id))], tmp(s.id)), scalarOf(s.dtype, 1)], tmp(s.id))], tmp(s.id))], out);
        break;
      case 'gelu':
        if (s.dtype === 'float32') {
          op('Gelu', x, out, {}, MS);
        } else {
          // x * 0.5 * (1 + erf(x / sqrt 2)): the contrib op is float-only.
          const e = op('Erf', [op('Mul', [x[0], scalarOf(s.dtype, Math.SQRT1_2)], tmp(s.id))], tmp(s.id));
          op('Mul', [x[0], op('Mul', [op('Add', [e, scalarOf(s.dtype, 1)], tmp(s.id)), scalarOf(s.dtype, 0.5)], tmp(s.id))], out);
        }
        break;
      case 'positive':
        op('Cast', [op('Greater', [x[0], scalarOf(s.dtype, 0)], tmp(s.id))], out, { to: { i: ELEM[s.dtype] } });
        break;
      case 'matmul': {
        const { transA, transB } = a as { transA: boolean; transB: boolean };
        const [A, B] = s.inputs;
        if (!transA && !transB) op('MatMul', x, out);
        else if (A.rank === 2 && B.rank === 2) op('Gemm', x, out, { transA: { i: transA ? 1 : 0 }, transB: { i: transB ? 1 : 0 } });
        else if (s.dtype === 'float32') op('FusedMatMul', x, out, { transA: { i: transA ? 1 : 0 }, transB: { i: transB ? 1 : 0 }, alpha: { f: 1 } }, MS);
        else {
          const swap = (r: number) => [...Array.from({ length: r - 2 }, (_, i) => i), r - 1, r - 2];
          const ta = transA ? op('Transpose', [x[0]], tmp(s.id), { perm: { ints: swap(A.rank) } }) : x[0];
          const tb = transB ? op('Transpose', [x[1]], tmp(s.id), { perm: { ints: swap(B.rank) } }) : x[1];
          op('MatMul', [ta, tb], out);
        }
        break;
      }
      case 'reshape': op('Reshape', [x[0], int64s(a.shape as number[])], out); break;
      case 'transpose': op('Transpose', x, out, { perm: { ints: [...(a.perm as number[])] } }); break;
      case 'slice': op('Slice', [x[0], int64s([a.start as number]), int64s([a.end as number]), int64s([a.axis as number])], out); break;
      case 'pad': {
        const pads = new Array<number>(2 * s.rank).fill(0);
        pads[a.axis as number] = a.before as number;
        pads[s.rank + (a.axis as number)] = a.after as number;
        op('Pad', [x[0], int64s(pads)], out);
        break;
      }
      case 'concat': op('Concat', x, out, { axis: { i: a.axis as number } }); break;
      case 'broadcast': op('Expand', [x[0], int64s(a.shape as number[])], out); break;
      case 'sum': op('ReduceSum', [x[0], int64s(a.axes as number[])], out, { keepdims: { i: a.keepDims ? 1 : 0 } }); break;
      case 'gather': op('Gather', x, out, { axis: { i: 0 } }); break;
      case 'scatterAdd': {
        const idx = op('Unsqueeze', [x[1], int64s([1])], tmp(s.id)); // [n, 1]: ScatterND's row indices
        op('ScatterND', [x[0], idx, x[2]], out, { reduction: { s: 'add' } });
        break;
      }
      case 'softmax': op('Softmax', x, out, { axis: { i: -1 } }); break;
      case 'logSoftmax': op('LogSoftmax', x, out, { axis: { i: -1 } }); break;
      case 'layerNorm': op('LayerNormalization', x, out, { axis: { i: -1 }, epsilon: { f: a.eps as number } }); break;
      default: {
        const def = opDefinition(s.op);
        if (!def) throw new Error(`emitOnnx: no ONNX lowering for op ${s.op}`);
        def.onnx(emitter, s, x, out);
      }
    }
    names.set(s.id, out);
  }

  const outNames = Object.keys(outputs);
  for (const [outName, s] of Object.entries(outputs)) {
    const inner = names.get(s.id) as string;
    // Graph outputs get the caller's names; an output that is an input or shared is copied.
    op('Identity', [inner], outName);
    b.output(outName, [...s.shape], ELEM[s.dtype]);
  }
  const inputs = [...graph.inputs.keys()].filter((n) => order.some((s) => s.op === 'input' && s.attrs.name === n));
  return { bytes: b.toModel({ docString: 'TRIPLEX engine graph' }), inputs, outputs: outNames, nodeCount };
}
