import * as fs from 'node:fs';
import * as path from 'node:path';
import { VARIANTS } from '../models/triplexConfig';
import { bestPerColumn } from '../../protocol/outputs';
import type { RunSummary } from '../../protocol/webviews';
import type { MeanStd } from './metrics';
import { BENCHMARK_MODELS, isBenchmarkModel, table1Group, type BenchmarkModel } from './table1';

/**
 * The results of cross-validation runs (each run folder's results.json, written by
 * `crossValidate`), gathered for comparison: one row per run, the paper's four metrics as mean
 * ± std over folds, the folds themselves for drill-down, and exports as CSV and Markdown.
 * Light (no TF.js), so the extension host can read runs directly.
 */

export const METRICS = ['MSE', 'MAE', 'PCC(M)', 'PCC(H)'] as const;
export const BETTER = ['lower', 'lower', 'higher', 'higher'] as const;
type Key = 'mse' | 'mae' | 'pccM' | 'pccH';
const KEYS: readonly Key[] = ['mse', 'mae', 'pccM', 'pccH'];

export type RunRow = RunSummary;
export type FoldRow = RunSummary['perFold'][number];

export interface RunResults { rows: RunRow[]; problems: string[] }

interface ResultsFile {
  variant?: string; mode?: string; folds?: string; description?: string; aborted?: boolean;
  summary?: Record<Key, { mean: number | null; std: number | null }>;
  perFold?: ({ fold: number; slides: number } & Record<Key, number | null>)[];
}

const num = (v: number | null | undefined) => (typeof v === 'number' ? v : Number.NaN);

/** Reads one run folder's results.json; the error names the file and what is wrong. */
export function readRunResults(file: string): RunRow {
  let raw: ResultsFile;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as ResultsFile;
  } catch (err) {
    throw new Error(`${file}: not a readable results.json (${(err as Error).message})`, { cause: err });
  }
  if (typeof raw.variant !== 'string' || !raw.summary || !Array.isArray(raw.perFold)) {
    throw new Error(`${file}: not the results of a TRIPLEX cross-validation run (no variant, summary or perFold)`);
  }
  const variant = VARIANTS.find((v) => v.name === raw.variant);
  return {
    variant: raw.variant,
    group: groupOf(raw.variant, path.dirname(file)),
    description: raw.description ?? variant?.description ?? '',
    mode: raw.mode ?? 'frozen',
    folds: raw.folds ?? 'lopo',
    dir: path.dirname(file),
    values: KEYS.map((k) => ({ mean: num(raw.summary?.[k]?.mean), std: num(raw.summary?.[k]?.std) })),
    perFold: raw.perFold.map((f) => ({ fold: f.fold, slides: f.slides, values: KEYS.map((k) => num(f[k])) })),
    aborted: raw.aborted === true,
  };
}

/**
 * Every run under `root` (the folder itself, or runs up to `depth` levels below), in the order
 * of the paper's tables (TRIPLEX, single views, views left out, position encoding, fusion, loss),
 * then by name. Unreadable files are listed as problems, not fatal.
 */
