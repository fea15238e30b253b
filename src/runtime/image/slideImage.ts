import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import { availableParallelism } from 'node:os';
import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';
import { ImageFileError } from './imageError';
import type { Scale } from './scale';
import { isWholeSlideFile } from './wsi';
import { openWsiImage, wsiThumbnail } from './wsiImage';

/**
 * A full-resolution H&E image (JPEG, PNG, TIFF) decoded to 8-bit RGB, from which crops are cut.
 *
 * Pixels are what the file stores, as the reference reads them (PIL / pyvips): no ICC colour
 * transform, alpha dropped without compositing, greyscale repeated into R, G and B, 16-bit
 * samples scaled to 8 bits. Orientation follows the EXIF Orientation tag by default; sharp itself
 * does NOT apply it unless asked (neither do PIL's Image.open and pyvips), so pass
 * `orientation: 'stored'` when spot coordinates were measured on the stored pixel grid.
 */
export interface SlideImage {
  readonly path: string;
  readonly width: number;
  readonly height: number;
  /**
   * 'whole': decoded once into memory; 'bands': horizontal bands decoded on demand; 'tiles': a
   * whole slide (pyramidal TIFF, SVS) read tile by tile (see wsi.ts).
   */
  readonly mode: 'whole' | 'bands' | 'tiles';
  /** Microns per pixel the file states (a whole slide's Aperio MPP, OME or resolution tags). */
  readonly scale?: Scale;
  /** RGB uint8 [h, w, 3] of the rectangle [x0, x0+w) x [y0, y0+h); out-of-image area is zero. */
  region(x0: number, y0: number, w: number, h: number): Promise<Uint8Array>;
  /** Decodes so far and decoded pixel bytes held now (for tests and benchmarks). */
  stats(): { decodes: number; residentBytes: number };
  /** Frees the decoded pixels; later region() calls reject. */
  close(): void;
}

export interface SlideImageOptions {
  /**
   * Most decoded pixel bytes to hold. An image whose width * height * 3 fits is decoded once and
   * kept whole; a larger one is decoded in horizontal bands (default 1.5 GiB). In band mode, visit
   * spots sorted by y (cropSpots does) or bands are decoded again and again.
   */
  maxDecodedBytes?: number;
  /** 'exif' (default) applies the EXIF Orientation tag; 'stored' keeps the stored pixel grid. */
  orientation?: 'exif' | 'stored';
}

export const DEFAULT_MAX_DECODED_BYTES = 1.5 * 2 ** 30;

/**
 * Most pixels (width x height) an image may claim: a 100,000 px square. A header claiming more
 * is refused before decoding (a small file can claim billions of pixels).
 */
export const MAX_IMAGE_PIXELS = 1e10;

export { ImageFileError } from './imageError';

/**
 * Opens an image and, when it fits in `maxDecodedBytes`, decodes it once. Fails here (not in a
 * later crop) when the file is missing, not an image, or truncated: band mode decodes the bottom
 * band up front for that reason.
 */
export async function openSlideImage(path: string, opts: SlideImageOptions = {}): Promise<SlideImage> {
  configureSharp();
  if (isWholeSlideFile(path)) return openWsiImage(path);
  const budget = opts.maxDecodedBytes ?? DEFAULT_MAX_DECODED_BYTES;
  if (!(budget > 0)) throw new RangeError(`maxDecodedBytes must be a positive number of bytes, got ${budget}`);
  const autoOrient = (opts.orientation ?? 'exif') === 'exif';

  const { width, height } = await imageSize(path, autoOrient);

  const source: Source = { path, width, height, autoOrient };
  const bytes = width * height * 3;
  if (bytes <= Math.min(budget, bufferConstants.MAX_LENGTH)) {
    return new WholeImage(source, await decode(source, { left: 0, top: 0, width, height }));
  }
  const banded = new BandedImage(source, budget);
  await banded.region(0, height - 1, width, 1); // truncation and decoder errors surface now
  return banded;
}

/**
 * The whole image shrunk so that its longer side is at most `maxSide` px (never enlarged), as
 * packed RGB uint8 [height, width, 3], decoded as openSlideImage decodes (EXIF orientation by
 * default, stored values, alpha dropped). `scale` maps full-resolution pixels to this image's
 * (Space Ranger's tissue_hires_scalef); the size is round(full size x scale).
 */
