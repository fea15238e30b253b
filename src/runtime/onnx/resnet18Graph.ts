import * as protobuf from 'protobufjs/light';
import type { StateDict } from '../weights/stateDict';
import { resnet18TensorsFrom } from '../model/resnet18';
// The schema is bundled as data (esbuild inlines JSON): nothing is looked up beside dist/cli.js.
import onnxSchema from './onnx.json';

/**
 * ONNX models written from our own weights, without Python: a small graph builder over the
 * official protobuf schema (a subset of onnx.proto with its field numbers, in onnx.json), and the
 * ResNet18 trunk of TRIPLEX built with it.
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

export interface ResNet18OnnxOptions {
  /**
   * true: the input is RGB in [0, 255] and the graph applies ImageNet normalisation itself
   * (Sub, Div, exactly as normalizeImageNet does). false (default): the input is already
   * ImageNet-normalised, as the TF.js trunk and the ImageEncoder interface take it.
   */
  normalize?: boolean;
  /** Where the weights came from, for error messages. */
  source?: string;
  /**
   * true: any input side (a multiple of 32 keeps cells aligned), the fully convolutional trunk
   * for dense features (features/dense.ts): `tokens` [N, H/32, W/32, 512]. Default 224 x 224.
   */
  anySize?: boolean;
}

const BN_EPS = 1e-5;
const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

/**
 * The ResNet18 trunk (conv1..layer4) in inference mode as an ONNX model, from a torchvision-style
 * state dict (wrapper prefixes such as `model.` are stripped; shapes are checked).
 *
 * Layout: the input `images` is NHWC [N, 224, 224, 3] float32, the layout of the TF.js path, so
 * callers hand both engines the same buffer; a Transpose inside the graph makes it NCHW for the
 * convolutions (no measurable cost: onnxruntime reorders to its blocked layout either way).
 * Outputs: `tokens` [N, 7, 7, 512] (NHWC, via Transpose) and `pooled` [N, 512]
 * (GlobalAveragePool + Flatten). N is dynamic. Batch norm is folded into each convolution exactly
 * as the TF.js inference path folds it (eps 1e-5).
 */
export function buildResNet18Onnx(stateDict: StateDict, opts: ResNet18OnnxOptions = {}): Uint8Array {
  const source = opts.source ?? '(state dict)';
  const t = resnet18TensorsFrom(stateDict, source);
  const get = (key: string) => t.get(key) as { shape: number[]; data: Float32Array };
  const g = new OnnxGraphBuilder('triplex_resnet18_trunk');

  const [H, W, h, w] = opts.anySize ? ['H', 'W', 'h', 'w'] : [224, 224, 7, 7];
  let x = g.input('images', ['N', H, W, 3]); // [N, 224, 224, 3]
  if (opts.normalize) {
    const mean = g.floats('imagenet_mean_255', [3], Float32Array.from(IMAGENET_MEAN, (m) => m * 255));
    const std = g.floats('imagenet_std_255', [3], Float32Array.from(IMAGENET_STD, (s) => s * 255));
    x = g.node('Div', [g.node('Sub', [x, mean], 'images_centred'), std], 'images_normalised');
  }
  x = g.node('Transpose', [x], 'images_nchw', { perm: { ints: [0, 3, 1, 2] } }); // [N, 3, 224, 224]

  /** conv + folded batch norm (+ ReLU); `bn` is the torchvision name of the norm after it. */
  const convBn = (input: string, conv: string, bn: string, stride: number, pad: number, relu: boolean): string => {
    const w = get(`${conv}.weight`);
    const [cout, cin, kh, kw] = w.shape;
    const { weight, bias } = foldBatchNorm(w.data, cout, get(`${bn}.weight`).data, get(`${bn}.bias`).data,
      get(`${bn}.running_mean`).data, get(`${bn}.running_var`).data);
    const y = g.node('Conv', [input, g.floats(`${conv}.weight`, [cout, cin, kh, kw], weight), g.floats(`${conv}.bias`, [cout], bias)], conv, {
      kernel_shape: { ints: [kh, kw] }, strides: { ints: [stride, stride] }, pads: { ints: [pad, pad, pad, pad] },
    });
    return relu ? g.node('Relu', [y], `${conv}.relu`) : y;
  };

  x = convBn(x, 'conv1', 'bn1', 2, 3, true); // [N, 64, 112, 112]
  x = g.node('MaxPool', [x], 'maxpool', { kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] } }); // [N, 64, 56, 56]
  for (const [stage, stride] of [[1, 1], [2, 2], [3, 2], [4, 2]]) {
    for (const i of [0, 1]) {
      const p = `layer${stage}.${i}`;
      const s = i === 0 ? stride : 1;
      const h = convBn(convBn(x, `${p}.conv1`, `${p}.bn1`, s, 1, true), `${p}.conv2`, `${p}.bn2`, 1, 1, false);
      const shortcut = t.has(`${p}.downsample.0.weight`) ? convBn(x, `${p}.downsample.0`, `${p}.downsample.1`, s, 0, false) : x;
      x = g.node('Relu', [g.node('Add', [h, shortcut], `${p}.add`)], `${p}.out`);
    }
  }
  // x: [N, 512, 7, 7]
  g.node('Transpose', [x], 'tokens', { perm: { ints: [0, 2, 3, 1] } }); // [N, 7, 7, 512]
  g.node('Flatten', [g.node('GlobalAveragePool', [x], 'avgpool')], 'pooled', { axis: { i: 1 } }); // [N, 512]
  g.output('tokens', ['N', h, w, 512]);
  g.output('pooled', ['N', 512]);
  return g.toModel({
    docString: `TRIPLEX ResNet18 trunk (inference, batch norm folded) from ${source}. Input images: NHWC [N, 224, 224, 3], ` +
      (opts.normalize ? 'RGB in [0, 255] (ImageNet normalisation inside).' : 'ImageNet-normalised.'),
    metadata: { 'triplex.layout': 'NHWC', 'triplex.input': opts.normalize ? 'rgb255' : 'imagenet-normalised' },
  });
}

/**
 * Folds inference-mode batch norm into the preceding convolution ([out, in, kh, kw] weights), in
 * float32 as the TF.js path does: scale = gamma / sqrt(var + eps), w' = w * scale,
 * b' = beta - mean * scale.
 */
function foldBatchNorm(w: Float32Array, cout: number, gamma: Float32Array, beta: Float32Array, mean: Float32Array, variance: Float32Array): { weight: Float32Array; bias: Float32Array } {
  const perOut = w.length / cout;
  const weight = new Float32Array(w.length);
  const bias = new Float32Array(cout);
  for (let o = 0; o < cout; o++) {
    const scale = Math.fround(gamma[o] * Math.fround(1 / Math.sqrt(Math.fround(variance[o] + BN_EPS))));
    for (let j = o * perOut; j < (o + 1) * perOut; j++) weight[j] = w[j] * scale;
    bias[o] = beta[o] - Math.fround(mean[o] * scale);
  }
  return { weight, bias };
}
