import type { GeoTIFFImage } from 'geotiff';
import * as path from 'node:path';

/**
 * Microns per pixel (um/px) of an image and where the value came from, so that a conflict or a
 * resampling can name its sources. Sources, in the order a slide file is asked: the Aperio
 * ImageDescription's `MPP`, OME-XML's PhysicalSizeX, the TIFF XResolution/ResolutionUnit tags;
 * beside the file: Space Ranger's scale factors (a 55 um spot), a sample sheet's `mpp`, `--mpp`.
 */
export interface Scale {
  mpp: number;
  /** Where it was read, for messages: "the Aperio MPP of slide.svs", "--mpp". */
  source: string;
}

/** Scales closer than this (relative) are the same scale: no resampling, no conflict. */
export const SCALE_TOLERANCE = 0.02;

/** Plausible scanner scales: anything outside is a placeholder (72 dpi is 352.8 um/px). */
const PLAUSIBLE = { min: 0.05, max: 50 };

/** Space Ranger's spot diameter, in microns (spot_diameter_fullres is this many full-res px). */
export const VISIUM_SPOT_UM = 55;

/**
 * What a slide file states of its scale: `scale`, or, when its pixels are not square (within
 * SQUARE_TOLERANCE), `nonSquare`, the problem in words (file, both values, what to do) for the
 * caller to raise unless another source (--mpp, a sample sheet's mpp) gives the scale.
 */
export interface FileScale {
  scale?: Scale;
  nonSquare?: string;
}

/** One side of a pixel in microns, and the field of the file that says so ("XResolution"). */
interface Side { um: number; name: string }

/** Pixel sides closer than this (relative) are square: their mean is the scale. */
export const SQUARE_TOLERANCE = 0.01;

/**
 * The scale of pixels `x` um wide and `y` um high (each named as the file states it): their mean
 * when they are within SQUARE_TOLERANCE, else the problem. Crops, the spot grid and the scale bar
 * all take a pixel to be square, so a slide of oblong pixels would be cut stretched.
 */
export function squarePixels(file: string, x: Side, y: Side | undefined, source: string): FileScale {
  if (!y || !(y.um > 0) || Math.abs(x.um - y.um) <= SQUARE_TOLERANCE * Math.min(x.um, y.um)) {
    const mean = y && y.um > 0 ? (x.um + y.um) / 2 : x.um;
    const scale = plausibleScale(mean, y && y.um > 0 && y.um !== x.um ? `the mean of the ${x.name} and ${y.name} of ${file} (${+x.um.toPrecision(6)} and ${+y.um.toPrecision(6)} um/px)` : source);
    return scale ? { scale } : {};
  }
  const apart = (100 * Math.abs(x.um - y.um) / Math.min(x.um, y.um)).toFixed(1);
  const um = (v: number) => +v.toPrecision(6); // a rational tag's 0.5999999880 is 0.6
  return {
    nonSquare: `its pixels are not square: ${x.name} gives ${um(x.um)} um/px and ${y.name} ${um(y.um)} um/px (${apart}% apart; crops need square pixels, ` +
      `within ${SQUARE_TOLERANCE * 100}%). Resample it to square pixels (e.g. \`vips resize ${path.basename(file)} square.tif 1 --vscale ${+(y.um / x.um).toFixed(4)}\`), ` +
      'or, if the file is wrong, give the true scale with --mpp (or the sample sheet\'s mpp column)',
  };
}

