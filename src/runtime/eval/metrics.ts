import * as path from 'node:path';
import type { Table } from 'apache-arrow';
import { buildTable, writeArrowFile } from '../store/arrow';

/**
 * The paper's metrics, computed as the reference does (NEXGEM/TRIPLEX `test_step` and
 * `test_epoch_end`): per test slide, MSE and MAE over all values and the PCC of each gene across
 * the slide's spots; per fold, the mean over its test slides (per gene for the PCC, undefined
 * PCCs left out, like `nanmean`); PCC(M) is the mean over genes of the fold's per-gene PCC. Not
 * pooled over the fold's spots: a slide counts once whatever its number of spots.
 *
 * Over folds: mean and *sample* standard deviation (n - 1), as "mean ± std over folds".
 */

export interface SlideMetrics {
  genes: readonly string[];
  spots: number;
  mse: number;
  mae: number;
  /** [genes]; NaN where undefined (prediction or truth constant across the slide's spots). */
  pccPerGene: Float64Array;
  /** Mean over the genes whose PCC is defined; NaN when none is. */
  pccM: number;
  undefinedGenes: number;
}

export interface FoldMetrics {
  slides: number;
  mse: number;
  mae: number;
  /** [genes]: mean over the fold's slides of each gene's PCC, NaN only if undefined in all. */
  pccPerGene: Float64Array;
  pccM: number;
  undefinedGenes: number;
}

/**
 * Metrics of one slide; `pred` and `truth` are [spots, genes], row-major (the store's layout).
 * Non-finite values are an error: averaging around them would make a diverged model look sound.
 */
export function slideMetrics(pred: Float32Array, truth: Float32Array, nSpots: number, genes: readonly string[]): SlideMetrics {
  const G = genes.length;
  if (G === 0) throw new Error('slide metrics need at least one gene');
  for (const [name, a] of [['prediction', pred], ['truth', truth]] as const) {
    if (a.length !== nSpots * G) throw new Error(`${name} has ${a.length} values, expected ${nSpots} spots x ${G} genes = ${nSpots * G}`);
    const bad = a.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) throw new Error(`${name} is ${a[bad]} at spot ${Math.floor(bad / G)}, gene ${genes[bad % G]}; metrics need finite values (a diverged model?)`);
  }
  if (nSpots === 0) throw new Error('slide metrics need at least one spot');

  let se = 0;
  let ae = 0;
  for (let i = 0; i < pred.length; i++) {
    const d = pred[i] - truth[i];
    se += d * d;
    ae += Math.abs(d);
  }
  const pccPerGene = new Float64Array(G);
  for (let g = 0; g < G; g++) pccPerGene[g] = pearsonStrided(pred, truth, nSpots, G, g);
  const { mean: pccM, undefinedCount } = nanMean(pccPerGene);
  return { genes, spots: nSpots, mse: se / pred.length, mae: ae / pred.length, pccPerGene, pccM, undefinedGenes: undefinedCount };
}

/** A fold's metrics: the mean over its test slides (see the module comment). */
export function foldSummary(perSlide: readonly SlideMetrics[]): FoldMetrics {
  if (perSlide.length === 0) throw new Error('a fold needs at least one test slide to summarise');
  const genes = perSlide[0].genes;
  const mismatch = perSlide.find((s) => s.genes.length !== genes.length || s.genes.some((g, i) => g !== genes[i]));
  if (mismatch) throw new Error("the fold's slides were scored on different gene lists; score every slide on the training set's genes");
  const pccPerGene = new Float64Array(genes.length);
  for (let g = 0; g < genes.length; g++) pccPerGene[g] = nanMean(perSlide.map((s) => s.pccPerGene[g])).mean;
  const { mean: pccM, undefinedCount } = nanMean(pccPerGene);
  return {
    slides: perSlide.length,
    mse: mean(perSlide.map((s) => s.mse)),
    mae: mean(perSlide.map((s) => s.mae)),
    pccPerGene, pccM, undefinedGenes: undefinedCount,
  };
}

