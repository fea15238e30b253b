import type { MetricsPayload } from '../../src/protocol/outputs';
import { el } from './theme';

/** Index of the best row per column (lowest or highest mean; NaN never wins). */
export function bestRows(p: MetricsPayload): number[] {
  return p.columns.map((_, c) => {
    let best = -1;
    p.rows.forEach((r, i) => {
      const v = r.values[c]?.mean;
      if (!Number.isFinite(v)) return;
      const b = best < 0 ? undefined : p.rows[best].values[c].mean;
      if (b === undefined || (p.better[c] === 'lower' ? v < b : v > b)) best = i;
    });
    return best;
  });
}

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
