import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { gradients } from '../../src/runtime/engine/autodiff';
import { Graph } from '../../src/runtime/engine/graph';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { planProgram } from '../../src/runtime/engine/tfjsPlan';
import { mulberry32, normal } from '../../src/runtime/util/random';

/**
 * The TF.js executor's rewrites, each seen in the plan and checked against values worked out by
 * hand (the parity tests against onnxruntime and PyTorch cover whole models).
 */

test('a product with a bias runs as one fused step, and gives x W^T + b', async () => {
  await initCompute({ backend: 'cpu' });
  const g = new Graph('float32');
  const x = g.input('x', [2, 3, 2]);
  const w = g.input('w', [2, 2]);
  const b = g.input('b', [2]);
  const y = g.add(g.matmul(x, w, false, true), b);
  const plan = planProgram([y]);
  assert.deepEqual(plan.steps.map((s) => s.sym.op), ['add'], 'the product is computed inside the addition');
  const p = await createTfjsExecutor().compile({ y });
  const xs = Float32Array.from({ length: 12 }, (_, i) => i - 5);
  const out = (await p.run({ x: xs, w: Float32Array.of(1, 2, 3, 4), b: Float32Array.of(10, 20) })).y;
  const want = Array.from({ length: 6 }, (_, r) => [xs[2 * r] + 2 * xs[2 * r + 1] + 10, 3 * xs[2 * r] + 4 * xs[2 * r + 1] + 20]).flat();
  assert.deepEqual([...out], want);
});

test('the gradient of slices is one concatenation (zeros where no slice reads), not a sum of pads', async () => {
  await initCompute({ backend: 'cpu' });
  const g = new Graph('float32');
  const x = g.input('x', [2, 7]);
  // Columns 0-1, 2-4 and 6 are read (5 is not), weighted 1, 2 and 3: d/dx sum(c * slice^2) = 2 c x.
  const parts = [[0, 2, 1], [2, 5, 2], [6, 7, 3]].map(([from, to, c]) => g.mul(g.sum(g.square(g.slice(x, 1, from, to)), [0, 1]), c));
  const loss = g.add(g.add(parts[0], parts[1]), parts[2]);
  const [dx] = gradients(loss, [x]);
  const plan = planProgram([dx]);
  assert.ok(!plan.steps.some((s) => s.sym.op === 'pad'), `no pad is computed: ${plan.steps.map((s) => s.sym.op).join(', ')}`);
  const p = await createTfjsExecutor().compile({ dx });
  const xs = Float32Array.from({ length: 14 }, (_, i) => i + 1);
  const weight = [1, 1, 2, 2, 2, 0, 3];
  const got = (await p.run({ x: xs })).dx;
  assert.deepEqual([...got], [...xs].map((v, i) => 2 * weight[i % 7] * v));
});

test('a broadcast whose uses broadcast by themselves is not materialised', async () => {
  await initCompute({ backend: 'cpu' });
  const g = new Graph('float32');
  const x = g.input('x', [3, 4]);
  const m = g.input('m', [3, 4]);
  // d/dx sum(mean(x, 1) * ...) goes through the sum's backward: a broadcast to [3, 4] used by a product.
  const loss = g.sum(g.mul(g.broadcastTo(g.mean(x, [1], true), [3, 4]), m), [0, 1]);
  const [dx] = gradients(loss, [x]);
  const plan = planProgram([dx]);
  // The last one is dx itself (the mean's backward): an output is materialised.
  const broadcasts = plan.steps.filter((s) => s.sym.op === 'broadcast' && s.sym !== dx);
  assert.ok(broadcasts.length > 0);
  for (const s of broadcasts) {
    const small = tf.zeros([...s.reads[0].shape]);
    assert.deepEqual(s.run([small]).shape, s.reads[0].shape, 'the broadcast hands on its small input');
    small.dispose();
  }
  const p = await createTfjsExecutor().compile({ dx });
  const ms = Float32Array.from({ length: 12 }, (_, i) => i);
  const got = (await p.run({ x: new Float32Array(12).fill(1), m: ms })).dx;
  // d/dx[r, c] = sum_c' m[r, c'] / 4
  assert.deepEqual([...got], Array.from({ length: 12 }, (_, i) => { const r = Math.floor(i / 4); return (ms[4 * r] + ms[4 * r + 1] + ms[4 * r + 2] + ms[4 * r + 3]) / 4; }));
});

test('a few large batched products (run entry by entry) give op(a) @ op(b) of each entry', async () => {
  await initCompute({ backend: 'cpu' });
  const [B, m, k, n] = [2, 128, 96, 128];
  const g = new Graph('float32');
  const a = g.input('a', [B, k, m]);
  const b = g.input('b', [B, n, k]);
  const y = g.matmul(a, b, true, true); // [B, m, n], 1.5M multiply-adds per entry
  const random = mulberry32(3);
  const [as, bs] = [normal(random, B * k * m), normal(random, B * n * k)];
  const got = (await (await createTfjsExecutor().compile({ y })).run({ a: as, b: bs })).y;
  let worst = 0;
  for (let e = 0; e < B; e++) {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let r = 0; r < k; r++) sum += as[e * k * m + r * m + i] * bs[e * n * k + j * k + r];
        worst = Math.max(worst, Math.abs(Number(got[e * m * n + i * n + j]) - sum));
      }
    }
  }
  assert.ok(worst < 1e-4, `worst difference ${worst}`);
});
