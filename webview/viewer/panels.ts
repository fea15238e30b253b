// The panels: one canvas per panel kind (or per model in comparison mode) under one view, laid out
// side by side or in the grid that shows the slide largest, with their titles and colour bars;
// and the clicked spot's detail strip below them.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { el } from '../ui/controls';
import { gridColumns, panelNotes, panelTitles, scaleCaption } from './comparison';
import { wire } from './interaction';
import { fit, imageSize, paintBar, schedule } from './render';
import { current, viewer, type PanelKind } from './state';

/** Comparison panels in the grid that shows each slide largest. */
function layOut(row: HTMLElement): void {
  const s = current();
  if (!s.init.compare) return;
  const n = s.init.compare.panels.length + 1;
  const cols = gridColumns(n, { width: row.clientWidth || 1, height: row.clientHeight || 1 }, imageSize(s.init));
  row.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  row.style.gridTemplateRows = `repeat(${Math.ceil(n / cols)}, minmax(0, 1fr))`;
}

/** The row of panels, titled, each with its colour bar (comparison mode: one shared bar in the toolbar). */
export function buildPanels(init: ViewerInbound['init'], titles: string[], kinds: PanelKind[]): HTMLElement {
  const row = el('div', init.compare ? 'panels grid' : 'panels');
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
      requestAnimationFrame(() => paintBar(bar, kinds[i]));
    }
    row.append(panel);
  });
  return row;
}

/** Keeps the panels laid out, and the slide fitted until the user moves it. */
export function observePanels(row: HTMLElement): void {
  viewer.userMoved = false;
  new ResizeObserver(() => {
    layOut(row);
    if (!viewer.userMoved) fit();
    schedule();
  }).observe(row);
  requestAnimationFrame(() => {
    fit();
    schedule();
  });
}

/** A comparison's titles (each model's PCC for this gene) and its shared scale's legend. */
export function showComparison(compare: NonNullable<ViewerInbound['init']['compare']>, values: ViewerInbound['values']): void {
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
