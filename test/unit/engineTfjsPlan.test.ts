import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { gradients, topologicalOrder } from '../../src/runtime/engine/autodiff';
import { Graph, type Sym } from '../../src/runtime/engine/graph';
import { attend, CrossAttention, ParamTable, SelfAttention } from '../../src/runtime/engine/nn';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { lower, reducedTranspose, transposeLowRank } from '../../src/runtime/engine/tfjsLower';
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

/** The graph's outputs computed op by op with the plain lowering of each node (none of the plan's rewrites). */
function unplanned(outputs: Readonly<Record<string, Sym>>, feeds: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
  return tf.tidy(() => {
    const values = new Map<number, tf.Tensor>();
    for (const s of topologicalOrder(Object.values(outputs))) {
      const x = s.inputs.map((i) => values.get(i.id) as tf.Tensor);
      const leaf = s.op === 'input' ? feeds[s.attrs.name as string] : s.op === 'const' ? s.graph.constants.get(s.id) as Float32Array : undefined;
      values.set(s.id, leaf ? tf.tensor(leaf, [...s.shape]) : lower(s, x));
    }
    return Object.fromEntries(Object.entries(outputs).map(([name, s]) => [name, (values.get(s.id) as tf.Tensor).dataSync() as Float32Array]));
  });
}

const worstDifference = (a: Float32Array | ArrayLike<number>, b: ArrayLike<number>) => {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(Number(a[i]) - Number(b[i])));
  return worst;
};

test('transposes run at rank 4 at most and move every value where tf.transpose does', async () => {
  await initCompute({ backend: 'cpu' });
  assert.deepEqual(reducedTranspose([6, 5, 3, 4], [2, 0, 1, 3]), { shape: [30, 3, 4], perm: [1, 0, 2] }, 'neighbours that stay neighbours are one axis');
  assert.deepEqual(reducedTranspose([6, 1, 3, 4], [2, 1, 3, 0]), { shape: [6, 12], perm: [1, 0] }, 'size-1 axes are dropped');
  assert.deepEqual(reducedTranspose([6, 5, 3, 4, 2], [2, 0, 3, 1, 4]).perm, [2, 0, 3, 1, 4], "attention's heads stay rank 5");
  const random = mulberry32(11);
  const cases: [number[], number[]][] = [
    [[6, 5, 3, 4, 2], [2, 0, 3, 1, 4]], [[3, 6, 4, 5, 2], [1, 3, 0, 2, 4]], [[2, 3, 4, 5, 6], [4, 3, 2, 1, 0]],
    [[2, 3, 1, 4, 5, 2], [5, 2, 0, 4, 1, 3]], [[2, 3, 4, 5], [0, 2, 1, 3]], [[4, 1, 3], [2, 1, 0]],
  ];
  for (const [shape, perm] of cases) {
    const x = tf.tensor(normal(random, shape.reduce((a, b) => a * b, 1)), shape);
    const want = tf.transpose(x, perm);
    let got = want;
    const { kernels } = await tf.profile(() => (got = transposeLowRank(x, perm)));
    assert.deepEqual(got.shape, want.shape);
    assert.deepEqual([...got.dataSync()], [...want.dataSync()], `[${shape}] by [${perm}]`);
    const ranks = kernels.filter((k) => k.name === 'Transpose').map((k) => k.inputShapes[0]?.length ?? 0);
    assert.ok(ranks.length > 0 && ranks.every((r) => r <= 4), `[${shape}] by [${perm}]: transposes of rank ${ranks.join(', ')}`);
    tf.dispose([x, want, got]);
  }
});

test("attention's q, k and v cut from one product are each a product of their own, equal to the cut within 1e-6, forward and backward", async () => {
  await initCompute({ backend: 'cpu' });
  const [B, N, h, hd] = [3, 5, 2, 4];
  const d = h * hd;
  const g = new Graph('float32');
  const x = g.input('x', [B, N, d]);
  const w = g.input('w', [3 * d, d]); // rows [q | k | v], as nn.Linear's weight
  const heads = g.transpose(g.reshape(g.matmul(x, w, false, true), [B, N, 3, h, hd]), [2, 0, 3, 1, 4]);
  const [q, k, v] = [0, 1, 2].map((i) => g.reshape(g.slice(heads, 0, i, i + 1), [B, h, N, hd]));
  // k and v from a weight that is not transposed ([d, 2d], columns [k | v]): the other layout.
  const u = g.input('u', [d, 2 * d]);
  const kv = g.transpose(g.reshape(g.matmul(x, u), [B, N, 2, h, hd]), [2, 0, 3, 1, 4]);
  const [k2, v2] = [0, 1].map((i) => g.reshape(g.slice(kv, 0, i, i + 1), [B, h, N, hd]));
  const y = g.add(attend(g, q, k, v), attend(g, q, k2, v2));
  const loss = g.sum(g.square(y), [0, 1, 2, 3]);
  const [dx, dw, du] = gradients(loss, [x, w, u]);
  const outputs = { y, dx, dw, du };

  const steps = planProgram(Object.values(outputs)).steps;
  assert.ok(!steps.some((s) => s.sym.op === 'transpose' && s.sym.rank === 5 && s.sym.inputs[0].op === 'reshape' && s.sym.inputs[0].inputs[0].op === 'matmul'), 'no rank-5 transpose of a product is computed');
  assert.equal(steps.filter((s) => s.sym.op === 'slice' && s.reads.length === 2).length, 5, 'q, k, v, k2 and v2 each from the input and a weight');

  const random = mulberry32(5);
  const feeds = { x: normal(random, B * N * d), w: normal(random, 3 * d * d), u: normal(random, 2 * d * d) };
  const got = await (await createTfjsExecutor().compile(outputs)).run(feeds);
  const want = unplanned(outputs, feeds);
  for (const name of Object.keys(outputs)) {
    const scale = Math.max(1, ...Array.from(want[name], Math.abs));
    assert.ok(worstDifference(got[name] as Float32Array, want[name]) <= 1e-6 * scale, `${name}: worst difference ${worstDifference(got[name] as Float32Array, want[name])} (values up to ${scale})`);
  }
});

test('a cut whose transposed heads are also read elsewhere is left as recorded', async () => {
  await initCompute({ backend: 'cpu' });
  const g = new Graph('float32');
  const x = g.input('x', [2, 3, 4]);
  const w = g.input('w', [8, 4]);
  const heads = g.transpose(g.reshape(g.matmul(x, w, false, true), [2, 3, 2, 2, 2]), [2, 0, 3, 1, 4]);
  const q = g.slice(heads, 0, 0, 1);
  const steps = planProgram([q, heads]).steps;
  assert.ok(steps.some((s) => s.sym === heads), 'the transpose is computed once, as an output');
  assert.deepEqual(steps.find((s) => s.sym === q)?.reads, [heads]);
});

test('the layers as recorded take the heads rewrite: self-attention (q, k, v) and cross-attention (k, v)', () => {
  const t = new ParamTable(2);
  const self = new SelfAttention(t, 'self', 8, 2, 0);
  const cross = new CrossAttention(t, 'cross', 8, 2, 0);
  const g = new Graph('float32');
  const x = g.input('x', [3, 5, 8]);
  const steps = planProgram([self.apply(g, x, 'inference'), cross.apply(g, g.slice(x, 1, 0, 2), x, 'inference')]).steps;
  assert.equal(steps.filter((s) => s.sym.op === 'slice' && s.reads.length === 2).length, 5, 'five heads each from its own product');
  assert.ok(!steps.some((s) => s.sym.op === 'transpose' && s.sym.rank === 5), 'no rank-5 transpose');
});
