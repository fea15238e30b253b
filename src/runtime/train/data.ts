import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Table } from 'apache-arrow';
import { spotGrid, type SpotGrid } from '../models/spotGrid';
import type { ViewName } from '../models/triplexConfig';
import { NEIGHBOR_TOKENS, TARGET_TOKENS } from '../models/triplexInputs';
import { readArrowFile, stringColumn, vectorColumn } from '../store/arrow';
import { openDatasetStore, type DatasetStore } from '../store/datasetStore';
import { pathInside } from '../store/identifiers';
import { gatherRows } from '../util/numeric';
import type { CropSource } from './targetCrops';
import { checkSpotCount, checkSpotIds, SectionFeatureRows, type StreamedFeatures } from './featureRows';

/**
 * The frozen inputs of TRIPLEX per section, read from a store's Arrow files into memory:
 * expressions from expressions.arrow, and from features/<key>/<section>.arrow the pooled feature
 * of each spot's crop (the global view's input), the 25 neighbor tile features and mask, and the
 * 49 target tokens (frozen target mode). Only what the chosen views need is read.
 */

export interface SectionInputs {
  id: string;
  patient: string;
  /** Spots of the section, in store order. */
  n: number;
  spotIds: string[];
  /** Rows of the section's spots in the store's tables. */
  storeRows: number[];
  /** Normalised expression [n, genes] (empty in a store without counts). */
  values: Float32Array;
  /** Pooled frozen features of the spots' own crops [n, d] (global view). */
  global?: Float32Array;
  /** Neighbor tile features [n, 25, d] and mask [n, 25] (1 = valid). */
  neighbors?: Float32Array;
  mask?: Float32Array;
  /** Frozen target tokens [n, 49, d] (mode frozen). */
  target?: Float32Array;
  /**
   * Target tokens and neighbour features left in a large features file, read by spot range
   * (featureRows.ts sectionWindow) instead of `target`, `neighbors` and `mask`.
   */
  streamed?: StreamedFeatures;
  /** The spots' 224 px target crops, RGB [n, 224, 224, 3] (modes full and layer4; see targetCrops.ts). */
  crops?: Uint8Array;
  /** For prediction over a section too large to hold every crop: its crops cut by spot range instead of `crops` (sectionWindow). */
  cropSource?: CropSource;
  /** Raw counts of the store's genes [n, genes] (Hist2ST's ZINB loss; see loadCounts). */
  counts?: Float32Array;
  /** Hist2ST's row-normalised 4-NN spot graph [n, n], made once. */
  adjacency?: Float32Array;
  /** The crops through the frozen conv1..layer3, [n, 14, 14, 256] (mode layer4), and the trunk weights they came from. */
  layer3?: Float32Array;
  layer3Weights?: string;
  grid: SpotGrid;
}

export interface TrainingData {
  storeDir: string;
  /** The features folder the inputs came from. */
  featuresDir: string;
  /** The store's genes (none in a store without counts). */
  genes: string[];
  /** false for a store made from slides without counts: inputs only, `values` empty. */
  hasCounts: boolean;
  dim: number;
  sections: Map<string, SectionInputs>;
  /**
   * Microns per pixel of the crops the features were cut from, when every section's features
   * record the same one (`triplex:mpp`); undefined when unknown or mixed. A checkpoint records it.
   */
  cropMpp?: number;
}

export interface LoadOptions {
  /** Views whose inputs to read. */
  views: readonly ViewName[];
  /** A features folder (a key under <store>/features, or a path); default: the store's only one. */
  features?: string;
  /** Only these sections (default: all). */
  sections?: readonly string[];
  /**
   * Features files larger than this many bytes are read by spot range (SectionInputs.streamed)
   * instead of whole: for prediction, whose batches walk the spots in order (STREAM_FEATURES_BYTES).
   * Unset (training): every file is read whole.
   */
  streamAbove?: number;
}

/**
 * Prediction reads a section's features by spot range past 256 MiB (about 1,700 spots at d 512):
 * an ST section (300-700 spots, under 110 MB) is still read whole in one pass, and a Visium-size
 * section or a whole-slide grid (5,000-50,000 spots, 0.75-7.6 GB) holds a window of 256 spots
 * (about 39 MB) and its global features (2 kB a spot) instead of the file.
 */
