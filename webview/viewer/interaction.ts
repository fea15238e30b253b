// Input on a panel: drag pans, the wheel zooms about the pointer, hover shows a spot's values, a
// click asks the extension for the spot's crop and neighbour view; with the keyboard (a panel has
// focus), arrows pan, + and - zoom about the centre, 0 fits the slide again.
import { hoverLines } from './comparison';
import { el } from '../ui/controls';
import { fit, schedule } from './render';
import { current, post, viewer } from './state';

const tooltip = el('div');
tooltip.id = 'tooltip';
document.body.append(tooltip);

/** Spots by grid cell one diameter wide, for hit tests; rebuilt for each section. */
let grid: Map<string, number[]> | undefined;
export function resetHitTest(): void {
  grid = undefined;
}

/** Nearest spot under a screen point, within its radius; -1 when none. */
export function spotAt(canvas: HTMLCanvasElement, clientX: number, clientY: number): number {
  const s = current();
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
  const s = current();
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

/** Zooms by `factor` about a point of the panel (screen pixels from its corner). */
export function zoomAbout(cx: number, cy: number, factor: number): void {
  const s = current();
  const scale = Math.min(8, Math.max(0.002, s.view.scale * factor));
  const k = scale / s.view.scale;
  s.view = { scale, tx: cx - (cx - s.view.tx) * k, ty: cy - (cy - s.view.ty) * k };
  viewer.userMoved = true;
  schedule();
}

/** Screen pixels an arrow key pans (Shift: a larger step). */
const STEP = 60;

function onKey(canvas: HTMLCanvasElement, e: KeyboardEvent): void {
  const s = viewer.state;
  if (!s) return;
  const step = e.shiftKey ? STEP * 4 : STEP;
  const pan: Record<string, [number, number]> = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
  if (pan[e.key]) {
    s.view.tx += pan[e.key][0];
    s.view.ty += pan[e.key][1];
    viewer.userMoved = true;
    schedule();
  } else if (e.key === '+' || e.key === '=') {
    zoomAbout(canvas.clientWidth / 2, canvas.clientHeight / 2, 1.25);
  } else if (e.key === '-' || e.key === '_') {
    zoomAbout(canvas.clientWidth / 2, canvas.clientHeight / 2, 1 / 1.25);
  } else if (e.key === '0') {
    viewer.userMoved = false;
    fit();
    schedule();
  } else {
    return;
  }
  e.preventDefault();
}

/** Pan, zoom, hover and click on one panel's canvas, and the keyboard when it has focus. */
export function wire(canvas: HTMLCanvasElement): void {
  let drag: { x: number; y: number; moved: boolean } | undefined;
  canvas.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY, moved: false };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add('dragging');
  });
  canvas.addEventListener('pointermove', (e) => {
    const s = viewer.state;
    if (!s) return;
    if (drag) {
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) drag.moved = true;
      s.view.tx += dx;
      s.view.ty += dy;
      viewer.userMoved = true;
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
      if (i >= 0) post('spotClicked', { spotId: current().init.spots.ids[i] });
    }
    drag = undefined;
  });
  canvas.addEventListener('pointerleave', () => { tooltip.style.display = 'none'; });
  canvas.addEventListener('keydown', (e) => onKey(canvas, e));
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    if (!viewer.state) return;
    const rect = canvas.getBoundingClientRect();
    zoomAbout(e.clientX - rect.left, e.clientY - rect.top, Math.exp(-e.deltaY * 0.0015));
  }, { passive: false });
}
