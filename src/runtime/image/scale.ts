import type { GeoTIFFImage } from 'geotiff';
import { ImageFileError } from './imageError';

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

/** The scale a slide file states: Aperio MPP, then OME PhysicalSizeX, then resolution tags. */
export async function scaleFromTiff(file: string, im: GeoTIFFImage): Promise<Scale | undefined> {
  const tag = (name: 'ImageDescription' | 'XResolution' | 'ResolutionUnit') => im.fileDirectory.hasTag(name) ? im.fileDirectory.loadValue(name) as Promise<unknown> : Promise.resolve(undefined);
  const description = String(await tag('ImageDescription') ?? '');
  const aperio = /^Aperio/.test(description) ? /\|\s*MPP\s*=\s*([0-9.eE+-]+)/.exec(description) : null;
  if (aperio) return plausibleScale(Number(aperio[1]), `the Aperio MPP of ${file}`);
  const ome = omePhysicalSize(description, 'X');
  if (ome !== undefined) {
    const y = omePhysicalSize(description, 'Y');
    if (y !== undefined && scalesDiffer(ome, y)) {
      throw new ImageFileError(file, `its OME-XML gives pixels of PhysicalSizeX ${ome} um by PhysicalSizeY ${y} um; crops need square pixels: resample the slide to square pixels (or correct the OME-XML if it is wrong)`);
    }
    return plausibleScale(ome, `the OME PhysicalSizeX of ${file}`);
  }
  const res = await tag('XResolution') as ArrayLike<number> | number | undefined;
  const unit = Number(await tag('ResolutionUnit') ?? 2);
  const perUnit = typeof res === 'number' ? res : res && res.length >= 2 ? res[0] / res[1] : undefined;
  if (!(perUnit && perUnit > 0) || (unit !== 2 && unit !== 3)) return undefined;
  return plausibleScale((unit === 3 ? 1e4 : 25400) / perUnit, `the TIFF resolution tags of ${file}`);
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
