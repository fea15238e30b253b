import { stringColumn } from '../runtime/store/arrow';
import { openDatasetStore, type DatasetStore } from '../runtime/store/datasetStore';
import { sectionPredictions } from '../runtime/store/predictions';
import { spotDiameterPx } from '../runtime/store/spotDiameter';
import { pearson } from '../runtime/eval/pearson';
import { compareOnSlide, comparisonRuns, viewerValues, type SlideComparison } from '../runtime/eval/slideComparison';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseViewerSavedState, type ViewerInbound, type ViewerMultiples, type ViewerRequest } from '../protocol/webviews';

/**
 * What the slide viewer shows of one section, read from the store's tables (Arrow files, no
 * image decoding, no `vscode`): its spots, their truth and prediction of a gene, several genes for
 * a grid or a score, and the spot size and scale the viewer draws them at.
 */

export interface SectionData {
  store: DatasetStore;
  section: string;
  rows: number[];
  /** Spot ids of the section's rows. */
  spotIds: string[];
  truth?: Float32Array;
  prediction?: { genes: string[]; values: Float32Array };
  comparison?: SlideComparison;
}

/** Spot diameter when a section has too few spots to measure (the 224 px crop's 60%). */
const FALLBACK_DIAMETER = 224 * 0.6;

export function sectionData(request: Omit<ViewerRequest, 'section'>, section: string): SectionData {
  const store = openDatasetStore(request.store);
  const rows = store.rowsOf(section);
  if (rows.length === 0) throw new Error(`${request.store}: no section '${section}'`);
  const ids = stringColumn(store.spots, 'spot_id');
  const spotIds = rows.map((r) => ids[r]);
  const prediction = request.predictions ? sectionPredictions(request.predictions, section, spotIds) : undefined;
  const comparison = request.compare ? compareOnSlide(request.store, comparisonRuns(request.compare), section) : undefined;
  return { store, section, rows, spotIds, truth: store.hasCounts ? store.values() : undefined, prediction, comparison };
}

/** The genes the viewer offers: the compared models', the prediction's, or the store's. */
export const viewerGenes = (data: SectionData): string[] => data.comparison?.genes ?? data.prediction?.genes ?? data.store.genes;

function truthOf(data: SectionData, gene: string): number[] | undefined {
  const g = data.store.genes.indexOf(gene);
  if (!data.truth || g < 0) return undefined;
  const G = data.store.genes.length;
  return data.rows.map((r) => data.truth![r * G + g]);
}

function predictionOf(data: SectionData, gene: string): number[] | undefined {
  const pg = data.prediction ? data.prediction.genes.indexOf(gene) : -1;
  if (!data.prediction || pg < 0) return undefined;
  const G = data.prediction.genes.length;
  return data.rows.map((_, k) => data.prediction!.values[k * G + pg]);
}

export function valuesFor(data: SectionData, gene: string): ViewerInbound['values'] {
  if (data.comparison) return viewerValues(data.comparison, gene);
  const out: ViewerInbound['values'] = { gene };
  const truth = truthOf(data, gene);
  const prediction = predictionOf(data, gene);
  if (truth) out.truth = truth;
  if (prediction) out.prediction = prediction;
  if (truth && prediction) {
    const r = pearson(truth, prediction);
    if (Number.isFinite(r)) out.pcc = r;
  }
  return out;
}

/** Several genes' values (a grid or a score): the ground truth where the store has counts, else the prediction. */
export function multiplesFor(data: SectionData, asked: ViewerMultiples): ViewerInbound['multiples'] {
  const source = data.truth ? 'ground truth' : 'prediction';
  const genes: ViewerInbound['multiples']['genes'] = [];
  const unknown: string[] = [];
  for (const gene of asked.genes) {
    const values = source === 'ground truth' ? truthOf(data, gene) : predictionOf(data, gene);
    if (values) genes.push({ gene, values });
    else unknown.push(gene);
  }
  return { purpose: asked.purpose, source, genes, unknown };
}

/** The section's spots as the viewer draws them, its spot diameter (and how it was found) and scale. */
export function sectionView(data: SectionData): Pick<ViewerInbound['init'], 'spots' | 'spotDiameter' | 'spotDiameterFrom' | 'mpp' | 'sections'> {
  const spots = data.store.spots;
  const labels = spots.schema.fields.some((f) => f.name === 'label') ? stringColumn(spots, 'label') : [];
  const px = spots.getChild('pixel_x');
  const py = spots.getChild('pixel_y');
  const x = data.rows.map((r) => Number(px?.get(r)));
  const y = data.rows.map((r) => Number(py?.get(r)));
  const manifest = data.store.manifest;
  const mpp = manifest.sections.find((s) => s.id === data.section)?.mpp;
  const diameter = spotDiameterPx(x, y, manifest.source.format, mpp, FALLBACK_DIAMETER);
  return {
    spots: { ids: data.spotIds, x, y, labels: data.rows.map((r) => labels[r] || null) },
    spotDiameter: diameter.px, spotDiameterFrom: diameter.from,
    ...(mpp ? { mpp } : {}),
    sections: manifest.sections.map((s) => ({ id: s.id, spots: s.spots })),
  };
}

/**
 * What reopens a viewer after a window reload: its saved state's store, section, predictions or
 * compared runs, and gene; or why not (the state is not a viewer's, or its store is gone), which
 * the serializer logs before it closes the panel.
 */
export function restoredRequest(state: unknown): (ViewerRequest & { gene: string }) | string {
  const saved = parseViewerSavedState(state);
  if (!saved) return 'its saved state is not a slide viewer\'s';
  if (!fs.existsSync(path.join(saved.request.store, 'store.json'))) return `its store ${saved.request.store} is gone`;
  return { ...saved.request, gene: saved.gene };
}
