import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { registerWasmDepthwiseKernels } from '../../src/runtime/compute/wasmDepthwiseKernels';
import { registerWasmOneHotKernel } from '../../src/runtime/compute/wasmOneHot';
import { registerWasmSliceKernels } from '../../src/runtime/compute/wasmSlice';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';

/**
 * The kernels we register for tfjs-backend-wasm against the cpu backend's own: the depthwise-
 * convolution gradients it lacks (over strides, paddings and channel multipliers), and its OneHot,
 * which wrote int32 values into float32 tensors.
 */

const rand = mulberry32(2024);

async function useWasm(): Promise<void> {
  await initCompute({ backend: 'wasm' });
  registerWasmDepthwiseKernels();
  registerWasmOneHotKernel();
  registerWasmSliceKernels();
}

/** `run` on the cpu backend, then on wasm: the same values, and no tensor left behind by wasm's kernel. Returns the cpu's values. */
async function sameOnWasmAsOnCpu<T>(run: () => T): Promise<T> {
  await initCompute({ backend: 'cpu' });
  const reference = run();
  await useWasm();
  const before = tf.memory().numTensors;
  assert.deepEqual(run(), reference);
  assert.equal(tf.memory().numTensors, before, 'the kernel leaks no tensors');
  return reference;
}

test('OneHot in float32, with on and off values, and the one-hot product the engine\'s scatterAdd uses, as on the cpu backend', async () => {
  const run = () => tf.tidy(() => {
    const indices = tf.tensor1d([3, 0, 5, 1, 5], 'int32');
    const rows = tf.tensor2d([[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]);
    return [
      tf.oneHot(indices, 7, 1, 0, 'float32'), tf.oneHot(indices, 7, 2.5, -0.5, 'float32'), tf.oneHot(indices, 7),
      tf.matMul(tf.oneHot(indices, 7, 1, 0, 'float32'), rows, true, false),
    ].map((t) => [t.dtype, Array.from(t.dataSync())] as const);
  });
  const reference = await sameOnWasmAsOnCpu(run);
  assert.deepEqual(reference[3][1], [3, 4, 7, 8, 0, 0, 1, 2, 0, 0, 14, 16, 0, 0], 'rows 2 and 4 both added to row 5');
});

test('Slice takes the same values as on the cpu backend, at every rank, contiguous or not, float32 and int32, and so do unstack and split', async () => {
  const cases: [number[], number[], number[]][] = [
    [[7], [2], [4]], [[5, 6], [1, 2], [3, 3]], [[5, 6], [2, 0], [2, 6]], [[3, 4, 5], [0, 1, 0], [3, 2, 5]],
    [[3, 4, 5], [1, 0, 2], [2, 4, 3]], [[3, 2, 4, 5, 2], [1, 0, 0, 0, 0], [1, 2, 4, 5, 2]], [[3, 2, 4, 5, 2], [0, 1, 1, 2, 1], [3, 1, 2, 3, 1]],
    [[2, 3, 2, 2, 3, 2], [1, 1, 0, 1, 0, 0], [1, 2, 2, 1, 3, 2]], [[4, 3], [0, 0], [4, 3]], [[4, 3], [1, 1], [0, 2]],
  ];
  const values = cases.map(([shape]) => normal(rand, shape.reduce((a, b) => a * b, 1)));
  const run = () => tf.tidy(() => cases.flatMap(([shape, begin, size], i) => [
    Array.from(tf.slice(tf.tensor(values[i], shape), begin, size).dataSync()),
    Array.from(tf.slice(tf.tensor(values[i].map((v) => Math.round(10 * v)), shape, 'int32'), begin, size).dataSync()),
  ]).concat([
    ...tf.unstack(tf.tensor(values[3], [3, 4, 5]), 1), ...tf.unstack(tf.tensor(values[6], [3, 2, 4, 5, 2]), 4),
    ...tf.split(tf.tensor(values[1], [5, 6]), [2, 1, 3], 1), ...tf.split(tf.tensor(values[7], [2, 3, 2, 2, 3, 2]), 3, 4),
  ].map((t) => [...t.shape, ...t.dataSync()])));
  await sameOnWasmAsOnCpu(run);
});

describe('wasm depthwise-convolution gradient kernels match the cpu backend', () => {
  type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  const cases: { name: string; x: [number, number, number, number]; k: number; multiplier: number; stride: number; pad: Pad }[] = [
    { name: '3x3 stride 1 explicit 1 (APEG)', x: [1, 9, 11, 5], k: 3, multiplier: 1, stride: 1, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
    { name: '3x3 stride 1 same, batch 2', x: [2, 6, 7, 4], k: 3, multiplier: 1, stride: 1, pad: 'same' },
    { name: '3x3 stride 1 valid, multiplier 2', x: [2, 9, 8, 3], k: 3, multiplier: 2, stride: 1, pad: 'valid' },
    { name: '3x3 stride 2 same', x: [2, 9, 11, 3], k: 3, multiplier: 1, stride: 2, pad: 'same' },
    { name: '5x5 stride 2 valid, multiplier 3', x: [1, 10, 11, 2], k: 5, multiplier: 3, stride: 2, pad: 'valid' },
    { name: '7x7 stride 1 same', x: [1, 7, 7, 4], k: 7, multiplier: 1, stride: 1, pad: 'same' },
  ];
  after(useWasm);

  for (const c of cases) {
    test(c.name, async (t) => {
      const xs = normal(rand, c.x.reduce((a, b) => a * b, 1));
      const ws = normal(rand, c.k * c.k * c.x[3] * c.multiplier);
      const run = () => tf.tidy(() => {
        const x = tf.tensor4d(xs, c.x);
        const w = tf.tensor4d(ws, [c.k, c.k, c.x[3], c.multiplier]);
        const yShape = tf.depthwiseConv2d(x, w, c.stride, c.pad).shape;
        const r = tf.tensor(Float32Array.from({ length: yShape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(0.37 * i)), yShape);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)))([x, w]);
        return [dx.dataSync(), dw.dataSync()];
      });
      await initCompute({ backend: 'cpu' });
      const reference = run();
      await useWasm();
      const before = tf.memory().numTensors;
      const got = run();
      assert.equal(tf.memory().numTensors, before, 'the kernels leak no tensors');
      const [ex, ew] = [relativeError(got[0], reference[0]), relativeError(got[1], reference[1])];
      t.diagnostic(`relative error: input ${ex.toExponential(2)}, filter ${ew.toExponential(2)}`);
      assert.ok(ex < 1e-5 && ew < 1e-5, `input gradient off by ${ex}, filter gradient by ${ew}`);
    });
  }
});
