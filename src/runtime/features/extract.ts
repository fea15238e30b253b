import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkImageData, openSlideImage, type SlideImage } from '../image/slideImage';
import { cropScalePlan, type CropScale } from '../image/cropScale';
import { resampledImage } from '../image/wsiImage';
import { CENTER_TILE, NEIGHBOR_GRID, NEIGHBOR_TILES, SPOT_SIZE, neighborMask, toNormalizedFloat } from '../image/crops';
import type { ImageEncoder } from '../onnx/engine';
import { buildTable, readArrowFile, readArrowMetadata, stringColumn, writeArrowFile } from '../store/arrow';
import { writeArrowBatches } from '../store/arrowBatches';
import { removePartials } from '../store/atomic';
import { makeDir } from '../store/fsErrors';
import { acquireLock } from '../store/lock';
import { pathInside } from '../store/identifiers';
import { openDatasetStore, type DatasetStore, type StoreSection } from '../store/datasetStore';
import { DENSE_SETTINGS, DenseFeatures, DenseTrunk } from './dense';
import { openEncoder, type EncoderChoice, type OpenedEncoder } from './encoders';

/**
 * Frozen features of every spot of a store (spec, "Three views"):
 *   global        [W]        the encoder's pooled feature of the spot's own 224 px crop
 *   target_tokens [7*7*512]  the ResNet18 token map of that crop (for frozen-target training)
 *   neighbors     [25*W]     pooled features of the 5x5 tiles of the 1120 px view, row-major
 *   neighbor_mask [25]       1 = tile fully inside the image (the centre tile always 1); a masked
 *                            tile's feature is that of an all-zero normalised input, as in the
 *                            reference code
 * written to <store>/features/<encoder key>/<section>.arrow, one row per spot in store order.
 *
 * A section's file records a key made of the image (path, size, modification time), the spot
 * centres, the encoder and its weights, and the crop settings: a second run with the same key
 * does nothing. Work is written in chunks as it goes, so an interrupted run resumes at the
 * first chunk not written. Tiles shared by several spots (neighbours overlap) are encoded once.
 */

export interface ExtractOptions extends EncoderChoice {
  /** Images per encoder call (default 32). */
  batchSize?: number;
  /** Spots per resumable chunk (default 256). */
  chunkSpots?: number;
  /**
   * Microns per pixel to cut crops at (the scale the model is or was trained at): a section whose
   * image is at another scale is resampled to it, one of unknown scale is taken to be at it.
   * Default: each image's own pixels.
   */
  mpp?: number;
  /** Only these sections (default all). */
  sections?: string[];
  onProgress?: (p: ExtractProgress) => void;
  signal?: AbortSignal;
}

export interface ExtractProgress {
  section: string;
  /** Spots finished over all sections, and their total. */
  done: number;
  total: number;
  spotsPerSecond: number;
  etaSeconds: number;
  /** Sections found complete and skipped. */
  cached: number;
}

export interface ExtractSummary {
  dir: string;
  encoder: OpenedEncoder['identity'];
  width: number;
  sections: { id: string; spots: number; status: 'extracted' | 'cached' | 'resumed'; tilesEncoded: number; seconds: number }[];
  /** Cached files that could not be read and were moved aside (or removed) and computed again; scales assumed. */
  warnings: string[];
  /** Sections resampled to the crop scale, one line each. */
  notes: string[];
}

const CROP_SETTINGS = { spot: SPOT_SIZE, neighborGrid: NEIGHBOR_GRID, centre: 'floor(pixel centre)', padding: 'zeros', normalisation: 'imagenet' };

/** Where the features of `encoderKey` live in a store. */
export const featuresDir = (storeDir: string, encoderKey: string): string => path.join(storeDir, 'features', encoderKey);

function sectionKey(store: DatasetStore, section: StoreSection, rows: number[], encoder: OpenedEncoder, scale: CropScale): string {
  const image = section.image?.path;
  if (!image) throw new Error(`${store.dir}: section ${section.id} has no image; features need the H&E image (re-run preprocess with the image, or drop the section)`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(image);
  } catch (cause) {
    throw new Error(`${image} (image of section ${section.id}) cannot be read: ${(cause as Error).message}`, { cause });
  }
  const xs = store.spots.getChild('pixel_x')?.toArray() as Float64Array;
  const ys = store.spots.getChild('pixel_y')?.toArray() as Float64Array;
  const h = createHash('sha256');
  const dense = encoder.encoder instanceof DenseTrunk ? { dense: DENSE_SETTINGS } : {};
  h.update(JSON.stringify({ image, size: stat.size, mtime: stat.mtimeMs, encoder: encoder.identity.encoder, weights: encoder.identity.weights, crops: CROP_SETTINGS, ...dense,
    ...(scale.mpp !== undefined ? { mpp: scale.mpp, factor: scale.factor } : {}) }));
  for (const r of rows) h.update(`${Math.floor(xs[r])},${Math.floor(ys[r])};`);
  return h.digest('hex').slice(0, 24);
}

