import Plotly from 'plotly.js-dist-min';
import type { CurvePayload, GeneMapPayload } from '../../src/protocol/outputs';
import { el } from '../ui/dom';
import { themeColor } from './theme';

function baseLayout(): Partial<Plotly.Layout> {
  const fg = themeColor('--vscode-foreground', '#888');
  return {
    paper_bgcolor: 'rgba(0,0,0,0)',
    plot_bgcolor: 'rgba(0,0,0,0)',
    font: { color: fg, family: themeColor('--vscode-font-family', 'sans-serif'), size: 12 },
    margin: { l: 50, r: 20, t: 40, b: 40 },
  };
}

/** Grid lines that read on light and dark backgrounds alike. */
const GRID = 'rgba(128,128,128,0.25)';

const CONFIG: Partial<Plotly.Config> = { responsive: true, displaylogo: false };

/** The gene over the section's spots, one panel per value set; y grows downwards as in the image. */
export async function renderGeneMap(root: HTMLElement, p: GeneMapPayload): Promise<void> {
  const div = el('div', 'plot');
  root.append(div);
  const shared = p.panels.filter((x) => !x.diverging).flatMap((x) => x.values);
  const lo = Math.min(...shared);
  const hi = Math.max(...shared);
  const n = p.panels.length;
  const traces: Partial<Plotly.PlotData>[] = p.panels.map((panel, i) => {
    const extent = Math.max(...panel.values.map(Math.abs)) || 1;
    return {
      type: 'scatter', mode: 'markers', name: panel.title,
      x: p.x, y: p.y, text: p.spotIds,
      xaxis: i === 0 ? 'x' : `x${i + 1}`, yaxis: i === 0 ? 'y' : `y${i + 1}`,
      hovertemplate: `%{text}<br>${panel.title}: %{marker.color:.3f}<extra></extra>`,
      marker: {
        color: panel.values, size: 7,
        colorscale: panel.diverging ? 'RdBu' : 'Viridis', // RdBu: over-prediction red, under blue
        cmin: panel.diverging ? -extent : lo, cmax: panel.diverging ? extent : hi,
        showscale: panel.diverging || i === 0,
        colorbar: { x: panel.diverging ? 1.02 : -0.12, len: 0.8, thickness: 10 },
      },
    };
  });
  const layout: Partial<Plotly.Layout> = {
    ...baseLayout(),
    title: { text: `${p.gene} on ${p.section}${p.pcc !== undefined ? ` (PCC ${p.pcc.toFixed(3)})` : ''}` },
    showlegend: false,
    height: 360,
    grid: { rows: 1, columns: n, pattern: 'independent' },
    annotations: p.panels.map((panel, i) => ({ text: panel.title, showarrow: false, xref: 'paper', yref: 'paper', x: (i + 0.5) / n, y: -0.08, xanchor: 'center' })),
  };
  for (let i = 0; i < n; i++) {
    const s = i === 0 ? '' : String(i + 1);
    (layout as Record<string, unknown>)[`xaxis${s}`] = { visible: false, scaleanchor: `y${s}` };
    (layout as Record<string, unknown>)[`yaxis${s}`] = { visible: false, autorange: 'reversed' };
  }
  await Plotly.newPlot(div, traces as Plotly.Data[], layout, CONFIG);
}

/** Loss per epoch on the left axis, validation PCC on the right. */
export async function renderCurve(root: HTMLElement, p: CurvePayload): Promise<void> {
  const div = el('div', 'plot');
  root.append(div);
  const traces = p.series.map((s) => ({ type: 'scatter', mode: 'lines+markers', name: s.name, x: s.x, y: s.y, yaxis: s.axis === 'loss' ? 'y' : 'y2' }));
  await Plotly.newPlot(div, traces as Plotly.Data[], {
    ...baseLayout(),
    title: { text: p.title },
    height: 300,
    xaxis: { title: { text: 'epoch' }, dtick: 1, gridcolor: GRID },
    yaxis: { title: { text: 'loss' }, gridcolor: GRID, zerolinecolor: GRID },
    yaxis2: { title: { text: 'PCC' }, overlaying: 'y', side: 'right', showgrid: false, tickformat: '.2f' },
    margin: { l: 50, r: 60, t: 40, b: 40 },
    legend: { orientation: 'h', y: -0.25 },
  }, CONFIG);
}
