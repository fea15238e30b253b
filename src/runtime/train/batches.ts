import type { ViewName } from '../models/triplexConfig';
import { NEIGHBOR_TOKENS } from '../models/triplexInputs';
import { SPOT_SIZE, toNormalizedFloat } from '../image/crops';
import { mulberry32 } from '../util/random';
import type { SectionInputs } from './data';

/**
 * Batches of spots for TRIPLEX training. Every batch needs the global encoder over every spot of
 * each slide it draws from (spec, "Training"), so batches are cut from the slides one after
 * another, each slide's spots shuffled and the slides in a shuffled order: a batch of 128 then
 * spans at most two slides of 128 spots or more, instead of nearly every slide. Seeded per epoch,
 * so a resumed run draws the same batches.
 */

export interface Pick {
  section: SectionInputs;
  /** The spot's index within its section. */
  spot: number;
}

/** The batches of one epoch. */
export function epochBatches(sections: readonly SectionInputs[], batchSize: number, seed: number): Pick[][] {
  if (!(Number.isInteger(batchSize) && batchSize > 0)) throw new Error(`batch size must be a positive integer, got ${batchSize}`);
  const random = mulberry32(seed);
  const order = shuffle([...sections], random);
  const picks = order.flatMap((section) => shuffle(Array.from({ length: section.n }, (_, spot) => ({ section, spot })), random));
  const batches: Pick[][] = [];
  for (let i = 0; i < picks.length; i += batchSize) batches.push(picks.slice(i, i + batchSize));
  return batches;
}

/**
 * The batches of one epoch of a model that takes whole sections (HisToGene, Hist2ST: batch 1
 * slide, spec 3 and 4): each section's spots in store order, the sections in a seeded order.
 */
export function sectionBatches(sections: readonly SectionInputs[], _batchSize: number, seed: number): Pick[][] {
  return shuffle([...sections], mulberry32(seed)).map((section) => Array.from({ length: section.n }, (_, spot) => ({ section, spot })));
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * The 7x7 token-map permutation of a flip/rotation: out[i] = in[perm[i]]. In frozen mode the
 * target crop's augmentation (spec: horizontal flip, vertical flip, a random multiple of 90
 * degrees, each with p = 0.5) is applied to its cached token map, which moves tokens as the crop
 * moves pixels; the tokens themselves stay those of the unaugmented crop.
 */
export function tokenPermutation(hflip: boolean, vflip: boolean, quarterTurns: number, side = 7): Int32Array {
  const perm = new Int32Array(side * side);
  for (let r = 0; r < side; r++) {
    for (let c = 0; c < side; c++) {
      // Where output (r, c) reads from: undo the rotation, then the flips (applied first).
      let [sr, sc] = [r, c];
      for (let k = 0; k < ((quarterTurns % 4) + 4) % 4; k++) [sr, sc] = [side - 1 - sc, sr]; // undo one quarter turn
      if (vflip) sr = side - 1 - sr;
      if (hflip) sc = side - 1 - sc;
      perm[r * side + c] = sr * side + sc;
    }
  }
  return perm;
}

/** One of the eight flips/rotations of a square map: flips first, then quarter turns (see tokenPermutation). */
export interface Dihedral { hflip: boolean; vflip: boolean; quarterTurns: number }

/** One seeded draw of the spec's augmentation: horizontal flip, vertical flip, each p = 0.5, and with p = 0.5 a rotation by 90, 180 or 270 degrees. */
export function drawAugmentation(augment: () => number): Dihedral {
  const hflip = augment() < 0.5;
  const vflip = augment() < 0.5;
  return { hflip, vflip, quarterTurns: augment() < 0.5 ? 1 + Math.floor(augment() * 3) : 0 };
}

const permutations = new Map<string, Int32Array>();
/** tokenPermutation, memoised: there are 8 transforms per map size. */
function permutationOf(t: Dihedral, side: number): Int32Array {
  const key = `${+t.hflip}${+t.vflip}${t.quarterTurns % 4}:${side}`;
  let perm = permutations.get(key);
  if (!perm) permutations.set(key, (perm = tokenPermutation(t.hflip, t.vflip, t.quarterTurns, side)));
  return perm;
}

/**
 * Copies one square map [side * side, channels] into out at `at`, its cells moved by the
 * flip/rotation `t` (none: a plain copy). The same transform moves a crop's pixels (side 224),
 * a cached layer3 map (14) or a cached token map (7).
 */
export function moveMap<T extends Float32Array | Uint8Array>(src: T, t: Dihedral | undefined, side: number, channels: number, out: T, at: number): void {
  if (!t) return void out.set(src, at);
  const perm = permutationOf(t, side);
  for (let i = 0; i < perm.length; i++) {
    const from = perm[i] * channels;
    const to = at + i * channels;
    for (let c = 0; c < channels; c++) out[to + c] = src[from + c];
  }
}

