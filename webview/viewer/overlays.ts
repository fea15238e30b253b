// Categorical overlays: one categorical column of the section's spots (the pathologist's labels,
// the patient, a category saved from a selection) drawn as coloured rings around the spots, with
// a legend whose colours can be edited and whose entries switch their category on and off.
import type { CategoryColumnView } from '../../src/protocol/webviews';
import { dropdown, el } from '../ui/controls';
import type { OverlayDraw } from './canvasView';
import { CATEGORIES } from './colormap';
import { schedule } from './render';
import { viewer } from './state';

const overlay = {
  columns: [] as CategoryColumnView[],
  /** The column shown; none when undefined. */
  shown: undefined as string | undefined,
  /** Colours the user chose, by `column \0 label`. */
  colours: new Map<string, string>(),
  /** Categories switched off in the legend, by `column \0 label`. */
  hidden: new Set<string>(),
};
let bar: HTMLElement | undefined;
/** The picker's value for "no overlay" (a column name never starts with a space). */
const NONE = ' none';

const key = (column: string, label: string) => `${column}\u0000${label}`;

/** A column's labels, sorted, each with its number of spots. */
export function labelCounts(column: CategoryColumnView): [string, number][] {
  const counts = new Map<string, number>();
  for (const v of column.values) if (v !== null) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => a[0].localeCompare(b[0]));
}

function colourOf(column: string, label: string, index: number): string {
  return overlay.colours.get(key(column, label)) ?? CATEGORIES[index % CATEGORIES.length];
}

/** Rings around the spots of each shown category, in its colour, one path per category. */
const drawCategories: OverlayDraw = (ctx, view, size, layer) => {
  const column = overlay.columns.find((c) => c.name === overlay.shown);
  if (!column) return;
  const labels = labelCounts(column).map(([l]) => l);
  const r = Math.max(1.5, layer.radius * view.scale);
  const width = Math.max(2, Math.min(6, r * 0.35));
  const ring = r + width / 2;
  const paths = new Map<string, Path2D>();
  column.values.forEach((label, i) => {
    if (label === null || overlay.hidden.has(key(column.name, label))) return;
    const sx = layer.x[i] * view.scale + view.tx;
    const sy = layer.y[i] * view.scale + view.ty;
    if (sx < -ring || sy < -ring || sx > size.width + ring || sy > size.height + ring) return;
    let p = paths.get(label);
    if (!p) paths.set(label, (p = new Path2D()));
    p.moveTo(sx + ring, sy);
    p.arc(sx, sy, ring, 0, 2 * Math.PI);
  });
  ctx.lineWidth = width;
  for (const [label, p] of paths) {
    ctx.strokeStyle = colourOf(column.name, label, labels.indexOf(label));
    ctx.stroke(p);
  }
};
viewer.overlays.push(drawCategories);

/** The legend of the shown column: a colour picker and an on/off switch per category. */
function legend(): HTMLElement {
  const box = el('div', 'category-legend');
  box.id = 'category-legend';
  const column = overlay.columns.find((c) => c.name === overlay.shown);
  if (!column) return box;
  labelCounts(column).forEach(([label, count], i) => {
    const item = el('span', 'category');
    const colour = el('input');
    colour.type = 'color';
    colour.value = colourOf(column.name, label, i);
    colour.setAttribute('aria-label', `colour of ${label}`);
    colour.addEventListener('input', () => {
      overlay.colours.set(key(column.name, label), colour.value);
      schedule();
    });
    const name = el('span', 'category-name', `${label} (${count})`);
    name.setAttribute('role', 'switch');
    name.tabIndex = 0;
    const sync = () => {
      const on = !overlay.hidden.has(key(column.name, label));
      name.setAttribute('aria-checked', String(on));
      item.classList.toggle('off', !on);
    };
    const toggle = () => {
      const k = key(column.name, label);
      if (!overlay.hidden.delete(k)) overlay.hidden.add(k);
      sync();
      schedule();
    };
    name.addEventListener('click', toggle);
    name.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' || e.key === ' ') {
        e.preventDefault();
        toggle();
      }
    });
    sync();
    item.append(colour, name);
    box.append(item);
  });
  return box;
}

function render(): void {
  if (!bar) return;
  const options = [{ value: NONE, label: 'no overlay' }, ...overlay.columns.map((c) => ({ value: c.name, label: c.source === 'saved' ? `${c.name} (saved)` : c.name }))];
  const picker = dropdown(options, overlay.shown ?? NONE, (v) => {
    overlay.shown = v === NONE ? undefined : v;
    bar?.querySelector('#category-legend')?.replaceWith(legend());
    schedule();
  }, 'overlay');
  picker.setAttribute('aria-label', 'categorical overlay');
  bar.replaceChildren(el('span', 'muted', 'overlay:'), picker, legend());
  // The toolkit's dropdown takes its value from its options once connected; set it after that.
  requestAnimationFrame(() => { picker.value = overlay.shown ?? NONE; });
}

/** The overlay's controls for a new section (its columns; none shown at first). */
export function overlayBar(columns: CategoryColumnView[]): HTMLElement {
  overlay.columns = columns;
  overlay.shown = undefined;
  overlay.hidden.clear();
  bar = el('div', 'overlay-bar');
  bar.id = 'overlay-bar';
  if (columns.length === 0) bar.style.display = 'none';
  render();
  return bar;
}

/** New columns from the extension (a selection was saved): the saved one is shown. */
export function setCategories(columns: CategoryColumnView[], show?: string): void {
  overlay.columns = columns;
  if (show) overlay.shown = show;
  if (bar) bar.style.display = columns.length ? '' : 'none';
  render();
  schedule();
}

export const OVERLAY_STYLES = `
.overlay-bar { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; font-size: 12px; }
.category-legend { display: flex; gap: 10px; flex-wrap: wrap; }
.category { display: inline-flex; gap: 4px; align-items: center; }
.category input[type=color] { width: 18px; height: 18px; padding: 0; border: 1px solid var(--vscode-editorWidget-border, #888); background: none; }
.category-name { cursor: pointer; }
.category.off .category-name { text-decoration: line-through; opacity: 0.6; }
`;
