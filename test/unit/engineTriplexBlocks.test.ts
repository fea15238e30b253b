import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { gradients } from '../../src/runtime/engine/autodiff';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { OFFSET_INDEX, ParamTable } from '../../src/runtime/engine/nn';
import { APEG } from '../../src/runtime/models/apeg';
import { globalLayout, pegSide } from '../../src/runtime/models/globalLayout';
import { spotGrid } from '../../src/runtime/models/spotGrid';
import { TriplexNet } from '../../src/runtime/models/triplex';
import { triplexConfig, type FusionLossVariant, type ViewName } from '../../src/runtime/models/triplexConfig';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';

/**
 * TRIPLEX's pieces on the engine against computations that share nothing with it, on onnxruntime
 * and on the engine's TF.js executor: the spot grid, the relative-offset table of the neighbor
 * encoder, APEG and PEG against a direct float64 loop, and the fusion loss (every variant) against
 * hand-computed values, its gradient included. The whole model against PyTorch: engineTriplex.test.ts.
 */

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

/** Runs `outputs` on both executors (or those `only` names) with `feeds`; the results, by executor kind. */
async function onBoth(outputs: Record<string, Sym>, feeds: Record<string, HostArray>): Promise<[string, Record<string, Float32Array>][]> {
  const results: [string, Record<string, Float32Array>][] = [];
  for (const engine of engines) {
    const program = await engine.compile(outputs);
    results.push([engine.kind, (await program.run(feeds)) as Record<string, Float32Array>]);
    await program.dispose();
  }
  return results;
}

describe('the spot grid', () => {
  // 9 spots on a 4 x 5 window of array rows 10..13, columns 3..7, in no particular order.
  const rows = [12, 10, 13, 11, 10, 12, 13, 11, 12];
  const cols = [4, 3, 7, 6, 5, 7, 3, 3, 5];

  test('coordinates shifted to 0, each spot on its own cell', () => {
    const grid = spotGrid(rows, cols);
    assert.deepEqual([grid.height, grid.width], [4, 5]);
    rows.forEach((r, i) => {
      assert.equal(grid.cellOfSpot[i], (r - 10) * 5 + (cols[i] - 3));
      assert.equal(grid.spotOfCell[grid.cellOfSpot[i]], i);
    });
    assert.equal([...grid.spotOfCell].filter((s) => s < 0).length, 20 - 9, 'holes stay empty');
  });

  test('two spots on one cell are an error naming both; pixel positions are refused', () => {
    assert.throws(() => spotGrid([1, 2, 1], [3, 4, 3], ['AAAC', 'GGTT', 'CCTA']), /spot 0 \(AAAC\) and spot 2 \(CCTA\).*row 1, col 3/);
    assert.throws(() => spotGrid([1, 2, 1], [3, 4, 3]), /spot 0 and spot 2/);
    assert.throws(() => spotGrid([1.5], [2]), /integer array coordinates/);
    assert.throws(() => spotGrid([0, 4000], [0, 9000]), /pixel positions/);
  });
});

test('the neighbor encoder\'s relative-offset table is |drow| * 5 + |dcol|', () => {
  assert.equal(OFFSET_INDEX.length, 625);
  for (let i = 0; i < 25; i++) {
    for (let j = 0; j < 25; j++) {
      assert.equal(OFFSET_INDEX[i * 25 + j], Math.abs(Math.floor(i / 5) - Math.floor(j / 5)) * 5 + Math.abs((i % 5) - (j % 5)));
      assert.equal(OFFSET_INDEX[i * 25 + j], OFFSET_INDEX[j * 25 + i]);
    }
  }
  assert.deepEqual([OFFSET_INDEX[0 * 25 + 24], OFFSET_INDEX[4 * 25 + 20], OFFSET_INDEX[12 * 25 + 13]], [24, 24, 1]);
  assert.equal(new Set(OFFSET_INDEX).size, 25);
});