export async function downsampledImage(path: string, maxSide: number, opts: Pick<SlideImageOptions, 'orientation'> = {}): Promise<{ rgb: Uint8Array; width: number; height: number; fullWidth: number; fullHeight: number; scale: number }> {
  configureSharp();
  if (!(Number.isSafeInteger(maxSide) && maxSide > 0)) throw new RangeError(`maxSide must be a positive whole number of pixels, got ${maxSide}`);
  if (isWholeSlideFile(path)) return wsiThumbnail(path, maxSide);
  const autoOrient = (opts.orientation ?? 'exif') === 'exif';
  const { width: fullWidth, height: fullHeight } = await imageSize(path, autoOrient);
  const scale = Math.min(1, maxSide / Math.max(fullWidth, fullHeight));
  const width = Math.max(1, Math.round(fullWidth * scale));
  const height = Math.max(1, Math.round(fullHeight * scale));
  let data: Buffer;
  let info: OutputInfo;
  try {
    ({ data, info } = await strictly(path, (failOn) => sharp(path, inputOptions(autoOrient, failOn))
      .resize({ width, height, fit: 'fill', kernel: 'lanczos3' })
      .removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true })));
  } catch (e) {
    if (e instanceof ImageFileError) throw e;
    throw new ImageFileError(path, `cannot be decoded (${messageOf(e)}); is the file complete and a JPEG, PNG or TIFF?`, { cause: e });
  }
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new ImageFileError(path, `shrank to ${info.width} x ${info.height} x ${info.channels} but ${width} x ${height} x 3 was asked for`);
  }
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height, fullWidth, fullHeight, scale };
}

/** The size sharp reads from the header, for a regular file within MAX_IMAGE_PIXELS. */
async function imageSize(path: string, autoOrient: boolean): Promise<{ width: number; height: number }> {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch (e) {
    throw new ImageFileError(path, `cannot be read: ${messageOf(e)}`, { cause: e });
  }
  // sharp would wait forever on a named pipe.
  if (!stat.isFile()) throw new ImageFileError(path, 'is not a regular file (a named pipe, device or folder); give the image file itself');
  let meta: Metadata;
  try {
    meta = await sharp(path, { ...inputOptions(autoOrient, 'error'), limitInputPixels: false }).metadata(); // the limit is checked below, with its value
  } catch (e) {
    throw new ImageFileError(path, `cannot be read as an image (JPEG, PNG or TIFF expected): ${messageOf(e)}`, { cause: e });
  }
  const { width, height } = autoOrient ? meta.autoOrient : meta;
  if (!(width > 0 && height > 0)) throw new ImageFileError(path, `has no pixels (${width} x ${height})`);
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new ImageFileError(path, `its header claims ${width} x ${height} = ${(width * height).toExponential(2)} pixels, more than the limit of ${MAX_IMAGE_PIXELS.toExponential(0)} (a 100,000 px square); is the file damaged?`);
  }
  return { width, height };
}

/**
 * Checks that all of an image's data decodes, before any feature is computed from it: a JPEG
 * whose data ends before the size its header gives would otherwise decode to grey filler rows.
 * JPEG is read at 1/8 scale (shrink-on-load reads every coded block; 0.2 s for a HER2+ slide).
 */
export async function checkImageData(path: string): Promise<void> {
  configureSharp();
  if (isWholeSlideFile(path)) return void (await openWsiImage(path)).close(); // tiles are checked to lie in the file; each tile is checked as it is read
  const { width } = await imageSize(path, false);
  try {
    await strictly(path, (failOn) =>
      sharp(path, inputOptions(false, failOn)).resize({ width: Math.max(1, Math.ceil(width / 8)) }).raw().toBuffer());
  } catch (e) {
    if (e instanceof ImageFileError) throw e;
    throw new ImageFileError(path, `cannot be decoded (${messageOf(e)}); is the file complete and a JPEG, PNG or TIFF?`, { cause: e });
  }
}

/** libvips/libjpeg warnings that mean rows were filled in rather than read. */
const FILLER = /premature end|truncated|short read|ran out/i;

/**
 * Runs a decode that fails on any decoder warning; warnings that mean filler pixels are errors
 * (naming the file and the size the header claims), others (extraneous bytes before a marker,
 * which scanners write) are tolerated by a second run that fails on errors only.
 */
async function strictly<T>(path: string, run: (failOn: 'warning' | 'error') => Promise<T>): Promise<T> {
  try {
    return await run('warning');
  } catch (e) {
    if (FILLER.test(messageOf(e))) {
      throw new ImageFileError(path, `its data ends before the size its header gives (${messageOf(e)}): the rest would be filler pixels, not tissue; ` +
        'the file is truncated or damaged, copy it again', { cause: e });
    }
    return run('error');
  }
}

