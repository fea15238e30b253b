import { colourAt, hexOf, type MapName } from '../../protocol/colormap';

/**
 * A small SVG writer for the notebook's static figures (what Jupyter and GitHub show when they
 * cannot run our renderers). Strings only, no DOM. The documents are made to be inlined into an
 * HTML page, as Jupyter and GitHub do: no ids (two figures on one page would share them), no
 * <style>, no scripts, presentation attributes only, and an opaque background so that the
 * figure reads in dark themes as well.
 */

export type Attrs = Record<string, string | number | undefined>;

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
/** Text and attribute values escaped for XML. */
export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ESCAPES[c]);

/** A coordinate with at most one decimal (figures are drawn in CSS pixels). */
export const px = (v: number): string => String(Math.round(v * 10) / 10);

/** An element; `children` is markup already written (escape text with `esc`). */
export function el(name: string, attrs: Attrs, children?: string): string {
  let a = '';
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a += ` ${k}="${esc(typeof v === 'number' ? px(v) : v)}"`;
  return children === undefined ? `<${name}${a}/>` : `<${name}${a}>${children}</${name}>`;
}

export const INK = '#333333';
export const MUTED = '#888888';
export const FONT = 'Helvetica, Arial, sans-serif';

/** A text label: `anchor` start, middle or end. */
export function text(x: number, y: number, s: string, attrs: Attrs = {}): string {
  return el('text', { x, y, 'font-size': 12, fill: INK, ...attrs }, esc(s));
}

/** The whole document: a white background, a <title> for screen readers, then the body. */
export function svgDocument(width: number, height: number, title: string, body: string): string {
  const w = Math.ceil(width);
  const h = Math.ceil(height);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="${FONT}" role="img">`
    + `<title>${esc(title)}</title>${el('rect', { width: w, height: h, fill: '#ffffff' })}${body}</svg>\n`;
}

/**
 * About `count` round tick values covering [lo, hi]: the step of 1, 2 or 5 times a power of ten
 * nearest to an even split, only the ticks inside the range.
 */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const r = raw / power;
  const step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * power;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

/** A tick's label: as many decimals as the tick step needs, no more. */
export function tickLabel(v: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(v) || 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** The finite extent of some values; undefined when none is finite. */
export function extent(values: Iterable<number>): { lo: number; hi: number } | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? { lo, hi } : undefined;
}

/** Fill of a value on a colour map over [lo, hi]; a missing value is light grey. */
export function fillOf(map: MapName, v: number, lo: number, hi: number): string {
  if (!Number.isFinite(v)) return MISSING;
  return hexOf(colourAt(map, hi > lo ? (v - lo) / (hi - lo) : 0.5));
}
export const MISSING = '#d0d0d0';

const BAR_STEPS = 64;

/**
 * A vertical colour bar from `lo` (bottom) to `hi` (top) with tick labels on its right, drawn as
 * stacked rectangles (a gradient would need an id). Its width with labels is COLOR_BAR_WIDTH.
 */
export function colorBar(x: number, y: number, height: number, map: MapName, lo: number, hi: number): string {
  const w = 12;
  const h = height / BAR_STEPS;
  let out = '';
  for (let i = 0; i < BAR_STEPS; i++) {
    // Each step overlaps the next by a pixel so that no seam shows when rasterised.
    out += el('rect', { x, y: y + height - (i + 1) * h, width: w, height: h + (i < BAR_STEPS - 1 ? 1 : 0), fill: hexOf(colourAt(map, (i + 0.5) / BAR_STEPS)) });
  }
  out += el('rect', { x, y, width: w, height, fill: 'none', stroke: MUTED, 'stroke-width': 0.5 });
  const ticks = niceTicks(lo, hi, 4);
  for (const v of ticks) {
    const ty = hi > lo ? y + height - ((v - lo) / (hi - lo)) * height : y + height / 2;
    out += el('line', { x1: x + w, x2: x + w + 4, y1: ty, y2: ty, stroke: INK, 'stroke-width': 1 });
    out += text(x + w + 6, ty + 4, tickLabel(v, ticks), { 'font-size': 11 });
  }
  return el('g', { 'aria-label': `colour bar from ${lo.toPrecision(3)} to ${hi.toPrecision(3)}` }, out);
}
export const COLOR_BAR_WIDTH = 70;
