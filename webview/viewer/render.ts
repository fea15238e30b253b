// Drawing: each panel's spot layer from the state, one animation frame at a time, and the fit of
// the slide to the panels.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { drawPanel, type SpotLayer } from './canvasView';
import { RED_BLUE, VIRIDIS } from './colormap';
import { panelValues } from './comparison';
import { current, post, valuesOf, viewer, type PanelKind } from './state';

let frame = 0;

function range(values: number[][]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const vs of values) for (const v of vs) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  return Number.isFinite(lo) ? [lo, hi] : [0, 1];
}

/** Truth and prediction share one colour range, so equal colours mean equal values; the error is symmetric around 0. */
export function layers(): SpotLayer[] {
  const s = current();
  const common = { x: s.init.spots.x, y: s.init.spots.y, radius: s.init.spotDiameter / 2, categories: s.categories, overlays: viewer.overlays };
  if (s.init.compare) {
    // Comparison: the range the extension chose (the truth's percentiles), the same for every panel.
    const scale = s.values?.compare?.scale ?? { lo: 0, hi: 1 };
    return panelValues(s.init.compare, s.values).map((values) => ({ ...common, values, lo: scale.lo, hi: scale.hi, lut: VIRIDIS }));
  }
  const shared = range(s.panels.filter((k) => k !== 'error').map(valuesOf).filter((v): v is number[] => !!v));
  return s.panels.map((kind) => {
    const values = valuesOf(kind);
    const extent = kind === 'error' && values ? Math.max(...range([values]).map(Math.abs)) || 1 : 0;
    return {
      ...common, values,
      lo: kind === 'error' ? -extent : shared[0], hi: kind === 'error' ? extent : shared[1],
      lut: kind === 'error' ? RED_BLUE : VIRIDIS,
    };
  });
}

function draw(): void {
  frame = 0;
  const s = viewer.state;
  if (!s) return;
  const ls = layers();
  document.querySelectorAll<HTMLCanvasElement>('canvas.slide').forEach((c, i) => {
    if (ls[i]) drawPanel(c, s.view, s.tiles, ls[i], s.annotations);
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
  if (viewer.pendingSince && s.values) {
    post('rendered', { gene: s.values.gene, ms: performance.now() - viewer.pendingSince });
    viewer.pendingSince = 0;
  }
}

/** Redraws every panel at the next animation frame (once, however often it is asked). */
export function schedule(): void {
  if (!frame) frame = requestAnimationFrame(draw);
}

/** The slide's extent in image pixels: the image, or the spots when there is none. */
export function imageSize(init: ViewerInbound['init']): { width: number; height: number } {
  return { width: init.tiles?.width ?? Math.max(...init.spots.x) + init.spotDiameter, height: init.tiles?.height ?? Math.max(...init.spots.y) + init.spotDiameter };
}

/** Fits the whole slide into the first panel (every panel has its size). */
export function fit(): void {
  const s = current();
  const canvas = document.querySelector<HTMLCanvasElement>('canvas.slide');
  if (!canvas) return;
  const { width: w, height: h } = imageSize(s.init);
  const scale = Math.min(canvas.clientWidth / w, canvas.clientHeight / h) * 0.98;
  s.view = { scale, tx: (canvas.clientWidth - w * scale) / 2, ty: (canvas.clientHeight - h * scale) / 2 };
}

/** A colour bar: the panel's map, left (low) to right (high). */
export function paintBar(bar: HTMLCanvasElement, kind: PanelKind): void {
  bar.width = 256;
  bar.height = 1;
  const ctx = bar.getContext('2d');
  if (!ctx) return;
  const lut = kind === 'error' ? RED_BLUE : VIRIDIS;
  lut.forEach((c, i) => { ctx.fillStyle = c; ctx.fillRect(i, 0, 1, 1); });
}
