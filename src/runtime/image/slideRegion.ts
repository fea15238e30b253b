import { ImageFileError } from './imageError';
import type { SlideLevel } from './wsi';

/** What both whole-slide readers (geotiff.js and OpenSlide) check and share of a region read. */

/** The smallest level whose downsample is at most `downsample` (level 0 if none is larger). */
export function levelForDownsample(levels: readonly SlideLevel[], downsample: number): number {
  let best = 0;
  levels.forEach((l, i) => {
    if (l.downsample <= downsample * (1 + 1e-9)) best = i;
  });
  return best;
}

/**
 * The level a readRegion(level, x, y, w, h) reads, after checking the level exists, the
 * coordinates are integers, the size is not negative and at most `regionPixels` pixels.
 */
export function checkedRegion(path: string, levels: readonly SlideLevel[], regionPixels: number, level: number, x: number, y: number, w: number, h: number): SlideLevel {
  const L = levels[level];
  if (!L) throw new RangeError(`${path} has levels 0..${levels.length - 1}, not ${level}`);
  if (![x, y, w, h].every(Number.isSafeInteger) || w < 0 || h < 0) {
    throw new RangeError(`${path}: readRegion(${level}, ${x}, ${y}, ${w}, ${h}) needs integer coordinates and a non-negative size`);
  }
  if (w * h > regionPixels) {
    throw new ImageFileError(path, `a region of ${w} x ${h} px of level ${level} (${L.width} x ${L.height} px) was asked, more than the ${regionPixels} px ` +
      `one read may take; read a reduced level (this slide has ${levels.length}: ${levels.map((l) => `${l.width} x ${l.height}`).join(', ')}) or smaller regions`);
  }
  return L;
}