interface Source { path: string; width: number; height: number; autoOrient: boolean }
interface Rect { left: number; top: number; width: number; height: number }

let sharpConfigured = false;

/**
 * Process-wide sharp settings, applied once. The libvips operation cache would keep a second copy
 * of decoded pixels (up to 50 MB by default) that we already hold, so it is off. sharp defaults to
 * ONE libvips thread on glibc without jemalloc (to limit heap fragmentation in servers); a few
 * large decodes gain from more (C2's JPEG: 0.34 s with 1 thread, 0.22 s with 2).
 */
function configureSharp(): void {
  if (sharpConfigured) return;
  sharp.cache(false);
  sharp.concurrency(Math.min(availableParallelism(), 4));
  sharpConfigured = true;
}

function inputOptions(autoOrient: boolean, failOn: 'warning' | 'error'): SharpOptions {
  return {
    autoOrient,
    // See strictly(): filler from a truncated file is an error, benign warnings are not.
    failOn,
    // Memory is bounded by maxDecodedBytes and band decoding; the pixel count by MAX_IMAGE_PIXELS.
    limitInputPixels: MAX_IMAGE_PIXELS,
    // Stored values, as the reference reads them; sharp would otherwise convert to sRGB.
    ignoreIcc: true,
  };
}

/** Decodes one rectangle of the image to packed 8-bit RGB [rect.height, rect.width, 3]. */
async function decode(src: Source, rect: Rect): Promise<Buffer> {
  let data: Buffer;
  let info: OutputInfo;
  try {
    const whole = rect.left === 0 && rect.top === 0 && rect.width === src.width && rect.height === src.height;
    ({ data, info } = await strictly(src.path, (failOn) => {
      const pipeline = sharp(src.path, inputOptions(src.autoOrient, failOn));
      if (!whole) pipeline.extract(rect); // after orientation: sharp orients first, then extracts
      return pipeline.removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    }));
  } catch (e) {
    if (e instanceof ImageFileError) throw e;
    throw new ImageFileError(src.path, `cannot decode rows ${rect.top}..${rect.top + rect.height} (${messageOf(e)}); ` +
      'is the file complete and a JPEG, PNG or TIFF?', { cause: e });
  }
  if (info.width !== rect.width || info.height !== rect.height || info.channels !== 3) {
    throw new ImageFileError(src.path, `decoded to ${info.width} x ${info.height} x ${info.channels} but ` +
      `${rect.width} x ${rect.height} x 3 was asked for`);
  }
  return data;
}

/** Validates a region request and returns its zero-filled output and the part inside the image. */
function prepareRegion(src: Source, x0: number, y0: number, w: number, h: number): { out: Uint8Array; inside: Rect | undefined } {
  if (![x0, y0, w, h].every(Number.isSafeInteger) || w < 0 || h < 0) {
    throw new RangeError(`${src.path}: region(${x0}, ${y0}, ${w}, ${h}) needs integer coordinates and a non-negative size`);
  }
  const out = new Uint8Array(h * w * 3); // [h, w, 3], zero outside the image
  const left = Math.max(0, x0);
  const top = Math.max(0, y0);
  const right = Math.min(src.width, x0 + w);
  const bottom = Math.min(src.height, y0 + h);
  const inside = left < right && top < bottom ? { left, top, width: right - left, height: bottom - top } : undefined;
  return { out, inside };
}

/**
 * Copies the rows of `inside` that `rows` holds into `out`. `rows` is a block of the image
 * [rowsTop, rowsTop + n) x [rowsLeft, rowsLeft + rowsWidth).
 */
function copyInto(out: Uint8Array, x0: number, y0: number, w: number, inside: Rect,
  rows: Uint8Array, rowsTop: number, rowsLeft: number, rowsWidth: number): void {
  const n = rows.length / (rowsWidth * 3);
  const from = Math.max(inside.top, rowsTop);
  const to = Math.min(inside.top + inside.height, rowsTop + n);
  const span = inside.width * 3;
  for (let y = from; y < to; y++) {
    const src = ((y - rowsTop) * rowsWidth + (inside.left - rowsLeft)) * 3;
    out.set(rows.subarray(src, src + span), ((y - y0) * w + (inside.left - x0)) * 3);
  }
}

