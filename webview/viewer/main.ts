// The slide viewer: a section's H&E image, tiled, with its spots coloured by a gene's ground truth,
// prediction or error, panels side by side under one pan and zoom, the gene's PCC on the slide,
// pathologist annotations as an overlay, a searchable gene picker, hover values, and a clicked
// spot's crop and neighbour view. In comparison mode (init.compare), the truth and several models'
// predictions in a grid on one colour scale, each titled with its PCC (comparison.ts).
import { parseViewerInbound, type ViewerInbound, type ViewerOutbound } from '../../src/protocol/webviews';
import { baseStyles, button, checkbox, dropdown, el, textField } from '../ui/controls';
import { drawPanel, TileCache, type SpotLayer, type View } from './canvasView';
import { CATEGORIES, RED_BLUE, VIRIDIS } from './colormap';
import { gridColumns, hoverLines, panelNotes, panelTitles, panelValues, scaleCaption } from './comparison';

interface VsCodeApi { postMessage(message: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;
const vscode = acquireVsCodeApi();
const post = <K extends keyof ViewerOutbound>(type: K, payload: ViewerOutbound[K]) => vscode.postMessage({ type, payload });

type PanelKind = 'truth' | 'prediction' | 'error';
const TITLES: Record<PanelKind, string> = { truth: 'ground truth', prediction: 'prediction', error: 'error (prediction − truth)' };

interface State {
  init: ViewerInbound['init'];
  values?: ViewerInbound['values'];
  view: View;
  panels: PanelKind[];
  annotations: boolean;
  tiles?: TileCache;
  categories?: number[];
  labels: string[];
}

let state: State | undefined;
/** Until the user pans or zooms, the slide stays fitted to the panels (they resize as the page lays out). */
let userMoved = false;
let pendingSince = 0;
let frame = 0;

baseStyles(`
body { padding: 0; margin: 0; overflow: hidden; }
#root { display: flex; flex-direction: column; height: 100vh; }
.toolbar { padding: 6px 10px; margin: 0; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); }
.headline { font-weight: 600; margin-left: 8px; }
.panels { flex: 1; display: flex; gap: 4px; min-height: 0; }
.panels.grid { display: grid; }
.panel { flex: 1; position: relative; min-width: 0; min-height: 0; }
.panel canvas { width: 100%; height: 100%; display: block; cursor: grab; touch-action: none; }
.panel canvas.dragging { cursor: grabbing; }
.panel .label { position: absolute; left: 8px; top: 6px; padding: 2px 6px; background: var(--vscode-editor-background); opacity: 0.9; border-radius: 3px; }
.panel .scale { position: absolute; right: 8px; bottom: 8px; display: flex; gap: 4px; align-items: center; background: var(--vscode-editor-background); padding: 2px 6px; border-radius: 3px; font-size: 11px; }
.panel .scale canvas { width: 100px; height: 10px; cursor: default; }
#tooltip { position: fixed; pointer-events: none; background: var(--vscode-editorHoverWidget-background, #333); color: var(--vscode-editorHoverWidget-foreground, #fff);
  border: 1px solid var(--vscode-editorHoverWidget-border, #555); padding: 3px 6px; font-size: 12px; display: none; z-index: 2; white-space: pre; }
#detail { display: none; gap: 8px; padding: 6px 10px; border-top: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); align-items: flex-start; }
#detail img { height: 160px; image-rendering: auto; border: 1px solid var(--vscode-editorWidget-border, #888); }
.shared-scale { display: flex; gap: 6px; align-items: center; font-size: 11px; }
.shared-scale canvas { width: 160px; height: 10px; }
.legend { display: flex; gap: 10px; flex-wrap: wrap; font-size: 11px; }
.legend span::before { content: ''; display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 4px; border: 2px solid var(--c); }
.error { color: var(--vscode-errorForeground); padding: 6px 10px; }
`);

const root = document.getElementById('root') ?? document.body;
const tooltip = el('div');
tooltip.id = 'tooltip';
document.body.append(tooltip);

function valuesOf(kind: PanelKind): number[] | undefined {
  const v = state?.values;
  if (!v) return undefined;
  if (kind === 'truth') return v.truth;
  if (kind === 'prediction') return v.prediction;
  if (!v.truth || !v.prediction) return undefined;
  const t = v.truth;
  return v.prediction.map((p, i) => p - t[i]);
}

function range(values: number[][]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const vs of values) for (const v of vs) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return Number.isFinite(lo) ? [lo, hi] : [0, 1];
}

/** Truth and prediction share one colour range, so equal colours mean equal values; the error is symmetric around 0. */
function layers(): SpotLayer[] {
  const s = state as State;
  if (s.init.compare) {
    // Comparison: the range the extension chose (the truth's percentiles), the same for every panel.
    const scale = s.values?.compare?.scale ?? { lo: 0, hi: 1 };
    return panelValues(s.init.compare, s.values).map((values) => ({
      x: s.init.spots.x, y: s.init.spots.y, values, lo: scale.lo, hi: scale.hi, lut: VIRIDIS, radius: s.init.spotDiameter / 2, categories: s.categories,
    }));
  }
  const shared = range(s.panels.filter((k) => k !== 'error').map(valuesOf).filter((v): v is number[] => !!v));
  return s.panels.map((kind) => {
    const values = valuesOf(kind);
    const extent = kind === 'error' && values ? Math.max(...range([values]).map(Math.abs)) || 1 : 0;
    return {
      x: s.init.spots.x, y: s.init.spots.y, values,
      lo: kind === 'error' ? -extent : shared[0], hi: kind === 'error' ? extent : shared[1],
      lut: kind === 'error' ? RED_BLUE : VIRIDIS,
      radius: s.init.spotDiameter / 2,
      categories: s.categories,
    };
  });
}

function draw(): void {
  frame = 0;
  if (!state) return;
  const ls = layers();
  document.querySelectorAll<HTMLCanvasElement>('canvas.slide').forEach((c, i) => {
    if (ls[i]) drawPanel(c, state!.view, state!.tiles, ls[i], state!.annotations);
  });
  document.querySelectorAll<HTMLElement>('.panel').forEach((p, i) => {
    const layer = ls[i];
    const lo = p.querySelector('.lo');
    const hi = p.querySelector('.hi');
    if (lo && hi && layer) {
      lo.textContent = layer.lo.toFixed(2);
      hi.textContent = layer.hi.toFixed(2);
    }
  });
  if (pendingSince && state.values) {
    post('rendered', { gene: state.values.gene, ms: performance.now() - pendingSince });
    pendingSince = 0;
  }
}

function schedule(): void {
  if (!frame) frame = requestAnimationFrame(draw);
}

/** The slide's extent in image pixels: the image, or the spots when there is none. */
function imageSize(init: ViewerInbound['init']): { width: number; height: number } {
  return { width: init.tiles?.width ?? Math.max(...init.spots.x) + init.spotDiameter, height: init.tiles?.height ?? Math.max(...init.spots.y) + init.spotDiameter };
}

/** Comparison panels in the grid that shows each slide largest. */
function layOut(row: HTMLElement): void {
  const s = state as State;
  if (!s.init.compare) return;
  const n = s.init.compare.panels.length + 1;
  const cols = gridColumns(n, { width: row.clientWidth || 1, height: row.clientHeight || 1 }, imageSize(s.init));
  row.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  row.style.gridTemplateRows = `repeat(${Math.ceil(n / cols)}, minmax(0, 1fr))`;
}

function fit(): void {
  const s = state as State;
  const canvas = document.querySelector<HTMLCanvasElement>('canvas.slide');
  if (!canvas) return;
  const { width: w, height: h } = imageSize(s.init);
  const scale = Math.min(canvas.clientWidth / w, canvas.clientHeight / h) * 0.98;
  s.view = { scale, tx: (canvas.clientWidth - w * scale) / 2, ty: (canvas.clientHeight - h * scale) / 2 };
}

/** Nearest spot under a screen point, within its radius (a grid of cells one diameter wide). */
let grid: Map<string, number[]> | undefined;
function spotAt(canvas: HTMLCanvasElement, clientX: number, clientY: number): number {
  const s = state as State;
  const rect = canvas.getBoundingClientRect();
  const ix = (clientX - rect.left - s.view.tx) / s.view.scale;
  const iy = (clientY - rect.top - s.view.ty) / s.view.scale;
  const d = s.init.spotDiameter;
  if (!grid) {
    grid = new Map();
    s.init.spots.x.forEach((x, i) => {
      const key = `${Math.floor(x / d)},${Math.floor(s.init.spots.y[i] / d)}`;
      grid?.set(key, [...(grid.get(key) ?? []), i]);
    });
  }
  const reach = Math.max(d / 2, 4 / s.view.scale);
  let best = -1;
  let bestD = reach * reach;
  const cx = Math.floor(ix / d);
  const cy = Math.floor(iy / d);
  for (let gx = cx - 1; gx <= cx + 1; gx++) {
    for (let gy = cy - 1; gy <= cy + 1; gy++) {
      for (const i of grid.get(`${gx},${gy}`) ?? []) {
        const dd = (s.init.spots.x[i] - ix) ** 2 + (s.init.spots.y[i] - iy) ** 2;
        if (dd <= bestD) { bestD = dd; best = i; }
      }
    }
  }
  return best;
}

function hoverText(i: number): string {
  const s = state as State;
  const lines = [s.init.spots.ids[i]];
  const fmt = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));
  if (s.init.compare) lines.push(...hoverLines(s.init.compare, s.values, i));
  else if (s.values?.truth) lines.push(`ground truth ${fmt(s.values.truth[i])}`);
  if (!s.init.compare && s.values?.prediction) lines.push(`prediction ${fmt(s.values.prediction[i])}`);
  if (!s.init.compare && s.values?.truth && s.values.prediction) lines.push(`error ${fmt(s.values.prediction[i] - s.values.truth[i])}`);
  const label = s.init.spots.labels[i];
  if (label) lines.push(`annotation: ${label}`);
  return lines.join('\n');
}

