import * as fs from 'node:fs';
import * as path from 'node:path';
import { isBaseline } from '../baselines/registry';
import { alignGenes } from '../data/geneList';
import { writeFileAtomic } from '../store/atomic';
import { openDatasetStore } from '../store/datasetStore';
import { ALL_VIEWS, writePredictions } from '../train/cv';
import { STREAM_FEATURES_BYTES, featureKeys, loadTrainingData, type SectionInputs, type TrainingData } from '../train/data';
import { readCheckpoint, type CheckpointInfo } from '../train/checkpoints';
import { describeCheckpoint, loadModelCheckpoint } from '../train/referenceCheckpoint';
import type { FoldLearner } from '../train/learner';
import { runCheckpoints } from '../train/runSource';
import { predictSections, prepareTargetInputs } from '../train/trainer';
import { gatherColumns } from '../util/numeric';
import { nanMean, slideMetrics, summarise, type FoldScores } from './metrics';
import { table2Csv, table2Markdown, table2Text, type Table2Row } from './table2';

/**
 * External validation (the paper's Table 2): the fold models of a cv run (or one checkpoint)
 * applied to another store with counts, its genes aligned by name. Model genes the store lacks
 * are left out of every metric and reported; the store's other genes are ignored. PCC(H) is over
 * the TRAINING run's highly predictive genes (its results.json), as the paper does, not genes
 * picked on the test data. Per test section: MSE, MAE, PCC(M), PCC(H) of each fold model, as
 * mean ± sd over folds, or of one ensemble (the mean of the fold models' predictions).
 */

export interface EvaluateOptions {
  /** A cv run folder (fold-<k>/best.safetensors) or one checkpoint file. */
  source: string;
  storeDir: string;
  outDir: string;
  ensemble?: boolean;
  /** Features folder under <store>/features (default: the one the run was trained on). */
  features?: string;
  /** The genes of an authors' checkpoint (.ckpt), a file of names one a line (default: the store's, when their number matches). */
  genes?: string;
  log?: (message: string) => void;
}

export interface SectionScore extends FoldScores {
  section: string;
  spots: number;
}

export interface EvaluationReport {
  model: string;
  source: string;
  store: string;
  features: string;
  ensemble: boolean;
  genes: {
    model: number;
    shared: string[];
    /** Model genes the store lacks: left out of every metric. */
    missing: string[];
    /** The training run's highly predictive genes that the store has (PCC(H) is over these); none without a run. */
    highlyPredictive: string[];
    highlyPredictiveMissing: string[];
  };
  /** One entry per fold model, or one for the ensemble (fold -1). */
  scores: { fold: number; checkpoint: string; predictions: string; sections: SectionScore[] }[];
  row: Table2Row;
  notes: string[];
}

interface ModelSource {
  label: string;
  checkpoints: { fold: number; file: string }[];
  /** The cv run folder (its results.json holds the highly predictive genes), when known. */
  runDir?: string;
}

/** A cv run folder or one of its checkpoints; anything else is refused by name. */
export function modelSource(source: string): ModelSource {
  if (!fs.existsSync(source)) throw new Error(`${source}: not found; give a cv run folder (from \`triplex cv\`) or a checkpoint (fold-<k>/best.safetensors)`);
  if (fs.statSync(source).isFile()) {
    const foldDir = path.dirname(path.resolve(source));
    const fold = /^fold-(\d+)$/.exec(path.basename(foldDir))?.[1];
    const runDir = fold !== undefined && fs.existsSync(path.join(foldDir, '..', 'results.json')) ? path.dirname(foldDir) : undefined;
    return { label: runDir ? `${path.basename(runDir)} fold ${fold}` : path.basename(source), checkpoints: [{ fold: fold === undefined ? 0 : Number(fold), file: source }], runDir };
  }
  const checkpoints = runCheckpoints(source);
  if (checkpoints.length === 0) throw new Error(`${source} is not a cv run folder (no fold-<k>/best.safetensors); give the --out folder of \`triplex cv\` or one checkpoint`);
  return { label: path.basename(path.resolve(source)), checkpoints, runDir: source };
}

/** The highly predictive genes a cv run found on its own test folds (results.json), if it has them. */
function trainingHighlyPredictive(runDir: string | undefined): string[] | undefined {
  if (!runDir) return undefined;
  const file = path.join(runDir, 'results.json');
  if (!fs.existsSync(file)) return undefined;
  let results: { highlyPredictiveGenes?: unknown };
  try {
    results = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof results;
  } catch (e) {
    throw new Error(`${file}: not readable JSON (${(e as Error).message}); re-run \`triplex cv\` or give one checkpoint`, { cause: e });
  }
  const genes = results.highlyPredictiveGenes;
  return Array.isArray(genes) && genes.every((g) => typeof g === 'string') ? genes : undefined;
}

