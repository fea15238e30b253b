import { alignGenes } from './geneList';
import type { Section, SpatialDataset } from './types';

/**
 * The paper's preprocessing (spec, "Data preprocessing"): gene selection over the whole dataset,
 * library-size normalisation over the selected genes, a log transform, and 3x3 smoothing on the
 * array grid. Every choice is recorded in PreprocessingRecord, which the store keeps.
 */

export type LogTransform = 'log1p' | 'log10';

export interface PreprocessOptions {
  /** Genes kept (default 250). */
  genes?: number;
  /** Minimum fraction of all spots in which a gene must be expressed (count > 0; default 0.1). */
  minSpotFraction?: number;
  /** log1p(1e4 x / total) (default), or log10(1 + 1e4 x / total) as the CVPR code did. */
  transform?: LogTransform;
  /** Per-spot scale after dividing by the total (default 1e4). */
  scale?: number;
  /** 3x3 array-neighbourhood mean (default true). */
  smooth?: boolean;
  /**
   * Use these genes, in this order, instead of selecting (e.g. a trained model's genes for a new
   * cohort). Those absent from some section are left out of the store and recorded as
   * `missingGenes`, never filled with zeros; fewer than half of them present is refused.
   */
  useGenes?: string[];
}

/**
 * A given gene list: `requested` genes asked for, `missingGenes` those the data lacks (absent from
 * at least one section), which the store leaves out. Library-size normalisation is over the genes
 * kept. Older stores record only the rule.
 */
export interface GivenSelection {
  rule: 'given';
  requested?: number;
  missingGenes?: string[];
}

/** What was done, stored beside the values so that a result says how its targets were made. */
export interface PreprocessingRecord {
  genes: string[];
  /** notInEverySection: genes left out because some section lacks them (absent in older stores). */
  selection: { rule: string; minSpotFraction: number; requested: number; candidates: number; notInEverySection?: number } | GivenSelection;
  normalisation: { scale: number; transform: LogTransform; over: 'selected genes'; zeroTotalSpots: number };
  smoothing: { neighbourhood: '3x3 array coordinates'; enabled: boolean };
}

export interface PreprocessedSection {
  section: Section;
  /** Raw counts of the selected genes: [nSpots, nGenes], row-major. */
  counts: Float32Array;
  /** Normalised (and smoothed) values: [nSpots, nGenes], row-major. */
  values: Float32Array;
}

export interface PreprocessedDataset {
  record: PreprocessingRecord;
  sections: PreprocessedSection[];
}

/**
 * Genes present in every section and expressed in at least `minSpotFraction` of all spots,
 * ranked by total raw count over the dataset (ties by name), the first `n`. A gene some
 * section lacks is never a candidate (the paper's rule for a cohort with differing gene
 * lists); `notInEverySection` counts them. Spots of a section that lacks a gene count towards
 * all spots, as they do not express it.
 */
export function selectGenes(ds: SpatialDataset, n = 250, minSpotFraction = 0.1): { genes: string[]; candidates: number; notInEverySection: number } {
  const totals = new Map<string, { total: number; spots: number; sections: number }>();
  let allSpots = 0;
  for (const s of ds.sections) {
    allSpots += s.counts.nSpots;
    const total = new Float64Array(s.genes.length);
    const expressed = new Uint32Array(s.genes.length);
    const { indptr, indices, data } = s.counts;
    for (let k = 0; k < indptr[s.counts.nSpots]; k++) {
      total[indices[k]] += data[k];
      if (data[k] > 0) expressed[indices[k]]++;
    }
    s.genes.forEach((g, j) => {
      const t = totals.get(g) ?? { total: 0, spots: 0, sections: 0 };
      t.total += total[j];
      t.spots += expressed[j];
      t.sections += 1;
      totals.set(g, t);
    });
  }
  const needed = minSpotFraction * allSpots;
  const candidates = [...totals].filter(([, t]) => t.sections === ds.sections.length && t.spots >= needed && t.spots > 0);
  candidates.sort(([a, ta], [b, tb]) => tb.total - ta.total || (a < b ? -1 : a > b ? 1 : 0));
  const notInEverySection = [...totals.values()].filter((t) => t.sections < ds.sections.length).length;
  return { genes: candidates.slice(0, n).map(([g]) => g), candidates: candidates.length, notInEverySection };
}

/** Dense raw counts of `genes` for one section: [nSpots, genes.length]. Missing genes are an error. */
export function denseCounts(section: Section, genes: string[]): Float32Array {
  const column = new Map(section.genes.map((g, j) => [g, j] as const));
  const target = new Int32Array(section.genes.length).fill(-1);
  genes.forEach((g, i) => {
    const j = column.get(g);
    if (j === undefined) throw new Error(`section ${section.id} has no gene ${g}; the selected genes must be in every section`);
    target[j] = i;
  });
  const out = new Float32Array(section.counts.nSpots * genes.length);
  const { indptr, indices, data } = section.counts;
  for (let r = 0; r < section.counts.nSpots; r++) {
    for (let k = indptr[r]; k < indptr[r + 1]; k++) {
      const i = target[indices[k]];
      if (i >= 0) out[r * genes.length + i] += data[k];
    }
  }
  return out;
}

