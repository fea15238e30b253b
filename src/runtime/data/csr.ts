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
