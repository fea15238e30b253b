/**
 * Integer array coordinates for spots that have only pixel centres (an .h5ad without
 * array_row/array_col), and the check that no two spots share a grid cell.
 */
import { DataFileError, type Spot } from './types';


const GRID_TOLERANCE = 0.3;

export function deriveGrid(spots: Spot[], file: string, section: string): void {
  if (spots.length < 2) {
    for (const s of spots) { s.row = 0; s.col = 0; }
    return;
  }
  const d = medianNearestNeighbour(spots);
  const models: Array<[string, number, number]> = [['square', d, d], ['hexagonal', d / 2, (d * Math.sqrt(3)) / 2]];
  for (const [, sx, sy] of models) {
    const cols = snap(spots.map((s) => s.x / sx));
    const rows = snap(spots.map((s) => s.y / sy));
    if (!cols || !rows) continue;
    const cells = new Set(spots.map((_, i) => `${rows[i]},${cols[i]}`));
    if (cells.size !== spots.length) continue;
    spots.forEach((s, i) => { s.row = rows[i]; s.col = cols[i]; });
    return;
  }
  throw new DataFileError(file, 'obsm/spatial', `the spots of section ${section} lie on neither a square nor a hexagonal grid of spacing ${d.toFixed(1)} px (a rotated slide?), so array coordinates cannot be derived; add obs columns array_row and array_col`);
}

/** Integer positions for values that should sit near a lattice with unit spacing, or undefined. */
function snap(values: number[]): number[] | undefined {
  // Phase of the lattice: circular mean of the fractional parts, robust to any origin.
  let sin = 0;
  let cos = 0;
  for (const v of values) { sin += Math.sin(2 * Math.PI * v); cos += Math.cos(2 * Math.PI * v); }
  const phase = Math.atan2(sin, cos) / (2 * Math.PI);
  const out = values.map((v) => Math.round(v - phase));
  if (values.some((v, i) => Math.abs(v - phase - out[i]) > GRID_TOLERANCE)) return undefined;
  const min = Math.min(...out);
  return out.map((v) => v - min);
}

function medianNearestNeighbour(spots: readonly Spot[]): number {
  const order = spots.map((_, i) => i).sort((a, b) => spots[a].x - spots[b].x);
  const nearest = order.map((i, k) => {
    let best = Infinity;
    for (const step of [-1, 1]) {
      for (let j = k + step; j >= 0 && j < order.length; j += step) {
        const o = spots[order[j]];
        const dx = o.x - spots[i].x;
        if (dx * dx >= best) break;
        const dist = dx * dx + (o.y - spots[i].y) ** 2;
        if (dist > 0 && dist < best) best = dist;
      }
    }
    return Math.sqrt(best);
  }).sort((a, b) => a - b);
  return nearest[nearest.length >> 1];
}

/** Two spots on one grid cell are an input error (the APEG grid needs one spot per cell). */
export function checkGridCells(spots: readonly Spot[], file: string, field: string): void {
  const cells = new Map<string, string>();
  for (const s of spots) {
    const key = `${s.row},${s.col}`;
    const other = cells.get(key);
    if (other !== undefined) {
      throw new DataFileError(file, field, `spots ${other} and ${s.id} are on the same array position (row ${s.row}, column ${s.col}); each spot needs its own`);
    }
    cells.set(key, s.id);
  }
}
