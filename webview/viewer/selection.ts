// Lasso and rectangle selection on the panels (one selection for all of them: they share the
// view), its summary for the gene shown (count, mean truth and prediction, PCC inside it), and
// its two uses: saved as a named category of the store, or exported as a CSV of spot ids (both
// written by the extension). The pointer is taken before the panels' own handlers (pan, click)
// only while a selection tool is chosen.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { button, el, textField } from '../ui/controls';
import type { OverlayDraw } from './canvasView';
import { rectPolygon, spotsInPolygon, spotsInRect, type Point } from './hitTest';
import { schedule } from './render';
import { summarise, summaryText } from './selectionSummary';
import { current, post, viewer } from './state';

type Tool = 'pan' | 'lasso' | 'rectangle';

const selection = {
  tool: 'pan' as Tool,
  /** The outline in image pixels (a rectangle as its four corners). */
  outline: [] as Point[],
  /** Indices of the selected spots. */
  picked: [] as number[],
  drawing: false,
};
let summaryLine: HTMLElement | undefined;
const toolButtons = new Map<Tool, HTMLElement>();

/** The theme's focus colour for the outline, read once per theme (getComputedStyle in every frame slowed panning). */
let outlineColour: { theme: string; colour: string } | undefined;
function focusColour(): string {
  const theme = document.body.className;
  if (outlineColour?.theme !== theme) {
    outlineColour = { theme, colour: getComputedStyle(document.body).getPropertyValue('--vscode-focusBorder').trim() || '#0078d4' };
  }
  return outlineColour.colour;
}

/** The outline (dashed) and a white-and-black ring around each selected spot in view. */
const drawSelection: OverlayDraw = (ctx, view, size, layer) => {
  const r = Math.max(1.5, layer.radius * view.scale);
  if (selection.picked.length) {
    const rings = new Path2D();
    const margin = r + 3;
    for (const i of selection.picked) {
      const sx = layer.x[i] * view.scale + view.tx;
      const sy = layer.y[i] * view.scale + view.ty;
      if (sx < -margin || sy < -margin || sx > size.width + margin || sy > size.height + margin) continue;
      rings.moveTo(sx + r, sy);
      rings.arc(sx, sy, r, 0, 2 * Math.PI);
    }
    ctx.lineWidth = 3;
    ctx.strokeStyle = '#000';
    ctx.stroke(rings);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = '#fff';
    ctx.stroke(rings);
  }
  if (selection.outline.length > 1) {
    ctx.beginPath();
    selection.outline.forEach((p, k) => (k ? ctx.lineTo : ctx.moveTo).call(ctx, p.x * view.scale + view.tx, p.y * view.scale + view.ty));
    if (!selection.drawing || selection.tool === 'rectangle') ctx.closePath();
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = focusColour();
    ctx.stroke();
  }
};
viewer.overlays.push(drawSelection);

function imagePoint(canvas: HTMLCanvasElement, e: PointerEvent): Point {
  const { view } = current();
  const rect = canvas.getBoundingClientRect();
  return { x: (e.clientX - rect.left - view.tx) / view.scale, y: (e.clientY - rect.top - view.ty) / view.scale };
}

/** The summary line for the gene shown (after a selection, and after each gene switch). */
export function refreshSelection(): void {
  if (!summaryLine) return;
  const s = current();
  summaryLine.textContent = selection.picked.length || selection.outline.length
    ? summaryText(summarise(selection.picked, s.values?.truth, s.values?.prediction), s.values?.gene ?? s.init.gene)
    : 'draw a lasso or a rectangle to select spots';
}

function finish(): void {
  const s = current();
  const t0 = performance.now();
  const { x, y } = s.init.spots;
  const o = selection.outline;
  selection.picked = selection.tool === 'rectangle' && o.length === 4 ? spotsInRect(x, y, { x0: o[0].x, y0: o[0].y, x1: o[2].x, y1: o[2].y }) : spotsInPolygon(x, y, o);
  refreshSelection();
  post('selected', { count: selection.picked.length, ms: performance.now() - t0 });
  schedule();
}

function clear(): void {
  selection.outline = [];
  selection.picked = [];
  selection.drawing = false;
  refreshSelection();
  schedule();
}

