import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor, StateDict } from '../../weights/stateDict';
import { WeightFileError } from '../../weights/stateDict';
import { mulberry32 } from '../../util/random';
import { dropoutMask } from '../../engine/dropout';

/** `training` draws dropout; `inference` does not. */
export type ForwardMode = 'training' | 'inference';

/**
 * Parameter helpers of the TRIPLEX heads and encoders: named parameters that map one to one onto
 * a PyTorch state dict, Linear and LayerNorm with PyTorch's defaults, exact GELU and seeded dropout.
 *
 * On the wasm backend only a 2-D, untransposed tf.matMul reaches XNNPACK (25-35 GFLOP/s on two
 * cores); batched or transposed products take a plain loop (about 2 GFLOP/s, and 0.9 GFLOP/s for
 * transposeA). tfjs-core's matMul gradient uses the transposed forms, so a Linear layer's backward
 * pass was 40 times slower than its forward. Hence `matMul2d`: transposes made explicit.
 */

/** How a parameter is stored in TF.js relative to PyTorch. */
export type ParameterLayout =
  /** The same shape and order in both. */
  | 'same'
  /** nn.Linear weight: TF.js [in, out], PyTorch [out, in]. */
  | 'linear'
  /** Depthwise nn.Conv2d weight (groups = channels): TF.js [k, k, C, M], PyTorch [C*M, 1, k, k]. */
  | 'depthwise';

interface Parameter {
  variable: tf.Variable;
  layout: ParameterLayout;
  /** The shape in PyTorch's layout, as a state dict holds it. */
  torchShape: number[];
}

export interface ParameterSetOptions {
  /** Seed of the initial values (drawn in creation order) and of the dropout masks. */
  seed?: number;
  /** Prefix of the TF.js variable names, which must be unique in a process. */
  scope?: string;
}

export interface LoadOptions {
  /** Read `${prefix}${name}` for each parameter, e.g. 'model.' for a Lightning checkpoint. */
  prefix?: string;
  /** Accept keys (under the prefix) that name no parameter; by default they are an error. */
  ignoreUnexpected?: boolean;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const showShape = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function torchShapeOf(shape: readonly number[], layout: ParameterLayout): number[] {
  if (layout === 'linear') return [shape[1], shape[0]];
  if (layout === 'depthwise') return [shape[2] * shape[3], 1, shape[0], shape[1]];
  return [...shape];
}

/** Moves values between TF.js order (of TF.js shape `shape`) and PyTorch order, either way. */
function reorder(data: Float32Array, shape: readonly number[], layout: ParameterLayout, direction: 'toTorch' | 'fromTorch'): Float32Array {
  if (layout === 'same') return data;
  const out = new Float32Array(data.length);
  const move = direction === 'toTorch'
    ? (tfAt: number, torchAt: number) => { out[torchAt] = data[tfAt]; }
    : (tfAt: number, torchAt: number) => { out[tfAt] = data[torchAt]; };
  if (layout === 'linear') {
    const [inF, outF] = shape;
    for (let i = 0; i < inF; i++) for (let o = 0; o < outF; o++) move(i * outF + o, o * inF + i);
  } else {
    const [kh, kw, C, M] = shape;
    for (let i = 0; i < kh; i++) {
      for (let j = 0; j < kw; j++) {
        for (let c = 0; c < C; c++) for (let m = 0; m < M; m++) move(((i * kw + j) * C + c) * M + m, ((c * M + m) * kh + i) * kw + j);
      }
    }
  }
  return out;
}

const toTorchOrder = (data: Float32Array, shape: readonly number[], layout: ParameterLayout) => reorder(data, shape, layout, 'toTorch');
const fromTorchOrder = (data: Float32Array, shape: readonly number[], layout: ParameterLayout) => reorder(data, shape, layout, 'fromTorch');

/**
 * The trainable parameters of a model, each named by its role with PyTorch's dotted names
 * (`neighbor.blocks.0.attn.qkv.weight`), so that checkpoints and PyTorch references map by name.
 */
export class ParameterSet {
  private static instances = 0;
  private readonly params = new Map<string, Parameter>();
  private readonly dropouts: Dropout[] = [];
  private readonly scope: string;
  /** Uniform [0, 1) numbers from the set's seed: initial values, then dropout seeds. */
  readonly random: () => number;

  constructor(options: ParameterSetOptions = {}) {
    this.random = mulberry32(options.seed ?? 0);
    this.scope = `${options.scope ?? 'triplex'}_${++ParameterSet.instances}`;
  }

