import type { Cell, TablePayload } from '../../src/protocol/outputs';
import { el } from '../ui/dom';

export const PAGE_ROWS = 25;

export function formatCell(v: Cell): string {
  if (v === null) return '';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : Math.abs(v) >= 1e-3 && Math.abs(v) < 1e6 ? v.toFixed(4).replace(/\.?0+$/, '') : v.toPrecision(4);
  return String(v);
}

/** A table, a page of rows at a time, with the column types under the names. */
export function renderTable(root: HTMLElement, t: TablePayload): void {
  if (t.title) root.append(el('div', 'title', t.title));
  const numeric = t.columns.map((_, c) => t.rows.every((r) => r[c] === null || typeof r[c] === 'number'));
  const table = el('table');
  const head = el('tr');
  t.columns.forEach((col, c) => {
    const th = el('th', numeric[c] ? 'num' : undefined, col.name);
    th.append(el('span', 'type', col.type));
    head.append(th);
  });
  table.append(el('thead'), el('tbody'));
  table.tHead?.append(head);
  const scroll = el('div', 'scroll');
  scroll.append(table);
  root.append(scroll);

  const pages = Math.max(1, Math.ceil(t.rows.length / PAGE_ROWS));
  let page = 0;
  const pager = el('div', 'pager');
  const prev = el('button', undefined, '‹ Previous');
  const next = el('button', undefined, 'Next ›');
  const info = el('span');
  pager.append(prev, info, next);
  root.append(pager);

  const show = () => {
    const body = table.tBodies[0];
    body.replaceChildren(...t.rows.slice(page * PAGE_ROWS, (page + 1) * PAGE_ROWS).map((r) => {
      const tr = el('tr');
      r.forEach((v, c) => tr.append(el('td', numeric[c] ? 'num' : undefined, formatCell(v))));
      return tr;
    }));
    const first = page * PAGE_ROWS + 1;
    const last = Math.min(t.rows.length, (page + 1) * PAGE_ROWS);
    const cut = t.totalRows > t.rows.length ? ` (first ${t.rows.length} of ${t.totalRows} kept)` : '';
    info.textContent = t.rows.length ? `rows ${first}-${last} of ${t.rows.length}${cut}, page ${page + 1}/${pages}` : 'no rows';
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  prev.addEventListener('click', () => { page = Math.max(0, page - 1); show(); });
  next.addEventListener('click', () => { page = Math.min(pages - 1, page + 1); show(); });
  show();
}
