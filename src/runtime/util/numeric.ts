/** max |a - b| over max |b|: how agreement between two computations is stated (e.g. below 1e-4). */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`compared arrays differ in length: ${a.length} and ${b.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

/** Rows `rows` of a row-major [n, width] table, in that order: [rows.length, width]. */
export function gatherRows(values: Float32Array, width: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * width);
  for (let i = 0; i < rows.length; i++) out.set(values.subarray(rows[i] * width, (rows[i] + 1) * width), i * width);
  return out;
}

/** The chosen columns of a row-major [n, width] array, in the given order: [n, columns.length]. */
export function gatherColumns(values: Float32Array, width: number, columns: readonly number[]): Float32Array {
  const n = values.length / width;
  const out = new Float32Array(n * columns.length);
  for (let r = 0; r < n; r++) {
    for (let j = 0; j < columns.length; j++) out[r * columns.length + j] = values[r * width + columns[j]];
  }
  return out;
}
