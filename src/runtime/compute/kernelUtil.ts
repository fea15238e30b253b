import * as tf from '@tensorflow/tfjs-core';

/** Helpers shared by the gradient kernels TRIPLEX composes for the wasm backend. */

export type Shape4 = [number, number, number, number];

export interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

/** The attributes of a (depthwise) convolution gradient, refusing what the kernels do not handle. */
export function convAttrs(attrs: tf.NamedAttrMap | undefined, what: string): ConvAttrs {
  if (!attrs) throw new Error(`${what} called without attributes`);
  const { dataFormat, dilations } = attrs;
  if (dataFormat !== undefined && dataFormat !== 'NHWC') throw new Error(`TRIPLEX wasm ${what} supports NHWC only, got ${String(dataFormat)}`);
  if (dilations !== undefined && dilations !== null && dilations !== 1 && !(Array.isArray(dilations) && dilations.every((d) => d === 1))) {
    throw new Error(`TRIPLEX wasm ${what} does not support dilated convolutions`);
  }
  return attrs as unknown as ConvAttrs;
}

export function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs, depthwise: boolean): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(xShape as Shape4, filterShape as Shape4, a.strides, 1, a.pad, a.dimRoundingMode, depthwise, 'channelsLast');
}

interface RefCountingBackend { incRef(dataId: tf.DataId): void }

/**
 * A Tensor view of a kernel input, so that tf ops can be composed on it. The engine's
 * makeTensorFromTensorInfo does not count the new reference, so we do: disposing the view (at
 * the end of the kernel's tidy) must not free the caller's data.
 */
export const asTensor = <R extends tf.Rank>(info: tf.TensorInfo | undefined, backend: unknown): tf.Tensor<R> => {
  if (!info) throw new Error('missing kernel input');
  (backend as RefCountingBackend).incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info) as tf.Tensor<R>;
};
