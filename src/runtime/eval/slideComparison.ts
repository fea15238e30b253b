import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringColumn } from '../store/arrow';
import { openDatasetStore } from '../store/datasetStore';
import { readPredictions } from '../store/predictions';
import type { ComparisonPanels, ViewerInbound } from '../../protocol/webviews';
import { slideMetrics } from './metrics';
import { BENCHMARK_MODELS, isBenchmarkModel, modelLabel } from './table1';

/**
 * The paper's Figure 2 as data: for one section, the truth and each model's held-out prediction
 * (from the fold of each cross-validation run whose test set holds the section), and each
 * model's PCC per gene over the section's spots, computed by metrics.ts's `slideMetrics` (the
 * number the run scored that slide with). Light (no TF.js, no vscode): the extension reads it.
 */

/** A cross-validation run folder (`triplex cv`, or one model of `triplex benchmark`). */
export interface ComparisonRun {
  dir: string;
  /** The variant or baseline it trained (results.json's `variant`, else the folder's name). */
  model: string;
  /** Table 1's name for the benchmark's models, the variant otherwise; unique among the runs. */
  label: string;
}

interface RunFile {
  variant?: string;
  store?: string;
  training?: { fold?: number; test?: string[] }[];
}

const FOLD_DIR = /^fold-(\d+)$/;

function readJson<T>(file: string): T | undefined {
  if (!fs.existsSync(file)) return undefined;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (err) {
    throw new Error(`${file}: not readable JSON (${(err as Error).message})`, { cause: err });
  }
}

/** fold-<k>/predictions.arrow files of a run folder, by fold index. */
function foldFiles(dir: string): { fold: number; file: string }[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) return [];
  return fs.readdirSync(dir)
    .map((name) => ({ m: FOLD_DIR.exec(name), file: path.join(dir, name, 'predictions.arrow') }))
    .filter((e): e is { m: RegExpExecArray; file: string } => e.m !== null && fs.existsSync(e.file))
    .map((e) => ({ fold: Number(e.m[1]), file: e.file }))
    .sort((a, b) => a.fold - b.fold);
}

const isRun = (dir: string) => foldFiles(dir).length > 0;

/**
 * The runs to compare: a benchmark folder stands for its models' runs (`<dir>/<model>/`, in
 * Table 1's order, then other runs by name); a run folder stands for itself.
 */
export function comparisonRuns(folders: readonly string[]): ComparisonRun[] {
  const dirs: string[] = [];
  for (const folder of folders) {
    if (!fs.existsSync(folder)) throw new Error(`${folder} does not exist`);
    if (isRun(folder)) {
      dirs.push(folder);
      continue;
    }
    const rank = (name: string) => (isBenchmarkModel(name) ? BENCHMARK_MODELS.indexOf(name) : BENCHMARK_MODELS.length);
    const inside = fs.readdirSync(folder, { withFileTypes: true })
      .filter((e) => e.isDirectory() && isRun(path.join(folder, e.name)))
      .map((e) => e.name)
      .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    if (inside.length === 0) {
      throw new Error(`${folder} is neither a run folder (fold-<k>/predictions.arrow) nor a benchmark folder (<model>/fold-<k>/predictions.arrow); run \`triplex cv\` or \`triplex benchmark\` first`);
    }
    dirs.push(...inside.map((name) => path.join(folder, name)));
  }
  const runs = dirs.map((dir) => {
    const model = readJson<RunFile>(path.join(dir, 'results.json'))?.variant ?? path.basename(dir);
    return { dir, model, label: isBenchmarkModel(model) ? modelLabel(model) : model };
  });
  // Two runs of one model (say, two benchmarks) are told apart by their folders.
  const count = new Map<string, number>();
  for (const r of runs) count.set(r.label, (count.get(r.label) ?? 0) + 1);
  return runs.map((r) => ((count.get(r.label) ?? 0) > 1 ? { ...r, label: `${r.label} (${path.basename(path.dirname(r.dir))}/${path.basename(r.dir)})` } : r));
}

/** The store the runs were trained on, as their results.json or benchmark.json records it (when it still exists). */
export function storeOfRuns(runs: readonly ComparisonRun[]): string | undefined {
  for (const r of runs) {
    for (const file of [path.join(r.dir, 'results.json'), path.join(path.dirname(r.dir), 'benchmark.json')]) {
      const store = readJson<RunFile>(file)?.store;
      if (store && fs.existsSync(path.join(store, 'store.json'))) return store;
    }
  }
  return undefined;
}

