// The toolbar: gene search and picker, the right panel's choice, the annotation overlay and its
// legend, the h5ad export, the headline, and in comparison mode the one shared colour scale.
import type { ViewerInbound } from '../../src/protocol/webviews';
import { button, checkbox, dropdown, el, textField } from '../ui/controls';
import { CATEGORIES } from './colormap';
import { schedule } from './render';
import { current, post, TITLES, viewer, type PanelKind } from './state';

export function headline(): string {
  const s = current();
  const pcc = s.values?.pcc;
  if (s.init.compare) {
    const n = s.init.compare.panels.length;
    return `${s.values?.gene ?? s.init.gene} on ${s.init.section}: ground truth and ${n} model${n === 1 ? '' : 's'}, PCC over the section's ${s.init.spots.ids.length} spots`;
  }
  return `${s.values?.gene ?? s.init.gene} on ${s.init.section}${pcc !== undefined && Number.isFinite(pcc) ? `: PCC ${pcc.toFixed(3)} between ground truth and prediction` : ''}`;
}

let requested: string | undefined;
/** Asks the extension for a gene's values (once per gene asked). */
export function selectGene(gene: string): void {
  if (!gene || gene === (requested ?? viewer.state?.values?.gene)) return;
  requested = gene;
  post('selectGene', { gene });
}

function geneSearch(init: ViewerInbound['init']): HTMLElement[] {
  const matches = el('span', 'muted');
  let picker = dropdown(init.genes.slice(0, 200).map((g) => ({ value: g, label: g })), init.gene, (g) => selectGene(g), 'gene');
  const search = textField(`search ${init.genes.length} genes`, (q) => {
    const found = init.genes.filter((g) => g.toLowerCase().includes(q.trim().toLowerCase()));
    matches.textContent = `${found.length} match${found.length === 1 ? '' : 'es'}`;
    const next = dropdown(found.slice(0, 200).map((g) => ({ value: g, label: g })), found[0] ?? '', (g) => selectGene(g), 'gene');
    picker.replaceWith(next);
    picker = next;
    if (found.length === 1) selectGene(found[0]);
  }, 'gene-search');
  picker.setAttribute('aria-label', 'gene');
  matches.setAttribute('aria-live', 'polite');
  return [search, picker, matches];
}

/** The legend of the annotation classes (hidden until the overlay is on). */
function annotationLegend(labels: string[]): HTMLElement {
  const legend = el('div', 'legend');
  legend.style.display = 'none';
  labels.forEach((l, i) => {
    const item = el('span', undefined, l);
    item.style.setProperty('--c', CATEGORIES[i % CATEGORIES.length]);
    legend.append(item);
  });
  return legend;
}

/** The comparison's one legend for the one scale every panel shares. */
function sharedScale(): HTMLElement {
  const shared = el('div', 'shared-scale');
  shared.id = 'shared-scale';
  const bar = el('canvas');
  shared.append(el('span', 'scale-lo'), bar, el('span', 'scale-hi'), el('span', 'muted scale-caption'));
  return shared;
}

/** Another section of the store: the extension sends a new `init`. */
function sectionSwitcher(init: ViewerInbound['init']): HTMLElement[] {
  const sections = init.sections ?? [];
  if (sections.length < 2) return [];
  const picker = dropdown(sections.map((x) => ({ value: x.id, label: `${x.id} (${x.spots} spots)` })), init.section, (section) => {
    if (section !== current().init.section) post('selectSection', { section });
  }, 'section');
  picker.setAttribute('aria-label', 'section');
  return [el('span', 'muted', 'section:'), picker];
}

export function buildToolbar(init: ViewerInbound['init'], labels: string[]): HTMLElement {
  const toolbar = el('div', 'toolbar');
  toolbar.setAttribute('role', 'toolbar');
  toolbar.setAttribute('aria-label', 'slide viewer');
  toolbar.append(...sectionSwitcher(init), ...geneSearch(init));
  if (init.hasTruth && init.hasPrediction && !init.compare) {
    toolbar.append(el('span', 'muted', 'right panel:'), dropdown([{ value: 'prediction', label: 'prediction' }, { value: 'error', label: 'error' }], current().panels[1], (v) => {
      current().panels[1] = v as PanelKind;
      const label = document.querySelectorAll('.panel .label')[1];
      if (label) label.textContent = TITLES[v as PanelKind];
      schedule();
    }, 'right-panel'));
  }
  const legend = annotationLegend(labels);
  if (labels.length) {
    toolbar.append(checkbox('pathologist annotations', false, (on) => {
      current().annotations = on;
      legend.style.display = on ? 'flex' : 'none';
      schedule();
    }, 'annotations'));
  }
  toolbar.append(button('Export .h5ad', () => post('exportH5ad', {}), { secondary: true, id: 'export-h5ad' }));
  const title = el('span', 'headline', headline());
  title.id = 'headline';
  title.setAttribute('aria-live', 'polite');
  toolbar.append(title, legend);
  if (init.compare) {
    toolbar.append(sharedScale());
    if (init.compare.left.length) toolbar.append(el('span', 'muted', `left out: ${init.compare.left.join('; ')}`));
  }
  return toolbar;
}
