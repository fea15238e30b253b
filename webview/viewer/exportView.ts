// Export of the current view, as the panels show it: a PNG (the panels' canvases composed, with
// their titles and colour bars), or an SVG whose spots are vector circles over the image embedded
// as a raster, so that a figure can be edited and printed at any size.
import { drawTiles, forEachVisible, MISSING } from './canvasView';
import { bucket, CATEGORIES } from './colormap';
import { layers, type PanelLayer } from './render';
import { formatMicrons, scaleBar } from './scale';
import { current, viewer } from './state';

interface PanelBox { canvas: HTMLCanvasElement; title: string; x: number; y: number; w: number; h: number }

/** Each panel's canvas, title and box relative to the row of panels (CSS pixels). */
function panelBoxes(): { width: number; height: number; panels: PanelBox[] } {
  const row = document.querySelector('.panels') as HTMLElement;
  const at = row.getBoundingClientRect();
  const panels = Array.from(row.querySelectorAll<HTMLElement>('.panel')).map((p) => {
    const canvas = p.querySelector('canvas.slide') as HTMLCanvasElement;
    const r = canvas.getBoundingClientRect();
    return { canvas, title: p.querySelector('.label')?.textContent ?? '', x: r.left - at.left, y: r.top - at.top, w: r.width, h: r.height };
  });
  return { width: at.width, height: at.height, panels };
}

function themeColours(): { fg: string; bg: string } {
  const style = getComputedStyle(document.body);
  return { fg: style.color || '#000', bg: style.backgroundColor || '#fff' };
}

const BAR = { w: 120, h: 10 };
const n2 = (v: number) => String(Math.round(v * 100) / 100);
const esc = (t: string) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** The view as a PNG data: URL, at the screen's pixel density. */
export function exportPng(): string {
  const { width, height, panels } = panelBoxes();
  const dpr = window.devicePixelRatio || 1;
  const out = document.createElement('canvas');
  out.width = Math.round(width * dpr);
  out.height = Math.round(height * dpr);
  const ctx = out.getContext('2d') as CanvasRenderingContext2D;
  const { fg, bg } = themeColours();
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, out.width, out.height);
  const ls = layers();
  panels.forEach((p, i) => {
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.drawImage(p.canvas, Math.round(p.x * dpr), Math.round(p.y * dpr), p.canvas.width, p.canvas.height);
    ctx.setTransform(dpr, 0, 0, dpr, p.x * dpr, p.y * dpr);
    ctx.font = '12px sans-serif';
    ctx.fillStyle = fg;
    ctx.fillText(p.title, 8, 16);
    const layer = ls[i];
    if (!layer) return;
    const x0 = p.w - BAR.w - 10;
    const y0 = p.h - 24;
    layer.lut.forEach((c, k) => { ctx.fillStyle = c; ctx.fillRect(x0 + (k / 256) * BAR.w, y0, BAR.w / 256 + 0.5, BAR.h); });
    ctx.fillStyle = fg;
    ctx.font = '10px sans-serif';
    ctx.fillText(layer.lo.toFixed(2), x0, y0 + BAR.h + 11);
    const hi = layer.hi.toFixed(2);
    ctx.fillText(hi, x0 + BAR.w - ctx.measureText(hi).width, y0 + BAR.h + 11);
  });
  return out.toDataURL('image/png');
}

/** The image under a panel's view as a JPEG data: URL (what the canvas shows under the spots). */
function imageRaster(p: PanelBox): string | undefined {
  const s = current();
  if (!s.tiles || viewer.display.imageOpacity <= 0) return undefined;
  const dpr = window.devicePixelRatio || 1;
  const c = document.createElement('canvas');
  c.width = Math.round(p.w * dpr);
  c.height = Math.round(p.h * dpr);
  const ctx = c.getContext('2d') as CanvasRenderingContext2D;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  drawTiles(ctx, s.view, s.tiles, p.w, p.h, dpr);
  return c.toDataURL('image/jpeg', 0.9);
}

