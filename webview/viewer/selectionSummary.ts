// What a selection of spots holds for the gene shown: how many spots, the mean truth and
// prediction, and their PCC inside the selection (the same pearson as the slide's PCC, from the
// runtime: one definition, imported by the webview bundle). Pure.
import { pearson } from '../../src/runtime/eval/pearson';

export interface SelectionSummary {
  count: number;
  meanTruth?: number;
  meanPrediction?: number;
  /** NaN when undefined (fewer than two spots, or either series constant inside the selection). */
  pcc?: number;
}

const mean = (values: readonly number[], picked: readonly number[]) => picked.reduce((sum, i) => sum + values[i], 0) / picked.length;

/** The summary of the spots `picked` (indices into the value arrays). */
export function summarise(picked: readonly number[], truth?: readonly number[], prediction?: readonly number[]): SelectionSummary {
  const out: SelectionSummary = { count: picked.length };
  if (picked.length === 0) return out;
  if (truth) out.meanTruth = mean(truth, picked);
  if (prediction) out.meanPrediction = mean(prediction, picked);
  if (truth && prediction) out.pcc = picked.length < 2 ? Number.NaN : pearson(picked.map((i) => truth[i]), picked.map((i) => prediction[i]));
  return out;
}

/** One line for the selection bar, e.g. "42 spots · mean truth 0.512 · mean prediction 0.498 · PCC 0.731". */
export function summaryText(s: SelectionSummary, gene: string): string {
  if (s.count === 0) return 'no spots selected';
  const fmt = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : 'n/a');
  const parts = [`${s.count} spot${s.count === 1 ? '' : 's'}`];
  if (s.meanTruth !== undefined) parts.push(`mean truth ${fmt(s.meanTruth)}`);
  if (s.meanPrediction !== undefined) parts.push(`mean prediction ${fmt(s.meanPrediction)}`);
  if (s.pcc !== undefined) parts.push(`PCC ${fmt(s.pcc)} (${gene}, inside the selection)`);
  return parts.join(' · ');
}