function wire(canvas: HTMLCanvasElement): void {
  let drag: { x: number; y: number; moved: boolean } | undefined;
  canvas.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, moved: false };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add('dragging');
  });
  canvas.addEventListener('pointermove', (e) => {
    const s = state;
    if (!s) return;
    if (drag) {
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      s.view.tx += dx;
      s.view.ty += dy;
      userMoved = true;
      drag.x = e.clientX;
      drag.y = e.clientY;
      tooltip.style.display = 'none';
      schedule();
      return;
    }
    const i = spotAt(canvas, e.clientX, e.clientY);
    if (i < 0) {
      tooltip.style.display = 'none';
      return;
    }
    tooltip.textContent = hoverText(i);
    tooltip.style.left = `${e.clientX + 14}px`;
    tooltip.style.top = `${e.clientY + 14}px`;
    tooltip.style.display = 'block';
  });
  canvas.addEventListener('pointerup', (e) => {
    canvas.classList.remove('dragging');
    if (drag && !drag.moved) {
      const i = spotAt(canvas, e.clientX, e.clientY);
      if (i >= 0) post('spotClicked', { spotId: (state as State).init.spots.ids[i] });
    }
    drag = undefined;
  });
  canvas.addEventListener('pointerleave', () => { tooltip.style.display = 'none'; });
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const s = state;
    if (!s) return;
    const rect = canvas.getBoundingClientRect();
    const cx = e.clientX - rect.left;
    const cy = e.clientY - rect.top;
    const factor = Math.exp(-e.deltaY * 0.0015);
    const scale = Math.min(8, Math.max(0.002, s.view.scale * factor));
    const k = scale / s.view.scale;
    s.view = { scale, tx: cx - (cx - s.view.tx) * k, ty: cy - (cy - s.view.ty) * k };
    userMoved = true;
    schedule();
  }, { passive: false });
}