/**
 * Whether `file` exists and was written for `key` (only its footer is read). A file that cannot
 * be read (cut short by a full disk or a partial copy) is not a dead end: it is moved aside to
 * `<file>.unreadable-<ms>` (a chunk, which nobody else reads, is removed), the move is reported
 * in `warnings`, and the caller computes it again.
 */
async function writtenFor(file: string, key: string, warnings: string[], keepAside = true): Promise<boolean> {
  if (!fs.existsSync(file)) return false;
  try {
    return (await readArrowMetadata(file)).get('triplex:section-key') === key;
  } catch (e) {
    const why = ((e as Error).cause as Error | undefined)?.message ?? (e as Error).message;
    if (keepAside) {
      const aside = `${file}.unreadable-${Date.now()}`;
      await fs.promises.rename(file, aside);
      warnings.push(`${file} could not be read (${why}); moved aside to ${aside} and computed again`);
    } else {
      await fs.promises.rm(file, { force: true });
      warnings.push(`${file} could not be read (${why}); removed and computed again`);
    }
    return false;
  }
}

/** Extracts (or finds cached) features for every section of the store at `storeDir`. */
export async function extractFeatures(storeDir: string, options: ExtractOptions): Promise<ExtractSummary> {
  const store = openDatasetStore(storeDir);
  const sections = store.manifest.sections.filter((s) => !options.sections || options.sections.includes(s.id));
  // One extract per store at a time: a second one refuses, naming the first, instead of interleaving chunks.
  const lock = acquireLock(storeDir, 'triplex extract');
  let opened: Awaited<ReturnType<typeof openEncoder>> | undefined;
  try {
    opened = await openEncoder(options);
    const dir = featuresDir(storeDir, opened.key);
    makeDir(dir);
    await removePartials(dir);
    const summary: ExtractSummary = { dir, encoder: opened.identity, width: opened.encoder.embeddingWidth, sections: [], warnings: lock.tookOver ? [lock.tookOver] : [], notes: [] };
    const total = sections.reduce((n, s) => n + s.spots, 0);
    const clock = { start: performance.now(), done: 0, computed: 0, cached: 0 };
    const plan = [];
    for (const section of sections) {
      const rows = store.rowsOf(section.id);
      const scale = await cropScalePlan(store.dir, section, options.mpp);
      if (scale.warning) summary.warnings.push(scale.warning);
      if (scale.note) summary.notes.push(scale.note);
      const key = sectionKey(store, section, rows, opened, scale);
      const file = pathInside(dir, `${section.id}.arrow`);
      plan.push({ section, rows, key, file, scale, cached: await writtenFor(file, key, summary.warnings) });
    }
    // Every image still to be read decodes completely, before any feature is computed.
    for (const p of plan) if (!p.cached) await checkImageData(p.section.image!.path);
    for (const { section, rows, key, file, scale, cached } of plan) {
      if (cached) {
        // Chunks of a run killed between writing the section's file and removing them.
        fs.rmSync(`${file}.chunks`, { recursive: true, force: true });
        summary.sections.push({ id: section.id, spots: rows.length, status: 'cached', tilesEncoded: 0, seconds: 0 });
        clock.done += rows.length;
        clock.cached++;
        continue;
      }
      const t0 = performance.now();
      const result = await extractSection(store, section, rows, key, file, scale, opened.encoder, options, summary.warnings, (n) => {
        clock.done += n;
        clock.computed += n;
        const seconds = (performance.now() - clock.start) / 1000;
        const rate = clock.computed / Math.max(seconds, 1e-3);
        options.onProgress?.({ section: section.id, done: clock.done, total, spotsPerSecond: rate, etaSeconds: (total - clock.done) / Math.max(rate, 1e-9), cached: clock.cached });
      });
      summary.sections.push({ id: section.id, spots: rows.length, status: result.resumed ? 'resumed' : 'extracted', tilesEncoded: result.tilesEncoded, seconds: (performance.now() - t0) / 1000 });
    }
    return summary;
  } finally {
    try {
      await opened?.dispose();
    } finally {
      lock.release();
    }
  }
}

interface SectionResult { resumed: boolean; tilesEncoded: number }

