import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { References } from '../../src/runtime/baselines/references';
import { nearest, type Metric } from '../../src/runtime/baselines/retrieval';
import type { SectionInputs } from '../../src/runtime/train/data';
import type { StateDict } from '../../src/runtime/weights/stateDict';
import { mulberry32 } from '../../src/runtime/util/random';

/**
 * The host k-NN search against a brute-force sort (both metrics, with and without a filter, ties
 * to the lower index, across several blocks), and EGN's exemplars: only training sections, never
 * the query's own patient.
 */

const randomTable = (rand: () => number, n: number, dim: number) => Float32Array.from({ length: n * dim }, () => 2 * rand() - 1);

/** Every allowed key sorted by exact (float64) distance, then index; the first k. */
function bruteForce(q: Float32Array, nq: number, x: Float32Array, nk: number, dim: number, k: number, metric: Metric, allowed?: (a: number, b: number) => boolean): number[][] {
  const row = (a: Float32Array, i: number) => Array.from(a.subarray(i * dim, (i + 1) * dim));
  const norm = (v: number[]) => Math.sqrt(v.reduce((s, t) => s + t * t, 0));
  return Array.from({ length: nq }, (_, i) => {
    const qi = row(q, i);
    const scored = Array.from({ length: nk }, (_, j) => {
      const xj = row(x, j);
      const d = metric === 'euclidean'
        ? qi.reduce((s, v, t) => s + (v - xj[t]) ** 2, 0)
        : -qi.reduce((s, v, t) => s + v * xj[t], 0) / (norm(qi) * norm(xj) || 1);
      return { j, d };
    }).filter(({ j }) => !allowed || allowed(i, j));
    scored.sort((a, b) => a.d - b.d || a.j - b.j);
    return scored.slice(0, k).map((s) => s.j);
  });
}

describe('nearest', () => {
  const rand = mulberry32(7);
  const [nq, nk, dim, k] = [37, 203, 11, 6];
  const queries = randomTable(rand, nq, dim);
  const keys = randomTable(rand, nk, dim);
  // Ties: key 150 repeats key 10 (both metrics), key 180 is key 10 doubled (a cosine tie); query 0 is key 10.
  keys.copyWithin(150 * dim, 10 * dim, 11 * dim);
  for (let d = 0; d < dim; d++) keys[180 * dim + d] = 2 * keys[10 * dim + d];
  queries.set(keys.subarray(10 * dim, 11 * dim), 0);
  const filter = (a: number, b: number) => (a + b) % 3 !== 0;

  for (const metric of ['euclidean', 'cosine'] as const) {
    for (const allowed of [undefined, filter]) {
      test(`${metric}${allowed ? ', filtered' : ''}: the brute-force order, in one block and in many`, () => {
        const expected = bruteForce(queries, nq, keys, nk, dim, k, metric, allowed);
        for (const blocks of [undefined, { queries: 5, keys: 16 }, { queries: 8, keys: 7 }]) {
          const got = nearest(queries, nq, keys, nk, dim, k, metric, allowed, blocks);
          assert.deepEqual(Array.from({ length: nq }, (_, i) => Array.from(got.subarray(i * k, (i + 1) * k))), expected);
        }
        if (!allowed) assert.deepEqual(expected[0].slice(0, metric === 'euclidean' ? 2 : 3), metric === 'euclidean' ? [10, 150] : [10, 150, 180], 'ties go to the lower index');
      });
    }
  }

  test('fewer allowed keys than k is an error naming the query', () => {
    assert.throws(() => nearest(queries, nq, keys, nk, dim, 3, 'euclidean', (a, b) => a !== 4 || b < 2), /query 4 has only 2 allowed keys, 3 needed/);
    assert.throws(() => nearest(queries, nq, keys, nk, dim, nk + 1, 'cosine'), /203 keys cannot give 204/);
  });

});

