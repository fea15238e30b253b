import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileScale } from '../image/cropScale';
import { agreeingScale, scaleFromSpotDiameter, ScaleConflictError, type Scale } from '../image/scale';
import { DataFileError, type Section, type SpatialDataset } from './types';

/**
 * Microns per pixel of each section's image, from every source that knows it: the image file
 * (a whole slide's Aperio MPP, OME PhysicalSizeX or resolution tags), Space Ranger's scale
 * factors, a sample sheet's mpp, and `--mpp`. Sources that disagree are refused, naming both.
 */

/** Space Ranger's scale: spot_diameter_fullres (px) of spatial/scalefactors_json.json spans 55 um. */
export function visiumScale(folder: string): Scale | undefined {
  const json = path.join(folder, 'spatial', 'scalefactors_json.json');
  if (!fs.existsSync(json)) return undefined;
  try {
    const d = (JSON.parse(fs.readFileSync(json, 'utf8')) as { spot_diameter_fullres?: unknown }).spot_diameter_fullres;
    return typeof d === 'number' ? scaleFromSpotDiameter(d, json) : undefined;
  } catch {
    return undefined; // an unreadable file is reported where the image size is checked
  }
}

/**
 * Records on `s` the scale its own and `given` agree on (within 2%): the given one's value with
 * `prefer: 'given'` (a sample sheet's over Space Ranger's estimate), else its own. Throws on a conflict.
 */
export function applyScale(s: Section, given: Scale | undefined, file: string, prefer: 'own' | 'given' = 'own'): void {
  const own = s.mpp ? { mpp: s.mpp, source: s.mppSource ?? 'the dataset' } : undefined;
  let scale: Scale | undefined;
  try {
    scale = agreeingScale([own, given]);
    if (prefer === 'given' && given) scale = given;
  } catch (e) {
    if (e instanceof ScaleConflictError) throw new DataFileError(file, `section ${s.id}`, e.message, { cause: e });
    throw e;
  }
  if (scale) {
    s.mpp = scale.mpp;
    s.mppSource = scale.source;
  }
}

/** Each section's scale from its image file, the dataset's record and `--mpp`, checked to agree. */
export async function resolveScales(ds: SpatialDataset, flagMpp?: number): Promise<void> {
  for (const s of ds.sections) {
    // A slide of oblong pixels is taken at the scale the dataset (a sample sheet, Space Ranger) or --mpp gives.
    const file = s.image ? await fileScale(s.image.path, s.mpp !== undefined || flagMpp !== undefined) : undefined;
    if (file) {
      // The file first, so that a conflict names it before the sheet or flag.
      const other = s.mpp ? { mpp: s.mpp, source: s.mppSource ?? 'the dataset' } : undefined;
      s.mpp = undefined;
      applyScale(s, file, s.image!.path);
      applyScale(s, other, s.image!.path);
    }
    if (flagMpp !== undefined) applyScale(s, { mpp: flagMpp, source: '--mpp' }, s.image?.path ?? ds.source);
  }
}
