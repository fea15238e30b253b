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

/** A checked region read: its level, its RGB result (zero outside the level), and the part of it inside the level, if any. */
export interface RegionRead {
  L: SlideLevel;
  out: Uint8Array;
  inside?: { left: number; top: number; right: number; bottom: number };
}

/** Starts a readRegion of either reader: the checks of checkedRegion, the zeroed result, and the level's part to fill. */
export function startRegion(path: string, closed: boolean, levels: readonly SlideLevel[], regionPixels: number, level: number, x: number, y: number, w: number, h: number): RegionRead {
  if (closed) throw new Error(`${path}: the slide was closed`);
  const L = checkedRegion(path, levels, regionPixels, level, x, y, w, h);
  const out = new Uint8Array(w * h * 3);
  const left = Math.max(0, x);
  const top = Math.max(0, y);
  const right = Math.min(L.width, x + w);
  const bottom = Math.min(L.height, y + h);
  return { L, out, ...(left < right && top < bottom ? { inside: { left, top, right, bottom } } : {}) };
}