export const STREAM_FEATURES_BYTES = 256 * 2 ** 20;
/** Node reads no file of 2 GiB or more whole (fs.readFileSync). */
const WHOLE_READ_LIMIT = 2 ** 31;

/** The names of a store's features folders (one per encoder and weights). */
export function featureKeys(storeDir: string): string[] {
  const root = path.join(storeDir, 'features');
  return fs.existsSync(root) ? fs.readdirSync(root).filter((d) => fs.statSync(path.join(root, d)).isDirectory()) : [];
}

/** The features folder of a store: the one asked for, or the only one there is. */
export function resolveFeaturesDir(storeDir: string, features?: string): string {
  const root = path.join(storeDir, 'features');
  if (features) {
    const dir = fs.existsSync(path.join(root, features)) ? path.join(root, features) : features;
    if (!fs.existsSync(dir)) throw new Error(`features '${features}' not found (neither ${path.join(root, features)} nor a folder); run \`triplex extract ${storeDir}\``);
    return dir;
  }
  const found = featureKeys(storeDir);
  if (found.length === 0) throw new Error(`${storeDir} has no frozen features (no ${root}); run \`triplex extract ${storeDir}\` first`);
  if (found.length > 1) throw new Error(`${storeDir} has features from ${found.length} encoders (${found.join(', ')}); choose one with --features <key>`);
  return path.join(root, found[0]);
}

/** Reads the inputs of the given views for the store's sections (all by default). */
export function loadTrainingData(storeDir: string, options: LoadOptions): TrainingData {
  const store = openDatasetStore(storeDir);
  const featuresDir = resolveFeaturesDir(storeDir, options.features);
  const wanted = options.sections ?? store.manifest.sections.map((s) => s.id);
  const known = new Set(store.manifest.sections.map((s) => s.id));
  const unknown = wanted.filter((s) => !known.has(s));
  if (unknown.length) throw new Error(`${storeDir}: no section ${unknown.join(', ')} in the store (it has ${[...known].join(', ')})`);
  const values = store.hasCounts ? store.values() : new Float32Array(0);
  const G = store.genes.length;
  const rowsCol = store.spots.getChild('array_row')?.toArray() as Int32Array;
  const colsCol = store.spots.getChild('array_col')?.toArray() as Int32Array;
  const ids = stringColumn(store.spots, 'spot_id');
  const sections = new Map<string, SectionInputs>();
  let dim = 0;
  const scales = new Set<string | undefined>();
  for (const id of wanted) {
    const meta = store.manifest.sections.find((s) => s.id === id)!;
    const rows = store.rowsOf(id);
    const spotIds = rows.map((r) => ids[r]);
    const v = gatherRows(values, G, rows);
    let grid: SpotGrid;
    try {
      grid = spotGrid(rows.map((r) => rowsCol[r]), rows.map((r) => colsCol[r]), spotIds);
    } catch (e) {
      throw new Error(`${storeDir}, section ${id}: ${(e as Error).message}`);
    }
    const section: SectionInputs = { id, patient: meta.patient, n: rows.length, spotIds, storeRows: rows, values: v, grid };
    const file = pathInside(featuresDir, `${id}.arrow`);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: section ${id} has no features; run \`triplex extract ${storeDir}\``);
    const size = fs.statSync(file).size;
    const checkWidth = (name: string, actual: number | undefined, width: number) => {
      if (actual === undefined) throw new Error(`${file}: no column '${name}'${name === 'target_tokens' ? ' (frozen target tokens are written by the built-in resnet18 encoder); re-run `triplex extract` with it, or train in mode full' : ''}`);
      if (actual !== width) throw new Error(`${file}: column '${name}' has ${actual} values per spot, expected ${width}`);
    };
    const wantTarget = options.views.includes('target');
    const wantNeighbor = options.views.includes('neighbor');
    let globalWidth: number;
    if (options.streamAbove !== undefined && size > options.streamAbove) {
      const opened = withExtractHint(storeDir, () => SectionFeatureRows.open(file, id, spotIds, `re-run \`triplex extract ${storeDir}\``));
      scales.add(opened.metadata.get('triplex:mpp'));
      globalWidth = opened.width;
      if (dim && globalWidth !== dim) throw new Error(`${featuresDir}: section ${id} has ${globalWidth}-wide features, others ${dim}`);
      if (options.views.includes('global')) section.global = opened.global;
      if (wantNeighbor) {
        checkWidth('neighbors', opened.widths.get('neighbors'), NEIGHBOR_TOKENS * globalWidth);
        checkWidth('neighbor_mask', opened.widths.get('neighbor_mask'), NEIGHBOR_TOKENS);
      }
      if (wantTarget) checkWidth('target_tokens', opened.widths.get('target_tokens'), TARGET_TOKENS * globalWidth);
      if (wantTarget || wantNeighbor) section.streamed = { rows: opened.rows, target: wantTarget, neighbor: wantNeighbor };
    } else {
      if (size >= WHOLE_READ_LIMIT) throw new Error(`${file}: ${(size / 2 ** 30).toFixed(1)} GiB of features, too large to read whole (training keeps a section's features in memory); \`triplex predict\` and \`triplex evaluate\` read them by spot range`);
      const features = readSectionFeatures(file, id, spotIds, storeDir);
      scales.add(features.schema.metadata.get('triplex:mpp'));
      const widthOf = (name: string) => (features.schema.fields.some((f) => f.name === name) ? vectorColumn(features, name) : undefined);
      const column = (name: string, width: number): Float32Array => {
        const c = widthOf(name);
        checkWidth(name, c?.width, width);
        return c!.values;
      };
      globalWidth = vectorColumn(features, 'global').width;
      if (dim && globalWidth !== dim) throw new Error(`${featuresDir}: section ${id} has ${globalWidth}-wide features, others ${dim}`);
      if (options.views.includes('global')) section.global = column('global', globalWidth);
      if (wantNeighbor) {
        section.neighbors = column('neighbors', NEIGHBOR_TOKENS * globalWidth);
        section.mask = Float32Array.from(column('neighbor_mask', NEIGHBOR_TOKENS));
      }
      if (wantTarget) section.target = column('target_tokens', TARGET_TOKENS * globalWidth);
    }
    dim = globalWidth;
    sections.set(id, section);
  }
  const [scale] = scales;
  const cropMpp = scales.size === 1 && scale !== undefined ? Number(scale) : undefined;
  return { storeDir, featuresDir, genes: store.genes, hasCounts: store.hasCounts, dim, sections, ...(cropMpp ? { cropMpp } : {}) };
}