  /** Registers a parameter with its initial values in TF.js order. */
  add(name: string, shape: number[], values: Float32Array, layout: ParameterLayout = 'same'): tf.Variable {
    if (this.params.has(name)) throw new Error(`parameter ${name} is defined twice`);
    if (values.length !== size(shape)) throw new Error(`parameter ${name}: ${values.length} initial values for shape ${showShape(shape)}`);
    // tf.variable keeps its initial tensor alive; the tidy disposes it and keeps the variable.
    const variable = tf.tidy(() => tf.variable(tf.tensor(values, shape), true, `${this.scope}/${name}`));
    this.params.set(name, { variable, layout, torchShape: torchShapeOf(shape, layout) });
    return variable;
  }

  /** A parameter drawn from U(-bound, bound) with the set's generator. */
  addUniform(name: string, shape: number[], bound: number, layout: ParameterLayout = 'same'): tf.Variable {
    const values = new Float32Array(size(shape));
    for (let i = 0; i < values.length; i++) values[i] = (2 * this.random() - 1) * bound;
    return this.add(name, shape, values, layout);
  }

  /** A parameter with every value `value`. */
  addConstant(name: string, shape: number[], value: number): tf.Variable {
    return this.add(name, shape, new Float32Array(size(shape)).fill(value));
  }

  /** A fresh 32-bit seed from the set's generator (for dropout). */
  nextSeed(): number {
    return Math.floor(this.random() * 0x100000000);
  }

  /** A dropout layer of this model, seeded from the set and reseeded by `reseedDropout`. */
  dropout(rate: number): Dropout {
    const layer = new Dropout(rate, this.nextSeed());
    this.dropouts.push(layer);
    return layer;
  }

  /**
   * Gives every dropout layer a state derived from `seed` and its position: a training run that
   * reseeds at each epoch start draws the same masks after a resume as without one.
   */
  reseedDropout(seed: number): void {
    const random = mulberry32(seed);
    for (const layer of this.dropouts) layer.reseed(Math.floor(random() * 0x100000000));
  }

  get(name: string): tf.Variable {
    const p = this.params.get(name);
    if (!p) throw new Error(`no parameter ${name}; known: ${[...this.params.keys()].join(', ')}`);
    return p.variable;
  }

  /** Parameter names in creation order. */
  names(): string[] {
    return [...this.params.keys()];
  }

  /** The variables, in creation order (the optimiser's list). */
  variables(): tf.Variable[] {
    return [...this.params.values()].map((p) => p.variable);
  }

  /** A parameter's shape in PyTorch's layout. */
  torchShape(name: string): number[] {
    this.get(name);
    return [...(this.params.get(name) as Parameter).torchShape];
  }

  /** Values shaped like parameter `name` in TF.js (a gradient, say) rearranged into PyTorch's layout. */
  toTorchLayout(name: string, data: Float32Array): HostTensor {
    const v = this.get(name);
    const p = this.params.get(name) as Parameter;
    if (data.length !== v.size) throw new Error(`parameter ${name} has ${v.size} values, got ${data.length}`);
    return { shape: [...p.torchShape], data: toTorchOrder(data, v.shape, p.layout), sourceDtype: 'float32' };
  }

  /** Every parameter under its name, in PyTorch's layout (Linear weights [out, in]). */
  async stateDict(): Promise<StateDict> {
    const sd: StateDict = new Map();
    for (const [name, p] of this.params) sd.set(name, this.toTorchLayout(name, (await p.variable.data()) as Float32Array));
    return sd;
  }

  /**
   * Replaces every parameter from a state dict in PyTorch's layout, all or nothing: every key and
   * shape is checked first, and an error names the file (`source`) and the tensor.
   */
  loadStateDict(sd: StateDict, source: string, options: LoadOptions = {}): void {
    const prefix = options.prefix ?? '';
    const missing = [...this.params.keys()].filter((name) => !sd.has(prefix + name));
    if (missing.length) {
      const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
      throw new WeightFileError(source, prefix + missing[0], `lacks ${missing.length} of the ${this.params.size} parameters (${shown})${prefix ? ` under the prefix '${prefix}'` : ''}`);
    }
    if (!options.ignoreUnexpected) {
      const unexpected = [...sd.keys()].filter((k) => k.startsWith(prefix) && !this.params.has(k.slice(prefix.length)));
      if (unexpected.length) {
        throw new WeightFileError(source, unexpected[0],
          `names no parameter of this model (${unexpected.length} such keys: ${unexpected.slice(0, 5).join(', ')}); pass ignoreUnexpected to skip them`);
      }
    }
    for (const [name, p] of this.params) {
      const t = sd.get(prefix + name) as HostTensor;
      if (!sameShape(t.shape, p.torchShape)) {
        throw new WeightFileError(source, prefix + name, `has shape ${showShape(t.shape)}, the model needs ${showShape(p.torchShape)} (PyTorch layout)`);
      }
    }
    // Everything is validated above; only now are variables touched.
    tf.tidy(() => {
      for (const [name, p] of this.params) {
        const t = sd.get(prefix + name) as HostTensor;
        p.variable.assign(tf.tensor(fromTorchOrder(t.data, p.variable.shape, p.layout), p.variable.shape));
      }
    });
  }

