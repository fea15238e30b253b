import * as tf from '@tensorflow/tfjs-core';
import { asTensor, convAttrs, convInfo, type Shape4 } from './kernelUtil';

/**
 * The kernel the engine's TF.js interpreter needs for training convolutions on wasm, composed
 * from its fast XNNPACK convolutions: tfjs-backend-wasm 4.22's Conv2DBackpropInput (what
 * tf.conv2dTranspose runs, the engine's input gradient of a convolution, engine/ops/conv.ts) is a
 * plain loop, 1.6-2.5 s per ResNet18 layer against ~0.1 s composed. NHWC only. (The engine's
 * weight gradient and batch norm are composed from forward ops: no other kernel is replaced.)
 */

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

let registered = false;

/** Registers the composed Conv2DBackpropInput on the wasm backend (idempotent). */
export function registerWasmTrainingKernels(): void {
  if (registered) return;
  registered = true;
  if (tf.getKernel(tf.Conv2DBackpropInput, 'wasm')) tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
  tf.registerKernel({ kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput });
}
