import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type Sym } from '../../src/runtime/engine/graph';
import { spotGrid } from '../../src/runtime/models/spotGrid';
import { triplexConfig, type TriplexConfig } from '../../src/runtime/models/triplexConfig';
import { encodeGlobalInBlocks, queryRowsPerBlock } from '../../src/runtime/models/globalBlocks';
import { globalLayout } from '../../src/runtime/models/globalLayout';
import { TriplexNet } from '../../src/runtime/models/triplex';
import type { SectionInputs, TrainingData } from '../../src/runtime/train/data';
import { EngineLearner } from '../../src/runtime/train/engineLearner';
import { mulberry32 } from '../../src/runtime/util/random';
import { testExecutors } from './helpers/executors';

/**
 * The global encoder's attention in blocks of query rows (models/globalBlocks.ts) against the
 * whole-slide computation on a slide of a few hundred spots: the same tokens within 1e-5, on
 * onnxruntime and on the engine's TF.js executor, with blocks that do not divide the sequence.
 */

const DIM = 32;
const SPOTS = 300;
const ROWS = 56; // 300 spots (bucketed to 320 tokens) in 6 blocks, the last one partly padding

/** A slide of SPOTS spots on an irregular 20 x 20 grid, with features drawn from a seed. */
function slide() {
  const random = mulberry32(7);
  const rows: number[] = [];
  const cols: number[] = [];
  for (let r = 0; r < 20 && rows.length < SPOTS; r++) for (let c = 0; c < 20 && rows.length < SPOTS; c++) if (random() > 0.2) { rows.push(r); cols.push(c); }
  assert.equal(rows.length, SPOTS);
  const features = Float32Array.from({ length: SPOTS * DIM }, () => random() * 4 - 1);
  return { rows, cols, features, grid: spotGrid(rows, cols) };
}

const config = (standardizeInputs: boolean): TriplexConfig => triplexConfig({ preset: 'demo', variant: 'gem', genes: 5, dim: DIM, standardizeInputs });

function maxDifference(a: Float32Array, b: Float32Array, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const stats = () => ({ global: { mean: Float32Array.from({ length: DIM }, (_, i) => 0.1 * (i % 5)), std: Float32Array.from({ length: DIM }, (_, i) => 0.5 + 0.05 * i) } });

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

test('query rows per block follow the logits budget: whole slides while they fit, linear memory past it', () => {
  assert.equal(queryRowsPerBlock(2048, 4), 2048); // 4 heads x 2048^2 floats = 64 MiB: one block
  assert.equal(queryRowsPerBlock(50_000, 4), 80); // 4 x 80 x 50,000 floats = 61 MiB
  assert.equal(queryRowsPerBlock(10_000_000, 8), 8); // never fewer than 8
});

describe('the global encoder in blocks of query rows gives the whole slide\'s tokens', () => {
  for (const standardize of [false, true]) {
    test(`on both engine executors${standardize ? ', inputs standardised' : ''}`, async () => {
      const s = slide();
      const net = new TriplexNet(config(standardize), 3);
      const layout = globalLayout([{ n: SPOTS, grid: s.grid }], 'apeg', 3);
      assert.ok(layout.tokens > SPOTS && layout.tokens % ROWS !== 0, 'padding tokens and a partial last block are exercised');
      const features = new Float32Array(layout.tokens * DIM);
      features.set(s.features);
      const feeds: Record<string, Float32Array | BigInt64Array> = Object.fromEntries([...net.table.initialValues()].map(([k, v]) => [`param:${k}`, v]));
      if (standardize) {
        const st = stats().global;
        feeds['norm:global:mean'] = st.mean;
        feeds['norm:global:inv'] = Float32Array.from(st.std, (x) => 1 / x);
      }
      Object.assign(feeds, { 'global:features': features, 'global:valid': layout.valid, 'global:keep': layout.keep, 'global:cells': layout.cells });
      for (const executor of engines) {
        const g = new Graph('float32');
        const whole = await executor.compile({ tokens: net.encodeGlobal(g, net.declareGlobalInputs(g, layout), 'inference') });
        const expected = (await whole.run(feeds)).tokens as Float32Array;
        const programs: string[] = [];
        const blocked = await encodeGlobalInBlocks(net, layout, features, feeds, (key, build: (g: Graph) => Record<string, Sym>) => {
          programs.push(key);
          return executor.compile(build(new Graph('float32')));
        }, ROWS);
        const diff = maxDifference(blocked, expected, SPOTS * DIM);
        assert.ok(diff < 1e-5, `${executor.kind}: blocked tokens differ from the whole slide's by ${diff}`);
        assert.ok(programs.some((k) => k.startsWith('global:rows0m:320x56')), `${executor.kind}: attention ran in blocks of ${ROWS} rows (${programs.join(', ')})`);
        assert.equal(programs.includes('global:input:320x56'), standardize);
      }
    });
  }

  test('EngineLearner.predict: blocks of query rows predict what the whole slide predicts', async () => {
    const s = slide();
    const section: SectionInputs = { id: 's1', patient: 'p1', n: SPOTS, spotIds: s.rows.map((_, i) => `spot${i}`), storeRows: s.rows.map((_, i) => i), values: new Float32Array(0), global: s.features, grid: s.grid };
    const data: TrainingData = { storeDir: '', featuresDir: '', genes: ['a', 'b', 'c', 'd', 'e'], hasCounts: false, dim: DIM, sections: new Map([['s1', section]]) };
    const learner = new EngineLearner(config(true), engines[0], 5);
    learner.setInputStats(stats());
    const whole = (await learner.predict(data, [section])).get('s1')!;
    const blocked = (await learner.predict(data, [section], { globalQueryRows: 40 })).get('s1')!;
    assert.ok((await learner.compiled()).some((c) => /global:rows1:300x40/.test(c.key)), 'the blocked path ran, over the slide\'s own 300 spots (no padding, no key mask)');
    const diff = maxDifference(blocked, whole, whole.length);
    assert.ok(diff < 1e-5, `predictions differ by ${diff}`);
    await learner.dispose();
  });
});
