import * as assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { egnExemplars, gatherExemplars, nearest, type ExemplarSection, type Metric } from '../../src/runtime/baselines/retrieval';
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

describe('egnExemplars', () => {
  const [D, G, K] = [4, 3, 5];
  const rand = mulberry32(11);
  /** A section whose features cluster around its patient's centre, so that a careless search would pick the same patient. */
  const section = (id: string, patient: string, centre: number, n: number): ExemplarSection => ({
    id, patient, n,
    features: Float32Array.from({ length: n * D }, () => centre + 0.1 * rand()),
    labels: Float32Array.from({ length: n * G }, () => rand()),
  });
  const train = [section('a1', 'A', 0, 12), section('a2', 'A', 0, 9), section('b1', 'B', 1, 10), section('c1', 'C', 2, 8), section('c2', 'C', 2, 7)];
  const test_ = [section('d1', 'D', 0.05, 11)];
  const { pool, rows } = egnExemplars(train, test_, K);

  test('the pool is the training sections, in order', () => {
    assert.equal(pool.rows, 46);
    assert.deepEqual([...new Set(pool.section)], [0, 1, 2, 3, 4]);
    assert.deepEqual(Array.from(pool.features.subarray(12 * D, 13 * D)), Array.from(train[1].features.subarray(0, D)));
  });

  test('a training spot never gets a spot of its own patient, and gets the nearest of the others', () => {
    for (const s of train) {
      const r = rows.get(s.id)!;
      assert.equal(r.length, s.n * K);
      for (const row of r) assert.notEqual(train[pool.section[row]].patient, s.patient, `${s.id} got a spot of its own patient`);
      const expected = nearest(s.features, s.n, pool.features, pool.rows, D, K, 'euclidean', (_, key) => train[pool.section[key]].patient !== s.patient);
      assert.deepEqual(r, expected);
    }
  });

  test('a test spot draws from the training pool only (its patient is not in training: the plain nearest)', () => {
    const r = rows.get('d1')!;
    assert.ok(r.every((row) => row >= 0 && row < pool.rows));
    assert.deepEqual(r, nearest(test_[0].features, test_[0].n, pool.features, pool.rows, D, K, 'euclidean'));
    // Its features sit near patient A's, so without B10's rule it would be A's spots; it is, as it should be.
    assert.ok(r.every((row) => train[pool.section[row]].patient === 'A'));
  });

  test('gatherExemplars lays out the model inputs [n, K, D] and [n, K, G]', () => {
    const r = rows.get('b1')!;
    const { exemplars, exemplarTargets } = gatherExemplars(pool, r);
    assert.equal(exemplars.length, 10 * K * D);
    const [spot, j] = [3, 2];
    const row = r[spot * K + j];
    const src = train[pool.section[row]];
    assert.deepEqual(Array.from(exemplars.subarray((spot * K + j) * D, (spot * K + j + 1) * D)), Array.from(src.features.subarray(pool.spot[row] * D, (pool.spot[row] + 1) * D)));
    assert.deepEqual(Array.from(exemplarTargets.subarray((spot * K + j) * G, (spot * K + j + 1) * G)), Array.from(src.labels.subarray(pool.spot[row] * G, (pool.spot[row] + 1) * G)));
  });

  test('one training patient, or a test section among the training ones, is an error', () => {
    assert.throws(() => egnExemplars([train[0], train[1]], [], K), /section a1 \(patient A\) cannot get 5 exemplars/);
    assert.throws(() => egnExemplars(train, [train[2]], K), /b1 is given twice/);
  });
});
