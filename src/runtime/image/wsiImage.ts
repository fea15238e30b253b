import type { SlideImage } from './slideImage';
import { openWholeSlide, REGION_PIXELS, type WholeSlide, type WholeSlideOptions } from './wsi';

/**
 * Whole slides as the crops see images (SlideImage), and any image seen at another scale: a
 * model trained at 0.69 um/px sees a 0.25 um/px scan through `resampledImage`, whose pixels are
 * the model's. A resampled whole slide reads the pyramid level nearest above the scale asked, so
 * a neighbour view of a 100,000 px slide costs a few tiles of a reduced level, not its full
 * resolution.
 */

/** A SlideImage over a whole slide's level 0, with the slide for reads of other levels. */
export interface WholeSlideImage extends SlideImage {
  readonly slide: WholeSlide;
}

export async function openWsiImage(path: string): Promise<WholeSlideImage> {
  const slide = await openWholeSlide(path);
  const { width, height } = slide.levels[0];
  return {
    path, width, height, mode: 'tiles', slide, ...(slide.scale ? { scale: slide.scale } : {}),
    region: (x0, y0, w, h) => slide.readRegion(0, x0, y0, w, h),
    stats: () => slide.stats(),
    close: () => slide.close(),
  };
}

/**
 * The whole slide shrunk so that its longer side is at most `maxSide` px, read from the smallest
 * level that is still at least that large (downsampledImage's result, for whole slides).
 */
export async function wsiThumbnail(path: string, maxSide: number, opts: WholeSlideOptions = {}): Promise<{ rgb: Uint8Array; width: number; height: number; fullWidth: number; fullHeight: number; scale: number }> {
  const slide = await openWholeSlide(path, opts);
  try {
    const { width: fullWidth, height: fullHeight } = slide.levels[0];
    const scale = Math.min(1, maxSide / Math.max(fullWidth, fullHeight));
    const width = Math.max(1, Math.round(fullWidth * scale));
    const height = Math.max(1, Math.round(fullHeight * scale));
    const level = slide.levelFor(1 / scale);
    const L = slide.levels[level];
    const rgb = await resampledLevel(slide, level, L.width, L.height, L.width / width, width, height, opts.regionPixels);
    return { rgb, width, height, fullWidth, fullHeight, scale };
  } finally {
    slide.close();
  }
}

/**
 * `img` seen at `factor` of its pixels per pixel (factor = wanted um/px / the image's um/px; 2.76
 * for a 0.25 um/px scan seen at 0.69 um/px): size floor(width / factor) x floor(height / factor),
 * pixel (x, y) the average of the source pixels it covers (bilinear where it enlarges).
 * Coordinates given in the source image's pixels divide by `factor`.
 */
export function resampledImage(img: SlideImage, factor: number): SlideImage {
  if (!(factor > 0 && Number.isFinite(factor))) throw new RangeError(`resampling factor must be a positive number, got ${factor}`);
  const slide = (img as Partial<WholeSlideImage>).slide;
  const width = Math.max(1, Math.floor(img.width / factor));
  const height = Math.max(1, Math.floor(img.height / factor));
  return {
    path: img.path, width, height, mode: img.mode, ...(img.scale ? { scale: { mpp: img.scale.mpp * factor, source: `${img.scale.source}, resampled` } } : {}),
    async region(x0, y0, w, h) {
      if (![x0, y0, w, h].every(Number.isSafeInteger) || w < 0 || h < 0) {
        throw new RangeError(`${img.path}: region(${x0}, ${y0}, ${w}, ${h}) needs integer coordinates and a non-negative size`);
      }
      const level = slide ? slide.levelFor(factor) : 0;
      const ds = slide ? slide.levels[level].downsample : 1;
      const g = factor / ds; // level pixels per output pixel
      const left = Math.floor(x0 * g);
      const top = Math.floor(y0 * g);
      const sw = Math.ceil((x0 + w) * g) - left + 1;
      const sh = Math.ceil((y0 + h) * g) - top + 1;
      const src = slide ? await slide.readRegion(level, left, top, sw, sh) : await img.region(left, top, sw, sh);
      return resampleRgb(src, sw, sh, x0 * g - left, y0 * g - top, g, w, h);
    },
    stats: () => img.stats(),
    close: () => img.close(),
  };
}

