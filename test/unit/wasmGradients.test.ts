import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { WasmOutOfMemoryError } from '../../src/runtime/compute/wasmOutOfMemory';
import { relativeError } from './helpers/compare';
import { mulberry32, normal } from '../../src/runtime/util/random';

/**
 * The wasm training kernel (the composed Conv2DBackpropInput, which the engine's TF.js
 * interpreter runs for a convolution's input gradient) against tfjs' cpu backend, whose kernels
 * are straightforward loops.
 */

type Padding = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase { name: string; x: [number, number, number, number]; k: number; cout: number; stride: number; pad: Padding }

const explicit = (t: number, b: number, l: number, r: number): Padding => [[0, 0], [t, b], [l, r], [0, 0]];

const CASES: ConvCase[] = [
  { name: '1x1 stride 1 valid', x: [2, 7, 9, 5], k: 1, cout: 4, stride: 1, pad: 'valid' },
  { name: '1x1 stride 2 valid (downsample)', x: [2, 9, 8, 6], k: 1, cout: 3, stride: 2, pad: 'valid' },
  { name: '1x1 stride 2 same', x: [1, 7, 7, 4], k: 1, cout: 5, stride: 2, pad: 'same' },
  { name: '3x3 stride 1 same', x: [2, 8, 8, 3], k: 3, cout: 4, stride: 1, pad: 'same' },
  { name: '3x3 stride 1 valid odd', x: [2, 9, 7, 3], k: 3, cout: 2, stride: 1, pad: 'valid' },
  { name: '3x3 stride 2 same even', x: [2, 10, 10, 4], k: 3, cout: 5, stride: 2, pad: 'same' },
  { name: '3x3 stride 2 same odd', x: [1, 11, 9, 3], k: 3, cout: 4, stride: 2, pad: 'same' },
  { name: '3x3 stride 2 valid odd', x: [2, 11, 13, 3], k: 3, cout: 3, stride: 2, pad: 'valid' },
  { name: '3x3 stride 2 explicit 1 (ResNet)', x: [2, 10, 10, 4], k: 3, cout: 6, stride: 2, pad: explicit(1, 1, 1, 1) },
  { name: '3x3 stride 1 explicit asymmetric', x: [1, 9, 8, 3], k: 3, cout: 4, stride: 1, pad: explicit(0, 2, 1, 0) },
  { name: '7x7 stride 2 explicit 3 (stem)', x: [2, 21, 19, 3], k: 7, cout: 4, stride: 2, pad: explicit(3, 3, 3, 3) },
  { name: '7x7 stride 1 same', x: [1, 12, 11, 2], k: 7, cout: 3, stride: 1, pad: 'same' },
  { name: '7x7 stride 2 valid', x: [1, 17, 16, 2], k: 7, cout: 3, stride: 2, pad: 'valid' },
];

const rand = mulberry32(42);
const randn = (shape: number[]) => tf.tensor(normal(rand, shape.reduce((a, b) => a * b, 1)), shape);

/** The input gradient of sum(conv2d(x, w) * r): Conv2DBackpropInput. */
function inputGrad(c: ConvCase, x: tf.Tensor4D, w: tf.Tensor4D, r: tf.Tensor): Float32Array {
  return tf.tidy(() => tf.grad((xx: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(xx as tf.Tensor4D, w, c.stride, c.pad), r)))(x).dataSync() as Float32Array);
}

describe('the wasm training kernel matches the cpu backend', () => {
  before(async () => {
    await initCompute({ backend: 'wasm' });
  });
  after(async () => {
    await initCompute({ backend: 'wasm' });
  });

  for (const c of CASES) {
    test(`conv2d input gradient: ${c.name}`, async (t) => {
      await initCompute({ backend: 'cpu' });
      const x = randn(c.x) as tf.Tensor4D;
      const w = randn([c.k, c.k, c.x[3], c.cout]) as tf.Tensor4D;
      const yShape = tf.conv2d(x, w, c.stride, c.pad).shape;
      const r = randn(yShape);
      const xs = x.dataSync();
      const ws = w.dataSync();
      const rs = r.dataSync();
      const reference = inputGrad(c, x, w, r);
      tf.dispose([x, w, r]);

      await initCompute({ backend: 'wasm' });
      const xw = tf.tensor4d(xs, c.x);
      const ww = tf.tensor4d(ws, [c.k, c.k, c.x[3], c.cout]);
      const rw = tf.tensor(rs, yShape);
      const before = tf.memory().numTensors;
      const got = inputGrad(c, xw, ww, rw);
      assert.equal(tf.memory().numTensors, before, 'the gradient kernel leaks no tensors');
      tf.dispose([xw, ww, rw]);

      const ex = relativeError(got, reference);
      t.diagnostic(`relative error: ${ex.toExponential(2)}`);
      assert.ok(ex < 1e-4, `input gradient relative error ${ex}`);
    });
  }
});

describe('the wasm backend out of memory', () => {
  test('XNNPACK\'s out-of-memory line becomes an error saying what to do; other error output passes', async () => {
    await initCompute({ backend: 'wasm' });
    // What tfjs-backend-wasm prints (through Emscripten's fs.writeSync(2, ...)) before it would spin.
    const line = 'XNN status for xnn_create_fully_connected_nc_f32 is not successful. Got status 6. Use -c dbg to see XNN logs.';
    assert.throws(() => fs.writeSync(2, line), (e: Error) => e instanceof WasmOutOfMemoryError
      && /ran out of memory \(its heap is 4 GB at most\) in xnn_create_fully_connected_nc_f32: .*a smaller --batch/.test(e.message));
    // Another status, another descriptor, or bytes: written as before.
    assert.equal(fs.writeSync(2, ''), 0);
    const file = path.join(os.tmpdir(), `triplex-oom-${process.pid}.txt`);
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, line.replace('status 6', 'status 2'));
      fs.writeSync(fd, Buffer.from('\n'));
      fs.writeSync(fd, line);
    } finally {
      fs.closeSync(fd);
    }
    assert.equal(fs.readFileSync(file, 'utf8'), `${line.replace('status 6', 'status 2')}\n${line}`);
    fs.rmSync(file);
  });
});