export interface HighlyPredictive {
  /** Chosen genes, best mean rank first; fewer than n when too few genes have a defined PCC. */
  genes: string[];
  indices: number[];
  /** [folds][genes]: rank within the fold, 1 = best PCC; tied PCCs share the mean of their places. */
  ranks: Float64Array[];
  /** [genes]: rank averaged over folds. */
  meanRank: Float64Array;
  /** [folds]: PCC(H), the mean PCC of the chosen genes in that fold, undefined ones left out. */
  pccH: Float64Array;
}

/**
 * The "highly predictive genes" of the paper: rank genes by PCC within each fold (undefined PCC
 * ranked last, never best), average the ranks over folds, take the best `n` (equal mean ranks in
 * gene-name order). A gene undefined in every fold is never chosen.
 */
export function highlyPredictiveGenes(foldPcc: readonly Float64Array[], genes: readonly string[], n = 50): HighlyPredictive {
  if (foldPcc.length === 0) throw new Error('highly predictive genes need the per-gene PCC of at least one fold');
  const bad = foldPcc.findIndex((p) => p.length !== genes.length);
  if (bad >= 0) throw new Error(`fold ${bad} has ${foldPcc[bad].length} gene PCCs for ${genes.length} genes`);
  if (!Number.isInteger(n) || n < 1) throw new Error(`the number of highly predictive genes must be a positive integer, got ${n}`);

  const ranks = foldPcc.map(rankDescending);
  const meanRank = new Float64Array(genes.length);
  for (const r of ranks) r.forEach((v, g) => { meanRank[g] += v / ranks.length; });
  const candidates = genes.map((_, g) => g).filter((g) => foldPcc.some((p) => !Number.isNaN(p[g])));
  const byName = (a: number, b: number) => (genes[a] < genes[b] ? -1 : genes[a] > genes[b] ? 1 : 0);
  const indices = candidates.sort((a, b) => meanRank[a] - meanRank[b] || byName(a, b)).slice(0, n);
  const pccH = Float64Array.from(foldPcc, (p) => nanMean(indices.map((g) => p[g])).mean);
  return { genes: indices.map((g) => genes[g]), indices, ranks, meanRank, pccH };
}

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n - 1); NaN for a single fold. */
  std: number;
}

export interface FoldScores {
  mse: number;
  mae: number;
  pccM: number;
  pccH: number;
}

export interface Summary {
  folds: number;
  mse: MeanStd;
  mae: MeanStd;
  pccM: MeanStd;
  pccH: MeanStd;
}

/** Mean and sample standard deviation over folds of each headline metric. */
export function summarise(folds: readonly FoldScores[]): Summary {
  if (folds.length === 0) throw new Error('nothing to summarise: no folds were evaluated');
  const of = (pick: (f: FoldScores) => number): MeanStd => meanStd(folds.map(pick));
  return { folds: folds.length, mse: of((f) => f.mse), mae: of((f) => f.mae), pccM: of((f) => f.pccM), pccH: of((f) => f.pccH) };
}

export interface EvaluatedSlide {
  fold: number;
  section: string;
  metrics: SlideMetrics;
}

export interface Evaluation {
  genes: readonly string[];
  slides: EvaluatedSlide[];
  /** In ascending fold index. */
  folds: (FoldMetrics & { index: number; pccH: number })[];
  highlyPredictive: HighlyPredictive;
  summary: Summary;
}

/** Groups scored slides by fold and computes everything the paper reports. */
export function evaluate(slides: readonly EvaluatedSlide[], genes: readonly string[], n = 50): Evaluation {
  const indices = [...new Set(slides.map((s) => s.fold))].sort((a, b) => a - b);
  if (indices.length === 0) throw new Error('no slides were scored; evaluate at least one fold');
  const other = slides.find((s) => s.metrics.genes.length !== genes.length || s.metrics.genes.some((g, i) => g !== genes[i]));
  if (other) throw new Error(`section ${other.section} (fold ${other.fold}) was scored on other genes than the ${genes.length} given`);
  const perFold = indices.map((index) => ({ index, ...foldSummary(slides.filter((s) => s.fold === index).map((s) => s.metrics)) }));
  const highlyPredictive = highlyPredictiveGenes(perFold.map((f) => f.pccPerGene), genes, n);
  const folds = perFold.map((f, i) => ({ ...f, pccH: highlyPredictive.pccH[i] }));
  return { genes, slides: [...slides], folds, highlyPredictive, summary: summarise(folds) };
}

