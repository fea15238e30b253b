/** Placeholder until the EGN branch's retrieval.ts lands (replaced on merge). */
export function nearest(queries: Float32Array, nq: number, keys: Float32Array, nk: number, dim: number, k: number, metric: 'euclidean' | 'cosine', allowed?: (query: number, key: number) => boolean): Int32Array {
  const out = new Int32Array(nq * k);
  const norm = (a: Float32Array, i: number) => Math.sqrt(a.subarray(i * dim, (i + 1) * dim).reduce((s, v) => s + v * v, 0)) || 1;
  for (let q = 0; q < nq; q++) {
    const scored: [number, number][] = [];
    for (let j = 0; j < nk; j++) {
      if (allowed && !allowed(q, j)) continue;
      let s = 0;
      for (let c = 0; c < dim; c++) s += metric === 'cosine' ? queries[q * dim + c] * keys[j * dim + c] : (queries[q * dim + c] - keys[j * dim + c]) ** 2;
      scored.push([metric === 'cosine' ? -s / (norm(queries, q) * norm(keys, j)) : s, j]);
    }
    if (scored.length < k) throw new Error(`retrieval: query ${q} has ${scored.length} allowed keys, fewer than ${k}`);
    scored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let i = 0; i < k; i++) out[q * k + i] = scored[i][1];
  }
  return out;
}
