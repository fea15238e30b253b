import { DataFileError, type CountMatrix } from './types';

/** Compressed-sparse-row storage that grows as values are appended, row by row. */
export class CsrAppender {
  private readonly indptr: number[] = [0];
  private indices: Uint32Array;
  private data: Float32Array;
  private nnz = 0;

  constructor(capacity = 1024) {
    this.indices = new Uint32Array(capacity);
    this.data = new Float32Array(capacity);
  }

  /** Rows ended so far. */
  get rows(): number {
    return this.indptr.length - 1;
  }

  /** Appends value `v` at column `j` of the current row (columns ascending within a row). */
  push(j: number, v: number): void {
    if (this.nnz === this.indices.length) {
      const indices = new Uint32Array(this.nnz * 2);
      indices.set(this.indices);
      this.indices = indices;
      const data = new Float32Array(this.nnz * 2);
      data.set(this.data);
      this.data = data;
    }
    this.indices[this.nnz] = j;
    this.data[this.nnz] = v;
    this.nnz++;
  }

  endRow(): void {
    this.indptr.push(this.nnz);
  }

  finish(): { indptr: Uint32Array; indices: Uint32Array; data: Float32Array } {
    return { indptr: Uint32Array.from(this.indptr), indices: this.indices.slice(0, this.nnz), data: this.data.slice(0, this.nnz) };
  }
}

// ---------------------------------------------------------------------------------------------
// Sparse matrices. Every reader returns canonical CSR: indices sorted within a row, no stored
// zeros, duplicate entries summed.

export type CsrMatrix = CountMatrix;

/** A compressed sparse matrix as stored (either orientation). */
export interface RawSparse {
  indptr: ArrayLike<number>;
  indices: ArrayLike<number>;
  data: ArrayLike<number>;
}

/** Checks lengths, order and bounds of a compressed matrix with nMajor slices of nMinor. */
export function checkCompressed(s: RawSparse, nMajor: number, nMinor: number, file: string, group: string): void {
  if (s.indptr.length !== nMajor + 1) {
    throw new DataFileError(file, `${group}/indptr`, `has ${s.indptr.length} entries, expected ${nMajor + 1} (the shape's ${nMajor} + 1)`);
  }
  const nnz = s.indptr[nMajor];
  if (s.indptr[0] !== 0 || s.indices.length !== nnz || s.data.length !== nnz) {
    throw new DataFileError(file, `${group}/indptr`, `runs from ${s.indptr[0]} to ${nnz}, but indices has ${s.indices.length} and data ${s.data.length} entries; the matrix is damaged`);
  }
  for (let i = 0; i < nMajor; i++) {
    if (s.indptr[i + 1] < s.indptr[i]) throw new DataFileError(file, `${group}/indptr[${i + 1}]`, 'decreases; the matrix is damaged');
  }
  for (let k = 0; k < nnz; k++) {
    const j = s.indices[k];
    if (!(j >= 0 && j < nMinor && Number.isInteger(j))) throw new DataFileError(file, `${group}/indices[${k}]`, `is ${j}, outside 0..${nMinor - 1}`);
  }
}

/** The chosen rows of a (checked) CSR source as canonical CSR; geneMap renumbers or drops (-1) columns. */
export function csrRows(s: RawSparse, rows: ArrayLike<number>, nGenes: number, geneMap?: Int32Array): CsrMatrix {
  const builder = new CsrBuilder(nGenes);
  for (let r = 0; r < rows.length; r++) builder.sparseRow(s, rows[r], geneMap);
  return builder.finish();
}

/** The same matrix with the other orientation (CSC <-> CSR), by counting sort. */
export function transposeCompressed(s: RawSparse, nMajor: number, nMinor: number): RawSparse {
  const nnz = s.indices.length;
  const indptr = new Float64Array(nMinor + 1);
  for (let k = 0; k < nnz; k++) indptr[s.indices[k] + 1]++;
  for (let j = 0; j < nMinor; j++) indptr[j + 1] += indptr[j];
  const next = indptr.slice(0, nMinor);
  const indices = new Uint32Array(nnz);
  const data = new Float64Array(nnz);
  for (let i = 0; i < nMajor; i++) {
    for (let k = s.indptr[i]; k < s.indptr[i + 1]; k++) {
      const at = next[s.indices[k]]++;
      indices[at] = i;
      data[at] = s.data[k];
    }
  }
  return { indptr, indices, data };
}

export class CsrBuilder {
  private readonly csr = new CsrAppender();
  private readonly pairs: Array<[number, number]> = [];

  constructor(private readonly nGenes: number) {}

  denseRow(values: ArrayLike<number>, offset: number, n: number): void {
    for (let j = 0; j < n; j++) {
      const v = values[offset + j];
      if (v !== 0) this.csr.push(j, v);
    }
    this.csr.endRow();
  }

  sparseRow(s: RawSparse, row: number, geneMap?: Int32Array): void {
    const pairs = this.pairs;
    pairs.length = 0;
    let sorted = true;
    for (let k = s.indptr[row]; k < s.indptr[row + 1]; k++) {
      const j = geneMap ? geneMap[s.indices[k]] : s.indices[k];
      if (j < 0) continue;
      if (pairs.length > 0 && j <= pairs[pairs.length - 1][0]) sorted = false;
      pairs.push([j, s.data[k]]);
    }
    if (!sorted) pairs.sort((a, b) => a[0] - b[0]);
    for (let p = 0; p < pairs.length; p++) {
      const j = pairs[p][0];
      let v = pairs[p][1];
      while (p + 1 < pairs.length && pairs[p + 1][0] === j) v += pairs[++p][1];
      if (v !== 0) this.csr.push(j, v);
    }
    this.csr.endRow();
  }

  finish(): CsrMatrix {
    return {
      nSpots: this.csr.rows,
      nGenes: this.nGenes,
      ...this.csr.finish(),
    };
  }

}