export function findRunResults(root: string, depth = 3): RunResults {
  const files: string[] = [];
  const walk = (dir: string, level: number) => {
    // A benchmark folder's own results.json is its Table 1, not a run: its runs are the folders below.
    if (fs.existsSync(path.join(dir, 'results.json')) && !fs.existsSync(path.join(dir, 'benchmark.json'))) files.push(path.join(dir, 'results.json'));
    if (level >= depth) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory() && !entry.name.startsWith('.') && !/^fold-\d+$/.test(entry.name)) walk(path.join(dir, entry.name), level + 1);
    }
  };
  if (!fs.existsSync(root)) throw new Error(`${root} does not exist`);
  walk(root, 0);
  const rows: RunRow[] = [];
  const problems: string[] = [];
  for (const f of files) {
    try {
      rows.push(readRunResults(f));
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  const order = (r: RunRow) => {
    // A benchmark's runs in Table 1's order; otherwise the ablation tables' order, the published models after.
    if (inBenchmark(r.dir) && isBenchmarkModel(r.variant)) return BENCHMARK_MODELS.indexOf(r.variant);
    const i = VARIANTS.findIndex((v) => v.name === r.variant);
    return BENCHMARK_MODELS.length + (i < 0 ? VARIANTS.length + BENCHMARK_MODELS.indexOf(r.variant as BenchmarkModel) : i);
  };
  // Each row's place worked out once (it looks for benchmark.json on disk), not at every comparison.
  const place = new Map(rows.map((r) => [r, order(r)]));
  rows.sort((a, b) => place.get(a)! - place.get(b)! || a.variant.localeCompare(b.variant) || a.dir.localeCompare(b.dir));
  return { rows, problems };
}

/** Whether a run folder is a model's cell of a `triplex benchmark` (its parent holds benchmark.json). */
const inBenchmark = (dir: string): boolean => fs.existsSync(path.join(path.dirname(dir), 'benchmark.json'));

/**
 * A run's group in tables: Table 1's (Local, Global, Local+Global, Multiple) for a benchmark's
 * cells and for the published models; the ablation tables' (model, views, ...) for TRIPLEX's variants.
 */
function groupOf(variant: string, dir: string): string {
  if (isBenchmarkModel(variant) && (inBenchmark(dir) || !VARIANTS.some((v) => v.name === variant))) return table1Group(variant);
  return VARIANTS.find((v) => v.name === variant)?.group ?? 'other';
}

/** Row index of the best mean per metric (-1 when none is defined). */
export const bestRowPerMetric = (rows: readonly RunRow[]): number[] => bestPerColumn(rows, BETTER);

/** The label of a run in tables: its variant, and its mode and fold scheme when they differ from the others'. */
export function runLabel(row: RunRow, rows: readonly RunRow[]): string {
  const extras: string[] = [];
  if (new Set(rows.map((r) => r.mode)).size > 1) extras.push(row.mode);
  if (new Set(rows.map((r) => r.folds)).size > 1) extras.push(row.folds);
  if (rows.filter((r) => r.variant === row.variant && r.mode === row.mode && r.folds === row.folds).length > 1) extras.push(path.basename(row.dir));
  return extras.length ? `${row.variant} (${extras.join(', ')})` : row.variant;
}

const fixed = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '');

/** One line per run: variant, group, mode, folds, then mean and std of each metric, then fold count. */
export function resultsCsv(rows: readonly RunRow[]): string {
  const header = ['variant', 'group', 'mode', 'folds', ...METRICS.flatMap((m) => [`${m} mean`, `${m} std`]), 'n folds', 'run'];
  const quote = (s: string) => (/[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
  const lines = rows.map((r) => [r.variant, r.group, r.mode, r.folds, ...r.values.flatMap((v) => [fixed(v.mean), fixed(v.std)]), String(r.perFold.length), r.dir].map(quote).join(','));
  return [header.map(quote).join(','), ...lines].join('\n') + '\n';
}

/** A Markdown table as in the paper: mean ± std, the best of each column in bold. */
export function resultsMarkdown(rows: readonly RunRow[]): string {
  const best = bestRowPerMetric(rows);
  const cell = (v: MeanStd) => (Number.isFinite(v.mean) ? `${v.mean.toFixed(3)} ± ${Number.isFinite(v.std) ? v.std.toFixed(3) : 'n/a'}` : 'n/a');
  const header = `| model | ${METRICS.map((m, i) => `${m} ${BETTER[i] === 'lower' ? '↓' : '↑'}`).join(' | ')} |`;
  const rule = `|---|${METRICS.map(() => '---:').join('|')}|`;
  const lines = rows.map((r, i) => `| ${runLabel(r, rows).replace(/\|/g, '\\|')} | ${r.values.map((v, c) => (best[c] === i ? `**${cell(v)}**` : cell(v))).join(' | ')} |`);
  return [header, rule, ...lines].join('\n') + '\n';
}
