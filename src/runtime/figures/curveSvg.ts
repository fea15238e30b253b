import type { CurvePayload } from '../../protocol/outputs';
import { el, extent, INK, MUTED, niceTicks, px, svgDocument, text, tickLabel } from './svg';

const WIDTH = 640;
const HEIGHT = 320;
const MARGIN = { left: 64, right: 64, top: 40, bottom: 72 };
/** Distinct line colours (Tableau 10's first six), in series order. */
export const SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

interface Axis { lo: number; hi: number; ticks: number[] }

/** An axis over some values, padded by 5% so that lines do not run along the frame. */
function axisOf(values: number[], integers = false): Axis {
  const e = extent(values) ?? { lo: 0, hi: 1 };
  const pad = e.hi > e.lo ? (e.hi - e.lo) * 0.05 : Math.abs(e.lo) * 0.1 || 1;
  // Epochs: half an epoch either side, so that the first and last markers clear the frame.
  const lo = integers ? e.lo - 0.5 : e.lo - pad;
  const hi = integers ? e.hi + 0.5 : e.hi + pad;
  const ticks = niceTicks(lo, hi, 6).filter((t) => !integers || Number.isInteger(t));
  return { lo, hi, ticks };
}

/**
 * Training curves as SVG: loss on the left axis, metrics (validation PCC) on the right, epochs
 * along the bottom, each series a line with a marker per point, and a legend under the plot.
 */
export function curveSvg(p: CurvePayload): string {
  const hasMetric = p.series.some((s) => s.axis === 'metric');
  const hasLoss = p.series.some((s) => s.axis === 'loss');
  const xs = p.series.flatMap((s) => s.x);
  const xAxis = axisOf(xs, xs.every(Number.isInteger));
  const yAxes = {
    loss: axisOf(p.series.filter((s) => s.axis === 'loss').flatMap((s) => s.y)),
    metric: axisOf(p.series.filter((s) => s.axis === 'metric').flatMap((s) => s.y)),
  };
  const plot = { x: MARGIN.left, y: MARGIN.top, w: WIDTH - MARGIN.left - MARGIN.right, h: HEIGHT - MARGIN.top - MARGIN.bottom };
  const sx = (v: number) => plot.x + (xAxis.hi > xAxis.lo ? (v - xAxis.lo) / (xAxis.hi - xAxis.lo) : 0.5) * plot.w;
  const sy = (a: Axis, v: number) => plot.y + plot.h - (a.hi > a.lo ? (v - a.lo) / (a.hi - a.lo) : 0.5) * plot.h;

  let body = text(plot.x, 24, p.title, { 'font-size': 15, 'font-weight': 'bold' });
  // Horizontal grid from the left axis (or the right one when there is no loss), then the frame.
  const gridAxis = hasLoss ? yAxes.loss : yAxes.metric;
  for (const t of gridAxis.ticks) body += el('line', { x1: plot.x, x2: plot.x + plot.w, y1: sy(gridAxis, t), y2: sy(gridAxis, t), stroke: '#e6e6e6', 'stroke-width': 1 });
  body += el('rect', { x: plot.x, y: plot.y, width: plot.w, height: plot.h, fill: 'none', stroke: MUTED, 'stroke-width': 1 });

  const bottom = plot.y + plot.h;
  for (const t of xAxis.ticks) {
    body += el('line', { x1: sx(t), x2: sx(t), y1: bottom, y2: bottom + 5, stroke: INK });
    body += text(sx(t), bottom + 18, tickLabel(t, xAxis.ticks), { 'text-anchor': 'middle', 'font-size': 11 });
  }
  body += text(plot.x + plot.w / 2, bottom + 36, 'epoch', { 'text-anchor': 'middle' });
  const sides = [
    { axis: yAxes.loss, show: hasLoss, x: plot.x, dir: -1, label: 'loss' },
    { axis: yAxes.metric, show: hasMetric, x: plot.x + plot.w, dir: 1, label: 'PCC' },
  ];
  for (const side of sides.filter((s) => s.show)) {
    for (const t of side.axis.ticks) {
      const y = sy(side.axis, t);
      body += el('line', { x1: side.x, x2: side.x + 5 * side.dir, y1: y, y2: y, stroke: INK });
      body += text(side.x + 8 * side.dir, y + 4, tickLabel(t, side.axis.ticks), { 'text-anchor': side.dir < 0 ? 'end' : 'start', 'font-size': 11 });
    }
    const lx = side.x + 48 * side.dir;
    body += text(lx, plot.y + plot.h / 2, side.label, { 'text-anchor': 'middle', transform: `rotate(-90 ${px(lx)} ${px(plot.y + plot.h / 2)})` });
  }

  let legendX = plot.x;
  p.series.forEach((s, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length];
    const axis = yAxes[s.axis];
    const points = s.x.map((x, k) => [x, s.y[k]]).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    const line = el('polyline', { points: points.map(([x, y]) => `${px(sx(x))},${px(sy(axis, y))}`).join(' '), fill: 'none', stroke: color, 'stroke-width': 2 });
    const markers = points.map(([x, y]) => el('circle', { cx: sx(x), cy: sy(axis, y), r: 3, fill: color })).join('');
    body += el('g', { 'aria-label': s.name }, line + markers);
    const ly = HEIGHT - 14;
    body += el('line', { x1: legendX, x2: legendX + 20, y1: ly - 4, y2: ly - 4, stroke: color, 'stroke-width': 2 });
    const label = `${s.name} (${s.axis === 'loss' ? 'left' : 'right'} axis)`;
    body += text(legendX + 26, ly, label, { 'font-size': 11 });
    legendX += 26 + label.length * 6.5 + 18;
  });
  return svgDocument(WIDTH, HEIGHT, p.title, body);
}