async function extractSection(
  store: DatasetStore, section: StoreSection, rows: number[], key: string, file: string, scale: CropScale, encoder: ImageEncoder,
  options: ExtractOptions, warnings: string[], progress: (spots: number) => void,
): Promise<SectionResult> {
  const chunkSpots = options.chunkSpots ?? 256;
  const chunkDir = `${file}.chunks`;
  makeDir(chunkDir);
  await removePartials(chunkDir);
  const chunkFile = (i: number) => path.join(chunkDir, `${String(i).padStart(5, '0')}.arrow`);
  const nChunks = Math.ceil(rows.length / chunkSpots);
  const ids = stringColumn(store.spots, 'spot_id');
  // Spot centres in the pixels crops are cut from (the image resampled to the crop scale).
  const xs = (store.spots.getChild('pixel_x')?.toArray() as Float64Array).map((v) => v / scale.factor);
  const ys = (store.spots.getChild('pixel_y')?.toArray() as Float64Array).map((v) => v / scale.factor);
  let resumed = false;
  let tilesEncoded = 0;
  let image: SlideImage | undefined;
  // Crops encoded one by one (shared tiles once), or read from the dense map of the image.
  const tiles = encoder instanceof DenseTrunk ? new DenseFeatures(encoder) : new TileFeatures(encoder, options.batchSize ?? 32);
  try {
    for (let c = 0; c < nChunks; c++) {
      const chunkRows = rows.slice(c * chunkSpots, (c + 1) * chunkSpots);
      if (await writtenFor(chunkFile(c), key, warnings, false)) {
        resumed = true;
        progress(chunkRows.length);
        continue;
      }
      if (options.signal?.aborted) throw new Error('feature extraction was cancelled; run it again to resume');
      if (!image) {
        const opened = await openSlideImage((section.image as { path: string }).path);
        image = scale.factor === 1 ? opened : resampledImage(opened, scale.factor);
      }
      const img = image;
      const W = encoder.embeddingWidth;
      const n = chunkRows.length;
      const global = new Float32Array(n * W);
      const neighbors = new Float32Array(n * NEIGHBOR_TILES * W);
      const mask = new Uint8Array(n * NEIGHBOR_TILES);
      const tokens = encoder.providesTokens ? new Float32Array(n * 49 * 512) : undefined;
      const spots = chunkRows.map((r) => {
        const cx = Math.floor(xs[r]);
        const cy = Math.floor(ys[r]);
        if (!(cx >= 0 && cx < img.width && cy >= 0 && cy < img.height)) {
          throw new Error(`${img.path} is ${img.width} x ${img.height} px but spot ${ids[r]} of section ${section.id} is at (${xs[r]}, ${ys[r]}); are the coordinates for this image, at full resolution?`);
        }
        return { cx, cy };
      });
      // Every tile this chunk needs, by its top-left corner; the spot's own crop is tile 12. A
      // masked tile is encoded as the reference does it: an all-zero (normalised) input.
      const origin = (cx: number, cy: number, t: number) => [cx - 560 + (t % NEIGHBOR_GRID) * SPOT_SIZE, cy - 560 + Math.floor(t / NEIGHBOR_GRID) * SPOT_SIZE] as const;
      const masks = spots.map(({ cx, cy }) => neighborMask(img.width, img.height, cx, cy));
      const wanted = spots.flatMap(({ cx, cy }, i) => Array.from({ length: NEIGHBOR_TILES }, (_, t) => t).filter((t) => masks[i][t]).map((t) => origin(cx, cy, t)));
      tilesEncoded += await tiles.ensure(img, wanted, spots.map(({ cx, cy }) => origin(cx, cy, CENTER_TILE)), options.signal);
      const zero = await tiles.zeroInput();
      spots.forEach(({ cx, cy }, i) => {
        mask.set(masks[i], i * NEIGHBOR_TILES);
        for (let t = 0; t < NEIGHBOR_TILES; t++) neighbors.set(masks[i][t] ? tiles.pooled(...origin(cx, cy, t)) : zero, (i * NEIGHBOR_TILES + t) * W);
        global.set(tiles.pooled(...origin(cx, cy, CENTER_TILE)), i * W);
        tokens?.set(tiles.tokens(...origin(cx, cy, CENTER_TILE)), i * 49 * 512);
      });
      const table = buildTable([
        { name: 'spot_id', column: { kind: 'utf8', values: chunkRows.map((r) => ids[r]) } },
        { name: 'global', column: { kind: 'vector', values: global, width: W } },
        { name: 'neighbors', column: { kind: 'vector', values: neighbors, width: NEIGHBOR_TILES * W } },
        { name: 'neighbor_mask', column: { kind: 'mask', values: mask, width: NEIGHBOR_TILES } },
        ...(tokens ? [{ name: 'target_tokens', column: { kind: 'vector' as const, values: tokens, width: 49 * 512 } }] : []),
      ], { 'triplex:section-key': key });
      await writeArrowFile(chunkFile(c), table);
      if (process.env.TRIPLEX_DEBUG_MEMORY) {
        const m = process.memoryUsage();
        console.error(`[memory] chunk ${c}: rss ${(m.rss / 2 ** 20).toFixed(0)} MiB, heap ${(m.heapUsed / 2 ** 20).toFixed(0)}, array buffers ${(m.arrayBuffers / 2 ** 20).toFixed(0)}, max rss ${(process.resourceUsage().maxRSS / 1024).toFixed(0)}`);
      }
      progress(n);
      tiles.forgetTokens();
    }
  } finally {
    image?.close();
  }
  const crops = JSON.stringify(encoder instanceof DenseTrunk ? { ...CROP_SETTINGS, dense: DENSE_SETTINGS } : CROP_SETTINGS);
  await mergeChunks(Array.from({ length: nChunks }, (_, c) => chunkFile(c)), file, { 'triplex:section-key': key, 'triplex:section': section.id, 'triplex:crops': crops,
    ...(scale.mpp !== undefined ? { 'triplex:mpp': String(scale.mpp) } : {}) });
  fs.rmSync(chunkDir, { recursive: true, force: true });
  return { resumed, tilesEncoded };
}

