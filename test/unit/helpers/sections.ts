import type { Section, Spot } from '../../../src/runtime/data/types';

/** Builds a section from a dense spots x genes table and grid positions. */
export function sectionFrom(id: string, genes: string[], dense: number[][], grid: [number, number][]): Section {
  const indptr = new Uint32Array(dense.length + 1);
  const indices: number[] = [];
  const data: number[] = [];
  dense.forEach((row, r) => {
    row.forEach((v, j) => {
      if (v !== 0) {
        indices.push(j);
        data.push(v);
      }
    });
    indptr[r + 1] = indices.length;
  });
  const spots: Spot[] = grid.map(([row, col], i) => ({ id: `s${i}`, row, col, x: col * 100, y: row * 100 }));
  return {
    id, patient: id[0], spots, genes,
    counts: { nSpots: dense.length, nGenes: genes.length, indptr, indices: Uint32Array.from(indices), data: Float32Array.from(data) },
  };
}
