import { SPOT_SIZE } from '../image/crops';
import { drawAugmentation, moveMap } from '../train/batches';
import type { SectionInputs } from '../train/data';

/**
 * Host-side pieces of a baseline's batch: crops at the model's size, array positions, size
 * factors. The learner (train/baselineLearner.ts) puts them together under the input names of
 * baselines/model.ts.
 */

/** Array row and column of each spot of a section, shifted so that the smallest is 0 (the grid's own shift). */
export function spotPositions(section: SectionInputs): { rows: Int32Array; cols: Int32Array } {
  const { cellOfSpot, width } = section.grid;
  return {
    rows: Int32Array.from(cellOfSpot, (c) => Math.floor(c / width)),
    cols: Int32Array.from(cellOfSpot, (c) => c % width),
  };
}

/** The integer factor from the store's 224 px crops to a model's crop size, or an error naming it. */
export function cropFactor(size: number): number {
  const f = SPOT_SIZE / size;
  if (!Number.isInteger(f) || f < 1) throw new Error(`a crop size of ${size} px does not divide the store's ${SPOT_SIZE} px crops`);
  return f;
}

/**
 * The crops of some spots of a section as float RGB 0..255, NHWC [n, size, size, 3]: the 224 px
 * crops averaged over factor x factor blocks (the field of view kept, as the spec's HisToGene
 * resampling of 0.5 um/px patches to 112 px), moved by a drawn flip/rotation when `augment` is
 * given (spec 1.2: horizontal flip, vertical flip, each p = 0.5, and with p = 0.5 a quarter turn).
 */
export function cropFeed(section: SectionInputs, spots: readonly number[], size: number, augment?: () => number): Float32Array {
  if (!section.crops) throw new Error(`section ${section.id}: its crops are not loaded`);
  const f = cropFactor(size);
  const per = size * size * 3;
  const out = new Float32Array(spots.length * per);
  const small = new Float32Array(per);
  const full = SPOT_SIZE * SPOT_SIZE * 3;
  spots.forEach((spot, i) => {
    const src = section.crops!.subarray(spot * full, (spot + 1) * full);
    small.fill(0);
    for (let y = 0; y < SPOT_SIZE; y++) {
      const row = Math.floor(y / f) * size;
      for (let x = 0; x < SPOT_SIZE; x++) {
        const o = (row + Math.floor(x / f)) * 3;
        const s = (y * SPOT_SIZE + x) * 3;
        small[o] += src[s];
        small[o + 1] += src[s + 1];
        small[o + 2] += src[s + 2];
      }
    }
    if (f > 1) for (let k = 0; k < per; k++) small[k] /= f * f;
    moveMap(small, augment ? drawAugmentation(augment) : undefined, size, 3, out, i * per);
  });
  return out;
}

/**
 * Hist2ST's size factors (spec 4, "Inputs"): each spot's count total over the genes divided by the
 * median of those totals over its section, [n]. A section whose median total is 0 takes 1 for
 * every spot (no scale to divide by), so the ZINB mean never becomes 0/0.
 */
export function sizeFactors(counts: Float32Array, n: number, genes: number): Float32Array {
  const totals = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < genes; j++) totals[i] += counts[i * genes + j];
  const sorted = Float64Array.from(totals).sort();
  const median = n === 0 ? 0 : n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return Float32Array.from(totals, (t) => (median > 0 ? t / median : 1));
}