/**
 * Concatenates chunk files into one Arrow file, written atomically, one chunk in memory at a time
 * (its record batches, one per chunk of spots, are what a reader by rows reads: store/arrowRows.ts).
 */
function mergeChunks(chunks: string[], file: string, metadata: Record<string, string>): Promise<void> {
  return writeArrowBatches(file, (function* () { for (const chunk of chunks) yield readArrowFile(chunk); })(), metadata);
}

/** Pooled features of tiles by top-left corner (and tokens of spot crops), encoding each once. */
class TileFeatures {
  private readonly pooledByTile = new Map<string, Float32Array>();
  private readonly tokensByTile = new Map<string, Float32Array>();

  constructor(private readonly encoder: ImageEncoder, private readonly batchSize: number) {}

  pooled(x: number, y: number): Float32Array {
    const f = this.pooledByTile.get(`${x},${y}`);
    if (!f) throw new Error(`internal: tile ${x},${y} was not encoded`);
    return f;
  }

  tokens(x: number, y: number): Float32Array {
    const f = this.tokensByTile.get(`${x},${y}`);
    if (!f) throw new Error(`internal: tokens of tile ${x},${y} were not kept`);
    return f;
  }

  private zero?: Float32Array;
  private rgb?: Uint8Array;
  private input?: Float32Array;

  /** The pooled feature of an all-zero normalised input, which stands for every masked tile. */
  async zeroInput(): Promise<Float32Array> {
    this.zero ??= (await this.encoder.encode(new Float32Array(SPOT_SIZE * SPOT_SIZE * 3), 1)).pooled.slice(0, this.encoder.embeddingWidth);
    return this.zero;
  }

  /** Token maps are 100 KB a spot: keep them only for the chunk being written. */
  forgetTokens(): void {
    this.tokensByTile.clear();
  }

  /** Encodes the tiles not yet known; returns how many were encoded. */
  async ensure(img: SlideImage, tiles: (readonly [number, number])[], withTokens: (readonly [number, number])[], signal?: AbortSignal): Promise<number> {
    const needTokens = new Set(this.encoder.providesTokens ? withTokens.map(([x, y]) => `${x},${y}`) : []);
    const todo = new Map<string, readonly [number, number]>();
    for (const t of tiles) {
      const k = `${t[0]},${t[1]}`;
      if (!this.pooledByTile.has(k) || (needTokens.has(k) && !this.tokensByTile.has(k))) todo.set(k, t);
    }
    const list = [...todo.values()].sort((a, b) => a[1] - b[1] || a[0] - b[0]); // y order suits band decoding
    const size = SPOT_SIZE;
    const perImage = size * size * 3;
    // One input buffer for every batch: tens of MB a batch would otherwise wait for the GC.
    this.rgb ??= new Uint8Array(this.batchSize * perImage);
    this.input ??= new Float32Array(this.batchSize * perImage);
    for (let i = 0; i < list.length; i += this.batchSize) {
      if (signal?.aborted) throw new Error('feature extraction was cancelled; run it again to resume');
      const batch = list.slice(i, i + this.batchSize);
      const rgb = this.rgb.subarray(0, batch.length * perImage);
      for (let b = 0; b < batch.length; b++) rgb.set(await img.region(batch[b][0], batch[b][1], size, size), b * perImage);
      const input = toNormalizedFloat(rgb, batch.length, size, undefined, this.input.subarray(0, batch.length * perImage));
      const { pooled, tokens } = await this.encoder.encode(input, batch.length);
      const W = this.encoder.embeddingWidth;
      batch.forEach(([x, y], b) => {
        const k = `${x},${y}`;
        this.pooledByTile.set(k, pooled.slice(b * W, (b + 1) * W));
        if (tokens && needTokens.has(k)) this.tokensByTile.set(k, tokens.slice(b * 49 * 512, (b + 1) * 49 * 512));
      });
    }
    return list.length;
  }
}
