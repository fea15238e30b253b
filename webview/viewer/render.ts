// Drawing: each panel's spot layer from the state and the display settings, one animation frame
// at a time; the colour bars with their values; the scale bar; the fit of the slide to the panels.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { drawPanel, type OverlayDraw, type SpotLayer } from './canvasView';
import { lut, type MapName } from './colormap';
import { panelValues } from './comparison';
import { formatMicrons, geneSetScore, scaleBar, symmetricRange, valueRange } from './scale';
import { current, post, saveState, valuesOf, viewer, type State } from './state';

let frame = 0;

/** One panel as drawn: its layer, its colour map's name, and what its range means. */
export interface PanelLayer extends SpotLayer { map: MapName; title: string; rangeNote: string }

const RANGE_NOTE = { percentile: '1st to 99th percentile', minmax: 'min to max' } as const;

/** The values of the grid's genes, or the one gene-set score. */
function multiplesLayers(m: NonNullable<State['multiples']>, common: Omit<SpotLayer, 'lo' | 'hi' | 'lut'>): PanelLayer[] {
  const d = viewer.display;
  const rangeNote = `${RANGE_NOTE[d.range]}, each panel its own`;
  if (m.purpose === 'score') {
    const values = geneSetScore(m.genes.map((g) => g.values));
    const [lo, hi] = valueRange([values], d.range);
    return [{ ...common, values, lo, hi, lut: lut(d.valueMap), map: d.valueMap, title: `gene-set score: mean of ${m.genes.length} standardised genes (${m.source})`, rangeNote: RANGE_NOTE[d.range] }];
  }
  return m.genes.map((g) => {
    const [lo, hi] = valueRange([g.values], d.range);
    return { ...common, values: g.values, lo, hi, lut: lut(d.valueMap), map: d.valueMap, title: `${g.gene} (${m.source})`, rangeNote };
  });
}

/**
 * Truth and prediction share one colour range, so equal colours mean equal values; the error is
 * symmetric around 0 on a diverging map. The range is the values' 1st to 99th percentile unless
 * the display asks for min to max.
 */
export function layers(): PanelLayer[] {
  const s = current();
  // Ranges sort the values: computed once per gene, panel choice and display, not per frame of a pan.
  const key = [s, s.values, s.multiples, s.panels.join(), JSON.stringify(viewer.display), viewer.overlays.length];
  if (cache && cache.key.every((k, i) => k === key[i])) return cache.layers;
  cache = { key, layers: computeLayers(s) };
  return cache.layers;
}
let cache: { key: unknown[]; layers: PanelLayer[] } | undefined;

function computeLayers(s: State): PanelLayer[] {
  const d = viewer.display;
  const common = { x: s.init.spots.x, y: s.init.spots.y, radius: (s.init.spotDiameter / 2) * d.spotScale, categories: s.categories, overlays: [scaleBarOverlay, ...viewer.overlays], opacity: d.spotOpacity };
  if (s.multiples) return multiplesLayers(s.multiples, common);
  if (s.init.compare) {
    // Comparison: the range the extension chose (the truth's percentiles), the same for every panel.
    const scale = s.values?.compare?.scale ?? { lo: 0, hi: 1, rule: '' };
    return panelValues(s.init.compare, s.values).map((values) => ({ ...common, values, lo: scale.lo, hi: scale.hi, lut: lut(d.valueMap), map: d.valueMap, title: '', rangeNote: scale.rule }));
  }
  const shared = valueRange(s.panels.filter((k) => k !== 'error').map(valuesOf), d.range);
  return s.panels.map((kind) => {
    const values = valuesOf(kind);
    const [lo, hi] = kind === 'error' ? symmetricRange(values, d.range) : shared;
    const map = kind === 'error' ? d.errorMap : d.valueMap;
    return { ...common, values, lo, hi, lut: lut(map), map, title: '', rangeNote: kind === 'error' ? `symmetric, ${RANGE_NOTE[d.range]} of |error|` : `${RANGE_NOTE[d.range]}, shared by truth and prediction` };
  });
}

/** The theme's colours, for what is drawn on the canvas itself (the scale bar). */
function themeColours(): { fg: string; bg: string } {
  const style = getComputedStyle(document.body);
  return { fg: style.color || '#000', bg: style.backgroundColor || '#fff' };
}

/** A scale bar in microns, bottom left, where the section's microns per pixel are known. */
const scaleBarOverlay: OverlayDraw = (ctx, view, size) => {
  const mpp = viewer.state?.init.mpp;
  const bar = mpp ? scaleBar(mpp, view.scale) : undefined;
  if (!bar) return;
  const { fg, bg } = themeColours();
  const text = formatMicrons(bar.microns);
  ctx.font = '11px sans-serif';
  const x = 10;
  const y = size.height - 12;
  ctx.globalAlpha = 0.85;
  ctx.fillStyle = bg;
  ctx.fillRect(x - 4, y - 18, Math.max(bar.px, ctx.measureText(text).width) + 8, 26);
  ctx.globalAlpha = 1;
  ctx.fillStyle = fg;
  ctx.fillRect(x, y, bar.px, 3);
  ctx.fillText(text, x, y - 5);
};

/** A colour bar's gradient, repainted only when its map changes. */
function paintBar(bar: HTMLCanvasElement, map: MapName): void {
  if (bar.dataset.map === map) return;
  bar.dataset.map = map;
  bar.width = 256;
  bar.height = 1;
  const ctx = bar.getContext('2d');
  if (!ctx) return;
  lut(map).forEach((c, i) => { ctx.fillStyle = c; ctx.fillRect(i, 0, 1, 1); });
}

/** A colour bar's values: its ends and middle, and what the range is. */
function labelBar(box: Element, layer: PanelLayer): void {
  const set = (selector: string, text: string) => {
    const node = box.querySelector(selector);
    if (node && node.textContent !== text) node.textContent = text;
  };
  set('.lo', layer.lo.toFixed(2));
  set('.mid', ((layer.lo + layer.hi) / 2).toFixed(2));
  set('.hi', layer.hi.toFixed(2));
  box.setAttribute('aria-label', `colour scale ${layer.map}, ${layer.lo.toFixed(2)} to ${layer.hi.toFixed(2)} (${layer.rangeNote})`);
  (box as HTMLElement).title = layer.rangeNote;
  const bar = box.querySelector('canvas');
  if (bar) paintBar(bar, layer.map);
}

function draw(): void {
  frame = 0;
  const s = viewer.state;
  if (!s) return;
  const ls = layers();
  const gene = s.values?.gene ?? s.init.gene;
  s.tiles?.beginFrame();
  document.querySelectorAll<HTMLElement>('.panel').forEach((p, i) => {
    const layer = ls[i];
    const canvas = p.querySelector<HTMLCanvasElement>('canvas.slide');
    if (!layer || !canvas) return;
    drawPanel(canvas, s.view, s.tiles, layer, s.annotations, viewer.display.imageOpacity);
    const title = p.querySelector('.label')?.textContent ?? '';
    canvas.setAttribute('aria-label', `${title}: ${s.multiples ? '' : `${gene} on `}${s.init.section}, ${s.init.spots.ids.length} spots coloured ${layer.lo.toFixed(2)} to ${layer.hi.toFixed(2)}`);
    const box = p.querySelector('.scale');
    if (box) labelBar(box, layer);
  });
  s.tiles?.endFrame(); // a whole slide's tiles the panels lack are asked for
  const shared = document.getElementById('shared-scale');
  if (shared && ls[0]) {
    const bar = shared.querySelector('canvas');
    if (bar) paintBar(bar, ls[0].map);
  }
  saveState();
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