/** Bias + the k x k depthwise kernel w [d, 1, k, k] over the cells around (r, c) (absent cells add nothing), in float64. */
function depthwiseAt(at: (r: number, c: number) => Float32Array | undefined, r: number, c: number, w: Float32Array, b: Float32Array, k: number): number[] {
  const p = (k - 1) / 2;
  const out = Array.from(b);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const x = at(r + i - p, c + j - p);
      if (x) for (let ch = 0; ch < b.length; ch++) out[ch] += w[(ch * k + i) * k + j] * x[ch];
    }
  }
  return out;
}

describe('APEG and PEG against a direct loop', () => {
  const d = 4;
  const rows = [12, 10, 13, 11, 10, 12, 13, 11, 12];
  const cols = [4, 3, 7, 6, 5, 7, 3, 3, 5];

  /** The position encoding over tokens x [n, d] placed by `pe` (exact layout), its kernel w and bias b. */
  async function encode(pe: 'apeg' | 'peg', x: Float32Array, n: number, w: Float32Array, b: Float32Array, grid = spotGrid(rows, cols)) {
    const layout = globalLayout([{ n, grid }], pe, 3, true);
    const g = new Graph('float32');
    const apeg = new APEG(new ParamTable(1), 'pe', d);
    const y = apeg.apply(g, g.input('x', [n, d]), g.constant(Array.from(layout.cells, Number), [n], 'int64'), layout.height, layout.width);
    return onBoth({ y }, { x, 'param:pe.proj.weight': w, 'param:pe.proj.bias': b });
  }

  test('zero kernel and bias: every token comes back to its own spot', async () => {
    const x = normal(mulberry32(1), rows.length * d);
    for (const [kind, r] of await encode('apeg', x, rows.length, new Float32Array(d * 9), new Float32Array(d))) assert.deepEqual(r.y, x, kind);
  });

  test('APEG, a known kernel: each spot gets bias + its grid neighbours through the kernel + itself', async () => {
    const random = mulberry32(3);
    const w = Float32Array.from({ length: d * 9 }, () => random() - 0.5);
    const b = Float32Array.from({ length: d }, () => random() - 0.5);
    const x = normal(random, rows.length * d);
    const token = (i: number) => x.subarray(i * d, (i + 1) * d);
    const at = (rr: number, cc: number) => { const i = rows.findIndex((v, s) => v === rr && cols[s] === cc); return i < 0 ? undefined : token(i); };
    const expected = rows.flatMap((_, i) => depthwiseAt(at, rows[i], cols[i], w, b, 3).map((v, c) => v + token(i)[c]));
    for (const [kind, r] of await encode('apeg', x, rows.length, w, b)) assert.ok(relativeError(r.y, expected) < 1e-6, kind);
  });

  for (const n of [1, 4, 9, 10, 17]) {
    test(`PEG: ${n} tokens padded with zeros to a ${pegSide(n)} x ${pegSide(n)} square, row by row`, async () => {
      const side = pegSide(n);
      assert.ok(side * side >= n && (side - 1) * (side - 1) < n);
      const random = mulberry32(n);
      const w = Float32Array.from({ length: d * 9 }, () => random() - 0.5);
      const b = Float32Array.from({ length: d }, () => random() - 0.5);
      const x = normal(random, n * d);
      const token = (i: number) => x.subarray(i * d, (i + 1) * d);
      const at = (rr: number, cc: number) => (rr >= 0 && cc >= 0 && rr < side && cc < side && rr * side + cc < n ? token(rr * side + cc) : undefined);
      const expected = Array.from({ length: n }, (_, i) => depthwiseAt(at, Math.floor(i / side), i % side, w, b, 3).map((v, c) => v + token(i)[c])).flat();
      const grid = spotGrid(Array.from({ length: n }, (_, i) => i), new Array<number>(n).fill(0)); // PEG ignores the array grid
      // A 1 x 1 grid (a one-spot slide's exact layout): the TF.js executor's scatterAdd cannot use
      // tf.oneHot there (it refuses a depth of 1) and sums the rows instead.
      for (const [kind, r] of await encode('peg', x, n, w, b, grid)) assert.ok(relativeError(r.y, expected) < 1e-6, kind);
    });
  }
});