  dispose(): void {
    for (const p of this.params.values()) p.variable.dispose();
    this.params.clear();
  }
}

/** The cheaper of the two untransposed ways to form a^T b for a [rows, k], b [rows, n]: [k, n]. */
function transposedProduct(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  const [rows, k] = a.shape;
  const n = b.shape[1];
  // XNNPACK packs its right operand on every call: pack the narrower one (measured on wasm).
  return n > k && rows > k
    ? tf.transpose(tf.matMul(tf.transpose(b), a) as tf.Tensor2D) // ([n, rows] @ [rows, k])^T
    : tf.matMul(tf.transpose(a), b); // [k, rows] @ [rows, n]
}

/**
 * a @ b for 2-D a [m, k] and b [k, n], with a gradient made of untransposed 2-D products
 * (dA = dy @ b^T, dB = a^T @ dy with the transposes materialised): the fast path on wasm.
 */
export const matMul2d = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [a, b, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
  save([a, b]);
  return {
    value: tf.matMul(a, b), // [m, n]
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [sa, sb] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D; // [m, n]
      return [tf.matMul(d, tf.transpose(sb)), transposedProduct(sa, d)]; // [m, k], [k, n]
    },
  };
}) as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/** x @ w + bias for x [m, k], w [k, n], bias [n], fused forward, gradients as in matMul2d. */
const linearWithBias = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, bias, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
  save([x, w]);
  return {
    value: tf.fused.matMul({ a: x, b: w, bias }), // [m, n]
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const [sx, sw] = saved as [tf.Tensor2D, tf.Tensor2D];
      const d = dy as tf.Tensor2D; // [m, n]
      return [tf.matMul(d, tf.transpose(sw)), transposedProduct(sx, d), tf.sum(d, 0)]; // [m, k], [k, n], [n]
    },
  };
}) as (x: tf.Tensor2D, w: tf.Tensor2D, bias: tf.Tensor1D) => tf.Tensor2D;

export interface LinearOptions {
  /** With a bias (PyTorch's default); the attention projections q, kv and qkv have none. */
  bias?: boolean;
}

/**
 * nn.Linear: y = x W^T + b over the last axis. The weight is held as [in, out] and named
 * `${name}.weight` ([out, in] in the state dict). PyTorch's initialisation: Kaiming-uniform with
 * a = sqrt(5), i.e. U(-1/sqrt(in), 1/sqrt(in)), and the bias from the same range.
 */
export class Linear {
  readonly weight: tf.Variable; // [in, out]
  readonly bias: tf.Variable | undefined; // [out]

  constructor(params: ParameterSet, readonly name: string, readonly inFeatures: number, readonly outFeatures: number, options: LinearOptions = {}) {
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = params.addUniform(`${name}.weight`, [inFeatures, outFeatures], bound, 'linear');
    this.bias = (options.bias ?? true) ? params.addUniform(`${name}.bias`, [outFeatures], bound) : undefined;
  }

  /** [..., in] -> [..., out], as one 2-D product over all leading axes. */
  apply<T extends tf.Tensor>(x: T): T {
    return this.applyChunks(x, 1)[0];
  }

  /**
   * The output split into `chunks` equal blocks of columns ([..., out / chunks] each), computed
   * as one product per block of the weight: cheaper than slicing the output (on wasm, slicing an
   * activation's columns costs about a third of the product itself; the weight is far smaller).
   */
  applyChunks<T extends tf.Tensor>(x: T, chunks: number): T[] {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new Error(`${this.name}: input has ${x.shape[x.rank - 1]} features on its last axis, the layer takes ${this.inFeatures}`);
    }
    if (!Number.isInteger(chunks) || chunks < 1 || this.outFeatures % chunks !== 0) throw new Error(`${this.name}: ${this.outFeatures} outputs cannot be split into ${chunks} chunks`);
    const width = this.outFeatures / chunks;
    return tf.tidy(() => {
      const rows = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D; // [rows, in]
      return Array.from({ length: chunks }, (_, i) => {
        const w = (chunks === 1 ? this.weight : tf.slice(this.weight, [0, i * width], [-1, width])) as tf.Tensor2D; // [in, out / chunks]
        const b = this.bias && (chunks === 1 ? this.bias : tf.slice(this.bias, [i * width], [width])) as tf.Tensor1D | undefined; // [out / chunks]
        const y = b ? linearWithBias(rows, w, b) : matMul2d(rows, w); // [rows, out / chunks]
        return tf.reshape(y, [...x.shape.slice(0, -1), width]) as T; // [..., out / chunks]
      });
    });
  }
}