/**
 * The features folder to read: the one asked for, else the one the run was trained on; a store
 * without it is told which `triplex extract` to run. An authors' checkpoint records none: the one
 * asked for, else (undefined) the store's only one, as loadTrainingData resolves it.
 */
function featuresFor(storeDir: string, info: CheckpointInfo, asked: string | undefined, checkpoint: string): string | undefined {
  const key = path.basename(info.featuresDir);
  if (!key) return asked;
  const extract = `run \`triplex extract ${storeDir} --encoder ${key.replace(/-[0-9a-f]{8,}$/, '')}\` with the --weights the training store's features were extracted with (none for the built-in seeded ResNet18)`;
  // Keys are `<encoder>-<hash of encoder and weights>`: another key is another encoder or other weights.
  if (asked && path.basename(path.resolve(asked)) !== key && /^[\w]+-[0-9a-f]{8,}$/.test(key)) {
    throw new Error(`${checkpoint} was trained on features '${key}', and --features ${asked} are another encoder's or weights'; ${extract}`);
  }
  if (asked) return asked;
  if (fs.existsSync(path.join(storeDir, 'features', key))) return key;
  const found = featureKeys(storeDir);
  throw new Error(`${storeDir} has no features from the encoder ${checkpoint} was trained with ('${key}'${found.length ? `; it has ${found.join(', ')}` : ''}); ${extract}`);
}

/**
 * A fold model for a store whose genes may differ from its own: the one place evaluation loads
 * a checkpoint, ours or the authors' (the features and width are checked; genes are aligned by
 * name afterwards).
 */
export async function loadModelForStore(file: string, data: TrainingData, genes?: string): Promise<{ model: FoldLearner; info: CheckpointInfo }> {
  const { model, info } = await loadModelCheckpoint(file, { ...data, genesByName: true }, { genes });
  return { model, info };
}

/** Scores one section's predictions (all model genes) on the shared genes. */
function scoreSection(pred: Float32Array, s: SectionInputs, at: { model: number[]; store: number[]; modelGenes: number; storeGenes: number; hpg: number[] }, shared: string[]): SectionScore {
  const m = slideMetrics(gatherColumns(pred, at.modelGenes, at.model), gatherColumns(s.values, at.storeGenes, at.store), s.n, shared);
  const pccH = at.hpg.length ? nanMean(at.hpg.map((g) => m.pccPerGene[g])).mean : Number.NaN;
  return { section: s.id, spots: s.n, mse: m.mse, mae: m.mae, pccM: m.pccM, pccH };
}

