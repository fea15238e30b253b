import { ArrowRows, windowColumn, windowStrings } from '../store/arrowRows';
import { NEIGHBOR_TOKENS, TARGET_TOKENS } from '../models/triplexInputs';
import { SPOT_SIZE } from '../image/crops';
import { LAYER3_CHANNELS, LAYER3_SIDE } from './batches';
import type { SectionInputs } from './data';

/**
 * A section's frozen features read by spot range (issue 16: a whole-slide grid's features run to
 * gigabytes, about 151 kB a spot at d 512). Only the global view's pooled features [n, d] are
 * kept whole (the global encoder takes every spot of the slide at once); the target tokens
 * [n, 49, d] and the neighbour features and mask [n, 25, d] are read for a window of spots when a
 * batch needs them (sectionWindow), from the record batches that cover it. Prediction walks the
 * spots in order, so each record batch is read about once more than the global pass.
 */
/** Spots read at a time for the global column (extract.ts writes record batches of 256 spots). */
const GLOBAL_PASS_ROWS = 256;

/** A features file of `rows` spots for a section the store has `expected` of: refused as stale unless equal (`stale`: what to run). */
export function checkSpotCount(file: string, rows: number, expected: number, section: string, stale: string): void {
  if (rows !== expected) throw new Error(`${file}: ${rows} spots, the store has ${expected} for section ${section}; the features are stale: ${stale}`);
}

/** The spot ids of a features file's rows from `from` on against the store's: the first that differs is refused as stale. */
export function checkSpotIds(file: string, ids: readonly string[], storeIds: readonly string[], from: number, stale: string): void {
  const bad = ids.findIndex((s, i) => s !== storeIds[from + i]);
  if (bad >= 0) throw new Error(`${file}: row ${from + bad} is spot ${ids[bad]}, the store has ${storeIds[from + bad]} there; the features are stale: ${stale}`);
}

export class SectionFeatureRows {
  private constructor(private readonly rows: ArrowRows, private readonly spotIds: readonly string[], private readonly stale: string) {}

  get file(): string { return this.rows.file; }

  /**
   * Opens a section's features file, checks its spots against the store's (the stale hint says
   * what to run) and reads the global column whole, one record batch at a time.
   */
  static open(file: string, section: string, spotIds: readonly string[], stale: string): { rows: SectionFeatureRows; global: Float32Array; width: number; metadata: Map<string, string>; widths: Map<string, number> } {
    const rows = ArrowRows.open(file);
    checkSpotCount(file, rows.rows, spotIds.length, section, stale);
    const width = rows.widths.get('global');
    if (width === undefined) throw new Error(`${file}: no column 'global' of pooled features`);
    const global = new Float32Array(spotIds.length * width);
    const source = new SectionFeatureRows(rows, spotIds, stale);
    for (let from = 0; from < spotIds.length; from += GLOBAL_PASS_ROWS) {
      const w = source.window(from, Math.min(GLOBAL_PASS_ROWS, spotIds.length - from));
      global.set(windowColumn(w, 'global', file).values, from * width);
    }
    return { rows: source, global, width, metadata: rows.metadata, widths: rows.widths };
  }

  /** Rows [from, from + count), their spot ids checked against the store's. */
  private window(from: number, count: number) {
    const w = this.rows.read(from, count);
    checkSpotIds(this.file, windowStrings(w, 'spot_id', this.file), this.spotIds, from, this.stale);
    return w;
  }

  /** The batch views' inputs of spots [from, from + count): target tokens, neighbour features and mask (those asked for). */
  read(from: number, count: number, want: { target: boolean; neighbor: boolean }, dim: number): Pick<SectionInputs, 'target' | 'neighbors' | 'mask'> {
    const w = this.window(from, count);
    const out: Pick<SectionInputs, 'target' | 'neighbors' | 'mask'> = {};
    const column = (name: string, width: number) => {
      const c = windowColumn(w, name, this.file);
      if (c.width !== width) throw new Error(`${this.file}: column '${name}' has ${c.width} values per spot, expected ${width}`);
      return c.values;
    };
    if (want.target) out.target = column('target_tokens', TARGET_TOKENS * dim);
    if (want.neighbor) {
      out.neighbors = column('neighbors', NEIGHBOR_TOKENS * dim);
      out.mask = column('neighbor_mask', NEIGHBOR_TOKENS);
    }
    return out;
  }
}

/** A section's batch-view inputs left in its features file: where, and which views read them. */
export interface StreamedFeatures { rows: SectionFeatureRows; target: boolean; neighbor: boolean }

/**
 * Spots [from, from + count) of a section as a section of their own, for the batch views (target
 * and neighbour; not the global view, which takes the whole slide): views into the arrays of a
 * section held whole, or the window read from the features of one read by rows (and its crops
 * cut from the image, for a model with a trunk: SectionInputs.cropSource).
 */
export async function sectionWindow(section: SectionInputs, from: number, count: number, dim: number): Promise<SectionInputs> {
  const rows = <T extends Float32Array | Uint8Array>(a: T | undefined, width: number): T | undefined => (a ? a.subarray(from * width, (from + count) * width) as T : undefined);
  const G = section.n ? section.values.length / section.n : 0;
  const window: SectionInputs = {
    ...section, n: count, spotIds: section.spotIds.slice(from, from + count), storeRows: section.storeRows.slice(from, from + count),
    values: section.values.subarray(from * G, (from + count) * G),
    global: rows(section.global, dim), target: rows(section.target, TARGET_TOKENS * dim), neighbors: rows(section.neighbors, NEIGHBOR_TOKENS * dim),
    mask: rows(section.mask, NEIGHBOR_TOKENS), crops: rows(section.crops, SPOT_SIZE * SPOT_SIZE * 3), layer3: rows(section.layer3, LAYER3_SIDE * LAYER3_SIDE * LAYER3_CHANNELS),
    counts: rows(section.counts, G), adjacency: undefined, streamed: undefined, cropSource: undefined,
  };
  const s = section.streamed;
  if (s) Object.assign(window, s.rows.read(from, count, { target: s.target, neighbor: s.neighbor }, dim));
  if (!section.crops && section.cropSource) window.crops = await section.cropSource.read(from, count);
  return window;
}
