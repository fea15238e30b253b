// The slide viewer's comparison mode (the paper's Figure 2): the truth and each model's prediction
// of one gene side by side, all on one colour scale, each model's panel titled with its PCC on the
// slide. Pure functions of the messages; main.ts lays the panels out and draws them.
import type { ComparisonPanels, ViewerInbound } from '../../src/protocol/webviews';

type Values = ViewerInbound['values'] | undefined;

export const TRUTH_TITLE = 'ground truth';

const pccText = (pcc: number | null | undefined) => (typeof pcc === 'number' && Number.isFinite(pcc) ? pcc.toFixed(3) : 'n/a');

/** Panel titles: the truth, then each model's label and PCC for the gene shown. */
export function panelTitles(compare: ComparisonPanels, values: Values): string[] {
  return [TRUTH_TITLE, ...compare.panels.map((p, i) => `${p.label}: PCC ${pccText(values?.compare?.panels[i]?.pcc)}`)];
}

/** A title's tooltip: where the prediction comes from, and why a PCC is missing. */
export function panelNotes(compare: ComparisonPanels, values: Values): string[] {
  return [`${values?.gene ?? ''} normalised expression`, ...compare.panels.map((p, i) => {
    const v = values?.compare?.panels[i];
    const why = v?.problem ?? (v && v.pcc === null ? 'PCC undefined: the truth or the prediction is constant on this section' : '');
    return [`held-out prediction of fold ${p.fold}`, why].filter(Boolean).join('\n');
  })];
}

/** Each panel's values in spot order: the truth, then the models'. */
export function panelValues(compare: ComparisonPanels, values: Values): (number[] | undefined)[] {
  return [values?.truth, ...compare.panels.map((_, i) => values?.compare?.panels[i]?.prediction)];
}

/** The legend's words for the shared scale. */
export function scaleCaption(values: Values): string {
  const s = values?.compare?.scale;
  return s ? `${values?.gene}: one colour scale for every panel, ${s.lo.toFixed(2)} to ${s.hi.toFixed(2)} (${s.rule})` : '';
}

/** Hover lines for spot `i`: the truth and each model's value. */
export function hoverLines(compare: ComparisonPanels, values: Values, i: number): string[] {
  const fmt = (v: number | undefined) => (v === undefined || v === null || !Number.isFinite(v) ? 'n/a' : v.toFixed(3));
  return [`${TRUTH_TITLE} ${fmt(values?.truth?.[i])}`, ...compare.panels.map((p, k) => `${p.label} ${fmt(values?.compare?.panels[k]?.prediction[i])}`)];
}

/** Columns of the panel grid that make each panel show the slide largest (an image of w x h in a box of W x H). */
export function gridColumns(panels: number, box: { width: number; height: number }, image: { width: number; height: number }): number {
  let best = 1;
  let bestScale = 0;
  for (let cols = 1; cols <= panels; cols++) {
    const rows = Math.ceil(panels / cols);
    const scale = Math.min(box.width / cols / image.width, box.height / rows / image.height);
    if (scale > bestScale * 1.0001) {
      best = cols;
      bestScale = scale;
    }
  }
  return best;
}
