import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { hasRule } from '../../src/runtime/engine/autodiff';
import type { Executor } from '../../src/runtime/engine/executor';
import type { Sym } from '../../src/runtime/engine/graph';
import { buildGradientCase, checkAgainstFiniteDifferences, checkEnginesAgree, type GradientCase } from './helpers/gradcheck';
import { testExecutors } from './helpers/executors';

/**
 * Every primitive's backward rule against central finite differences of its own forward on
 * onnxruntime (float64 where it has the kernels; see helpers/gradcheck.ts for the tolerances),
 * then the same graphs (forward and gradients) on the TF.js engine against onnxruntime, within 1e-4.
 */

const CASES: GradientCase[] = [
  { name: 'add (broadcast)', inputs: { a: { shape: [3, 4] }, b: { shape: [4] } }, f: (g, x) => g.add(x.a, x.b) },
  { name: 'sub (broadcast)', inputs: { a: { shape: [2, 1, 4] }, b: { shape: [3, 1] } }, f: (g, x) => g.sub(x.a, x.b) },
  { name: 'mul (broadcast)', inputs: { a: { shape: [2, 3, 4] }, b: { shape: [1, 3, 1] } }, f: (g, x) => g.mul(x.a, x.b) },
  { name: 'div', inputs: { a: { shape: [3, 4] }, b: { shape: [3, 4], positive: true } }, f: (g, x) => g.div(x.a, x.b) },
  { name: 'neg', inputs: { a: { shape: [5] } }, f: (g, x) => g.neg(x.a) },
  { name: 'exp', inputs: { a: { shape: [2, 3] } }, f: (g, x) => g.exp(x.a) },
  { name: 'log', inputs: { a: { shape: [2, 3], positive: true } }, f: (g, x) => g.log(x.a) },
  { name: 'sqrt', inputs: { a: { shape: [2, 3], positive: true } }, f: (g, x) => g.sqrt(x.a) },
  { name: 'tanh', inputs: { a: { shape: [2, 3] } }, f: (g, x) => g.tanh(x.a) },
  { name: 'relu', inputs: { a: { shape: [4, 5] } }, f: (g, x) => g.relu(x.a) },
  { name: 'sigmoid', inputs: { a: { shape: [3, 4] } }, f: (g, x) => g.sigmoid(g.mul(x.a, 3)) },
  { name: 'softplus', inputs: { a: { shape: [3, 4] } }, f: (g, x) => g.softplus(g.mul(x.a, 3)) },
  { name: 'erf', inputs: { a: { shape: [3, 4] } }, f: (g, x) => g.erf(x.a), float32: true },
  { name: 'gelu', inputs: { a: { shape: [3, 4] } }, f: (g, x) => g.gelu(x.a), float32: true },
  { name: 'matmul 2-D', inputs: { a: { shape: [3, 4] }, b: { shape: [4, 5] } }, f: (g, x) => g.matmul(x.a, x.b) },
  { name: 'matmul a^T b^T', inputs: { a: { shape: [4, 3] }, b: { shape: [5, 4] } }, f: (g, x) => g.matmul(x.a, x.b, true, true) },
  { name: 'matmul a b^T', inputs: { a: { shape: [3, 4] }, b: { shape: [5, 4] } }, f: (g, x) => g.matmul(x.a, x.b, false, true) },
  { name: 'matmul batched a^T', inputs: { a: { shape: [2, 3, 4, 3] }, b: { shape: [2, 3, 4, 5] } }, f: (g, x) => g.matmul(x.a, x.b, true, false) },
  { name: 'matmul batched b^T', inputs: { a: { shape: [2, 3, 4] }, b: { shape: [2, 5, 4] } }, f: (g, x) => g.matmul(x.a, x.b, false, true) },
  { name: 'matmul batched x shared 2-D', inputs: { a: { shape: [2, 3, 4] }, b: { shape: [4, 5] } }, f: (g, x) => g.matmul(x.a, x.b) },
  { name: 'matmul batched x shared 2-D^T', inputs: { a: { shape: [2, 3, 4] }, b: { shape: [5, 4] } }, f: (g, x) => g.matmul(x.a, x.b, false, true) },
  { name: 'reshape', inputs: { a: { shape: [2, 6] } }, f: (g, x) => g.reshape(x.a, [3, -1]) },
  { name: 'transpose', inputs: { a: { shape: [2, 3, 4] } }, f: (g, x) => g.transpose(x.a, [2, 0, 1]) },
  { name: 'slice', inputs: { a: { shape: [3, 6] } }, f: (g, x) => g.slice(x.a, 1, 2, 5) },
  { name: 'pad', inputs: { a: { shape: [3, 2] } }, f: (g, x) => g.pad(x.a, 0, 1, 2) },
  { name: 'concat', inputs: { a: { shape: [2, 3] }, b: { shape: [2, 2] } }, f: (g, x) => g.concat([x.a, x.b, x.a], 1) },
  { name: 'broadcastTo', inputs: { a: { shape: [3, 1] } }, f: (g, x) => g.broadcastTo(x.a, [2, 3, 4]) },
  { name: 'sum over axes', inputs: { a: { shape: [2, 3, 4] } }, f: (g, x) => g.sum(x.a, [0, 2]) },
  { name: 'sum keepDims', inputs: { a: { shape: [2, 3, 4] } }, f: (g, x) => g.sum(x.a, [1], true) },
  { name: 'mean', inputs: { a: { shape: [3, 4] } }, f: (g, x) => g.mean(x.a, [-1]) },
  { name: 'gather (repeated rows)', inputs: { a: { shape: [4, 3] }, i: { shape: [5], int64: [3, 0, 3, 1, 3] } }, f: (g, x) => g.gather(x.a, x.i) },
  { name: 'scatterAdd', inputs: { a: { shape: [4, 3] }, u: { shape: [3, 3] }, i: { shape: [3], int64: [2, 0, 2] } }, f: (g, x) => g.scatterAdd(x.a, x.i, x.u) },
  { name: 'softmax', inputs: { a: { shape: [3, 5] } }, f: (g, x) => g.softmax(x.a) },
  { name: 'logSoftmax', inputs: { a: { shape: [3, 5] } }, f: (g, x) => g.logSoftmax(g.mul(x.a, 4)) },
  { name: 'layerNorm', inputs: { a: { shape: [2, 3, 6] }, w: { shape: [6] }, b: { shape: [6] } }, f: (g, x) => g.layerNorm(x.a, x.w, x.b) },
  {
    name: 'attention (composite)',
    inputs: { q: { shape: [2, 3, 4] }, k: { shape: [2, 5, 4] }, v: { shape: [2, 5, 4] } },
    f: (g, x) => g.matmul(g.softmax(g.mul(g.matmul(x.q, x.k, false, true), 0.5)), x.v),
  },
];