function headline(): string {
  const s = state as State;
  const pcc = s.values?.pcc;
  if (s.init.compare) {
    const n = s.init.compare.panels.length;
    return `${s.values?.gene ?? s.init.gene} on ${s.init.section}: ground truth and ${n} model${n === 1 ? '' : 's'}, PCC over the section's ${s.init.spots.ids.length} spots`;
  }
  return `${s.values?.gene ?? s.init.gene} on ${s.init.section}${pcc !== undefined && Number.isFinite(pcc) ? `: PCC ${pcc.toFixed(3)} between ground truth and prediction` : ''}`;
}

function build(init: ViewerInbound['init']): void {
  const labels = [...new Set(init.spots.labels.filter((l): l is string => !!l))].sort();
  const panels: PanelKind[] = init.hasTruth && init.hasPrediction ? ['truth', 'prediction'] : init.hasPrediction ? ['prediction'] : ['truth'];
  const titles = init.compare ? panelTitles(init.compare, undefined) : panels.map((k) => TITLES[k]);
  state = {
    init, panels, annotations: false, labels,
    view: { scale: 1, tx: 0, ty: 0 },
    categories: labels.length ? init.spots.labels.map((l) => (l ? labels.indexOf(l) : -1)) : undefined,
    tiles: init.tiles ? new TileCache(init.tiles, schedule) : undefined,
  };
  grid = undefined;

  const toolbar = el('div', 'toolbar');
  const matches = el('span', 'muted');
  let picker = dropdown(init.genes.slice(0, 200).map((g) => ({ value: g, label: g })), init.gene, (g) => selectGene(g), 'gene');
  const search = textField(`search ${init.genes.length} genes`, (q) => {
    const found = init.genes.filter((g) => g.toLowerCase().includes(q.trim().toLowerCase()));
    matches.textContent = `${found.length} match${found.length === 1 ? '' : 'es'}`;
    const next = dropdown(found.slice(0, 200).map((g) => ({ value: g, label: g })), found[0] ?? '', (g) => selectGene(g), 'gene');
    picker.replaceWith(next);
    picker = next;
    if (found.length === 1) selectGene(found[0]);
  }, 'gene-search');
  toolbar.append(search, picker, matches);
  if (init.hasTruth && init.hasPrediction && !init.compare) {
    toolbar.append(el('span', 'muted', 'right panel:'), dropdown([{ value: 'prediction', label: 'prediction' }, { value: 'error', label: 'error' }], 'prediction', (v) => {
      (state as State).panels[1] = v as PanelKind;
      const label = document.querySelectorAll('.panel .label')[1];
      if (label) label.textContent = TITLES[v as PanelKind];
      schedule();
    }, 'right-panel'));
  }
  if (labels.length) {
    toolbar.append(checkbox('pathologist annotations', false, (on) => {
      (state as State).annotations = on;
      legend.style.display = on ? 'flex' : 'none';
      schedule();
    }, 'annotations'));
  }
  toolbar.append(button('Export .h5ad', () => post('exportH5ad', {}), { secondary: true, id: 'export-h5ad' }));
  const title = el('span', 'headline', headline());
  title.id = 'headline';
  toolbar.append(title);
  const legend = el('div', 'legend');
  legend.style.display = 'none';
  labels.forEach((l, i) => {
    const item = el('span', undefined, l);
    item.style.setProperty('--c', CATEGORIES[i % CATEGORIES.length]);
    legend.append(item);
  });
  toolbar.append(legend);
  if (init.compare) {
    // One legend for the one scale every panel shares.
    const shared = el('div', 'shared-scale');
    shared.id = 'shared-scale';
    const bar = el('canvas');
    const lo = el('span', 'scale-lo');
    const hi = el('span', 'scale-hi');
    const caption = el('span', 'muted scale-caption');
    shared.append(lo, bar, hi, caption);
    toolbar.append(shared);
    if (init.compare.left.length) toolbar.append(el('span', 'muted', `left out: ${init.compare.left.join('; ')}`));
    requestAnimationFrame(() => paintBar(bar, 'truth'));
  }

  const panelsRow = el('div', init.compare ? 'panels grid' : 'panels');
  titles.forEach((title, i) => {
    const panel = el('div', 'panel');
    const canvas = el('canvas', 'slide');
    wire(canvas);
    panel.append(canvas, el('div', 'label', title));
    if (!init.compare) {
      const scale = el('div', 'scale');
      const bar = el('canvas');
      scale.append(el('span', 'lo'), bar, el('span', 'hi'));
      panel.append(scale);
      requestAnimationFrame(() => paintBar(bar, panels[i]));
    }
    panelsRow.append(panel);
  });
  const detail = el('div');
  detail.id = 'detail';
  root.replaceChildren(toolbar, panelsRow, detail);
  userMoved = false;
  new ResizeObserver(() => {
    layOut(panelsRow);
    if (!userMoved) fit();
    schedule();
  }).observe(panelsRow);
  requestAnimationFrame(() => {
    fit();
    schedule();
  });
}

