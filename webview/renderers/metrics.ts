import { bestPerColumn, type MetricsPayload } from '../../src/protocol/outputs';
import { el } from '../ui/dom';

/** Index of the best row per column (lowest or highest mean; NaN never wins). */
export const bestRows = (p: MetricsPayload): number[] => bestPerColumn(p.rows, p.better);

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');

/** Models x metrics as mean ± std over folds, the best of each column marked. */
export function renderMetrics(root: HTMLElement, p: MetricsPayload): void {
  root.append(el('div', 'title', p.title));
  const best = bestRows(p);
  const table = el('table');
  const head = el('tr');
  head.append(el('th', undefined, 'model'), ...p.columns.map((c, i) => el('th', 'num', `${c} ${p.better[i] === 'lower' ? '↓' : '↑'}`)));
  table.append(head);
  p.rows.forEach((r, i) => {
    const tr = el('tr');
    tr.append(el('td', undefined, r.model));
    r.values.forEach((v, c) => {
      const td = el('td', best[c] === i ? 'num best' : 'num', `${fmt(v.mean)} ± ${fmt(v.std)}`);
      if (best[c] === i) td.title = 'best in this column';
      tr.append(td);
    });
    table.append(tr);
  });
  root.append(table);
}
