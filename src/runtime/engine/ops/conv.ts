import * as tf from '@tensorflow/tfjs-core';
import { showShape, type Graph, type Sym } from '../graph';
import { defineOp, type OnnxEmitter } from '../registry';

/**
 * 2-D convolution, NCHW, weight [out, in / groups, k, k] (nn.Conv2d's layout, no bias), square
 * kernel, stride and zero padding, and its two gradients as ops of their own:
 *   dX = ConvTranspose(dy, w) with output_padding so that the input's size comes back exactly;
 *   dW = a convolution of x by dy with N and C swapped (dilation = stride), or im2col + one Gemm;
 *        the ONNX lowering picks per shape (see weightGradMethod for the figures).
 * TF.js is NHWC: the lowerings transpose around tf.conv2d / tf.conv2dTranspose, and run a grouped
 * convolution as one per group (no grouped kernels there; TRIPLEX's trunk has none, the checks do).
 * The gradient ops have no rule of their own: nothing here takes second derivatives.
 */

export interface ConvOptions {
  stride?: number;
  pad?: number;
  groups?: number;
}

interface ConvAttrs { stride: number; pad: number; groups: number }

const outSize = (n: number, k: number, stride: number, pad: number) => Math.floor((n + 2 * pad - k) / stride) + 1;

/** y = conv(x, w): x [N, C, H, W], w [O, C/groups, k, k] -> [N, O, Ho, Wo]. */
export function conv2d(g: Graph, x: Sym, w: Sym, o: ConvOptions = {}): Sym {
  const { stride = 1, pad = 0, groups = 1 } = o;
  const [N, C, H, W] = x.shape;
  const [O, Cg, k, k2] = w.shape;
  if (x.rank !== 4 || w.rank !== 4 || k !== k2 || C !== Cg * groups || O % groups !== 0) {
    throw new Error(`conv2d: input ${showShape(x.shape)} and weight ${showShape(w.shape)} do not fit (groups ${groups}, square kernels)`);
  }
  const Ho = outSize(H, k, stride, pad);
  const Wo = outSize(W, k, stride, pad);
  if (Ho < 1 || Wo < 1) throw new Error(`conv2d: a ${k}x${k} kernel does not fit ${showShape(x.shape)} padded by ${pad}`);
  return g.node('conv2d', [x, w], { stride, pad, groups }, [N, O, Ho, Wo], x.dtype);
}

// ---- ONNX

const convAttrs = (a: ConvAttrs, k: number) => ({
  kernel_shape: { ints: [k, k] }, strides: { ints: [a.stride, a.stride] }, pads: { ints: [a.pad, a.pad, a.pad, a.pad] }, group: { i: a.groups },
});

/**
 * How the ONNX lowering computes dW for a layer: im2col + one Gemm, except for large kernels
 * over few channels (the 7x7 stem), where the k^2 strided taps cost more than the product.
 * Measured on onnxruntime-node 1.30, 2 threads, batch 16, ms per dW (swapped / im2col), on a
 * shared, busy machine (ratios, not speeds): conv1 7x7/2 64 / 266; layer1 3x3 268 / 96;
 * layer2.0.conv1 3x3/2 112 / 82; layer2 3x3 173 / 77; layer2 1x1/2 81 / 41; layer3.0.conv1
 * 86 / 48; layer3 3x3 148 / 50; layer3 1x1/2 51 / 3; layer4.0.conv1 69 / 83; layer4 3x3
 * 157 / 63; layer4 1x1/2 66 / 10. Override with TRIPLEX_CONV_DW=swapped|im2col.
 */
export type WeightGradMethod = 'swapped' | 'im2col';

export function weightGradMethod(x: Sym, dy: Sym, a: ConvAttrs): WeightGradMethod {
  const forced = process.env.TRIPLEX_CONV_DW;
  if (forced === 'swapped' || forced === 'im2col') return forced;
  if (a.groups !== 1) return 'im2col';
  const k = x.shape[2] + 2 * a.pad - (dy.shape[2] - 1) * a.stride; // >= the kernel size
  return k > 5 ? 'swapped' : 'im2col';
}