/**
 * The fold of a run whose test set holds `section`, and its predictions file: from results.json's
 * record of each fold's test sections, else by reading the folds' predictions (a run that
 * has not finished yet).
 */
export function foldTesting(run: ComparisonRun, section: string): { fold: number; file: string } | undefined {
  const files = foldFiles(run.dir);
  const training = readJson<RunFile>(path.join(run.dir, 'results.json'))?.training ?? [];
  const recorded = training.find((t) => t.test?.includes(section))?.fold;
  const known = files.find((f) => f.fold === recorded);
  if (known) return known;
  return files.find((f) => readPredictions(f.file).sections.has(section));
}

/** The sections a run predicted (held out), from results.json or else its predictions files. */
export function sectionsPredicted(run: ComparisonRun): Set<string> {
  const training = readJson<RunFile>(path.join(run.dir, 'results.json'))?.training;
  if (training?.length) return new Set(training.flatMap((t) => t.test ?? []));
  return new Set(foldFiles(run.dir).flatMap((f) => [...readPredictions(f.file).sections.keys()]));
}

export interface ModelOnSlide {
  run: ComparisonRun;
  fold: number;
  file: string;
  /** [spots, genes] in the comparison's genes and spot order. */
  values: Float32Array;
  /** [genes]: PCC over the section's spots; NaN where undefined (a constant series) or not computable. */
  pcc: Float64Array;
  /** Why the PCCs could not be computed (a non-finite prediction), if so. */
  problem?: string;
}

export interface SlideComparison {
  store: string;
  section: string;
  /** The section's spots, in the store's order. */
  spotIds: string[];
  /** The store's genes that every compared model predicts, in the store's order. */
  genes: string[];
  /** [spots, genes]: the store's normalised expression. */
  truth: Float32Array;
  models: ModelOnSlide[];
  /** Runs left out, and why (no fold of theirs tests the section). */
  missing: { run: ComparisonRun; reason: string }[];
}

/** Gathers the truth and every run's held-out prediction of one section. */
export function compareOnSlide(storeDir: string, runs: readonly ComparisonRun[], section: string): SlideComparison {
  const store = openDatasetStore(storeDir);
  if (!store.hasCounts) throw new Error(`${storeDir} has no counts: a comparison needs the truth; choose the store the runs were trained on`);
  const rows = store.rowsOf(section);
  if (rows.length === 0) throw new Error(`${storeDir}: no section '${section}'; it has ${store.manifest.sections.map((s) => s.id).join(', ')}`);
  const allIds = stringColumn(store.spots, 'spot_id');
  const spotIds = rows.map((r) => allIds[r]);

  const missing: SlideComparison['missing'] = [];
  const found = runs.flatMap((run) => {
    const fold = foldTesting(run, section);
    if (!fold) {
      missing.push({ run, reason: `no fold of ${run.dir} tests ${section}` });
      return [];
    }
    const p = readPredictions(fold.file);
    const spots = p.sections.get(section);
    if (!spots) throw new Error(`${fold.file}: no predictions of section ${section}, though ${run.dir}/results.json lists it in fold ${fold.fold}'s test set`);
    return [{ run, ...fold, genes: p.genes, spots }];
  });
  if (found.length === 0) throw new Error(`no run predicts section ${section}: ${missing.map((m) => m.reason).join('; ')}`);

  const genes = store.genes.filter((g) => found.every((f) => f.genes.includes(g)));
  if (genes.length === 0) throw new Error(`the runs predict none of ${storeDir}'s genes (were they trained on another store?)`);
  const G = genes.length;
  const all = store.values();
  const storeG = store.genes.length;
  const storeCol = genes.map((g) => store.genes.indexOf(g));
  const truth = new Float32Array(rows.length * G);
  rows.forEach((r, k) => storeCol.forEach((c, g) => { truth[k * G + g] = all[r * storeG + c]; }));

  const models = found.map(({ run, fold, file, genes: predicted, spots }) => {
    const at = new Map(spots.spotIds.map((id, i) => [id, i]));
    const width = predicted.length;
    const col = genes.map((g) => predicted.indexOf(g));
    const values = new Float32Array(rows.length * G);
    spotIds.forEach((id, k) => {
      const i = at.get(id);
      if (i === undefined) throw new Error(`${file}: no prediction for spot '${id}' of section '${section}'; was it made from another store than ${storeDir}?`);
      col.forEach((c, g) => { values[k * G + g] = spots.values[i * width + c]; });
    });
    try {
      return { run, fold, file, values, pcc: slideMetrics(values, truth, rows.length, genes).pccPerGene };
    } catch (err) {
      return { run, fold, file, values, pcc: new Float64Array(G).fill(Number.NaN), problem: `${run.label}: ${(err as Error).message}` };
    }
  });
  return { store: storeDir, section, spotIds, genes, truth, models, missing };
}

