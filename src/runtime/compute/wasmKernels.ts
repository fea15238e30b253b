import * as tf from '@tensorflow/tfjs-core';
import { asTensor, convAttrs, convInfo, type Shape4 } from './kernelUtil';

/**
 * Kernels the wasm backend needs for training, composed from its fast XNNPACK convolutions.
 *
 * tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter (a training step fails outright), its
 * Conv2DBackpropInput is a plain loop (1.6-2.5 s per ResNet18 layer against ~0.1 s composed), and
 * tfjs-core's batch-norm gradient tiles per-channel values to the full activation size. NHWC only.
 */

/**
 * dW[i, j, ci, co] = sum over n, ho, wo of xpad[n, ho*s + i, wo*s + j, ci] * dy[n, ho, wo, co],
 * itself a convolution: x transposed to [Ci, H, W, N] with dy transposed to [Ho, Wo, N, Co] as
 * the filter, stride 1, dilation s, giving [Ci, kh, kw, Co].
 */
const conv2DBackpropFilter: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const a = convAttrs(attrs, 'convolution gradient');
  const filterShape = attrs?.filterShape as Shape4;
  return tf.tidy(() => {
    const x = asTensor<tf.Rank.R4>(inputs.x, backend);
    const dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const [kh, kw] = filterShape;
    const c = convInfo(x.shape, filterShape, a, false);
    const { top, left } = c.padInfo;
    const [sh, sw] = [c.strideHeight, c.strideWidth];
    let input: tf.Tensor4D = x;
    let [H, W] = [x.shape[1], x.shape[2]];
    let bottom = kh + (c.outHeight - 1) * sh - H - top;
    let right = kw + (c.outWidth - 1) * sw - W - left;
    if (bottom < 0 || right < 0) {
      // Rows or columns the forward convolution never read ('valid' with a remainder): drop them.
      H += Math.min(bottom, 0);
      W += Math.min(right, 0);
      input = tf.slice(x, [0, 0, 0, 0], [-1, H, W, -1]);
      bottom = Math.max(bottom, 0);
      right = Math.max(right, 0);
    }
    const xT = tf.transpose(input, [3, 1, 2, 0]); // [Ci, H, W, N]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, N, Co]
    const r = tf.conv2d(xT, dyT, 1, [[0, 0], [top, bottom], [left, right], [0, 0]], 'NHWC', [sh, sw]); // [Ci, kh, kw, Co]
    return tf.transpose(r, [1, 2, 0, 3]); // [kh, kw, Ci, Co]
  });
};

/**
 * dX = conv2d(dy with s-1 zeros inserted between rows and columns, W rotated by 180 degrees with
 * Ci and Co swapped, stride 1, padding kh-1-top).
 */
const conv2DBackpropInput: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const a = convAttrs(attrs, 'convolution gradient');
  const inShape = attrs?.inputShape as Shape4;
  return tf.tidy(() => {
    const dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const filter = asTensor<tf.Rank.R4>(inputs.filter, backend);
    const [kh, kw] = filter.shape;
    const c = convInfo(inShape, filter.shape, a, false);
    const [sh, sw] = [c.strideHeight, c.strideWidth];
    const { top, left } = c.padInfo;
    const [N, Ho, Wo, Co] = dy.shape;
    const [, H, W] = inShape;
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    if (padTop < 0 || padLeft < 0) throw new Error(`TRIPLEX wasm Conv2DBackpropInput: padding ${top}/${left} larger than the kernel`);
    let d: tf.Tensor4D = dy;
    if (sh > 1 || sw > 1) {
      const spread = tf.pad(tf.reshape(dy, [N, Ho, 1, Wo, 1, Co]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
      d = tf.slice(tf.reshape<tf.Rank.R4>(spread, [N, Ho * sh, Wo * sw, Co]), [0, 0, 0, 0], [-1, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1, -1]);
    }
    let padBottom = H + kh - 1 - d.shape[1] - padTop;
    let padRight = W + kw - 1 - d.shape[2] - padLeft;
    const crop = padBottom < 0 || padRight < 0;
    padBottom = Math.max(padBottom, 0);
    padRight = Math.max(padRight, 0);
    // Rotate the filter by gathering its kh*kw spatial rows in reverse (wasm's Reverse is slow).
    const rows = tf.reshape(filter, [kh * kw, -1]);
    const rotated = kh * kw === 1 ? rows : tf.gather(rows, tf.range(kh * kw - 1, -1, -1, 'int32'));
    const f = tf.transpose(tf.reshape<tf.Rank.R4>(rotated, filter.shape), [0, 1, 3, 2]); // [kh, kw, Co, Ci]
    const r = tf.conv2d(d, f, 1, [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]]);
    return crop ? tf.slice(r, [0, 0, 0, 0], [-1, H, W, -1]) : r;
  });
};

/**
 * FusedBatchNorm gradient with per-channel reductions instead of tiling (same formulas as
 * tfjs-core's, which expands rsqrt(var + eps) to the activation's full shape first).
 */
const batchNormGrad: tf.GradConfig = {
  kernelName: tf.FusedBatchNorm,
  inputsToSave: ['x', 'mean', 'variance', 'scale'],
  gradFunc: (dyIn, saved, attrs) => {
    const dy = dyIn as tf.Tensor;
    const [x, mean, variance, scale] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor | undefined];
    const eps = attrs.varianceEpsilon as number;
    const axes = Array.from({ length: x.rank - mean.rank }, (_, i) => i);
    const reduce = (t: tf.Tensor) => (mean.rank === 1 ? tf.sum(t, axes) : t);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const gain = scale ? tf.mul(rstd, scale) : rstd;
    return {
      x: () => tf.mul(dy, gain),
      mean: () => tf.reshape(tf.neg(tf.mul(reduce(dy), gain)), mean.shape),
      variance: () => tf.reshape(
        tf.mul(tf.mul(tf.pow(rstd, 3), scale ? tf.mul(scale, -0.5) : -0.5), reduce(tf.mul(dy, tf.sub(x, mean)))), mean.shape),
      scale: () => tf.reshape(tf.mul(reduce(tf.mul(dy, tf.sub(x, mean))), rstd), mean.shape),
      offset: () => tf.reshape(reduce(dy), mean.shape),
    };
  },
};

let registered = false;

/** Registers the training kernels on the wasm backend (idempotent). */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2DBackpropFilter });
  if (tf.getKernel(tf.Conv2DBackpropInput, 'wasm')) tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
  tf.registerKernel({ kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput });
  // The gradient registry is global, not per backend; these formulas hold on every backend.
  tf.unregisterGradient(tf.FusedBatchNorm);
  tf.registerGradient(batchNormGrad);
}