/** The scale a slide file states: Aperio MPP, then OME PhysicalSizeX/Y, then the resolution tags. */
export async function scaleFromTiff(file: string, im: GeoTIFFImage): Promise<FileScale> {
  type Tag = 'ImageDescription' | 'XResolution' | 'YResolution' | 'ResolutionUnit';
  const tag = (name: Tag) => im.fileDirectory.hasTag(name) ? im.fileDirectory.loadValue(name) as Promise<unknown> : Promise.resolve(undefined);
  const description = String(await tag('ImageDescription') ?? '');
  const aperio = /^Aperio/.test(description) ? /\|\s*MPP\s*=\s*([0-9.eE+-]+)/.exec(description) : null;
  if (aperio) {
    const scale = plausibleScale(Number(aperio[1]), `the Aperio MPP of ${file}`);
    return scale ? { scale } : {};
  }
  const ome = omePhysicalSize(description, 'X');
  if (ome !== undefined) {
    const y = omePhysicalSize(description, 'Y');
    return squarePixels(file, { um: ome, name: 'OME PhysicalSizeX' }, y === undefined ? undefined : { um: y, name: 'OME PhysicalSizeY' }, `the OME PhysicalSizeX of ${file}`);
  }
  const unit = Number(await tag('ResolutionUnit') ?? 2);
  if (unit !== 2 && unit !== 3) return {};
  const um = async (name: 'XResolution' | 'YResolution') => {
    const res = await tag(name) as ArrayLike<number> | number | undefined;
    const perUnit = typeof res === 'number' ? res : res && res.length >= 2 ? res[0] / res[1] : undefined;
    return perUnit && perUnit > 0 ? (unit === 3 ? 1e4 : 25400) / perUnit : undefined;
  };
  const [x, y] = [await um('XResolution'), await um('YResolution')];
  if (x === undefined) return {};
  return squarePixels(file, { um: x, name: 'XResolution' }, y === undefined ? undefined : { um: y, name: 'YResolution' }, `the TIFF resolution tags of ${file}`);
}

/** The scale, when `mpp` is a plausible scanner scale (not a placeholder). */
export function plausibleScale(mpp: number, source: string): Scale | undefined {
  return Number.isFinite(mpp) && mpp >= PLAUSIBLE.min && mpp <= PLAUSIBLE.max ? { mpp, source } : undefined;
}

const OME_UNITS: Record<string, number> = { 'µm': 1, 'um': 1, 'μm': 1, 'micron': 1, 'nm': 1e-3, 'mm': 1e3, 'cm': 1e4, 'm': 1e6 };

/** PhysicalSizeX (or Y) of an OME-XML description's first Pixels element, in microns (OME's default unit). */
export function omePhysicalSize(description: string, axis: 'X' | 'Y' = 'X'): number | undefined {
  if (!/<OME[\s>]/.test(description)) return undefined;
  const pixels = /<(?:\w+:)?Pixels\b[^>]*>/.exec(description)?.[0];
  if (!pixels) return undefined;
  const size = new RegExp(`\\bPhysicalSize${axis}\\s*=\\s*"([^"]+)"`).exec(pixels)?.[1];
  const unit = new RegExp(`\\bPhysicalSize${axis}Unit\\s*=\\s*"([^"]+)"`).exec(pixels)?.[1] ?? 'µm';
  const factor = OME_UNITS[unit];
  const v = Number(size);
  return size !== undefined && factor !== undefined && v > 0 ? v * factor : undefined;
}

/** Space Ranger's scale: spot_diameter_fullres px span 55 um. */
export function scaleFromSpotDiameter(spotDiameterPx: number, file: string): Scale | undefined {
  return spotDiameterPx > 0 ? plausibleScale(VISIUM_SPOT_UM / spotDiameterPx, `the spot_diameter_fullres of ${file} (a spot is ${VISIUM_SPOT_UM} um)`) : undefined;
}

/** Whether two scales differ by more than SCALE_TOLERANCE. */
export function scalesDiffer(a: number, b: number): boolean {
  return Math.abs(a - b) > SCALE_TOLERANCE * Math.min(a, b);
}

/**
 * One scale from the sources given (file first): sources that agree give the first one; two that
 * differ are refused, naming both. Undefined when no source knows.
 */
export function agreeingScale(sources: readonly (Scale | undefined)[]): Scale | undefined {
  const known = sources.filter((s): s is Scale => s !== undefined);
  for (const s of known.slice(1)) {
    if (scalesDiffer(known[0].mpp, s.mpp)) {
      throw new ScaleConflictError(`${known[0].source} says ${known[0].mpp} um/px but ${s.source} says ${s.mpp} um/px; ` +
        'the two cannot both be right: correct the wrong one (or leave it out) and run again');
    }
  }
  return known[0];
}

export class ScaleConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScaleConflictError';
  }
}
