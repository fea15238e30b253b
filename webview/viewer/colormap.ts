// The viewer's colours: the shared colour maps (src/protocol/colormap.ts, from d3-scale-chromatic) as
// 256-entry lookup tables, so spots are bucketed and drawn one path per colour, and the categorical
// colours of overlays.
import { lut } from '../../src/protocol/colormap';

export { lut, parseColour, type MapName } from '../../src/protocol/colormap';

export const VIRIDIS = lut('viridis');
/** Under-prediction blue, over-prediction red. */
export const RED_BLUE = lut('red-blue');

/** Bucket (0..255) of a value in [lo, hi]; -1 for a missing value. */
export function bucket(v: number, lo: number, hi: number): number {
  if (!Number.isFinite(v)) return -1;
  if (!(hi > lo)) return 128;
  return Math.max(0, Math.min(255, Math.round(((v - lo) / (hi - lo)) * 255)));
}

/** Categorical colours for annotation labels. */
export const CATEGORIES = ['#e41a1c', '#377eb8', '#4daf4a', '#984ea3', '#ff7f00', '#ffff33', '#a65628', '#f781bf', '#999999', '#66c2a5'];