function paintBar(bar: HTMLCanvasElement, kind: PanelKind): void {
  bar.width = 256;
  bar.height = 1;
  const ctx = bar.getContext('2d');
  if (!ctx) return;
  const lut = kind === 'error' ? RED_BLUE : VIRIDIS;
  lut.forEach((c, i) => { ctx.fillStyle = c; ctx.fillRect(i, 0, 1, 1); });
}

/** A comparison's titles (each model's PCC for this gene) and its shared scale's legend. */
function showComparison(compare: NonNullable<ViewerInbound['init']['compare']>, values: ViewerInbound['values']): void {
  const titles = panelTitles(compare, values);
  const notes = panelNotes(compare, values);
  document.querySelectorAll<HTMLElement>('.panel .label').forEach((label, i) => {
    label.textContent = titles[i] ?? '';
    label.title = notes[i] ?? '';
  });
  const scale = values.compare?.scale;
  const text = (selector: string, value: string) => {
    const node = document.querySelector(`#shared-scale ${selector}`);
    if (node) node.textContent = value;
  };
  text('.scale-lo', scale ? scale.lo.toFixed(2) : '');
  text('.scale-hi', scale ? scale.hi.toFixed(2) : '');
  text('.scale-caption', scaleCaption(values));
}

let requested: string | undefined;
function selectGene(gene: string): void {
  if (!gene || gene === (requested ?? state?.values?.gene)) return;
  requested = gene;
  post('selectGene', { gene });
}

