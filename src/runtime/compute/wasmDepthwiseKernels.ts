import * as tf from '@tensorflow/tfjs-core';
import { asTensor, convAttrs, convInfo, type Shape4 } from './kernelUtil';

/**
 * The two depthwise-convolution gradient kernels that tfjs-backend-wasm 4.22 lacks
 * (DepthwiseConv2dNativeBackpropInput and ...BackpropFilter: without them any gradient through
 * tf.depthwiseConv2d fails on wasm, e.g. in a notebook's TF.js code), composed from
 * kernels wasm has. NHWC, dilation 1, any stride, padding and channel multiplier.
 */

/**
 * dX[n, h, w, c] = sum over m of the correlation of dy[..., c*M + m] (zeros inserted for the
 * stride) with filter[:, :, c, m] rotated by 180 degrees: M forward depthwise convolutions.
 */
const depthwiseBackpropInput: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const a = convAttrs(attrs, 'depthwise convolution gradient');
  const inShape = attrs?.inputShape as Shape4;
  return tf.tidy(() => {
    const dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const filter = asTensor<tf.Rank.R4>(inputs.filter, backend);
    const [kh, kw, C, M] = filter.shape;
    const info = convInfo(inShape, filter.shape, a, true);
    const [sh, sw] = [info.strideHeight, info.strideWidth];
    const { top, left } = info.padInfo;
    const [N, Ho, Wo] = dy.shape;
    const [, H, W] = inShape;
    const padTop = kh - 1 - top;
    const padLeft = kw - 1 - left;
    if (padTop < 0 || padLeft < 0) throw new Error(`TRIPLEX wasm DepthwiseConv2dNativeBackpropInput: padding ${top}/${left} larger than the kernel`);
    let d: tf.Tensor4D = dy; // [N, Ho, Wo, C*M]
    if (sh > 1 || sw > 1) {
      const spread = tf.pad(tf.reshape(dy, [N, Ho, 1, Wo, 1, C * M]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]);
      d = tf.slice(tf.reshape<tf.Rank.R4>(spread, [N, Ho * sh, Wo * sw, C * M]), [0, 0, 0, 0], [-1, (Ho - 1) * sh + 1, (Wo - 1) * sw + 1, -1]);
    }
    let padBottom = H + kh - 1 - d.shape[1] - padTop;
    let padRight = W + kw - 1 - d.shape[2] - padLeft;
    const crop = padBottom < 0 || padRight < 0;
    padBottom = Math.max(padBottom, 0);
    padRight = Math.max(padRight, 0);
    const padding: tf.backend_util.ExplicitPadding = [[0, 0], [padTop, padBottom], [padLeft, padRight], [0, 0]];
    // Rotate by gathering the kh*kw spatial rows in reverse (wasm's Reverse is slow).
    const rows = tf.reshape(filter, [kh * kw, C * M]);
    const rotated = tf.reshape<tf.Rank.R4>(kh * kw === 1 ? rows : tf.gather(rows, tf.range(kh * kw - 1, -1, -1, 'int32')), [kh, kw, C, M]);
    let r: tf.Tensor4D;
    if (M === 1) {
      r = tf.depthwiseConv2d(d, rotated, 1, padding); // [N, H', W', C]
    } else {
      const perM = tf.reshape(d, [N, d.shape[1], d.shape[2], C, M]);
      const parts = Array.from({ length: M }, (_, m) => tf.depthwiseConv2d(
        tf.reshape<tf.Rank.R4>(tf.slice(perM, [0, 0, 0, 0, m], [-1, -1, -1, -1, 1]), [N, d.shape[1], d.shape[2], C]),
        tf.slice(rotated, [0, 0, 0, m], [-1, -1, -1, 1]), 1, padding));
      r = tf.addN(parts);
    }
    return crop ? tf.slice(r, [0, 0, 0, 0], [-1, H, W, -1]) : r;
  });
};

/**
 * dW[i, j, c, m] = sum over n, ho, wo of xpad[n, ho*sh + i, wo*sw + j, c] * dy[n, ho, wo, c*M + m],
 * itself a depthwise convolution: the padded input, with the batch folded into the channels
 * ([1, Hp, Wp, N*C]), correlated with dy as the filter ([Ho, Wo, N*C, M], dilated by the stride),
 * gives [1, kh, kw, N*C*M]; summing over the batch leaves [kh, kw, C, M]. One XNNPACK pass; the
 * alternative of one shifted slice per filter tap was three times slower on a 78x128x512 grid.
 */
const depthwiseBackpropFilter: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const a = convAttrs(attrs, 'depthwise convolution gradient');
  const filterShape = attrs?.filterShape as Shape4;
  return tf.tidy(() => {
    const x = asTensor<tf.Rank.R4>(inputs.x, backend);
    const dy = asTensor<tf.Rank.R4>(inputs.dy, backend);
    const [kh, kw, C, M] = filterShape;
    const info = convInfo(x.shape, filterShape, a, true);
    const [sh, sw] = [info.strideHeight, info.strideWidth];
    const { top, left } = info.padInfo;
    const [N, Ho, Wo] = dy.shape;
    const [, H, W] = x.shape;
    const rowsRead = (Ho - 1) * sh + kh;
    const colsRead = (Wo - 1) * sw + kw;
    // Exactly the rows and columns the forward pass read: pad what it padded, drop what it skipped.
    let xpad = tf.pad(x, [[0, 0], [top, Math.max(rowsRead - H - top, 0)], [left, Math.max(colsRead - W - left, 0)], [0, 0]]);
    if (xpad.shape[1] > rowsRead || xpad.shape[2] > colsRead) xpad = tf.slice(xpad, [0, 0, 0, 0], [-1, rowsRead, colsRead, -1]);
    const input = N === 1 ? xpad : tf.reshape<tf.Rank.R4>(tf.transpose(xpad, [1, 2, 0, 3]), [1, rowsRead, colsRead, N * C]); // [1, rowsRead, colsRead, N*C]
    const filter = N === 1
      ? tf.reshape<tf.Rank.R4>(dy, [Ho, Wo, C, M])
      : tf.reshape<tf.Rank.R4>(tf.transpose(tf.reshape(dy, [N, Ho, Wo, C, M]), [1, 2, 0, 3, 4]), [Ho, Wo, N * C, M]); // [Ho, Wo, N*C, M]
    const r = tf.depthwiseConv2d(input, filter, 1, 'valid', 'NHWC', [sh, sw]); // [1, kh, kw, N*C*M]
    return N === 1 ? tf.reshape(r, [kh, kw, C, M]) : tf.sum(tf.reshape(r, [kh, kw, N, C, M]), 2); // [kh, kw, C, M]
  });
};

let registered = false;

/** Registers the depthwise-convolution gradient kernels on the wasm backend (idempotent). */
export function registerWasmDepthwiseKernels(): void {
  if (registered) return;
  registered = true;
  for (const [kernelName, kernelFunc] of [
    [tf.DepthwiseConv2dNativeBackpropInput, depthwiseBackpropInput],
    [tf.DepthwiseConv2dNativeBackpropFilter, depthwiseBackpropFilter],
  ] as const) {
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc });
  }
}