/**
 * Layer norm over the last axis with its gradient in closed form (two row reductions instead of
 * autodiff through tf.moments). With xhat = (x - mean) * rstd and g = dy * weight:
 *   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), dweight = sum(dy * xhat), dbias = sum(dy).
 */
function layerNormOp(eps: number) {
  return tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, weight, bias, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const mean = tf.mean(x, 1, true); // [rows, 1]
    const centred = tf.sub(x, mean); // [rows, d]
    const rstd = tf.rsqrt(tf.add(tf.mean(tf.square(centred), 1, true), eps)); // [rows, 1]
    const xhat = tf.mul(centred, rstd); // [rows, d]
    save([xhat, rstd, weight]);
    return {
      value: tf.add(tf.mul(xhat, weight), bias), // [rows, d]
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [sxhat, srstd, sweight] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const d = dy as tf.Tensor2D; // [rows, d]
        const g = tf.mul(d, sweight); // [rows, d]
        const inner = tf.add(tf.mean(g, 1, true), tf.mul(sxhat, tf.mean(tf.mul(g, sxhat), 1, true))); // [rows, d]
        const dx = tf.mul(tf.sub(g, inner), srstd); // [rows, d]
        return [dx, tf.sum(tf.mul(d, sxhat), 0), tf.sum(d, 0)]; // [rows, d], [d], [d]
      },
    };
  }) as (x: tf.Tensor2D, weight: tf.Tensor1D, bias: tf.Tensor1D) => tf.Tensor2D;
}

/** nn.LayerNorm(dim): weight 1, bias 0, eps 1e-5, over the last axis. */
export class LayerNorm {
  readonly weight: tf.Variable; // [dim]
  readonly bias: tf.Variable; // [dim]
  private readonly op: ReturnType<typeof layerNormOp>;

  constructor(params: ParameterSet, readonly name: string, readonly dim: number, readonly eps = 1e-5) {
    this.weight = params.addConstant(`${name}.weight`, [dim], 1);
    this.bias = params.addConstant(`${name}.bias`, [dim], 0);
    this.op = layerNormOp(eps);
  }

  /** [..., dim] -> [..., dim]. */
  apply<T extends tf.Tensor>(x: T): T {
    if (x.shape[x.rank - 1] !== this.dim) throw new Error(`${this.name}: input has ${x.shape[x.rank - 1]} features on its last axis, the norm takes ${this.dim}`);
    return tf.tidy(() => {
      const rows = tf.reshape(x, [-1, this.dim]) as tf.Tensor2D; // [rows, dim]
      return tf.reshape(this.op(rows, this.weight as tf.Tensor1D, this.bias as tf.Tensor1D), x.shape) as T; // [..., dim]
    });
  }
}

/**
 * Exact GELU, x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), as torch.nn.GELU() by default (not the
 * tanh approximation). tfjs registers Erf's gradient, and wasm has an Erf kernel; tfjs' erf is
 * the Abramowitz-Stegun 7.1.26 approximation, within 1.5e-7 of the true function.
 */
export function gelu<T extends tf.Tensor>(x: T): T {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1)) as T);
}

/**
 * nn.Dropout: in training, zeroes each value with probability `rate` and scales the rest by
 * 1 / (1 - rate); in inference, the identity. The masks come from a seeded generator, so a
 * training run repeats exactly.
 */
export class Dropout {
  private state: number;

  constructor(readonly rate: number, seed: number) {
    if (!(rate >= 0 && rate < 1)) throw new Error(`dropout rate must be in [0, 1), got ${rate}`);
    this.state = seed >>> 0;
  }

  reseed(seed: number): void {
    this.state = seed >>> 0;
  }

  apply<T extends tf.Tensor>(x: T, mode: ForwardMode): T {
    if (mode === 'inference' || this.rate === 0) return x;
    const { mask, state } = dropoutMask(this.state, this.rate, x.size);
    this.state = state;
    return tf.tidy(() => tf.mul(x, tf.tensor(mask, x.shape)) as T);
  }
}
