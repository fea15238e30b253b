/**
 * Colour maps shared by every side that draws values, from d3-scale-chromatic: perceptually
 * uniform maps for expression (viridis, magma, cividis) and diverging maps centred on zero for
 * errors (under-prediction blue or green, over-prediction red or purple). The viewer's canvas
 * (lookup tables) and the runtime's SVG figures (colours at a value) read the same numbers.
 * d3-scale-chromatic is bundled into each target (scripts/build.mjs), browser and Node alike.
 */
import { interpolateCividis, interpolateMagma, interpolatePiYG, interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import type { ViewerDisplay } from './webviews';

export type MapName = ViewerDisplay['valueMap'] | ViewerDisplay['errorMap'];
export type Rgb = readonly [number, number, number];

/** Each map as t in [0, 1] -> CSS colour; the diverging ones turned so that t = 0 (under-prediction) is blue or green. */
const INTERPOLATORS: Record<MapName, (t: number) => string> = {
  viridis: interpolateViridis,
  magma: interpolateMagma,
  cividis: interpolateCividis,
  'red-blue': (t) => interpolateRdBu(1 - t),
  'pink-green': (t) => interpolatePiYG(1 - t),
};

/** A CSS colour as d3 writes it (#rrggbb or rgb(r, g, b)) as [r, g, b]. */
export function parseColour(css: string): Rgb {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const rgb = /^rgb\((\d+),\s*(\d+),\s*(\d+)\)$/.exec(css);
  if (rgb) return [Number(rgb[1]), Number(rgb[2]), Number(rgb[3])];
  throw new Error(`not a colour: ${css}`);
}

/** The map's colour at `t` in [0, 1] (clamped). */
export const colourAt = (name: MapName, t: number): Rgb => parseColour(INTERPOLATORS[name](Math.max(0, Math.min(1, t))));

/** `#rrggbb` of a colour. */
export const hexOf = (c: Rgb): string => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

const tables = new Map<MapName, string[]>();
/** The map's 256 colours, low to high, each as `rgb(r,g,b)` (the canvas viewer's lookup table). */
export function lut(name: MapName): string[] {
  let t = tables.get(name);
  if (!t) {
    t = Array.from({ length: 256 }, (_, i) => `rgb(${colourAt(name, i / 255).join(',')})`);
    tables.set(name, t);
  }
  return t;
}
