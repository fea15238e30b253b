// The display row: colour maps, the colour range's rule, spot size and opacities, several genes at
// once (a grid or a gene-set score from a pasted list), and export of the view as PNG or SVG.
import { ERROR_MAPS, MAX_MULTIPLES, VALUE_MAPS, type ViewerDisplay } from '../../src/protocol/webviews';
import { button, dropdown, el, slider, textField } from '../ui/controls';
import { exportName, exportPng, exportSvg } from './exportView';
import { rebuildPanels } from './panels';
import { schedule } from './render';
import { parseGeneList } from './scale';
import { current, post, viewer } from './state';

/** Changes one display setting and redraws. */
function set<K extends keyof ViewerDisplay>(key: K, value: ViewerDisplay[K]): void {
  viewer.display = { ...viewer.display, [key]: value };
  schedule();
}

const options = (values: readonly string[]) => values.map((v) => ({ value: v, label: v }));

/** Asks for several genes at once; the panels change when the values arrive (`showMultiples`). */
function multiGenes(): HTMLElement[] {
  const status = el('span', 'muted');
  status.id = 'multi-status';
  status.setAttribute('aria-live', 'polite');
  const list = textField(`genes for a grid or a score (up to ${MAX_MULTIPLES})`, () => undefined, 'gene-list', 'genes to show at once, separated by spaces or commas');
  const ask = (purpose: 'grid' | 'score') => {
    const genes = parseGeneList(list.value);
    const known = new Set(current().init.genes);
    if (genes.length === 0 || genes.length > MAX_MULTIPLES) {
      status.textContent = `give 1 to ${MAX_MULTIPLES} genes`;
      return;
    }
    const unknown = genes.filter((g) => !known.has(g));
    status.textContent = unknown.length ? `not in this view: ${unknown.join(', ')}` : '';
    const asked = genes.filter((g) => known.has(g));
    if (asked.length === 0) return;
    viewer.asked = { purpose, genes: asked };
    post('selectGenes', viewer.asked);
  };
  return [list, button('Grid', () => ask('grid'), { secondary: true, id: 'show-grid' }), button('Score', () => ask('score'), { secondary: true, id: 'show-score' }),
    button('One gene', () => showSingle(), { secondary: true, id: 'show-single' }), status];
}

/** Back from a grid or score to the one gene's panels. */
export function showSingle(): void {
  const s = current();
  if (!s.multiples) return;
  s.multiples = undefined;
  viewer.asked = undefined;
  rebuildPanels();
  schedule();
}

/** The extension's values for a grid or a score: the panels change to show them. */
export function showMultiples(m: NonNullable<ReturnType<typeof current>['multiples']>): void {
  const s = current();
  s.multiples = m;
  const status = document.getElementById('multi-status');
  if (status && m.unknown.length) status.textContent = `not found: ${m.unknown.join(', ')}`;
  rebuildPanels();
  schedule();
}

export function buildDisplayRow(): HTMLElement {
  const s = current();
  const d = viewer.display;
  const row = el('div', 'controls');
  row.setAttribute('role', 'toolbar');
  row.setAttribute('aria-label', 'display');
  row.append(el('span', 'muted', 'colours:'), dropdown(options(VALUE_MAPS), d.valueMap, (v) => set('valueMap', v as ViewerDisplay['valueMap']), 'value-map'));
  if (s.init.hasTruth && s.init.hasPrediction && !s.init.compare) row.append(el('span', 'muted', 'errors:'), dropdown(options(ERROR_MAPS), d.errorMap, (v) => set('errorMap', v as ViewerDisplay['errorMap']), 'error-map'));
  if (!s.init.compare) {
    row.append(el('span', 'muted', 'range:'), dropdown([{ value: 'percentile', label: '1st–99th percentile' }, { value: 'minmax', label: 'min–max' }], d.range, (v) => set('range', v as ViewerDisplay['range']), 'range-rule'));
  }
  const size = slider('spot size', d.spotScale, { min: 0.25, max: 3, step: 0.05 }, (v) => set('spotScale', v), 'spot-size');
  if (s.init.spotDiameterFrom) size.title = `1 = ${s.init.spotDiameter.toFixed(1)} px: ${s.init.spotDiameterFrom}`;
  row.append(size, slider('spot opacity', d.spotOpacity, { min: 0, max: 1, step: 0.05 }, (v) => set('spotOpacity', v), 'spot-opacity'));
  if (s.init.tiles) row.append(slider('image opacity', d.imageOpacity, { min: 0, max: 1, step: 0.05 }, (v) => set('imageOpacity', v), 'image-opacity'));
  if (!s.init.compare) row.append(...multiGenes());
  row.append(button('Export PNG', () => post('exportView', { format: 'png', data: exportPng(), name: exportName() }), { secondary: true, id: 'export-png' }),
    button('Export SVG', () => post('exportView', { format: 'svg', data: exportSvg(), name: exportName() }), { secondary: true, id: 'export-svg' }));
  return row;
}