let ort: Executor;
let tfjs: Executor;

describe('engine: backward rules against finite differences', () => {
  before(async () => {
    ({ ort, tfjs } = await testExecutors());
  });

  test('every op the cases use has a rule, and the case table covers every differentiable op', () => {
    const used = new Set<string>();
    for (const c of CASES) {
      const { loss } = buildGradientCase(c, 'float64');
      const walk = (s: Sym) => { used.add(s.op); s.inputs.forEach(walk); };
      walk(loss);
    }
    for (const op of ['add', 'sub', 'mul', 'div', 'neg', 'exp', 'log', 'sqrt', 'erf', 'tanh', 'relu', 'sigmoid', 'softplus', 'gelu', 'matmul', 'reshape', 'transpose', 'slice', 'pad', 'concat', 'broadcast', 'sum', 'gather', 'scatterAdd', 'softmax', 'logSoftmax', 'layerNorm']) {
      assert.ok(hasRule(op), `${op} has no backward rule`);
      assert.ok(used.has(op), `no finite-difference case exercises ${op}`);
    }
  });

  for (const c of CASES) {
    test(c.name, async () => checkAgainstFiniteDifferences(ort, c));
  }

  test('TF.js engine: the same graphs, forward and gradients, agree with onnxruntime (float32, 1e-4)', async () => {
    for (const c of CASES) await checkEnginesAgree(ort, tfjs, c);
  });
});