describe('the fusion loss against hand computation', () => {
  // Two spots, two genes.
  const y = [1, 2, 0, -1];
  const qF = [1.5, 2, 0, 0]; // MSE(qF, y) = (0.25 + 0 + 0 + 1) / 4 = 0.3125
  const qT = [1, 1, 1, -1]; // MSE(qT, y) = 0.5;  MSE(qT, qF) = (0.25 + 1 + 1 + 1) / 4 = 0.8125
  const qN = [2, 2, 0, -1]; // MSE(qN, y) = 0.25; MSE(qN, qF) = (0.25 + 0 + 0 + 1) / 4 = 0.3125
  const qG = [1, 2, 0, -3]; // MSE(qG, y) = 1;    MSE(qG, qF) = (0.25 + 0 + 0 + 9) / 4 = 2.3125
  const heads: Record<ViewName, number[]> = { target: qT, neighbor: qN, global: qG };
  const all: ViewName[] = ['target', 'neighbor', 'global'];
  const cases: { name: string; loss?: FusionLossVariant; alpha?: number; views: ViewName[]; expected: number }[] = [
    { name: 'the fusion loss, alpha 0.3', views: all, expected: 0.3125 + 0.7 * (0.5 + 0.25 + 1) + 0.3 * (0.8125 + 0.3125 + 2.3125) },
    { name: 'alpha 0.5', alpha: 0.5, views: all, expected: 0.3125 + 0.5 * (0.5 + 0.25 + 1) + 0.5 * (0.8125 + 0.3125 + 2.3125) },
    { name: 'without the global view', views: ['target', 'neighbor'], expected: 0.3125 + 0.7 * (0.5 + 0.25) + 0.3 * (0.8125 + 0.3125) },
    { name: 'no distillation: the plain sum', loss: 'noDistillation', views: all, expected: 0.3125 + 0.5 + 0.25 + 1 },
    { name: 'prediction only', loss: 'predictionOnly', views: all, expected: 0.3125 },
    { name: 'a single view trains on its MSE alone', views: ['target'], expected: 0.3125 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const base = triplexConfig({ preset: 'demo', genes: 2, dim: 8 });
      const net = new TriplexNet({ ...base, views: { target: c.views.includes('target'), neighbor: c.views.includes('neighbor'), global: c.views.includes('global') }, loss: c.loss ?? 'fusion', alpha: c.alpha ?? base.alpha }, 0);
      const g = new Graph('float32');
      const fusion = g.input('fusion', [2, 2]);
      const views = Object.fromEntries(c.views.map((v) => [v, g.input(v, [2, 2])]));
      const loss = net.loss(g, { fusion, ...views }, g.input('truth', [2, 2]));
      const [dFusion] = gradients(loss, [fusion]);
      const feeds = { truth: Float32Array.from(y), fusion: Float32Array.from(qF), ...Object.fromEntries(c.views.map((v) => [v, Float32Array.from(heads[v])])) };
      // d/dqF: 2 (qF - y) / 4, and for each distilled view alpha * 2 (qF - qj) / 4 (no stop-gradient: distillation pulls q_F too).
      const alpha = c.views.length === 1 || c.loss === 'predictionOnly' || c.loss === 'noDistillation' ? 0 : c.alpha ?? 0.3;
      const expectedGrad = qF.map((v, i) => (2 * (v - y[i])) / 4 + (c.loss === 'predictionOnly' ? 0 : c.views.reduce((s, view) => s + (alpha * 2 * (v - heads[view][i])) / 4, 0)));
      for (const [kind, r] of await onBoth({ loss, dFusion }, feeds)) {
        assert.ok(Math.abs(r.loss[0] - c.expected) < 1e-6, `${kind}: ${r.loss[0]} != ${c.expected}`);
        assert.ok(relativeError(r.dFusion, expectedGrad) < 1e-6, `${kind}: dL/dqF ${Array.from(r.dFusion).join(', ')} != ${expectedGrad.join(', ')}`);
      }
    });
  }
});
