import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-wasm 4.22's OneHot writes int32 values whatever dtype it is asked for: a float32
 * one-hot comes back as 1.4e-45 (the bits of int32 1) where it should hold 1. The engine's TF.js
 * executor adds rows by a one-hot product (scatterAdd: APEG's grid, the baselines' pooling), so on
 * wasm every such product was wrong. This wraps the kernel: the int32 one-hot the wasm code does
 * compute, cast to the dtype asked for, with the on and off values applied in that dtype.
 */

let registered = false;

export function registerWasmOneHotKernel(): void {
  if (registered) return;
  const original = tf.getKernel(tf.OneHot, 'wasm');
  if (!original) return; // the wasm backend is not registered: nothing to correct
  registered = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const attrs = args.attrs as unknown as { dtype?: tf.DataType; onValue: number; offValue: number };
    if (attrs.dtype === undefined || attrs.dtype === 'int32') return original.kernelFunc(args);
    const bits = original.kernelFunc({ ...args, attrs: { ...args.attrs, dtype: 'int32', onValue: 1, offValue: 0 } }) as tf.TensorInfo;
    const ones = tf.engine().makeTensorFromTensorInfo(bits);
    return tf.tidy(() => {
      const hot = tf.cast(ones, attrs.dtype!);
      ones.dispose();
      return attrs.onValue === 1 && attrs.offValue === 0 ? hot : tf.add(tf.mul(hot, attrs.onValue - attrs.offValue), attrs.offValue);
    });
  };
  tf.unregisterKernel(tf.OneHot, 'wasm');
  tf.registerKernel({ ...original, kernelFunc });
}