class WholeImage implements SlideImage {
  readonly mode = 'whole';
  readonly path: string;
  readonly width: number;
  readonly height: number;
  private pixels: Buffer | undefined; // [height, width, 3]

  constructor(private readonly src: Source, pixels: Buffer) {
    ({ path: this.path, width: this.width, height: this.height } = src);
    this.pixels = pixels;
  }

  region(x0: number, y0: number, w: number, h: number): Promise<Uint8Array> {
    try {
      const pixels = this.pixels;
      if (!pixels) throw new Error(`${this.path}: the image was closed`);
      const { out, inside } = prepareRegion(this.src, x0, y0, w, h);
      if (inside) copyInto(out, x0, y0, w, inside, pixels, 0, 0, this.width);
      return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  stats(): { decodes: number; residentBytes: number } {
    return { decodes: 1, residentBytes: this.pixels?.length ?? 0 };
  }

  close(): void {
    this.pixels = undefined;
  }
}

/**
 * Horizontal bands of full width on a fixed grid, with a least-recently-used cache. Bands are at
 * least half the budget tall, so two fit and any region up to a band's height spans at most two:
 * callers that visit spots sorted by y (cropSpots does) decode each band once. JPEG cannot be
 * entered mid-stream, so band k costs a decode of rows 0..(k+1) * bandRows; tiled or striped TIFF
 * decodes only the band. A region taller than the cache can hold is decoded on its own, uncached.
 * Calls run one at a time, so the bands held stay within the budget; an evicted band's memory
 * returns when V8 next collects (C2 with 64 MiB held peaks near 200 MiB above the idle RSS).
 */
class BandedImage implements SlideImage {
  readonly mode = 'bands';
  readonly path: string;
  readonly width: number;
  readonly height: number;
  private readonly bandRows: number;
  private readonly maxBands: number;
  /** Band index -> pixels [bandRows, width, 3]; Map order is recency, oldest first. */
  private readonly bands = new Map<number, Buffer>();
  private queue: Promise<unknown> = Promise.resolve();
  private decodes = 0;
  private closed = false;

  constructor(private readonly src: Source, budget: number) {
    ({ path: this.path, width: this.width, height: this.height } = src);
    const rowBytes = src.width * 3;
    this.bandRows = Math.max(1, Math.min(src.height, Math.floor(budget / (2 * rowBytes))));
    this.maxBands = Math.max(2, Math.floor(budget / (this.bandRows * rowBytes)));
  }

  region(x0: number, y0: number, w: number, h: number): Promise<Uint8Array> {
    const run = this.queue.then(() => this.regionNow(x0, y0, w, h));
    // The queue only orders calls; each caller still receives its own rejection through `run`.
    this.queue = run.then(() => undefined, () => undefined);
    return run;
  }

  stats(): { decodes: number; residentBytes: number } {
    let residentBytes = 0;
    for (const band of this.bands.values()) residentBytes += band.length;
    return { decodes: this.decodes, residentBytes };
  }

  close(): void {
    this.closed = true;
    this.bands.clear();
  }

  private async regionNow(x0: number, y0: number, w: number, h: number): Promise<Uint8Array> {
    if (this.closed) throw new Error(`${this.path}: the image was closed`);
    const { out, inside } = prepareRegion(this.src, x0, y0, w, h);
    if (!inside) return out;
    const first = Math.floor(inside.top / this.bandRows);
    const last = Math.floor((inside.top + inside.height - 1) / this.bandRows);
    if (last - first + 1 > this.maxBands) {
      this.decodes++;
      copyInto(out, x0, y0, w, inside, await decode(this.src, inside), inside.top, inside.left, inside.width);
      return out;
    }
    for (let b = first; b <= last; b++) {
      copyInto(out, x0, y0, w, inside, await this.band(b), b * this.bandRows, 0, this.width);
    }
    return out;
  }

  private async band(index: number): Promise<Buffer> {
    const cached = this.bands.get(index);
    if (cached) {
      this.bands.delete(index); // re-insert as most recent
      this.bands.set(index, cached);
      return cached;
    }
    const top = index * this.bandRows;
    for (const oldest of this.bands.keys()) {
      if (this.bands.size < this.maxBands) break;
      this.bands.delete(oldest); // evict before decoding so the budget holds at the peak
    }
    this.decodes++;
    const pixels = await decode(this.src, { left: 0, top, width: this.width, height: Math.min(this.bandRows, this.height - top) });
    if (!this.closed) this.bands.set(index, pixels);
    return pixels;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
