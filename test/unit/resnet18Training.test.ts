import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { gradients } from '../../src/runtime/engine/autodiff';
import { Graph, type Sym } from '../../src/runtime/engine/graph';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { ResNet18Trunk } from '../../src/runtime/models/resnet18';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';

/**
 * Training the whole trunk where onnxruntime is missing: the engine's graph of the ResNet18
 * (models/resnet18.ts, training-mode batch norm, mode full) on the TF.js interpreter, its
 * gradients on wasm (which runs the composed Conv2DBackpropInput, compute/wasmKernels.ts)
 * against tfjs' cpu backend, and no tensor left behind. Parity with torchvision on both engines:
 * engineResnet18.test.ts.
 */

const GENES = 8;
const SHAPE = [2, 3, 40, 40] as const;

/** MSE of a linear head on the pooled trunk, and the gradient of every trunk parameter. */
function trainingGraph(): { outputs: Record<string, Sym>; feeds: Record<string, Float32Array> } {
  const trunk = new ResNet18Trunk();
  const g = new Graph('float32');
  const pooled = g.mean(trunk.apply(g, g.input('x', SHAPE), 'train'), [2, 3]); // [2, 512]
  const diff = g.sub(g.matmul(pooled, g.input('head', [512, GENES])), g.input('y', [SHAPE[0], GENES]));
  const loss = g.mean(g.square(diff), [0, 1]);
  const params = g.params();
  const grads = gradients(loss, [...params.values()]);
  const outputs: Record<string, Sym> = { loss };
  [...params.keys()].forEach((n, i) => { outputs[`grad/${n}`] = grads[i]; });
  const init = trunk.initialValues(7);
  const feeds: Record<string, Float32Array> = {
    x: normal(mulberry32(3), SHAPE.reduce((a, b) => a * b, 1)),
    head: normal(mulberry32(8), 512 * GENES, 0.05),
    y: normal(mulberry32(9), SHAPE[0] * GENES),
  };
  for (const [n, v] of init.params) feeds[`param:${n}`] = v;
  for (const [n, v] of init.buffers) feeds[`buffer:${n}`] = v;
  return { outputs, feeds };
}

async function runOn(backend: 'cpu' | 'wasm'): Promise<Record<string, Float32Array>> {
  await initCompute({ backend });
  const { outputs, feeds } = trainingGraph();
  const program = await createTfjsExecutor().compile(outputs);
  const tensors = tf.memory().numTensors;
  const out = await program.run(feeds);
  assert.equal(tf.memory().numTensors, tensors, `a training run on ${backend} left tensors behind`);
  await program.dispose();
  return out as Record<string, Float32Array>;
}

describe('the engine ResNet18 trains on the TF.js interpreter', () => {
  test('every parameter gradient on wasm matches the cpu backend (relative error < 1e-4)', async (t) => {
    const cpu = await runOn('cpu');
    const wasm = await runOn('wasm');
    const grads = Object.keys(cpu).filter((k) => k.startsWith('grad/'));
    assert.equal(grads.length, 60, '20 convolutions and 20 batch norms (weight and bias)');
    let worst = 0;
    let worstName = '';
    for (const name of Object.keys(cpu)) {
      const e = relativeError(wasm[name], cpu[name]);
      if (e > worst) [worst, worstName] = [e, name];
    }
    t.diagnostic(`worst relative error ${worst.toExponential(2)} (${worstName})`);
    assert.ok(worst < 1e-4, `${worstName}: relative error ${worst}`);
    assert.ok(Number.isFinite(cpu.loss[0]) && grads.every((k) => cpu[k].some((v) => v !== 0)), 'every parameter gets a gradient');
  });
});
