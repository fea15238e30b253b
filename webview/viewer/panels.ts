// The panels: one canvas per panel kind (truth, prediction or error; each model in comparison
// mode; each gene of a grid) under one view, laid out side by side or in the grid that shows the
// slide largest, each titled with its colour bar; and the clicked spot's detail strip below.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { el } from '../ui/controls';
import { gridColumns, panelNotes, panelTitles, scaleCaption } from './comparison';
import { wire } from './interaction';
import { fit, imageSize, schedule } from './render';
import { current, TITLES, viewer } from './state';

/** Several panels in the grid that shows each slide largest. */
function layOut(row: HTMLElement): void {
  const s = current();
  const n = row.children.length;
  if (!row.classList.contains('grid')) return;
  const cols = gridColumns(n, { width: row.clientWidth || 1, height: row.clientHeight || 1 }, imageSize(s.init));
  row.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  row.style.gridTemplateRows = `repeat(${Math.ceil(n / cols)}, minmax(0, 1fr))`;
}

/** The panels' titles for what the state shows. */
export function titles(): string[] {
  const s = current();
  const m = s.multiples;
  if (m) return m.purpose === 'score' ? [`gene-set score: ${m.genes.length} genes (${m.source})`] : m.genes.map((g) => `${g.gene} (${m.source})`);
  if (s.init.compare) return panelTitles(s.init.compare, s.values);
  return s.panels.map((k) => TITLES[k]);
}

/** The row of panels, titled, each with its colour bar (comparison mode: one shared bar in the toolbar). */
export function buildPanels(): HTMLElement {
  const s = current();
  const names = titles();
  const grid = !!s.init.compare || (s.multiples?.purpose === 'grid' && names.length > 1);
  const row = el('div', grid ? 'panels grid' : 'panels');
  row.setAttribute('role', 'group');
  row.setAttribute('aria-label', 'slide panels: arrow keys pan, + and - zoom, 0 fits');
  names.forEach((title) => {
    const panel = el('div', 'panel');
    const canvas = el('canvas', 'slide');
    canvas.tabIndex = 0;
    canvas.setAttribute('role', 'img');
    wire(canvas);
    panel.append(canvas, el('div', 'label', title));
    if (!s.init.compare) {
      const scale = el('div', 'scale');
      scale.setAttribute('role', 'img');
      const ticks = el('div', 'ticks');
      ticks.append(el('span', 'lo'), el('span', 'mid'), el('span', 'hi'));
      scale.append(el('canvas'), ticks);
      panel.append(scale);
    }
    row.append(panel);
  });
  return row;
}

let observer: ResizeObserver | undefined;
/** Keeps the panels laid out, and the slide fitted until the user moves it. */
export function observePanels(row: HTMLElement): void {
  observer?.disconnect();
  observer = new ResizeObserver(() => {
    layOut(row);
    if (!viewer.userMoved) fit();
    schedule();
  });
  observer.observe(row);
  requestAnimationFrame(() => {
    if (!viewer.userMoved) fit();
    schedule();
  });
}

/** Replaces the panels (a grid of genes, or back to one gene) under the same view. */
export function rebuildPanels(): void {
  const old = document.querySelector('.panels');
  if (!old) return;
  const row = buildPanels();
  old.replaceWith(row);
  layOut(row);
  observePanels(row);
}

/** A comparison's titles (each model's PCC for this gene) and its shared scale's legend. */
export function showComparison(compare: NonNullable<ViewerInbound['init']['compare']>, values: ViewerInbound['values']): void {
  const names = panelTitles(compare, values);
  const notes = panelNotes(compare, values);
  document.querySelectorAll<HTMLElement>('.panel .label').forEach((label, i) => {
    label.textContent = names[i] ?? '';
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

/** The clicked spot's crop and neighbour view. */
export function showDetail(d: ViewerInbound['spotDetail']): void {
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
