import { bestPerColumn, type MeanStd } from '../../protocol/outputs';

/**
 * The paper's Table 1 layout: TRIPLEX, its single-view models and the five published models,
 * grouped by the image context each one sees. Our reading of the grouping: a spot's own crop
 * (with exemplars or a reference database drawn by it) is Local; the neighbour view's 5x5 tiles
 * around the spot are local context too; whole-slide attention over every spot is Global;
 * Hist2ST's per-spot convolutions, slide attention and spot graph together are Local+Global;
 * TRIPLEX's three views are Multiple. Light (no TF.js): the extension reads it.
 */

export type Table1Group = 'Local' | 'Global' | 'Local+Global' | 'Multiple';
export const TABLE1_GROUPS: readonly Table1Group[] = ['Local', 'Global', 'Local+Global', 'Multiple'];

/** Every model of the comparison, in Table 1's order (groups in order, then models). */
export const BENCHMARK_MODELS = ['stnet', 'egn', 'bleep', 'tem', 'nem', 'histogene', 'gem', 'hist2st', 'triplex'] as const;
export type BenchmarkModel = (typeof BENCHMARK_MODELS)[number];

const GROUP: Record<BenchmarkModel, Table1Group> = {
  stnet: 'Local', egn: 'Local', bleep: 'Local', tem: 'Local', nem: 'Local',
  histogene: 'Global', gem: 'Global',
  hist2st: 'Local+Global',
  triplex: 'Multiple',
};

const LABEL: Record<BenchmarkModel, string> = {
  stnet: 'ST-Net', egn: 'EGN', bleep: 'BLEEP', tem: 'TEM', nem: 'NEM', histogene: 'HisToGene', gem: 'GEM', hist2st: 'Hist2ST', triplex: 'TRIPLEX',
};

export const isBenchmarkModel = (m: string): m is BenchmarkModel => (BENCHMARK_MODELS as readonly string[]).includes(m);
export const table1Group = (m: BenchmarkModel): Table1Group => GROUP[m];
export const modelLabel = (m: BenchmarkModel): string => LABEL[m];

/** One row of the table: a model's four metrics as mean and sample std over folds. */
export interface Table1Row {
  model: BenchmarkModel;
  /** [MSE, MAE, PCC(M), PCC(H)]. */
  values: MeanStd[];
  folds: number;
}

export const TABLE1_COLUMNS = ['MSE', 'MAE', 'PCC(M)', 'PCC(H)'] as const;
export const TABLE1_BETTER = ['lower', 'lower', 'higher', 'higher'] as const;

/** Rows in Table 1's order. */
export const orderRows = (rows: readonly Table1Row[]): Table1Row[] => [...rows].sort((a, b) => BENCHMARK_MODELS.indexOf(a.model) - BENCHMARK_MODELS.indexOf(b.model));

/** Index (into the ordered rows) of the best row of each column. */
export const table1Best = (rows: readonly Table1Row[]): number[] => bestPerColumn(orderRows(rows), TABLE1_BETTER);

/** A cell: mean ± std to 3 decimals, n/a where undefined (Table 2 formats its cells the same way). */
export const fmt = ({ mean, std }: MeanStd) => (Number.isFinite(mean) ? `${mean.toFixed(3)} ± ${Number.isFinite(std) ? std.toFixed(3) : 'n/a'}` : 'n/a');

/** The table as Markdown: one row per model under its group, the best of each column in bold. */
export function table1Markdown(rows: readonly Table1Row[], caption: string): string {
  const ordered = orderRows(rows);
  const best = table1Best(rows);
  const lines = [`| group | model | ${TABLE1_COLUMNS.join(' | ')} | folds |`, `|---|---|${TABLE1_COLUMNS.map(() => '---:').join('|')}|---:|`];
  let group = '';
  ordered.forEach((r, i) => {
    const g = table1Group(r.model);
    const cells = r.values.map((v, c) => (best[c] === i ? `**${fmt(v)}**` : fmt(v)));
    lines.push(`| ${g === group ? '' : g} | ${modelLabel(r.model)} | ${cells.join(' | ')} | ${r.folds} |`);
    group = g;
  });
  return [...lines, '', caption].join('\n') + '\n';
}

/** The table as CSV: group, model, each metric's mean and std, folds, best marks. */
export function table1Csv(rows: readonly Table1Row[]): string {
  const ordered = orderRows(rows);
  const best = table1Best(rows);
  const header = ['group', 'model', ...TABLE1_COLUMNS.flatMap((c) => [`${c} mean`, `${c} std`]), 'folds', 'best in'];
  const num = (v: number) => (Number.isFinite(v) ? String(v) : '');
  const body = ordered.map((r, i) => [
    table1Group(r.model), modelLabel(r.model), ...r.values.flatMap((v) => [num(v.mean), num(v.std)]), String(r.folds),
    TABLE1_COLUMNS.filter((_, c) => best[c] === i).join(' '),
  ].join(','));
  return [header.join(','), ...body].join('\n') + '\n';
}
