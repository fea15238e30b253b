/**
 * Where a section's spots lie on its ST array grid: what APEG scatters the global encoder's tokens
 * onto (models/apeg.ts, models/globalLayout.ts).
 */

/** Grids larger than this are refused: at d = 512 one would take 512 MiB. */
const MAX_GRID_CELLS = 1 << 18;

/** Where each spot lies on its section's array grid. */
export interface SpotGrid {
  /** Rows and columns of the grid, after shifting the coordinates so that their minimum is 0. */
  readonly height: number;
  readonly width: number;
  /** The cell (row * width + col) of each spot, in the spots' order. */
  readonly cellOfSpot: Int32Array;
  /** The spot on each cell, -1 where there is none. */
  readonly spotOfCell: Int32Array;
}

/**
 * The grid of one section from its spots' integer array coordinates (HER2+: round(y), round(x)
 * of the spot file; Visium: array_row, array_col). Two spots on one cell are an input error;
 * `spotIds` names them in the message.
 */
export function spotGrid(rows: ArrayLike<number>, cols: ArrayLike<number>, spotIds?: readonly string[]): SpotGrid {
  const n = rows.length;
  if (cols.length !== n) throw new Error(`spot grid: ${n} array rows but ${cols.length} array columns`);
  if (n === 0) throw new Error('spot grid: a section without spots');
  const name = (i: number) => (spotIds?.[i] !== undefined ? `spot ${i} (${spotIds[i]})` : `spot ${i}`);
  let [minRow, minCol, maxRow, maxCol] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(rows[i]) || !Number.isInteger(cols[i])) {
      throw new Error(`spot grid: ${name(i)} has array position (${rows[i]}, ${cols[i]}); APEG needs integer array coordinates, not pixel positions`);
    }
    minRow = Math.min(minRow, rows[i]);
    maxRow = Math.max(maxRow, rows[i]);
    minCol = Math.min(minCol, cols[i]);
    maxCol = Math.max(maxCol, cols[i]);
  }
  const height = maxRow - minRow + 1;
  const width = maxCol - minCol + 1;
  if (height * width > MAX_GRID_CELLS) {
    throw new Error(`spot grid: the array coordinates span ${height} x ${width} cells (more than ${MAX_GRID_CELLS}); are they pixel positions rather than array rows and columns?`);
  }
  const cellOfSpot = new Int32Array(n);
  const spotOfCell = new Int32Array(height * width).fill(-1);
  for (let i = 0; i < n; i++) {
    const cell = (rows[i] - minRow) * width + (cols[i] - minCol);
    const other = spotOfCell[cell];
    if (other >= 0) {
      throw new Error(`spot grid: ${name(other)} and ${name(i)} both lie on array cell (row ${rows[i]}, col ${cols[i]}); each cell holds at most one spot`);
    }
    spotOfCell[cell] = i;
    cellOfSpot[i] = cell;
  }
  return { height, width, cellOfSpot, spotOfCell };
}
