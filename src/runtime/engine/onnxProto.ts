import * as protobuf from 'protobufjs/light';
// The schema is bundled as data (esbuild inlines JSON): nothing is looked up beside dist/cli.js.
import onnxSchema from './onnx.json';

/**
 * ONNX models written without Python: a small graph builder over the official protobuf schema (a
 * subset of onnx.proto with its field numbers, in onnx.json). The engine lowers its recorded
 * graphs with it (onnx.ts); tests write users' encoders with it.
 */

/** Opset and IR version of the graphs we write (ONNX 1.12+, any onnxruntime from 1.12 on). */
export const ONNX_OPSET = 17;
export const ONNX_IR_VERSION = 8;

/** TensorProto.DataType values used here. */
export const OnnxDataType = { FLOAT: 1, INT64: 7, DOUBLE: 11 } as const;
export type OnnxElemType = (typeof OnnxDataType)[keyof typeof OnnxDataType];
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

let root: protobuf.Root | undefined;
function modelType(): protobuf.Type {
  root ??= protobuf.Root.fromJSON(onnxSchema as protobuf.INamespace);
  return root.lookupType('onnx.ModelProto');
}

/** An attribute of a node, tagged by its ONNX kind. */
export type OnnxAttribute = { i: number } | { f: number } | { s: string } | { ints: number[] } | { floats: number[] };

/** A dimension of a graph input or output: a size, or a symbolic name for a dynamic one. */
export type OnnxDim = number | string;

/** The decoded fields of a ModelProto that callers inspect (snake_case, as in onnx.proto). */
export interface OnnxModelSummary {
  ir_version: number;
  opset_import: { domain?: string; version: number }[];
  producer_name?: string;
  graph: {
    name?: string;
    node: { op_type: string; input: string[]; output: string[]; attribute: { name: string; i?: number; ints?: number[] }[] }[];
    initializer: { name: string; dims: number[] }[];
    input: OnnxValueInfo[];
    output: OnnxValueInfo[];
  };
}

interface OnnxValueInfo {
  name: string;
  type?: { tensor_type?: { elem_type: number; shape?: { dim: { dim_value?: number; dim_param?: string }[] } } };
}

/**
 * Builds one ONNX graph node by node; `toModel()` serialises it. Float tensors are written as
 * little-endian raw bytes, which is what every platform Node runs on uses.
 */
export class OnnxGraphBuilder {
  private readonly nodes: object[] = [];
  private readonly initializers: object[] = [];
  private readonly inputs: object[] = [];
  private readonly outputs: object[] = [];
  private readonly names = new Set<string>();
  private readonly domains = new Set<string>();

  constructor(private readonly graphName: string) {}

  /** A graph input (float32 unless told otherwise). */
  input(name: string, shape: OnnxDim[], elemType: OnnxElemType = OnnxDataType.FLOAT): string {
    this.inputs.push(valueInfo(this.claim(name), shape, elemType));
    return name;
  }

  /** Marks an existing value as a graph output (float32 unless told otherwise). */
  output(name: string, shape: OnnxDim[], elemType: OnnxElemType = OnnxDataType.FLOAT): void {
    this.outputs.push(valueInfo(name, shape, elemType));
  }

  /** A constant (initializer) of any element type, from its little-endian bytes. */
  tensor(name: string, dims: number[], elemType: OnnxElemType, raw: Uint8Array): string {
    this.initializers.push({ name: this.claim(name), dims, data_type: elemType, raw_data: raw });
    return name;
  }

  /** A float32 constant (initializer). */
  floats(name: string, dims: number[], data: Float32Array): string {
    if (data.length !== dims.reduce((a, b) => a * b, 1)) throw new Error(`ONNX constant ${name}: ${data.length} values do not fill [${dims.join(', ')}]`);
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.initializers.push({ name: this.claim(name), dims, data_type: OnnxDataType.FLOAT, raw_data: raw });
    return name;
  }

  /** An int64 constant, e.g. the shape input of Reshape. */
  int64s(name: string, values: number[]): string {
    const data = BigInt64Array.from(values.map(BigInt));
    this.initializers.push({ name: this.claim(name), dims: [values.length], data_type: OnnxDataType.INT64, raw_data: new Uint8Array(data.buffer) });
    return name;
  }

  /** Adds `opType(inputs) -> output` (in `domain`, e.g. com.microsoft; default ONNX's) and returns the output's name. */
  node(opType: string, inputs: string[], output: string, attributes: Record<string, OnnxAttribute> = {}, domain = ''): string {
    return this.nodeOutputs(opType, inputs, [output], attributes, domain)[0];
  }

  /** Like node(), for ops with several outputs (MaxPool's values and indices, say). */
  nodeOutputs(opType: string, inputs: string[], outputs: string[], attributes: Record<string, OnnxAttribute> = {}, domain = ''): string[] {
    const attribute = Object.entries(attributes).map(([name, a]) => {
      if ('i' in a) return { name, type: AttributeType.INT, i: a.i };
      if ('f' in a) return { name, type: AttributeType.FLOAT, f: a.f };
      if ('s' in a) return { name, type: AttributeType.STRING, s: new TextEncoder().encode(a.s) };
      if ('ints' in a) return { name, type: AttributeType.INTS, ints: a.ints };
      return { name, type: AttributeType.FLOATS, floats: a.floats };
    });
    if (domain) this.domains.add(domain);
    this.nodes.push({ op_type: opType, name: outputs[0], input: inputs, output: outputs.map((o) => this.claim(o)), attribute, ...(domain ? { domain } : {}) });
    return outputs;
  }

  /** The serialised ModelProto (opset 17, IR 8 unless told otherwise). */
  toModel(meta: { docString?: string; metadata?: Record<string, string>; opset?: number } = {}): Uint8Array {
    const model = {
      ir_version: ONNX_IR_VERSION,
      opset_import: [{ domain: '', version: meta.opset ?? ONNX_OPSET }, ...[...this.domains].map((domain) => ({ domain, version: 1 }))],
      producer_name: 'triplex-notebooks',
      doc_string: meta.docString ?? '',
      metadata_props: Object.entries(meta.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: { name: this.graphName, node: this.nodes, initializer: this.initializers, input: this.inputs, output: this.outputs },
    };
    // encode() takes the plain object as is; fromObject() would copy every weight once more.
    return modelType().encode(model).finish();
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`ONNX graph ${this.graphName}: the value name ${name} is used twice`);
    this.names.add(name);
    return name;
  }
}

function valueInfo(name: string, shape: OnnxDim[], elemType: OnnxElemType): object {
  const dim = shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d }));
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim } } } };
}

/** Decodes a serialised ModelProto (weights included); for inspection and tests. */
export function readOnnxModel(bytes: Uint8Array): OnnxModelSummary {
  const type = modelType();
  return type.toObject(type.decode(bytes), { longs: Number, defaults: true, arrays: true }) as OnnxModelSummary;
}