/**
 * resampleRgb of the region [0, sw) x [0, sh) of a slide's level (zero beyond it) to [h, w, 3]
 * at g >= 1 level px per output px, read in bands of rows of at most a quarter of `regionPixels`
 * source pixels: the same pixels as one read, in bounded memory whatever the level's size.
 */
export async function resampledLevel(slide: WholeSlide, level: number, sw: number, sh: number, g: number, w: number, h: number, regionPixels = REGION_PIXELS): Promise<Uint8Array> {
  const out = new Uint8Array(w * h * 3);
  const rows = Math.max(1, Math.floor(regionPixels / 4 / (sw * Math.max(1, g)))); // output rows per band
  for (let j0 = 0; j0 < h; j0 += rows) {
    const j1 = Math.min(h, j0 + rows);
    const top = Math.min(sh - 1, Math.floor(j0 * g));
    const bandHeight = Math.min(sh, Math.ceil(j1 * g) + 1) - top;
    const src = await slide.readRegion(level, 0, top, sw, bandHeight);
    out.set(resampleRgb(src, sw, bandHeight, 0, j0 * g - top, g, w, j1 - j0), j0 * w * 3);
  }
  return out;
}

/**
 * Resamples RGB `src` [sh, sw, 3] to [h, w, 3]: output pixel (i, j) covers source x in
 * [offX + i g, offX + (i + 1) g) and likewise in y. g >= 1: the mean of the source pixels whose
 * index lies in that span; g < 1: bilinear at the span's centre.
 */
export function resampleRgb(src: Uint8Array, sw: number, sh: number, offX: number, offY: number, g: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  if (g >= 1) {
    const xa = Int32Array.from({ length: w }, (_, i) => Math.min(sw - 1, Math.floor(offX + i * g)));
    const xb = Int32Array.from({ length: w }, (_, i) => Math.min(sw, Math.max(xa[i] + 1, Math.floor(offX + (i + 1) * g))));
    const acc = new Float64Array(w * 3);
    for (let j = 0; j < h; j++) {
      const ya = Math.min(sh - 1, Math.floor(offY + j * g));
      const yb = Math.min(sh, Math.max(ya + 1, Math.floor(offY + (j + 1) * g)));
      acc.fill(0);
      for (let y = ya; y < yb; y++) {
        const row = y * sw * 3;
        for (let i = 0; i < w; i++) {
          let r = 0, gg = 0, b = 0;
          for (let p = row + xa[i] * 3, end = row + xb[i] * 3; p < end; p += 3) {
            r += src[p];
            gg += src[p + 1];
            b += src[p + 2];
          }
          acc[i * 3] += r;
          acc[i * 3 + 1] += gg;
          acc[i * 3 + 2] += b;
        }
      }
      for (let i = 0; i < w; i++) {
        const n = (xb[i] - xa[i]) * (yb - ya);
        const o = (j * w + i) * 3;
        out[o] = Math.round(acc[i * 3] / n);
        out[o + 1] = Math.round(acc[i * 3 + 1] / n);
        out[o + 2] = Math.round(acc[i * 3 + 2] / n);
      }
    }
    return out;
  }
  for (let j = 0; j < h; j++) {
    const fy = Math.min(sh - 1, Math.max(0, offY + (j + 0.5) * g - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(sh - 1, y0 + 1);
    const ty = fy - y0;
    for (let i = 0; i < w; i++) {
      const fx = Math.min(sw - 1, Math.max(0, offX + (i + 0.5) * g - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(sw - 1, x0 + 1);
      const tx = fx - x0;
      for (let c = 0; c < 3; c++) {
        const top = src[(y0 * sw + x0) * 3 + c] * (1 - tx) + src[(y0 * sw + x1) * 3 + c] * tx;
        const bottom = src[(y1 * sw + x0) * 3 + c] * (1 - tx) + src[(y1 * sw + x1) * 3 + c] * tx;
        out[(j * w + i) * 3 + c] = Math.round(top * (1 - ty) + bottom * ty);
      }
    }
  }
  return out;
}