/** One colour scale for every panel, and how it was chosen (for the legend). */
export interface ColourScale { lo: number; hi: number; rule: string }

/** The q-th percentile (0..100) by linear interpolation between order statistics (numpy's default). */
export function percentile(values: ArrayLike<number>, q: number): number {
  const sorted = Float64Array.from(values).filter(Number.isFinite).sort();
  if (sorted.length === 0) return Number.NaN;
  const pos = (q / 100) * (sorted.length - 1);
  const k = Math.floor(pos);
  return k + 1 < sorted.length ? sorted[k] + (sorted[k + 1] - sorted[k]) * (pos - k) : sorted[k];
}

/**
 * The truth's 1st to 99th percentile on the section: the models are judged against the truth's
 * range, a few extreme spots do not wash the rest out, and values beyond it are drawn at its
 * ends. A truth constant over the section falls back to the range of every panel.
 */
export function sharedScale(truth: ArrayLike<number>, predictions: readonly ArrayLike<number>[]): ColourScale {
  const lo = percentile(truth, 1);
  const hi = percentile(truth, 99);
  if (hi > lo) return { lo, hi, rule: "the truth's 1st to 99th percentile on this section, shared by every panel; values beyond are drawn at the ends" };
  let min = Infinity;
  let max = -Infinity;
  for (const vs of [truth, ...predictions]) for (let i = 0; i < vs.length; i++) if (Number.isFinite(vs[i])) { min = Math.min(min, vs[i]); max = Math.max(max, vs[i]); }
  if (!(max > min)) return { lo: Number.isFinite(min) ? min : 0, hi: Number.isFinite(min) ? min + 1 : 1, rule: 'every panel is constant' };
  return { lo: min, hi: max, rule: 'the truth is constant on this section: the range of every panel, shared' };
}

/** One gene of a comparison, as the viewer shows it. */
export interface GeneComparison {
  gene: string;
  /** [spots]. */
  truth: Float32Array;
  models: { label: string; fold: number; prediction: Float32Array; pcc: number; problem?: string }[];
  scale: ColourScale;
}

export function geneComparison(c: SlideComparison, gene: string): GeneComparison {
  const g = c.genes.indexOf(gene);
  if (g < 0) throw new Error(`gene ${gene} is not compared on ${c.section}; the runs and the store share ${c.genes.length} genes`);
  const G = c.genes.length;
  const column = (a: Float32Array) => Float32Array.from({ length: c.spotIds.length }, (_, k) => a[k * G + g]);
  const truth = column(c.truth);
  const models = c.models.map((m) => ({ label: m.run.label, fold: m.fold, prediction: column(m.values), pcc: m.pcc[g], ...(m.problem ? { problem: m.problem } : {}) }));
  return { gene, truth, models, scale: sharedScale(truth, models.map((m) => m.prediction)) };
}

/** The slide viewer's panels of a comparison: each model's label and fold, and the runs left out. */
export function viewerPanels(c: SlideComparison): ComparisonPanels {
  return { panels: c.models.map((m) => ({ label: m.run.label, fold: m.fold })), left: c.missing.map((m) => `${m.run.label} (${m.reason})`) };
}

/** One gene of a comparison as the slide viewer's `values` message (an undefined PCC as null: messages travel as JSON). */
export function viewerValues(c: SlideComparison, gene: string): ViewerInbound['values'] {
  const v = geneComparison(c, gene);
  return {
    gene, truth: [...v.truth],
    compare: { scale: v.scale, panels: v.models.map((m) => ({ prediction: [...m.prediction], pcc: Number.isFinite(m.pcc) ? m.pcc : null, ...(m.problem ? { problem: m.problem } : {}) })) },
  };
}