export interface MetricsTables {
  /** One row per fold x test slide: fold, section, spots, mse, mae, pcc_m, undefined_genes. */
  slides: Table;
  /** One row per fold: fold, slides, mse, mae, pcc_m, pcc_h, undefined_genes. */
  folds: Table;
  /** One row per fold x gene: fold, gene, pcc, rank, mean_rank, highly_predictive (0/1). */
  genes: Table;
  /** One row per metric (mse, mae, pcc_m, pcc_h): mean, std, folds. */
  summary: Table;
}

/** The evaluation as Arrow tables for the store; the schema metadata records how it was computed. */
export function metricsTables(ev: Evaluation, model = ''): MetricsTables {
  const meta = {
    'triplex:metrics': JSON.stringify({
      model,
      aggregation: 'per slide, then mean over the fold\'s slides (per gene for PCC, undefined left out)',
      std: 'sample (n - 1) over folds',
      highlyPredictive: ev.highlyPredictive.genes,
    }),
  };
  const utf8 = (values: string[]) => ({ kind: 'utf8' as const, values });
  const int32 = (values: number[]) => ({ kind: 'int32' as const, values: Int32Array.from(values) });
  const float64 = (values: number[]) => ({ kind: 'float64' as const, values: Float64Array.from(values) });

  const s = ev.slides;
  const slides = buildTable([
    { name: 'fold', column: int32(s.map((x) => x.fold)) },
    { name: 'section', column: utf8(s.map((x) => x.section)) },
    { name: 'spots', column: int32(s.map((x) => x.metrics.spots)) },
    { name: 'mse', column: float64(s.map((x) => x.metrics.mse)) },
    { name: 'mae', column: float64(s.map((x) => x.metrics.mae)) },
    { name: 'pcc_m', column: float64(s.map((x) => x.metrics.pccM)) },
    { name: 'undefined_genes', column: int32(s.map((x) => x.metrics.undefinedGenes)) },
  ], meta);

  const f = ev.folds;
  const folds = buildTable([
    { name: 'fold', column: int32(f.map((x) => x.index)) },
    { name: 'slides', column: int32(f.map((x) => x.slides)) },
    { name: 'mse', column: float64(f.map((x) => x.mse)) },
    { name: 'mae', column: float64(f.map((x) => x.mae)) },
    { name: 'pcc_m', column: float64(f.map((x) => x.pccM)) },
    { name: 'pcc_h', column: float64(f.map((x) => x.pccH)) },
    { name: 'undefined_genes', column: int32(f.map((x) => x.undefinedGenes)) },
  ], meta);

  const hp = ev.highlyPredictive;
  const chosen = new Set(hp.indices);
  const rows = f.flatMap((fold, i) => ev.genes.map((gene, g) => ({ fold: fold.index, gene, g, pcc: fold.pccPerGene[g], rank: hp.ranks[i][g] })));
  const genes = buildTable([
    { name: 'fold', column: int32(rows.map((r) => r.fold)) },
    { name: 'gene', column: utf8(rows.map((r) => r.gene)) },
    { name: 'pcc', column: float64(rows.map((r) => r.pcc)) },
    { name: 'rank', column: float64(rows.map((r) => r.rank)) },
    { name: 'mean_rank', column: float64(rows.map((r) => hp.meanRank[r.g])) },
    { name: 'highly_predictive', column: int32(rows.map((r) => (chosen.has(r.g) ? 1 : 0))) },
  ], meta);

  const metrics = [['mse', ev.summary.mse], ['mae', ev.summary.mae], ['pcc_m', ev.summary.pccM], ['pcc_h', ev.summary.pccH]] as const;
  const summary = buildTable([
    { name: 'metric', column: utf8(metrics.map(([m]) => m)) },
    { name: 'mean', column: float64(metrics.map(([, v]) => v.mean)) },
    { name: 'std', column: float64(metrics.map(([, v]) => v.std)) },
    { name: 'folds', column: int32(metrics.map(() => ev.summary.folds)) },
  ], meta);
  return { slides, folds, genes, summary };
}

