// Colour maps as 256-entry lookup tables from d3-scale-chromatic: perceptually uniform maps for
// values (viridis, magma, cividis) and diverging maps centred on zero for errors (blue for
// under-prediction, red or purple for over-prediction), so spots are bucketed and drawn one path
// per colour.
import { interpolateCividis, interpolateMagma, interpolatePiYG, interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import type { ViewerDisplay } from '../../src/protocol/webviews';

export type MapName = ViewerDisplay['valueMap'] | ViewerDisplay['errorMap'];

/** Each map as t in [0, 1] -> CSS colour; the diverging ones turned so that t = 0 (under-prediction) is blue or green. */
const INTERPOLATORS: Record<MapName, (t: number) => string> = {
  viridis: interpolateViridis,
  magma: interpolateMagma,
  cividis: interpolateCividis,
  'red-blue': (t) => interpolateRdBu(1 - t),
  'pink-green': (t) => interpolatePiYG(1 - t),
};

/** A CSS colour as d3 writes it (#rrggbb or rgb(r, g, b)) as [r, g, b]. */
export function parseColour(css: string): [number, number, number] {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(css);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  throw new Error(`not a colour: ${css}`);
}

const tables = new Map<MapName, string[]>();
/** The map's 256 colours, low to high, each as `rgb(r,g,b)`. */
export function lut(name: MapName): string[] {
  let t = tables.get(name);
  if (!t) {
    t = Array.from({ length: 256 }, (_, i) => `rgb(${parseColour(INTERPOLATORS[name](i / 255)).join(',')})`);
    tables.set(name, t);
  }
  return t;
}

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