export interface BatchOptions {
  views: readonly ViewName[];
  dim: number;
  genes: number;
  /** Seeded augmentation of the target view (training only). */
  augment?: () => number;
  /** What the target view takes: cached token maps (mode frozen, default), cached layer3 maps (layer4) or crops (full). */
  target?: TargetInput;
}

/** The target view's input per training mode. */
export type TargetInput = 'tokens' | 'layer3' | 'crops';
/** Side and channels of the layer3 map mode `layer4` caches ([14, 14, 256]). */
export const LAYER3_SIDE = 14;
export const LAYER3_CHANNELS = 256;

/**
 * A batch as plain arrays, for either engine: target input (augmented), neighbor features and
 * mask, truth, and for the global view the batch's slides (in first-use order) with each spot's
 * row in them concatenated.
 */
export interface HostBatch {
  size: number;
  /** [B, 49, d] tokens, [B, 14, 14, 256] layer3 maps or [B, 224, 224, 3] normalised crops. */
  target?: Float32Array;
  neighbors?: Float32Array;
  mask?: Float32Array;
  truth: Float32Array;
  slides: SectionInputs[];
  globalRows?: Int32Array;
}

/** The arrays of a batch of picks (spots). */
export function hostBatch(picks: readonly Pick[], o: BatchOptions): HostBatch {
  const streamed = picks.find((p) => p.section.streamed);
  if (streamed) throw new Error(`section ${streamed.section.id}'s features (${streamed.section.streamed!.rows.file}) are read by spot range, for prediction; batches of spots drawn at random need them whole: train on sections of fewer spots`);
  const B = picks.length;
  const d = o.dim;
  const truth = new Float32Array(B * o.genes);
  picks.forEach((p, i) => truth.set(p.section.values.subarray(p.spot * o.genes, (p.spot + 1) * o.genes), i * o.genes));
  const batch: HostBatch = { size: B, truth, slides: [] };
  if (o.views.includes('target')) batch.target = targetInput(picks, o);
  if (o.views.includes('neighbor')) {
    const rowLength = NEIGHBOR_TOKENS * d;
    batch.neighbors = new Float32Array(B * rowLength);
    batch.mask = new Float32Array(B * NEIGHBOR_TOKENS);
    picks.forEach((p, i) => {
      batch.neighbors!.set(p.section.neighbors!.subarray(p.spot * rowLength, (p.spot + 1) * rowLength), i * rowLength);
      batch.mask!.set(p.section.mask!.subarray(p.spot * NEIGHBOR_TOKENS, (p.spot + 1) * NEIGHBOR_TOKENS), i * NEIGHBOR_TOKENS);
    });
  }
  if (o.views.includes('global')) {
    const offset = new Map<SectionInputs, number>();
    let total = 0;
    for (const p of picks) {
      if (offset.has(p.section)) continue;
      offset.set(p.section, total);
      batch.slides.push(p.section);
      total += p.section.n;
    }
    batch.globalRows = Int32Array.from(picks, (p) => offset.get(p.section)! + p.spot);
  }
  return batch;
}

/** The target view's input for a batch: [B, 49, d] tokens, [B, 14, 14, 256] layer3 maps, or [B, 224, 224, 3] normalised crops. */
function targetInput(picks: readonly Pick[], o: BatchOptions): Float32Array {
  const B = picks.length;
  const draw = () => (o.augment ? drawAugmentation(o.augment) : undefined);
  const kind = o.target ?? 'tokens';
  if (kind === 'crops') {
    const size = SPOT_SIZE * SPOT_SIZE * 3;
    const rgb = new Uint8Array(B * size);
    picks.forEach((p, i) => {
      if (!p.section.crops) throw new Error(`section ${p.section.id} has no crops loaded (the target encoder is trained on them)`);
      moveMap(p.section.crops.subarray(p.spot * size, (p.spot + 1) * size), draw(), SPOT_SIZE, 3, rgb, i * size);
    });
    return toNormalizedFloat(rgb, B, SPOT_SIZE);
  }
  const [source, side, channels] = kind === 'layer3' ? ['layer3', LAYER3_SIDE, LAYER3_CHANNELS] as const : ['target', 7, o.dim] as const;
  const size = side * side * channels;
  const out = new Float32Array(B * size);
  picks.forEach((p, i) => {
    const maps = p.section[source];
    if (!maps) throw new Error(`section ${p.section.id} has no ${kind === 'layer3' ? 'cached layer3 maps' : 'target tokens'} loaded`);
    moveMap(maps.subarray(p.spot * size, (p.spot + 1) * size), draw(), side, channels, out, i * size);
  });
  return out;
}