/** dW by a convolution with N and C swapped: X^T [C, N, H, W] (*) dy^T-as-weight [O, N, Ho, Wo]. */
function emitSwapped(e: OnnxEmitter, x: string, dy: string, s: Sym, out: string): void {
  const a = s.attrs as unknown as ConvAttrs;
  const k = s.shape[2];
  const [, , Ho, Wo] = s.inputs[1].shape;
  const [, , H, W] = s.inputs[0].shape;
  const xT = e.node('Transpose', [x], e.temp(), { perm: { ints: [1, 0, 2, 3] } }); // [C, N, H, W]
  const dyT = e.node('Transpose', [dy], e.temp(), { perm: { ints: [1, 0, 2, 3] } }); // [O, N, Ho, Wo]
  const full = e.node('Conv', [xT, dyT], e.temp(), {
    kernel_shape: { ints: [Ho, Wo] }, strides: { ints: [1, 1] }, dilations: { ints: [a.stride, a.stride] }, pads: { ints: [a.pad, a.pad, a.pad, a.pad] },
  }); // [C, O, k', k'] with k' >= k when the stride does not divide the padded size
  const kh = H + 2 * a.pad - (Ho - 1) * a.stride;
  const kw = W + 2 * a.pad - (Wo - 1) * a.stride;
  const cut = kh === k && kw === k ? full : e.node('Slice', [full, e.int64s([0, 0]), e.int64s([k, k]), e.int64s([2, 3])], e.temp());
  e.node('Transpose', [cut], out, { perm: { ints: [1, 0, 2, 3] } }); // [O, C, k, k]
}

/**
 * dW by im2col + one product: the k^2 strided taps of the padded input, laid out as columns
 * [groups, Cg*k*k, N*Ho*Wo] from X^T, times dy^T [groups, Og, N*Ho*Wo] (transB), one Gemm per group
 * with the batch folded into the inner dimension.
 */
function emitIm2col(e: OnnxEmitter, x: string, dy: string, s: Sym, out: string): void {
  const a = s.attrs as unknown as ConvAttrs;
  const [O, Cg, k] = s.shape;
  const [N, C] = s.inputs[0].shape;
  const [, , Ho, Wo] = s.inputs[1].shape;
  const G = a.groups;
  const L = N * Ho * Wo;
  let xT = e.node('Transpose', [x], e.temp(), { perm: { ints: [1, 0, 2, 3] } }); // [C, N, H, W]
  if (a.pad > 0) xT = e.node('Pad', [xT, e.int64s([0, 0, a.pad, a.pad, 0, 0, a.pad, a.pad])], e.temp()); // [C, N, Hp, Wp]
  const taps: string[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const tap = e.node('Slice', [xT, e.int64s([i, j]), e.int64s([i + (Ho - 1) * a.stride + 1, j + (Wo - 1) * a.stride + 1]), e.int64s([2, 3]), e.int64s([a.stride, a.stride])], e.temp()); // [C, N, Ho, Wo]
      taps.push(e.node('Reshape', [tap, e.int64s([C, 1, L])], e.temp())); // [C, 1, L]
    }
  }
  const cols = e.node('Reshape', [e.node('Concat', taps, e.temp(), { axis: { i: 1 } }), e.int64s([G, Cg * k * k, L])], e.temp()); // [G, Cg*k*k, L]
  const dyT = e.node('Reshape', [e.node('Transpose', [dy], e.temp(), { perm: { ints: [1, 0, 2, 3] } }), e.int64s([G, O / G, L])], e.temp()); // [G, Og, L]
  const prod = G === 1
    ? e.node('Gemm', [e.node('Reshape', [dyT, e.int64s([O, L])], e.temp()), e.node('Reshape', [cols, e.int64s([Cg * k * k, L])], e.temp())], e.temp(), { transB: { i: 1 } }) // [O, Cg*k*k]
    : e.node('MatMul', [dyT, e.node('Transpose', [cols], e.temp(), { perm: { ints: [0, 2, 1] } })], e.temp()); // [G, Og, Cg*k*k]
  e.node('Reshape', [prod, e.int64s([O, Cg, k, k])], out);
}

// ---- TF.js (NHWC)

type Padding4 = [[number, number], [number, number], [number, number], [number, number]];
const explicit = (p: number): Padding4 => [[0, 0], [p, p], [p, p], [0, 0]];
const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);
const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);
const hwio = (w: tf.Tensor) => tf.transpose(w, [2, 3, 1, 0]) as tf.Tensor4D; // [O, C, k, k] -> [k, k, C, O]