/** Evaluates a run (or checkpoint) on a store and writes predictions, table2.{md,csv} and evaluation.json to outDir. */
export async function evaluateOnStore(o: EvaluateOptions): Promise<EvaluationReport & { text: string }> {
  const log = o.log ?? (() => undefined);
  const src = modelSource(o.source);
  const store = openDatasetStore(o.storeDir);
  if (!store.hasCounts) throw new Error(`${o.storeDir} has no counts (made by \`triplex slide\`): there is no truth to score against; use \`triplex predict ${o.storeDir} --checkpoint <best.safetensors>\` for its predictions`);
  const described = await describeCheckpoint(src.checkpoints[0].file, store, { genes: o.genes });
  for (const n of described.notes) log(n);
  const first = described.info;
  const modelGenes = first.genes;
  for (const c of src.checkpoints.slice(1)) {
    const { info } = await readCheckpoint(c.file);
    if (info.genes.join('\n') !== modelGenes.join('\n')) throw new Error(`${c.file} predicts other genes than ${src.checkpoints[0].file}; the folds of one run share their genes`);
  }
  const { shared, missing } = alignGenes(modelGenes, store.genes, `${o.storeDir} (for the ${modelGenes.length} genes of ${o.source})`);
  const mode = first.mode;
  const views = isBaseline(first.config) ? ['global' as const] : mode === 'frozen' ? ALL_VIEWS : ['neighbor' as const, 'global' as const];
  const data = loadTrainingData(o.storeDir, { views, features: featuresFor(o.storeDir, first, o.features, src.checkpoints[0].file), streamAbove: STREAM_FEATURES_BYTES });

  const notes: string[] = [];
  if (missing.length) notes.push(`${missing.length} of the model's ${modelGenes.length} genes are not in ${o.storeDir} and are left out of every metric: ${missing.join(', ')}`);
  const hpgAll = trainingHighlyPredictive(src.runDir);
  if (!hpgAll) notes.push(`no results.json of a cv run beside ${o.source}: PCC(H), which needs the training run's highly predictive genes, is n/a`);
  const hpg = (hpgAll ?? []).filter((g) => shared.includes(g));
  const hpgMissing = (hpgAll ?? []).filter((g) => !shared.includes(g));
  if (hpgMissing.length) notes.push(`${hpgMissing.length} of the training run's ${hpgAll!.length} highly predictive genes are missing from the store; PCC(H) is over the other ${hpg.length}`);
  for (const n of notes) log(`note: ${n}`);
  const at = { model: shared.map((g) => modelGenes.indexOf(g)), store: shared.map((g) => data.genes.indexOf(g)), modelGenes: modelGenes.length, storeGenes: data.genes.length, hpg: hpg.map((g) => shared.indexOf(g)) };

  const sections = [...data.sections.values()];
  const predictionsDir = path.join(o.outDir, 'predictions');
  const scores: EvaluationReport['scores'] = [];
  const ensembleSum = sections.map((s) => new Float64Array(s.n * modelGenes.length));
  for (const c of src.checkpoints) {
    const { model, info } = await loadModelForStore(c.file, data, o.genes);
    let preds: Map<string, Float32Array>;
    try {
      await prepareTargetInputs(model, data, sections, log);
      preds = await predictSections(model, data, sections);
    } finally {
      await model.dispose();
    }
    sections.forEach((s, k) => preds.get(s.id)!.forEach((v, i) => { ensembleSum[k][i] += v; }));
    if (o.ensemble) continue;
    const file = path.join(predictionsDir, `fold-${c.fold}.arrow`);
    await writePredictions(file, sections, preds, modelGenes, { checkpoint: path.relative(predictionsDir, path.resolve(c.file)), mode: info.mode, fold: c.fold });
    scores.push({ fold: c.fold, checkpoint: c.file, predictions: file, sections: sections.map((s) => scoreSection(preds.get(s.id)!, s, at, shared)) });
    log(`fold ${c.fold}: ${scores.at(-1)!.sections.map((s) => `${s.section} PCC(M) ${s.pccM.toFixed(3)}`).join(', ')}`);
  }
  if (o.ensemble) {
    const n = src.checkpoints.length;
    const preds = new Map(sections.map((s, k) => [s.id, Float32Array.from(ensembleSum[k], (v) => v / n)] as const));
    const file = path.join(predictionsDir, 'ensemble.arrow');
    await writePredictions(file, sections, preds, modelGenes, { ensemble: src.checkpoints.map((c) => path.relative(predictionsDir, path.resolve(c.file))), mode, folds: src.checkpoints.map((c) => c.fold) });
    scores.push({ fold: -1, checkpoint: o.source, predictions: file, sections: sections.map((s) => scoreSection(preds.get(s.id)!, s, at, shared)) });
  }

  const row: Table2Row = {
    model: src.label, folds: src.checkpoints.length, ensemble: !!o.ensemble,
    sections: sections.map((s) => {
      const summary = summarise(scores.map((f) => f.sections.find((x) => x.section === s.id)!));
      return { section: s.id, values: [summary.mse, summary.mae, summary.pccM, summary.pccH] };
    }),
  };
  const report: EvaluationReport = {
    model: src.label, source: path.resolve(o.source), store: path.resolve(o.storeDir), features: path.basename(data.featuresDir), ensemble: !!o.ensemble,
    genes: { model: modelGenes.length, shared, missing, highlyPredictive: hpg, highlyPredictiveMissing: hpgMissing },
    scores, row, notes,
  };
  const caption = `${src.label} on ${path.basename(path.resolve(o.storeDir))}: ${shared.length} of ${modelGenes.length} genes shared${missing.length ? ` (${missing.length} missing, left out)` : ''}`;
  fs.mkdirSync(o.outDir, { recursive: true });
  await writeFileAtomic(path.join(o.outDir, 'table2.md'), table2Markdown([row], caption));
  await writeFileAtomic(path.join(o.outDir, 'table2.csv'), table2Csv([row]));
  await writeFileAtomic(path.join(o.outDir, 'evaluation.json'), JSON.stringify(report, (_, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  return { ...report, text: table2Text([row]) };
}
