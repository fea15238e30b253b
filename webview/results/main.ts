// The results table: runs x (MSE, MAE, PCC(M), PCC(H)) as mean ± std over folds, grouped as the
// paper's ablation tables, the best of each column marked; clicking a run shows its folds;
// exports (the table as CSV or Markdown, a run as AnnData) go through the extension, which owns the file system.
import { parseResultsInbound, type ResultsInbound, type ResultsOutbound, type RunRowView } from '../../src/protocol/webviews';
import { baseStyles, button, el } from '../ui/controls';

interface VsCodeApi { postMessage(message: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;
const vscode = acquireVsCodeApi();
const post = <K extends keyof ResultsOutbound>(type: K, payload: ResultsOutbound[K]) => vscode.postMessage({ type, payload });

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');
const meanStd = (m: number, s: number) => `${fmt(m)} ± ${fmt(s)}`;

export function render(root: HTMLElement, data: ResultsInbound['results']): void {
  root.replaceChildren();
  root.append(el('h2', undefined, data.title), el('div', 'muted', data.root));
  const toolbar = el('div', 'toolbar');
  toolbar.append(button('Export CSV', () => post('export', { format: 'csv' }), { id: 'export-csv' }), button('Export Markdown', () => post('export', { format: 'markdown' }), { secondary: true, id: 'export-markdown' }));
  root.append(toolbar);
  if (data.rows.length === 0) root.append(el('p', undefined, 'No cross-validation results (results.json) in this folder yet.'));

  const table = el('table', 'results');
  const head = el('tr');
  head.append(el('th', undefined, 'model'), el('th', undefined, 'mode'), el('th', 'num', 'folds'), ...data.columns.map((c, i) => el('th', 'num', `${c} ${data.better[i] === 'lower' ? '↓' : '↑'}`)), el('th'));
  table.append(head);
  const detail = el('div', 'detail');
  let group = '';
  data.rows.forEach((r, i) => {
    if (r.group !== group) {
      group = r.group;
      const g = el('tr', 'group');
      const td = el('td', undefined, group);
      td.colSpan = 4 + data.columns.length;
      g.append(td);
      table.append(g);
    }
    const tr = el('tr', 'run');
    tr.dataset.index = String(i);
    tr.title = r.description;
    tr.append(el('td', undefined, r.label + (r.aborted ? ' (stopped early)' : '')), el('td', undefined, r.mode), el('td', 'num', String(r.perFold.length)));
    r.values.forEach((v, c) => tr.append(el('td', data.best[c] === i ? 'num best' : 'num', meanStd(v.mean, v.std))));
    // The run's predictions as AnnData; the extension asks where to write it.
    const action = el('td', 'action');
    action.append(button('Export .h5ad', () => post('exportH5ad', { dir: r.dir }), { secondary: true, id: `export-h5ad-${i}` }));
    action.addEventListener('click', (e) => e.stopPropagation()); // the button, not a drill-down
    tr.append(action);
    tr.addEventListener('click', () => {
      table.querySelectorAll('tr.selected').forEach((x) => x.classList.remove('selected'));
      tr.classList.add('selected');
      showFolds(detail, r, data.columns);
    });
    table.append(tr);
  });
  root.append(table, detail);
  if (data.problems.length) {
    root.append(el('h3', undefined, 'Not read'));
    for (const p of data.problems) root.append(el('div', 'problem', p));
  }
  post('rendered', { rows: data.rows.length, best: data.best });
}

function showFolds(detail: HTMLElement, r: RunRowView, columns: string[]): void {
  detail.replaceChildren(el('h3', undefined, `${r.label}: per fold`), el('div', 'muted', `${r.description} (${r.folds}, ${r.dir})`));
  const t = el('table', 'folds');
  const head = el('tr');
  head.append(el('th', undefined, 'fold'), el('th', 'num', 'test slides'), ...columns.map((c) => el('th', 'num', c)));
  t.append(head);
  for (const f of r.perFold) {
    const tr = el('tr');
    tr.append(el('td', undefined, String(f.fold)), el('td', 'num', String(f.slides)), ...f.values.map((v) => el('td', 'num', fmt(v))));
    t.append(tr);
  }
  detail.append(t);
}

baseStyles('td.action { padding: 2px 4px; } td.action vscode-button::part(control) { white-space: nowrap; }');
const root = document.getElementById('root') ?? document.body;
window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const message = parseResultsInbound(event.data);
  if (!message) {
    console.warn('results table: ignored a malformed message', event.data);
    return;
  }
  render(root, message.payload);
});
post('ready', {});
