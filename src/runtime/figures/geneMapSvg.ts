import type { MapName } from '../../protocol/colormap';
import type { GeneMapPayload } from '../../protocol/outputs';
import { spotSpacing } from '../store/spotDiameter';
import { colorBar, COLOR_BAR_WIDTH, el, extent, fillOf, svgDocument, text } from './svg';

/** Longest side of a panel's spot area, in CSS pixels. */
const PANEL = 280;
const GAP = 24;
const TOP = 72;
const BOTTOM = 16;

/** Value range of each panel: the sequential panels share one, a diverging panel is symmetric about zero. */
function panelRanges(panels: GeneMapPayload['panels']): { lo: number; hi: number }[] {
  const shared = extent(panels.filter((p) => !p.diverging).flatMap((p) => p.values)) ?? { lo: 0, hi: 1 };
  return panels.map((p) => {
    if (!p.diverging) return shared;
    const e = extent(p.values);
    const m = e ? Math.max(Math.abs(e.lo), Math.abs(e.hi)) || 1 : 1;
    return { lo: -m, hi: m };
  });
}

/**
 * A gene map as SVG: one panel per value set (truth, prediction, error) side by side, each spot a
 * circle coloured by viridis (shared range) or the red-blue map (error, centred on zero), the
 * title with the PCC, and a colour bar with values after the last panel of each range. Spots keep
 * the image's orientation (y down) and aspect; a spot with no value is grey.
 */
export function geneMapSvg(p: GeneMapPayload): string {
  const box = { x: extent(p.x) ?? { lo: 0, hi: 1 }, y: extent(p.y) ?? { lo: 0, hi: 1 } };
  const measured = spotSpacing(p.x, p.y); // NaN under two spots
  const spacing = Number.isFinite(measured) ? measured : 0;
  const spanX = Math.max(box.x.hi - box.x.lo, spacing, 1);
  const spanY = Math.max(box.y.hi - box.y.lo, spacing, 1);
  const scale = PANEL / Math.max(spanX, spanY);
  const radius = Math.max(1.2, Math.min(10, spacing > 0 ? spacing * scale * 0.45 : 4));
  const width = spanX * scale + 2 * radius;
  const height = spanY * scale + 2 * radius;
  const ranges = panelRanges(p.panels);
  const lastOfKind = (i: number) => !p.panels.slice(i + 1).some((q) => !!q.diverging === !!p.panels[i].diverging);

  let x0 = GAP;
  let body = '';
  p.panels.forEach((panel, i) => {
    const { lo, hi } = ranges[i];
    const map: MapName = panel.diverging ? 'red-blue' : 'viridis';
    let spots = '';
    for (let k = 0; k < p.x.length; k++) {
      if (!Number.isFinite(p.x[k]) || !Number.isFinite(p.y[k])) continue;
      spots += el('circle', { cx: x0 + radius + (p.x[k] - box.x.lo) * scale, cy: TOP + radius + (p.y[k] - box.y.lo) * scale, r: radius, fill: fillOf(map, panel.values[k], lo, hi) });
    }
    body += text(x0 + width / 2, TOP - 10, panel.title, { 'text-anchor': 'middle' });
    body += el('g', { 'aria-label': panel.title }, spots);
    x0 += width + GAP;
    if (lastOfKind(i)) {
      body += colorBar(x0 - GAP / 2, TOP + radius, Math.min(height - 2 * radius, 200), map, lo, hi);
      x0 += COLOR_BAR_WIDTH;
    }
  });
  const title = `${p.gene} on ${p.section}${p.pcc !== undefined ? ` (PCC ${p.pcc.toFixed(3)})` : ''}`;
  const head = text(GAP, 24, title, { 'font-size': 15, 'font-weight': 'bold' })
    + text(GAP, 40, `${p.spotIds.length} spots`, { 'font-size': 11, fill: '#666666' });
  return svgDocument(x0, TOP + height + BOTTOM, title, head + body);
}