/** Writes the tables as `metrics_<name>.arrow` in `dir`, each atomically. */
export async function writeMetricsTables(dir: string, tables: MetricsTables): Promise<string[]> {
  const files: string[] = [];
  for (const [name, table] of Object.entries(tables) as [keyof MetricsTables, Table][]) {
    const file = path.join(dir, `metrics_${name}.arrow`);
    await writeArrowFile(file, table);
    files.push(file);
  }
  return files;
}

/** A plain-text comparison table: MSE, MAE, PCC(M), PCC(H) as mean ± std over folds. */
export function formatMetricsTable(rows: readonly { model: string; summary: Summary }[]): string {
  const header = ['model', 'MSE', 'MAE', 'PCC(M)', 'PCC(H)', 'folds'];
  const body = rows.map(({ model, summary: s }) => [
    model, formatMeanStd(s.mse), formatMeanStd(s.mae), formatMeanStd(s.pccM), formatMeanStd(s.pccH), String(s.folds),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((r) => r[c].length)));
  const line = (cells: string[]) => cells.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join('  ').trimEnd();
  return [line(header), ...body.map(line), 'mean ± sample standard deviation (n - 1) over folds'].join('\n');
}

/** The mean to 3 significant digits and the std to the same decimal place; n/a when undefined. */
export function formatMeanStd({ mean: m, std: s }: MeanStd): string {
  if (!Number.isFinite(m)) return 'n/a';
  const magnitude = m === 0 ? (Number.isFinite(s) && s !== 0 ? s : 1) : m;
  const decimals = Math.min(8, Math.max(0, 2 - Math.floor(Math.log10(Math.abs(magnitude)))));
  return `${m.toFixed(decimals)} ± ${Number.isFinite(s) ? s.toFixed(decimals) : 'n/a'}`;
}

/**
 * Pearson correlation of gene `g` between two [n, G] arrays, in float64. Constancy is tested
 * exactly (every value equal to the first), as scipy does, so that a constant column is
 * undefined however the sums round, rather than a zero-over-zero that happens to give NaN.
 */
function pearsonStrided(a: Float32Array, b: Float32Array, n: number, G: number, g: number): number {
  let ma = 0;
  let mb = 0;
  let constA = true;
  let constB = true;
  for (let i = 0; i < n; i++) {
    const x = a[i * G + g];
    const y = b[i * G + g];
    ma += x;
    mb += y;
    constA &&= x === a[g];
    constB &&= y === b[g];
  }
  if (n < 2 || constA || constB) return Number.NaN;
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i * G + g] - ma;
    const db = b[i * G + g] - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Ranks 1..n by descending value; NaN after every number; ties share the mean of their places. */
function rankDescending(values: Float64Array): Float64Array {
  const order = Array.from(values.keys()).sort((i, j) => {
    const a = values[i];
    const b = values[j];
    if (Number.isNaN(a) || Number.isNaN(b)) return Number(Number.isNaN(a)) - Number(Number.isNaN(b));
    return b - a;
  });
  const ranks = new Float64Array(values.length);
  const same = (i: number, j: number) => values[i] === values[j] || (Number.isNaN(values[i]) && Number.isNaN(values[j]));
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && same(order[start], order[end])) end++;
    for (let k = start; k < end; k++) ranks[order[k]] = (start + 1 + end) / 2;
    start = end;
  }
  return ranks;
}

/** Mean of the values that are not NaN, and how many were. */
export function nanMean(values: ArrayLike<number>): { mean: number; undefinedCount: number } {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) continue;
    sum += values[i];
    count++;
  }
  return { mean: count === 0 ? Number.NaN : sum / count, undefinedCount: values.length - count };
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function meanStd(values: readonly number[]): MeanStd {
  const m = mean(values);
  const std = values.length < 2 ? Number.NaN : Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / (values.length - 1));
  return { mean: m, std };
}