function showDetail(d: ViewerInbound['spotDetail']): void {
  const detail = document.getElementById('detail');
  if (!detail) return;
  const crop = el('img');
  crop.src = d.crop;
  crop.alt = `spot ${d.spotId}: 224 px crop`;
  const neighbors = el('img');
  neighbors.src = d.neighbors;
  neighbors.alt = `spot ${d.spotId}: 1120 px neighbour view`;
  const text = el('div', undefined, `${d.spotId}: its 224 px crop, and its 1120 px neighbourhood in 25 tiles (${d.maskedTiles} outside the image, masked and hatched)`);
  detail.replaceChildren(crop, neighbors, text);
  detail.style.display = 'flex';
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const message = parseViewerInbound(event.data);
  if (!message) {
    console.warn('slide viewer: ignored a malformed message', event.data);
    return;
  }
  switch (message.type) {
    case 'init':
      pendingSince = performance.now();
      build(message.payload);
      break;
    case 'values':
      if (!state) return;
      pendingSince ||= performance.now();
      state.values = message.payload;
      {
        const h = document.getElementById('headline');
        if (h) h.textContent = headline();
      }
      if (state.init.compare) showComparison(state.init.compare, message.payload);
      schedule();
      break;
    case 'spotDetail':
      showDetail(message.payload);
      break;
    case 'error':
      root.append(el('div', 'error', message.payload.message));
      break;
  }
});
post('ready', {});
