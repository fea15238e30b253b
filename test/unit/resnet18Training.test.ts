import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { backendMemoryBytes, initCompute } from '../../src/runtime/compute/backend';
import { createResNet18, type ResNet18 } from '../../src/runtime/model/resnet18';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';

/** Training the whole trunk: gradients on wasm against cpu, and a full-size step on wasm. */

const GENES = 8;

function lossOf(net: ResNet18, head: tf.Tensor, x: tf.Tensor4D, y: tf.Tensor): tf.Scalar {
  return tf.losses.meanSquaredError(y, tf.matMul(net.pooled(x, 'training'), head)) as tf.Scalar;
}

async function gradientsOn(backend: 'cpu' | 'wasm', x: Float32Array, shape: [number, number, number, number]): Promise<Map<string, Float32Array>> {
  await initCompute({ backend });
  const net = createResNet18({ seed: 7 });
  const head = tf.tensor2d(normal(mulberry32(8), 512 * GENES, 0.05), [512, GENES]);
  const y = tf.tensor2d(normal(mulberry32(9), shape[0] * GENES), [shape[0], GENES]);
  const input = tf.tensor4d(x, shape);
  const { grads } = tf.variableGrads(() => lossOf(net, head, input, y), net.trainableVariables);
  const out = new Map<string, Float32Array>();
  for (const [name, g] of Object.entries(grads)) out.set(name.replace(/^resnet18_\d+\//, ''), (await g.data()) as Float32Array);
  tf.dispose([head, y, input, ...Object.values(grads)]);
  net.dispose();
  return out;
}

describe('ResNet18 training on wasm', () => {
  test('creating and disposing a trunk leaves no tensor behind', async () => {
    await initCompute({ backend: 'wasm' });
    const before = tf.memory().numTensors;
    const net = createResNet18({ seed: 3 });
    assert.equal(tf.memory().numTensors - before, 100, '20 convolution weights and 4 tensors for each of 20 batch norms');
    net.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  test('every parameter gradient matches the cpu backend (relative error < 1e-4)', async (t) => {
    const shape: [number, number, number, number] = [2, 40, 40, 3];
    const x = normal(mulberry32(3), 2 * 40 * 40 * 3);
    const cpu = await gradientsOn('cpu', x, shape);
    const wasm = await gradientsOn('wasm', x, shape);
    assert.equal(wasm.size, 60, '20 convolutions and 20 batch norms (weight and bias)');
    let worst = 0;
    let worstName = '';
    for (const [name, want] of cpu) {
      const got = wasm.get(name);
      assert.ok(got, name);
      const e = relativeError(got, want);
      if (e > worst) [worst, worstName] = [e, name];
    }
    t.diagnostic(`worst relative error ${worst.toExponential(2)} (${worstName})`);
    assert.ok(worst < 1e-4, `${worstName}: relative error ${worst}`);
  });

  test('a full training step (batch 16, 224x224, Adam) fits the 4 GB wasm memory and leaks nothing', async (t) => {
    await initCompute({ backend: 'wasm' });
    const net = createResNet18({ seed: 1 });
    const x = tf.tensor4d(normal(mulberry32(4), 16 * 224 * 224 * 3), [16, 224, 224, 3]);
    const y = tf.tensor2d(normal(mulberry32(5), 16 * GENES), [16, GENES]);
    const head = tf.variable(tf.tensor2d(normal(mulberry32(6), 512 * GENES, 0.05), [512, GENES]));
    const optimizer = tf.train.adam(1e-3);
    const vars = [...net.trainableVariables, head];
    const w0 = await vars[0].data();
    const losses: number[] = [];
    let tensorsAfterFirst = 0;
    for (let step = 0; step < 3; step++) {
      const loss = optimizer.minimize(() => lossOf(net, head, x, y), true, vars) as tf.Scalar;
      losses.push((await loss.data())[0]);
      loss.dispose();
      if (step === 0) tensorsAfterFirst = tf.memory().numTensors;
    }
    const heap = backendMemoryBytes();
    t.diagnostic(`losses ${losses.map((l) => l.toFixed(4)).join(' -> ')}; wasm heap ${(heap / 2 ** 20).toFixed(0)} MiB`);
    assert.equal(tf.memory().numTensors, tensorsAfterFirst, 'tensors per step after the first (optimizer state) stay constant');
    assert.ok(heap <= 4 * 2 ** 30, `wasm heap ${heap} bytes`);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[2] < losses[0], `the loss goes down on a fixed batch: ${losses.join(', ')}`);
    const w1 = await vars[0].data();
    assert.ok(w1.some((v, i) => v !== w0[i]), 'the stem weights changed');
    tf.dispose([x, y, head]);
    optimizer.dispose();
    net.dispose();
  });
});