/** One panel's SVG: image, spots as circles, annotation rings, scale bar, title and colour bar. */
function panelSvg(p: PanelBox, layer: PanelLayer, i: number, fg: string, bg: string): string {
  const s = current();
  const d = viewer.display;
  const out = [`<g transform="translate(${n2(p.x)},${n2(p.y)})"><clipPath id="clip${i}"><rect width="${n2(p.w)}" height="${n2(p.h)}"/></clipPath><g clip-path="url(#clip${i})">`];
  const raster = imageRaster(p);
  if (raster) out.push(`<image class="slide-image" x="0" y="0" width="${n2(p.w)}" height="${n2(p.h)}" opacity="${d.imageOpacity}" href="${raster}"/>`);
  const spots: string[] = [];
  const rings: string[] = [];
  forEachVisible(layer, s.view, p.w, p.h, (k, sx, sy, r) => {
    const b = layer.values ? bucket(layer.values[k], layer.lo, layer.hi) : 128;
    spots.push(`<circle cx="${n2(sx)}" cy="${n2(sy)}" r="${n2(r)}" fill="${b < 0 ? MISSING : layer.lut[b]}"/>`);
    const c = layer.categories?.[k] ?? -1;
    if (s.annotations && c >= 0) rings.push(`<circle cx="${n2(sx)}" cy="${n2(sy)}" r="${n2(r + 1.5)}" stroke="${CATEGORIES[c % CATEGORIES.length]}"/>`);
  });
  out.push(`<g class="spots" fill-opacity="${d.spotOpacity}">${spots.join('')}</g>`);
  if (rings.length) out.push(`<g class="annotations" fill="none" stroke-width="1.5">${rings.join('')}</g>`);
  const bar = s.init.mpp ? scaleBar(s.init.mpp, s.view.scale) : undefined;
  if (bar) {
    const y = p.h - 12;
    out.push(`<g class="scale-bar"><rect x="6" y="${n2(y - 18)}" width="${n2(bar.px + 8)}" height="26" fill="${bg}" fill-opacity="0.85"/><rect x="10" y="${n2(y)}" width="${n2(bar.px)}" height="3" fill="${fg}"/><text x="10" y="${n2(y - 5)}" font-size="11" fill="${fg}">${esc(formatMicrons(bar.microns))}</text></g>`);
  }
  out.push('</g>');
  out.push(`<text x="8" y="16" font-size="12" fill="${fg}">${esc(p.title)}</text>`);
  const stops = Array.from({ length: 11 }, (_, k) => `<stop offset="${k / 10}" stop-color="${layer.lut[Math.round((k / 10) * 255)]}"/>`).join('');
  const x0 = p.w - BAR.w - 10;
  const y0 = p.h - 24;
  out.push(`<g class="colour-bar"><linearGradient id="bar${i}">${stops}</linearGradient><rect x="${n2(x0)}" y="${n2(y0)}" width="${BAR.w}" height="${BAR.h}" fill="url(#bar${i})"/>`
    + `<text x="${n2(x0)}" y="${n2(y0 + BAR.h + 11)}" font-size="10" fill="${fg}">${layer.lo.toFixed(2)}</text><text x="${n2(x0 + BAR.w)}" y="${n2(y0 + BAR.h + 11)}" font-size="10" fill="${fg}" text-anchor="end">${layer.hi.toFixed(2)}</text></g>`);
  out.push('</g>');
  return out.join('');
}

/** The view as SVG text. */
export function exportSvg(): string {
  const { width, height, panels } = panelBoxes();
  const { fg, bg } = themeColours();
  const ls = layers();
  const body = panels.map((p, i) => (ls[i] ? panelSvg(p, ls[i], i, fg, bg) : '')).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${n2(width)}" height="${n2(height)}" viewBox="0 0 ${n2(width)} ${n2(height)}"><rect width="100%" height="100%" fill="${bg}"/>${body}</svg>`;
}

/** A file name for the view: section and gene (or genes). */
export function exportName(): string {
  const s = current();
  const what = s.multiples ? `${s.multiples.purpose}-${s.multiples.genes.length}-genes` : (s.values?.gene ?? s.init.gene);
  return `${s.init.section}-${what}`.replace(/[^\w.-]+/g, '_');
}

