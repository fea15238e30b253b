import type { StoreSection } from '../store/datasetStore';
import { ImageFileError } from './imageError';
import { agreeingScale, scalesDiffer, type Scale } from './scale';
import { isWholeSlideFile, openWholeSlide } from './wsi';

/**
 * The scale a section's crops are cut at. Crops are defined in microns: a 224 px crop of a model
 * trained at 0.69 um/px covers 155 um, so a 0.25 um/px scan is resampled (by 2.76) before it is
 * cut. The section's scale comes from its image file (a whole slide states it) and the store
 * (Space Ranger's scale factors, a sample sheet's mpp, `--mpp`); two that disagree are refused.
 */
export interface CropScale {
  /** um/px the crops are at, recorded with the features; undefined when nobody knows. */
  mpp: number | undefined;
  /** Image pixels per crop pixel (1: cut from the image's own pixels). */
  factor: number;
  /** A line for the user when the image is resampled. */
  note?: string;
  /** A line for the user when a scale was assumed. */
  warning?: string;
}

/**
 * The scale a file states, for a whole slide; undefined for ordinary images (or none stated). A
 * slide whose pixels are not square is refused (naming the file, both sides and what to do)
 * unless `overridden`: another source (--mpp, a sample sheet's mpp) gives the scale instead.
 */
export async function fileScale(image: string, overridden = false): Promise<Scale | undefined> {
  if (!isWholeSlideFile(image)) return undefined;
  const slide = await openWholeSlide(image);
  slide.close();
  if (slide.nonSquare && !overridden) throw new ImageFileError(image, slide.nonSquare);
  return slide.scale;
}

/** The section's own scale: its image file's and its store record's, which must agree. */
export async function sectionScale(storeDir: string, section: StoreSection): Promise<Scale | undefined> {
  const image = section.image?.path;
  const recorded = section.mpp ? { mpp: section.mpp, source: section.mppSource ?? `the mpp ${storeDir}/store.json records for section ${section.id}` } : undefined;
  return agreeingScale([image ? await fileScale(image, recorded !== undefined) : undefined, recorded]);
}

/** How to cut a section's crops at `wanted` um/px (or at its own pixels, when undefined). */
export async function cropScalePlan(storeDir: string, section: StoreSection, wanted: number | undefined): Promise<CropScale> {
  const known = await sectionScale(storeDir, section);
  if (wanted === undefined) return { mpp: known?.mpp, factor: 1 };
  if (!(wanted > 0 && Number.isFinite(wanted))) throw new RangeError(`the crop scale must be a positive number of microns per pixel, got ${wanted}`);
  const image = section.image?.path ?? `section ${section.id}`;
  if (!known) {
    return {
      mpp: wanted, factor: 1,
      warning: `section ${section.id}: the scale of ${image} is unknown (the file, the store and the sample sheet give none); assumed to be ${wanted} um/px, the crop scale, so crops are cut from its own pixels (give --mpp to preprocess or slide if it is not)`,
    };
  }
  if (!scalesDiffer(known.mpp, wanted)) return { mpp: wanted, factor: 1 };
  const factor = wanted / known.mpp;
  return {
    mpp: wanted, factor,
    note: `section ${section.id}: ${image} is ${known.mpp} um/px (${known.source}); its crops are resampled to ${wanted} um/px, the training scale (${factor.toFixed(3)} image px per crop px)`,
  };
}

/**
 * Lines for the user when a model predicts from features cut at `cropMpp` um/px: a scale other
 * than its training scale is refused (extract again at it); an unknown one is assumed, and said.
 */
export function trainingScaleNotes(modelMpp: number | undefined, cropMpp: number | undefined, store: string, checkpoint: string): string[] {
  if (modelMpp !== undefined && cropMpp !== undefined) {
    if (scalesDiffer(modelMpp, cropMpp)) {
      throw new Error(`${checkpoint} was trained on crops at ${modelMpp} um/px, but the features of ${store} were cut at ${cropMpp} um/px; ` +
        `extract them at the training scale (triplex extract ${store} --checkpoint ${checkpoint}) and predict again`);
    }
    return [`crops at ${cropMpp} um/px, the model's training scale`];
  }
  if (modelMpp !== undefined) {
    return [`warning: the scale of ${store}'s crops is unknown; assumed to be the model's training scale, ${modelMpp} um/px (give the slide's --mpp, then triplex extract --checkpoint, to resample if it is not)`];
  }
  if (cropMpp !== undefined) return [`warning: ${checkpoint} records no training scale; assumed to be the features' ${cropMpp} um/px`];
  return [];
}