/** Runs `read`, its error told to run `triplex extract` (which moves an unreadable features file aside) instead of the generic re-run; stale features say so already. */
function withExtractHint<T>(storeDir: string, read: () => T): T {
  try {
    return read();
  } catch (e) {
    const message = (e as Error).message;
    if (message.includes('; the features are stale: ')) throw e;
    throw new Error(`${message.replace(/; re-run the step that writes it$/, '')}; run \`triplex extract ${storeDir}\`, which moves an unreadable features file aside and computes it again`, { cause: e });
  }
}

function readSectionFeatures(file: string, section: string, spotIds: string[], storeDir: string): Table {
  const table = withExtractHint(storeDir, () => readArrowFile(file));
  const ids = stringColumn(table, 'spot_id');
  const stale = `re-run \`triplex extract ${storeDir}\``;
  checkSpotCount(file, ids.length, spotIds.length, section, stale);
  checkSpotIds(file, ids, spotIds, 0, stale);
  return table;
}

/** Reads the raw counts of the sections' spots from the store (once per section). */
export function loadCounts(data: TrainingData, sections: readonly SectionInputs[]): void {
  const todo = sections.filter((s) => !s.counts);
  if (todo.length === 0) return;
  requireCounts(data, 'trained on raw counts');
  const store = openDatasetStore(data.storeDir);
  const counts = store.counts();
  const G = store.genes.length;
  for (const s of todo) s.counts = gatherRows(counts, G, s.storeRows);
}

/** Refuses training or scoring on a store without counts, saying why. */
export function requireCounts(data: TrainingData, what: string): void {
  if (!data.hasCounts) throw new Error(`${data.storeDir} has no counts (made by \`triplex slide\`): it cannot be ${what}; use it with \`triplex predict\``);
}

/** The store a training run reads, opened once (for callers that need its manifest). */
export const storeOf = (data: TrainingData): DatasetStore => openDatasetStore(data.storeDir);
