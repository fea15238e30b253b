import { bestPerColumn, type MetricsPayload } from '../../protocol/outputs';
import { el, INK, svgDocument, text } from './svg';

const ROW = 26;
const MODEL_COLUMN = 150;
const VALUE_COLUMN = 150;
const PAD = 16;
const BAR = '#dbe7f3';
const BEST_BAR = '#9ecae1';

const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '–');

/**
 * Models x metrics as an SVG table: mean ± std over folds per cell, a bar behind each mean (its
 * share of the column's largest magnitude), and the best of each column in bold on a darker bar.
 */
export function metricsSvg(p: MetricsPayload): string {
  const best = bestPerColumn(p.rows, p.better);
  const top = 40;
  const width = PAD * 2 + MODEL_COLUMN + VALUE_COLUMN * p.columns.length;
  const height = top + ROW * (p.rows.length + 1) + PAD;
  const colX = (c: number) => PAD + MODEL_COLUMN + c * VALUE_COLUMN;
  const scale = p.columns.map((_, c) => Math.max(0, ...p.rows.map((r) => Math.abs(r.values[c]?.mean)).filter(Number.isFinite)) || 1);

  let body = text(PAD, 24, p.title, { 'font-size': 15, 'font-weight': 'bold' });
  body += text(PAD, top + 17, 'model', { 'font-weight': 'bold' });
  p.columns.forEach((name, c) => {
    body += text(colX(c) + 6, top + 17, `${name} ${p.better[c] === 'lower' ? '↓' : '↑'}`, { 'font-weight': 'bold' });
  });
  body += el('line', { x1: PAD, x2: width - PAD, y1: top + ROW, y2: top + ROW, stroke: INK });
  p.rows.forEach((r, i) => {
    const y = top + ROW * (i + 1);
    body += text(PAD, y + 17, r.model);
    r.values.forEach((v, c) => {
      const isBest = best[c] === i;
      if (Number.isFinite(v.mean)) body += el('rect', { x: colX(c) + 2, y: y + 4, width: ((VALUE_COLUMN - 8) * Math.abs(v.mean)) / scale[c], height: ROW - 8, fill: isBest ? BEST_BAR : BAR });
      body += text(colX(c) + 6, y + 17, `${fmt(v.mean)} ± ${fmt(v.std)}`, isBest ? { 'font-weight': 'bold' } : {});
    });
  });
  return svgDocument(width, height, p.title, body);
}
