/**
 * Colour maps shared by every side that draws values: viridis (perceptually uniform, for
 * expression) and a red-blue diverging map centred on zero (for errors: under-prediction blue,
 * over-prediction red), as their published control points. Pure data and arithmetic, so the
 * runtime's SVG figures and the browser's canvas can use the same numbers.
 */

export type Rgb = readonly [number, number, number];
export type ColorStops = readonly Rgb[];

export const VIRIDIS_STOPS: ColorStops = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
export const RED_BLUE_STOPS: ColorStops = [[5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247], [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31]];

/** The colour at `t` in [0, 1] (clamped), linear between stops, each channel rounded to an integer. */
export function rgbAt(stops: ColorStops, t: number): Rgb {
  const s = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const k = Math.min(stops.length - 2, Math.floor(s));
  const f = s - k;
  const [a, b] = [stops[k], stops[k + 1]];
  return [0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * f)) as unknown as Rgb;
}

/** `#rrggbb` of a colour. */
export const hexOf = (c: Rgb): string => `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;

/** `size` colours evenly spaced over the map, as CSS `rgb()` strings (the canvas viewer's lookup table). */
export function lookupTable(stops: ColorStops, size = 256): string[] {
  return Array.from({ length: size }, (_, i) => {
    const [r, g, b] = rgbAt(stops, i / (size - 1));
    return `rgb(${r},${g},${b})`;
  });
}