function choose(tool: Tool): void {
  selection.tool = tool;
  for (const [t, b] of toolButtons) {
    b.setAttribute('appearance', t === tool ? 'primary' : 'secondary');
    b.setAttribute('aria-pressed', String(t === tool));
  }
}

/** Takes pointer drags on the panels for the lasso or rectangle (in the capture phase, before panning). */
export function attachSelection(row: HTMLElement): void {
  const canvasOf = (e: Event) => (e.target as Element | null)?.closest('.panel')?.querySelector<HTMLCanvasElement>('canvas.slide') ?? undefined;
  let start: Point | undefined;
  let last = { x: 0, y: 0 };
  row.addEventListener('pointerdown', (e) => {
    const canvas = canvasOf(e);
    if (selection.tool === 'pan' || !canvas || !viewer.state) return;
    e.stopPropagation();
    canvas.setPointerCapture(e.pointerId);
    start = imagePoint(canvas, e);
    last = { x: e.clientX, y: e.clientY };
    selection.outline = [start];
    selection.picked = [];
    selection.drawing = true;
  }, { capture: true });
  row.addEventListener('pointermove', (e) => {
    const canvas = canvasOf(e);
    if (!selection.drawing || !canvas || !start) return;
    e.stopPropagation();
    const p = imagePoint(canvas, e);
    if (selection.tool === 'rectangle') selection.outline = rectPolygon({ x0: start.x, y0: start.y, x1: p.x, y1: p.y });
    else if (Math.abs(e.clientX - last.x) + Math.abs(e.clientY - last.y) >= 3) {
      selection.outline.push(p);
      last = { x: e.clientX, y: e.clientY };
    }
    schedule();
  }, { capture: true });
  row.addEventListener('pointerup', (e) => {
    const canvas = canvasOf(e);
    if (!selection.drawing || !canvas) return;
    e.stopPropagation();
    const p = imagePoint(canvas, e);
    if (selection.tool === 'rectangle' && start) selection.outline = rectPolygon({ x0: start.x, y0: start.y, x1: p.x, y1: p.y });
    else selection.outline.push(p);
    selection.drawing = false;
    start = undefined;
    finish();
  }, { capture: true });
}

/** The selection's controls: the tools, the summary, save as category and export CSV. */
export function selectionBar(init: ViewerInbound['init']): HTMLElement {
  selection.outline = [];
  selection.picked = [];
  selection.drawing = false;
  const bar = el('div', 'selection-bar');
  bar.id = 'selection-bar';
  toolButtons.clear();
  for (const [tool, label] of [['pan', 'Pan'], ['lasso', 'Lasso'], ['rectangle', 'Rectangle']] as const) {
    const b = button(label, () => choose(tool), { secondary: true, id: `tool-${tool}` });
    b.title = tool === 'pan' ? 'drag to pan (Escape clears the selection)' : `drag a ${tool} around spots to select them`;
    toolButtons.set(tool, b);
    bar.append(b);
  }
  choose(selection.tool);
  summaryLine = el('span', 'selection-summary');
  summaryLine.id = 'selection-summary';
  summaryLine.setAttribute('aria-live', 'polite');
  const name = textField('category name', () => undefined, 'category-name');
  const label = textField('label (default: the name)', () => undefined, 'category-label');
  const ids = () => selection.picked.map((i) => init.spots.ids[i]);
  const save = button('Save as category', () => {
    if (selection.picked.length) post('saveCategory', { name: name.value.trim(), label: label.value.trim(), spotIds: ids() });
  }, { secondary: true, id: 'save-category' });
  const csv = button('Export CSV', () => {
    if (selection.picked.length) post('exportSelection', { spotIds: ids() });
  }, { secondary: true, id: 'export-selection' });
  bar.append(summaryLine, name, label, save, csv, button('Clear', clear, { secondary: true, id: 'clear-selection' }));
  refreshSelection();
  return bar;
}

/** After a save: the summary says where the selection went. */
export function selectionSaved(saved: NonNullable<ViewerInbound['categories']['saved']>): void {
  if (summaryLine) summaryLine.textContent = `${summaryLine.textContent ?? ''} · saved as ${saved.name} = ${saved.label}`;
}

document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && viewer.state) clear();
});

export const SELECTION_STYLES = `
.selection-bar { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; font-size: 12px; }
.selection-summary { margin: 0 6px; }
`;
