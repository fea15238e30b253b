import { bestPerColumn, type MeanStd } from '../../protocol/outputs';
import { fmt, TABLE1_BETTER, TABLE1_COLUMNS } from './table1';

/**
 * The paper's Table 2 layout (external validation): one column group per test section, each with
 * MSE, MAE, PCC(M) and PCC(H); one row per model or run, mean ± sd over its folds, or one ensemble
 * of them. Cells are formatted as Table 1's.
 */

export interface Table2Row {
  model: string;
  /** Fold models the row comes from (their mean ± sd, or the ensemble of them). */
  folds: number;
  ensemble: boolean;
  /** Per test section: [MSE, MAE, PCC(M), PCC(H)]. */
  sections: { section: string; values: MeanStd[] }[];
}

export const TABLE2_COLUMNS = TABLE1_COLUMNS;

/** The test sections of the rows, in first-seen order. */
export const table2Sections = (rows: readonly Table2Row[]): string[] => [...new Set(rows.flatMap((r) => r.sections.map((s) => s.section)))];

const cellsOf = (row: Table2Row, section: string): MeanStd[] =>
  row.sections.find((s) => s.section === section)?.values ?? TABLE2_COLUMNS.map(() => ({ mean: Number.NaN, std: Number.NaN }));

const rowLabel = (r: Table2Row) => `${r.model} (${r.ensemble ? `ensemble of ${r.folds} folds` : `${r.folds} fold${r.folds === 1 ? '' : 's'}`})`;

/** Per section, the best row of each metric (only when there are rows to compare). */
function bestOf(rows: readonly Table2Row[], section: string): number[] {
  return rows.length < 2 ? TABLE2_COLUMNS.map(() => -1) : bestPerColumn(rows.map((r) => ({ values: cellsOf(r, section) })), TABLE1_BETTER);
}

const CAPTION = (rows: readonly Table2Row[]) => rows.some((r) => !r.ensemble)
  ? 'mean ± sample standard deviation (n - 1) over the run\'s fold models; PCC(H) over the training run\'s highly predictive genes'
  : 'one ensemble (mean of the fold models\' predictions); PCC(H) over the training run\'s highly predictive genes';

/** The table as plain text for the terminal: a header line per section group, then one line per row. */
export function table2Text(rows: readonly Table2Row[]): string {
  const sections = table2Sections(rows);
  const body = rows.map((r) => [rowLabel(r), ...sections.flatMap((s) => cellsOf(r, s).map(fmt))]);
  const metrics = ['model', ...sections.flatMap(() => [...TABLE2_COLUMNS])];
  const widths = metrics.map((h, c) => Math.max(h.length, ...body.map((r) => r[c].length)));
  const group = (cells: string[]) => [cells[0].padEnd(widths[0]), ...sections.map((_, k) => cells.slice(1 + 4 * k, 5 + 4 * k).map((x, j) => x.padStart(widths[1 + 4 * k + j])).join('  '))].join(' | ');
  const groupWidth = (k: number) => widths.slice(1 + 4 * k, 5 + 4 * k).reduce((a, w) => a + w, 0) + 6;
  const titles = [''.padEnd(widths[0]), ...sections.map((s, k) => s.padEnd(groupWidth(k)))].join(' | ');
  return [titles.trimEnd(), group(metrics), ...body.map(group), CAPTION(rows)].join('\n');
}

/** The table as Markdown: a column per section and metric ("C1 PCC(M)"), the best of each column in bold. */
export function table2Markdown(rows: readonly Table2Row[], caption = ''): string {
  const sections = table2Sections(rows);
  const best = sections.map((s) => bestOf(rows, s));
  const header = ['model', ...sections.flatMap((s) => TABLE2_COLUMNS.map((c) => `${s} ${c}`))];
  const lines = [`| ${header.join(' | ')} |`, `|---|${header.slice(1).map(() => '---:').join('|')}|`];
  rows.forEach((r, i) => {
    const cells = sections.flatMap((s, k) => cellsOf(r, s).map((v, c) => (best[k][c] === i ? `**${fmt(v)}**` : fmt(v))));
    lines.push(`| ${rowLabel(r)} | ${cells.join(' | ')} |`);
  });
  return [...lines, '', `${caption}${caption ? '; ' : ''}${CAPTION(rows)}`].join('\n') + '\n';
}

/** The table as CSV: model, folds, ensemble, then per section and metric its mean and std. */
export function table2Csv(rows: readonly Table2Row[]): string {
  const sections = table2Sections(rows);
  const quote = (x: string) => (/[",\n]/.test(x) ? `"${x.replace(/"/g, '""')}"` : x);
  const num = (v: number) => (Number.isFinite(v) ? String(v) : '');
  const header = ['model', 'folds', 'ensemble', ...sections.flatMap((s) => TABLE2_COLUMNS.flatMap((c) => [`${s} ${c} mean`, `${s} ${c} std`]))];
  const body = rows.map((r) => [quote(r.model), String(r.folds), String(r.ensemble), ...sections.flatMap((s) => cellsOf(r, s).flatMap((v) => [num(v.mean), num(v.std)]))].join(','));
  return [header.map(quote).join(','), ...body].join('\n') + '\n';
}