/** Library-size normalisation over the selected genes and the log transform. Spots with total 0 stay 0. */
export function normalise(counts: Float32Array, nGenes: number, scale: number, transform: LogTransform): { values: Float32Array; zeroTotal: number } {
  const values = new Float32Array(counts.length);
  const nSpots = counts.length / nGenes;
  let zeroTotal = 0;
  for (let r = 0; r < nSpots; r++) {
    let total = 0;
    for (let j = 0; j < nGenes; j++) total += counts[r * nGenes + j];
    if (total === 0) {
      zeroTotal++;
      continue;
    }
    for (let j = 0; j < nGenes; j++) {
      const v = (scale * counts[r * nGenes + j]) / total;
      values[r * nGenes + j] = transform === 'log1p' ? Math.log1p(v) : Math.log10(1 + v);
    }
  }
  return { values, zeroTotal };
}

/** Each spot's values replaced by the mean over itself and its existing 3x3 array neighbours. */
export function smooth3x3(section: Section, values: Float32Array, nGenes: number): Float32Array {
  const at = new Map<string, number>();
  section.spots.forEach((s, i) => at.set(`${s.row},${s.col}`, i));
  const out = new Float32Array(values.length);
  section.spots.forEach((s, i) => {
    let n = 0;
    for (let dr = -1; dr <= 1; dr++) {
      for (let dc = -1; dc <= 1; dc++) {
        const j = at.get(`${s.row + dr},${s.col + dc}`);
        if (j === undefined) continue;
        n++;
        for (let g = 0; g < nGenes; g++) out[i * nGenes + g] += values[j * nGenes + g];
      }
    }
    for (let g = 0; g < nGenes; g++) out[i * nGenes + g] /= n;
  });
  return out;
}

/**
 * The readers refuse non-finite and negative counts; this is the last check that nothing else
 * (a reader added later, a dataset built in a notebook) puts NaN or Infinity into a store.
 */
function assertFinite(p: { section: Section; counts: Float32Array; values: Float32Array }, genes: readonly string[], source: string): void {
  for (const [what, array] of [['count', p.counts], ['value', p.values]] as const) {
    const i = array.findIndex((v) => !Number.isFinite(v) || (what === 'count' && v < 0));
    if (i < 0) continue;
    const spot = p.section.spots[Math.floor(i / genes.length)]?.id;
    throw new Error(`${source}: section ${p.section.id}, spot ${spot}, gene ${genes[i % genes.length]}: preprocessing gave the ${what} ${array[i]}; counts must be finite and non-negative`);
  }
}

/** The whole preprocessing of a dataset, as the spec describes it. */
export function preprocess(ds: SpatialDataset, options: PreprocessOptions = {}): PreprocessedDataset {
  const requested = options.genes ?? 250;
  const minSpotFraction = options.minSpotFraction ?? 0.1;
  const scale = options.scale ?? 1e4;
  const transform = options.transform ?? 'log1p';
  const smoothing = options.smooth ?? true;
  let genes: string[];
  let selection: PreprocessingRecord['selection'];
  if (options.useGenes) {
    const inEvery = ds.sections.reduce((have, s) => new Set(s.genes.filter((g) => have.has(g))), new Set(ds.sections[0]?.genes ?? []));
    const { shared, missing } = alignGenes(options.useGenes, inEvery, `${ds.source} (genes in every section)`);
    genes = shared;
    selection = { rule: 'given', requested: options.useGenes.length, missingGenes: missing };
  } else {
    const picked = selectGenes(ds, requested, minSpotFraction);
    genes = picked.genes;
    selection = {
      rule: 'present in every section, expressed (count > 0) in at least minSpotFraction of all spots, ranked by total raw count, first n',
      minSpotFraction, requested, candidates: picked.candidates, notInEverySection: picked.notInEverySection,
    };
  }
  if (genes.length === 0) throw new Error(`no gene is present in every section of ${ds.source} and expressed in ${minSpotFraction * 100}% of its spots`);
  let zeroTotalSpots = 0;
  const sections = ds.sections.map((section) => {
    const counts = denseCounts(section, genes);
    const { values, zeroTotal } = normalise(counts, genes.length, scale, transform);
    zeroTotalSpots += zeroTotal;
    const out = { section, counts, values: smoothing ? smooth3x3(section, values, genes.length) : values };
    assertFinite(out, genes, ds.source);
    return out;
  });
  return {
    record: {
      genes,
      selection,
      normalisation: { scale, transform, over: 'selected genes', zeroTotalSpots },
      smoothing: { neighbourhood: '3x3 array coordinates', enabled: smoothing },
    },
    sections,
  };
}