/** Runs f on each group's slice of the channel-split arguments, concatenating along `axis`. */
function perGroup(groups: number, parts: { t: tf.Tensor; axis: number }[], f: (xs: tf.Tensor[]) => tf.Tensor, axis: number): tf.Tensor {
  if (groups === 1) return f(parts.map((p) => p.t));
  const split = parts.map((p) => tf.split(p.t, groups, p.axis));
  return tf.concat(Array.from({ length: groups }, (_, i) => f(split.map((s) => s[i]))), axis);
}

function tfWeightGrad(x: tf.Tensor, dy: tf.Tensor, a: ConvAttrs, k: number): tf.Tensor {
  // The swapped convolution again: X^T as NHWC [C, H, W, N], dy as HWIO [Ho, Wo, N, O]; every
  // backend has Conv2D (wasm lacks Conv2DBackpropFilter).
  const xT = tf.transpose(x, [1, 2, 3, 0]) as tf.Tensor4D;
  const f = tf.transpose(dy, [2, 3, 0, 1]) as tf.Tensor4D;
  const full = tf.conv2d(xT, f, 1, explicit(a.pad), 'NHWC', a.stride); // [C, k', k', O]
  const cut = tf.slice(full, [0, 0, 0, 0], [full.shape[0], k, k, full.shape[3]]);
  return tf.transpose(cut, [3, 0, 1, 2]); // [O, C, k, k]
}

// ---- registration

defineOp('conv2d', {
  backward: (g, y, dy) => {
    const [x, w] = y.inputs;
    return [
      g.node('conv2dGradInput', [dy, w], y.attrs, x.shape, x.dtype),
      g.node('conv2dGradWeight', [x, dy], y.attrs, w.shape, w.dtype),
    ];
  },
  onnx: (e, s, [x, w], out) => { e.node('Conv', [x, w], out, convAttrs(s.attrs as unknown as ConvAttrs, s.inputs[1].shape[2])); },
  tfjs: (s, [x, w]) => {
    const a = s.attrs as unknown as ConvAttrs;
    return perGroup(a.groups, [{ t: x, axis: 1 }, { t: w, axis: 0 }], ([xi, wi]) => nchw(tf.conv2d(nhwc(xi) as tf.Tensor4D, hwio(wi), a.stride, explicit(a.pad))), 1);
  },
});

defineOp('conv2dGradInput', {
  onnx: (e, s, [dy, w], out) => {
    const a = s.attrs as unknown as ConvAttrs;
    const k = s.inputs[1].shape[2];
    const [, , Ho, Wo] = s.inputs[0].shape;
    const [, , H, W] = s.shape;
    const extra = [H - ((Ho - 1) * a.stride - 2 * a.pad + k), W - ((Wo - 1) * a.stride - 2 * a.pad + k)];
    e.node('ConvTranspose', [dy, w], out, { ...convAttrs(a, k), output_padding: { ints: extra } });
  },
  tfjs: (s, [dy, w]) => {
    const a = s.attrs as unknown as ConvAttrs;
    const [N, C, H, W] = s.shape;
    return perGroup(a.groups, [{ t: dy, axis: 1 }, { t: w, axis: 0 }], ([dyi, wi]) =>
      nchw(tf.conv2dTranspose(nhwc(dyi) as tf.Tensor4D, hwio(wi), [N, H, W, C / a.groups], a.stride, explicit(a.pad))), 1);
  },
});

defineOp('conv2dGradWeight', {
  onnx: (e, s, [x, dy], out) => {
    const a = s.attrs as unknown as ConvAttrs;
    if (weightGradMethod(s.inputs[0], s.inputs[1], a) === 'swapped') emitSwapped(e, x, dy, s, out);
    else emitIm2col(e, x, dy, s, out);
  },
  tfjs: (s, [x, dy]) => {
    const a = s.attrs as unknown as ConvAttrs;
    return perGroup(a.groups, [{ t: x, axis: 1 }, { t: dy, axis: 1 }], ([xi, dyi]) => tfWeightGrad(xi, dyi, a, s.shape[2]), 0);
  },
});
