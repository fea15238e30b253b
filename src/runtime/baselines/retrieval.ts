/**
 * k-nearest-neighbour search on the host, for the retrieval baselines: EGN's exemplars (spec §5,
 * Euclidean, as T's torch.cdist) and BLEEP's reference look-up (spec §6, cosine). Distances come
 * from dot products computed a block of queries against a block of keys at a time, so memory
 * stays at one block whatever the table sizes, and each query keeps its own running top k.
 */

export type Metric = 'euclidean' | 'cosine';

/** Queries and keys per block of dot products (a 64 x 1024 block of doubles is 512 KB). */
export interface Blocks { queries: number; keys: number }
const BLOCKS: Blocks = { queries: 64, keys: 1024 };

/**
 * For each of nq queries [nq, dim], the indices of its k nearest keys among nk keys [nk, dim],
 * nearest first, ties to the lower index: [nq, k]. Euclidean ranks by |q - x|^2 = |q|^2 + |x|^2 - 2 q.x;
 * cosine by -q.x / (|q| |x|) (a zero vector has similarity 0 to everything). `allowed(query, key)`
 * filters candidates; a query with fewer than k allowed keys is an error.
 */
export function nearest(
  queries: Float32Array, nq: number, keys: Float32Array, nk: number, dim: number, k: number, metric: Metric,
  allowed?: (query: number, key: number) => boolean, blocks: Blocks = BLOCKS,
): Int32Array {
  if (queries.length !== nq * dim) throw new Error(`nearest: ${queries.length} query values are not ${nq} x ${dim}`);
  if (keys.length !== nk * dim) throw new Error(`nearest: ${keys.length} key values are not ${nk} x ${dim}`);
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`nearest: k must be a positive integer, got ${k}`);
  if (nk < k) throw new Error(`nearest: ${nk} keys cannot give ${k} neighbours`);
  for (const [name, a] of [['queries', queries], ['keys', keys]] as const) {
    const bad = a.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`nearest: ${name} row ${Math.floor(bad / dim)} has a non-finite value (${a[bad]})`);
  }
  const q = metric === 'cosine' ? unitRows(queries, nq, dim) : queries;
  const x = metric === 'cosine' ? unitRows(keys, nk, dim) : keys;
  const keyNorm = new Float64Array(nk); // |x|^2 for Euclidean, 0 for cosine (score = -q.x)
  if (metric === 'euclidean') for (let j = 0; j < nk; j++) keyNorm[j] = dot(x, j * dim, x, j * dim, dim);

  const bestScore = new Float64Array(nq * k).fill(Infinity); // ascending per query
  const bestIndex = new Int32Array(nq * k).fill(-1);
  const dots = new Float64Array(blocks.queries * blocks.keys);
  for (let q0 = 0; q0 < nq; q0 += blocks.queries) {
    const qn = Math.min(blocks.queries, nq - q0);
    for (let k0 = 0; k0 < nk; k0 += blocks.keys) {
      const kn = Math.min(blocks.keys, nk - k0);
      blockProduct(q, q0, qn, x, k0, kn, dim, dots);
      for (let a = 0; a < qn; a++) {
        const query = q0 + a;
        const base = query * k;
        for (let b = 0; b < kn; b++) {
          const score = keyNorm[k0 + b] - (metric === 'euclidean' ? 2 : 1) * dots[a * kn + b];
          // Keys arrive in index order, so a tie never displaces the earlier key.
          if (!(score < bestScore[base + k - 1])) continue;
          if (allowed && !allowed(query, k0 + b)) continue;
          let i = k - 1;
          for (; i > 0 && score < bestScore[base + i - 1]; i--) {
            bestScore[base + i] = bestScore[base + i - 1];
            bestIndex[base + i] = bestIndex[base + i - 1];
          }
          bestScore[base + i] = score;
          bestIndex[base + i] = k0 + b;
        }
      }
    }
  }
  for (let query = 0; query < nq; query++) {
    const found = bestIndex.subarray(query * k, (query + 1) * k).indexOf(-1);
    if (found >= 0) throw new Error(`nearest: query ${query} has only ${found} allowed keys, ${k} needed`);
  }
  return bestIndex;
}

/**
 * dots[a * kn + b] = q[q0 + a] . x[k0 + b]: tiles of four queries by two keys, each loaded value
 * used two or four times (about 2 GMAC/s per core in V8, 1.5 times the plain loop).
 */
function blockProduct(q: Float32Array, q0: number, qn: number, x: Float32Array, k0: number, kn: number, dim: number, dots: Float64Array): void {
  const fullA = qn - (qn % 4);
  const fullB = kn - (kn % 2);
  for (let a = 0; a < fullA; a += 4) {
    const r0 = (q0 + a) * dim;
    const [r1, r2, r3] = [r0 + dim, r0 + 2 * dim, r0 + 3 * dim];
    for (let b = 0; b < fullB; b += 2) {
      const c0 = (k0 + b) * dim;
      const c1 = c0 + dim;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
      for (let i = 0; i < dim; i++) {
        const v0 = x[c0 + i];
        const v1 = x[c1 + i];
        let u = q[r0 + i];
        s00 += u * v0; s01 += u * v1;
        u = q[r1 + i];
        s10 += u * v0; s11 += u * v1;
        u = q[r2 + i];
        s20 += u * v0; s21 += u * v1;
        u = q[r3 + i];
        s30 += u * v0; s31 += u * v1;
      }
      const o = a * kn + b;
      dots[o] = s00; dots[o + 1] = s01;
      dots[o + kn] = s10; dots[o + kn + 1] = s11;
      dots[o + 2 * kn] = s20; dots[o + 2 * kn + 1] = s21;
      dots[o + 3 * kn] = s30; dots[o + 3 * kn + 1] = s31;
    }
  }
  // The edges: the last queries (fewer than four) and the last key of an odd block.
  for (let a = 0; a < qn; a++) {
    for (let b = a < fullA ? fullB : 0; b < kn; b++) dots[a * kn + b] = dot(q, (q0 + a) * dim, x, (k0 + b) * dim, dim);
  }
}

function dot(a: Float32Array, i: number, b: Float32Array, j: number, dim: number): number {
  let s = 0;
  for (let d = 0; d < dim; d++) s += a[i + d] * b[j + d];
  return s;
}

/** Rows scaled to unit length (zero rows stay zero). */
function unitRows(a: Float32Array, n: number, dim: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let r = 0; r < n; r++) {
    const norm = Math.sqrt(dot(a, r * dim, a, r * dim, dim));
    if (norm > 0) for (let d = 0; d < dim; d++) out[r * dim + d] = a[r * dim + d] / norm;
  }
  return out;
}