describe('EGN\'s exemplars and BLEEP\'s references: training spots only, never the query\'s own patient', () => {
  const [D, G, K] = [4, 3, 5];
  const rand = mulberry32(11);
  /** A section whose features cluster around its patient's centre, so that a careless search would pick the same patient. */
  const section = (id: string, patient: string, centre: number, n: number): SectionInputs => ({
    id, patient, n, spotIds: Array.from({ length: n }, (_, i) => `${id}-${i}`), storeRows: [],
    global: Float32Array.from({ length: n * D }, () => centre + 0.1 * rand()),
    values: Float32Array.from({ length: n * G }, () => rand()),
  } as unknown as SectionInputs);
  const train = [section('a1', 'A', 0, 12), section('a2', 'A', 0, 9), section('b1', 'B', 1, 10), section('c1', 'C', 2, 8), section('c2', 'C', 2, 7)];
  const test_ = section('d1', 'D', 0.05, 11);
  const refs = References.fromSections(train, G, true);
  const pool = Float32Array.from(train.flatMap((s) => Array.from(s.global!)));
  const poolPatient = train.flatMap((s) => s.spotIds.map(() => s.patient));
  /** Which pool row an exemplar's features are (features are distinct random draws). */
  const rowOf = (f: Float32Array): number => {
    for (let r = 0; r < pool.length / D; r++) if (f.every((v, c) => v === pool[r * D + c])) return r;
    return -1;
  };
  const picksOf = (s: SectionInputs) => Array.from({ length: s.n }, (_, spot) => ({ section: s, spot }));
  const rowsOf = (s: SectionInputs): number[] => {
    const { features } = refs.exemplars(picksOf(s), K);
    return Array.from({ length: s.n * K }, (_, i) => rowOf(features.subarray(i * D, (i + 1) * D)));
  };

  test('the pool is every spot of the training sections, in order, with their labels', () => {
    assert.equal(refs.size, 46);
    assert.deepEqual(Array.from(refs.labels.subarray(12 * G, 13 * G)), Array.from(train[1].values.subarray(0, G)));
  });

  test('a training spot never gets a spot of its own patient, and gets the nearest of the others, with their labels', () => {
    for (const s of train) {
      const rows = rowsOf(s);
      for (const row of rows) assert.notEqual(poolPatient[row], s.patient, `${s.id} got a spot of its own patient`);
      const expected = nearest(s.global!, s.n, pool, pool.length / D, D, K, 'euclidean', (_, key) => poolPatient[key] !== s.patient);
      assert.deepEqual(rows, Array.from(expected));
      const { labels } = refs.exemplars(picksOf(s), K);
      assert.deepEqual(Array.from(labels.subarray(0, G)), Array.from(refs.labels.subarray(expected[0] * G, (expected[0] + 1) * G)));
    }
  });

  test('a test spot draws from the training pool only: the plain nearest training spots', () => {
    const rows = rowsOf(test_);
    assert.ok(rows.every((row) => row >= 0 && row < refs.size), 'every exemplar is a training spot');
    assert.deepEqual(rows, Array.from(nearest(test_.global!, test_.n, pool, pool.length / D, D, K, 'euclidean')));
    // Its features sit near patient A's: A's training spots, as they should be.
    assert.ok(rows.every((row) => poolPatient[row] === 'A'));
  });

  test('a checkpoint keeps the pool, and the pool read back retrieves the same exemplars', () => {
    const sd: StateDict = new Map();
    refs.writeTo(sd, train.map((s) => s.id));
    const back = References.readFrom(sd, 'ckpt', G, D, { sections: train.map((s) => s.id), patients: train.map((s) => s.patient) });
    for (const s of [train[2], test_]) assert.deepEqual(back.exemplars(picksOf(s), K), refs.exemplars(picksOf(s), K));
    assert.throws(() => References.readFrom(sd, 'ckpt', G + 1, D, { sections: [], patients: [] }), /ckpt: reference.labels holds/);
  });

  test('BLEEP: the mean label of the k most cosine-similar references, brute force', () => {
    const P = 3;
    const keys = Float32Array.from({ length: refs.size * P }, () => rand() - 0.5);
    const queries = Float32Array.from({ length: 4 * P }, () => rand() - 0.5);
    const got = refs.retrieve(queries, 4, keys, P, K);
    for (let q = 0; q < 4; q++) {
      const cos = (r: number) => {
        let [dot, a, b] = [0, 0, 0];
        for (let c = 0; c < P; c++) { dot += queries[q * P + c] * keys[r * P + c]; a += queries[q * P + c] ** 2; b += keys[r * P + c] ** 2; }
        return dot / Math.sqrt(a * b);
      };
      const top = Array.from({ length: refs.size }, (_, r) => r).sort((x, y) => cos(y) - cos(x)).slice(0, K);
      for (let c = 0; c < G; c++) {
        const mean = top.reduce((sum, r) => sum + refs.labels[r * G + c], 0) / K;
        assert.ok(Math.abs(got[q * G + c] - mean) < 1e-6, `query ${q}, gene ${c}`);
      }
    }
  });

  test('a patient with fewer than K spots of other patients is an error naming the section', () => {
    const one = References.fromSections([train[0], train[1]], G, true);
    assert.throws(() => one.exemplars(picksOf(train[0]), K), /section a1 \(patient A\) cannot get 5 exemplars from other patients' training spots/);
  });
});
