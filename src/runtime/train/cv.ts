import * as fs from 'node:fs';
import * as path from 'node:path';
import { evaluate, metricsTables, slideMetrics, writeMetricsTables, type EvaluatedSlide, type Evaluation } from '../eval/metrics';
import { makeFolds, parseFolds, validationSplit, type Fold, type FoldSpec } from '../eval/folds';
import { baselineSettings, describeBaseline, isBaseline, isBaselineName, type BaselineSettings } from '../baselines/registry';
import { describeConfig, triplexConfig, type PresetName, type TriplexConfig } from '../models/triplexConfig';
import { buildTable, writeArrowFile } from '../store/arrow';
import { removePartials, writeFileAtomic } from '../store/atomic';
import { withLock } from '../store/lock';
import { sectionsWithoutImage } from './targetCrops';
import { loadTrainingData, requireCounts, type SectionInputs, type TrainingData } from './data';
import { loadTrainedModel, predictSections, prepareTargetInputs, trainFold, type TargetMode, type TrainProgress, type TrainResult } from './trainer';
import { readPredictions } from '../store/predictions';
import { againOnCpuIfDeviceLost } from './deviceRecovery';
import { CELL_RECORD, finishedCell, writeCellRecord, type CellRecord } from '../executors/grid';
import { runLocal } from '../executors/local';

/**
 * Cross-validation of one model variant (spec, "Evaluation"): folds grouped by patient, each
 * trained with early stopping on a validation split of its own training patients, scored on its
 * test slides; metrics per slide, per fold and over folds written as Arrow tables and JSON next
 * to each fold's predictions and checkpoints:
 *   <out>/fold-<k>/{best,last}.safetensors, history.json, timings.json, predictions.arrow
 *   <out>/metrics_{slides,folds,genes,summary}.arrow, results.json
 */

export interface CvOptions {
  storeDir: string;
  outDir: string;
  variant?: string;
  preset?: PresetName | (string & {});
  /** 'lopo' (default), 'kfold:<k>', or 'section' (explicit only; warns). */
  folds?: FoldSpec | (string & {});
  mode?: TargetMode;
  epochs?: number;
  patience?: number;
  batchSize?: number;
  microBatch?: number;
  learningRate?: number;
  seed?: number;
  init?: 'pytorch' | 'mean-bias';
  /** Standardise the frozen inputs per channel with training statistics (see TriplexConfig). */
  standardizeInputs?: boolean;
  /** Share of training sections held out for early stopping (patients drawn whole). */
  validationFraction?: number;
  /** Train and score only these folds (default all). */
  onlyFolds?: number[];
  features?: string;
  /** Modes layer4 and full: the ResNet18 weights the features were extracted with (see TrainOptions.weights). */
  weights?: string;
  /** Data already loaded for the store (reused across variants by the ablation). */
  data?: TrainingData;
  /** Train nothing: score the cells trained elsewhere (a Slurm array); a cell not finished is an error naming it. */
  gatherOnly?: boolean;
  signal?: AbortSignal;
  onProgress?: (fold: Fold, event: TrainProgress) => void;
  log?: (message: string) => void;
}

/** A run stopped on request (its checkpoints kept); the command line exits with 130. */
export class RunStopped extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunStopped';
  }
}

export interface FoldResult {
  fold: Fold;
  validation: string[];
  train: TrainResult;
  predictions: string;
}

export interface CvResult {
  variant: string;
  mode: TargetMode;
  config: TriplexConfig | BaselineSettings;
  folds: FoldResult[];
  evaluation: Evaluation;
  warnings: string[];
  aborted: boolean;
}

/** Every view's inputs, so that one load serves every variant. */
export const ALL_VIEWS = ['target', 'neighbor', 'global'] as const;

/** Cross-validates holding the run folder's lock: a second cv on the same folder refuses, naming this one. */
export async function crossValidate(o: CvOptions): Promise<CvResult> {
  return withLock(o.outDir, o.onlyFolds ? `triplex train-fold (fold ${o.onlyFolds.join(', ')})` : 'triplex cv', (lock) => {
    if (lock.tookOver) (o.log ?? console.warn)(`warning: ${lock.tookOver}`);
    return crossValidateLocked(o);
  });
}

/**
 * One cell of the grid alone (a Slurm array task): trains fold `fold` holding only that fold's
 * lock, so that the other cells of the run train beside it, and records the cell. The table is
 * gathered by the command that submitted the grid. `stopped` when a stop request ended it.
 */
export async function trainCvCell(o: CvOptions, fold: number): Promise<{ stopped: boolean; record?: CellRecord }> {
  const plan = planCv({ ...o, onlyFolds: [fold] });
  const r = await trainCell(plan, plan.chosen[0], o);
  return { stopped: r.stopped, record: r.record };
}

/** The folds a cross-validation with these options trains (each a cell of a grid), and what marks a cell done. */
export function cvCells(o: CvOptions): { folds: number[]; settings: Record<string, string | number> } {
  const plan = planCv({ ...o, log: () => undefined });
  return { folds: plan.chosen.map((f) => f.index), settings: cellSettings(o) };
}

/** What a finished cell must have been trained with to be reused (anything else trains it again, resuming). */
function cellSettings(o: CvOptions): Record<string, string | number> {
  const given = { variant: o.variant ?? 'triplex', mode: o.mode ?? 'frozen', preset: o.preset ?? 'bc1', folds: o.folds ?? 'lopo', epochs: o.epochs, patience: o.patience, batch: o.batchSize, lr: o.learningRate, seed: o.seed ?? 0, init: o.init, validation: o.validationFraction, standardize: o.standardizeInputs ? 1 : 0 };
  return Object.fromEntries(Object.entries(given).map(([k, v]) => [k, v ?? 'default']));
}

export const foldDir = (outDir: string, fold: number) => path.join(outDir, `fold-${fold}`);

interface CvPlan {
  data: TrainingData;
  variant: string;
  mode: TargetMode;
  config: TriplexConfig | BaselineSettings;
  description: string;
  sections: { id: string; patient: string; spots: number }[];
  chosen: Fold[];
  warnings: string[];
  log: (message: string) => void;
}

/** Everything decided before a fold trains: the data, the model's configuration, the folds. */
function planCv(o: CvOptions): CvPlan {
  const log = o.log ?? (() => undefined);
  const mode = o.mode ?? 'frozen';
  const variant = o.variant ?? 'triplex';
  // Modes layer4 and full compute the target view from crops: its cached token maps are not read.
  // The published models read only the pooled features (EGN's exemplars): not the 49 target tokens per spot TRIPLEX's frozen mode needs.
  const views = isBaselineName(variant) ? ['global' as const] : mode === 'frozen' ? ALL_VIEWS : ['neighbor' as const, 'global' as const];
  const data = o.data ?? loadTrainingData(o.storeDir, { views, features: o.features });
  requireCounts(data, 'cross-validated');
  const baseline = isBaselineName(variant);
  if (baseline && mode !== 'frozen') throw new Error(`--mode ${mode} is TRIPLEX's (how its target encoder trains); ${variant} trains as its paper does, leave --mode out`);
  const config = baseline
    ? baselineSettings(variant, o.preset)
    : triplexConfig({ preset: o.preset, variant, genes: data.genes.length, dim: data.dim, standardizeInputs: o.standardizeInputs });
  const description = isBaseline(config) ? describeBaseline(config) : describeConfig(config);
  const sections = [...data.sections.values()].map((s) => ({ id: s.id, patient: s.patient, spots: s.n }));
  if (baseline) {
    // Every published model learns from the spots' crops: a section without an image fails now, not after a fold has trained.
    const imageless = sectionsWithoutImage(o.storeDir, data.sections.keys());
    if (imageless.length) throw new Error(`${o.storeDir}: section ${imageless.join(', ')} has no image, and ${variant} takes the spots' crops (re-run preprocess with --with-images)`);
  }
  const { folds, warnings } = makeFolds(sections, parseFolds(o.folds ?? 'lopo'), o.seed ?? 0);
  for (const w of warnings) log(`warning: ${w}`);
  const chosen = o.onlyFolds ?? folds.map((f) => f.index);
  const unknown = chosen.filter((i) => !folds.some((f) => f.index === i));
  if (unknown.length) throw new Error(`no fold ${unknown.join(', ')}: the scheme '${o.folds ?? 'lopo'}' gives folds 0 to ${folds.length - 1}`);
  log(`${variant}: ${description}${baseline ? '' : `; mode ${mode}`}; ${chosen.length} of ${folds.length} folds`);
  return { data, variant, mode, config, description, sections, chosen: folds.filter((f) => chosen.includes(f.index)), warnings, log };
}

/** Trains one fold (its folder locked while it trains), scores its test slides, writes its predictions, then its record. */
async function trainCell(plan: CvPlan, fold: Fold, o: CvOptions, first = true): Promise<{ stopped: boolean; result?: FoldResult; record?: CellRecord }> {
  const { data, log, variant, mode, config } = plan;
  const dir = foldDir(o.outDir, fold.index);
  const split = validationSplit(plan.sections.filter((s) => fold.train.includes(s.id)), { fraction: o.validationFraction, seed: (o.seed ?? 0) + fold.index });
  if (split.warning) log(`fold ${fold.index}: warning: ${split.warning}`);
  log(`fold ${fold.index}: test ${fold.test.join(', ')} (patient ${fold.testPatients.join(', ')}); validation ${split.validation.join(', ')}; training ${split.train.length} sections`);
  const train = await trainFold(data, {
    config, mode, train: split.train, validation: split.validation, outDir: dir, epochs: o.epochs, patience: o.patience,
    batchSize: o.batchSize, microBatch: o.microBatch, learningRate: o.learningRate, seed: o.seed ?? 0, init: o.init, weights: o.weights, signal: o.signal,
    onProgress: (e) => o.onProgress?.(fold, e), onNote: log, ...(first ? { onEngine: log } : {}), onDeviceLost: log,
  });
  if (train.aborted) {
    log(`fold ${fold.index}: stopped on request after ${train.epochsRun} epoch(s); its last checkpoint is kept in ${dir}`);
    return { stopped: true };
  }
  const predictions = path.join(dir, 'predictions.arrow');
  const tests = fold.test.map((id) => data.sections.get(id)!);
  let noted = false; // the resampling line once, not again on a retry on the CPU
  const preds = await againOnCpuIfDeviceLost(`fold ${fold.index}'s predictions`, async () => {
    const { model } = await loadTrainedModel(train.checkpoint, data);
    try {
      await prepareTargetInputs(model, data, tests, noted ? undefined : log);
      noted = true;
      return await predictSections(model, data, tests);
    } finally {
      await model.dispose();
    }
  }, { say: log });
  await writePredictions(predictions, tests, preds, data.genes, { variant, mode, fold: fold.index, checkpoint: path.relative(dir, train.checkpoint) });
  const record = await writeCellRecord(dir, {
    cell: `${variant}/fold-${fold.index}`, settings: cellSettings(o),
    training: { test: fold.test, validation: split.validation, bestEpoch: train.bestEpoch, epochsRun: train.epochsRun, bestValidationPcc: train.bestValidationPcc, stoppedEarly: train.stoppedEarly, checkpoint: path.relative(dir, train.checkpoint) },
  });
  log(`fold ${fold.index}: best epoch ${train.bestEpoch + 1} of ${train.epochsRun} (validation PCC ${train.bestValidationPcc?.toFixed(3) ?? 'n/a'})`);
  return { stopped: false, result: { fold, validation: split.validation, train, predictions }, record };
}

async function crossValidateLocked(o: CvOptions): Promise<CvResult> {
  const plan = planCv(o);
  const { data, variant, mode, config, description, warnings, log } = plan;
  const settings = cellSettings(o);
  await removePartials(o.outDir); // results or metrics half-written when a run was killed
  // The local executor: the cells not done, one after another. `gatherOnly`: the cells were trained elsewhere (a Slurm array).
  const outcome = await runLocal(plan.chosen.map((fold, i) => ({
    key: `fold ${fold.index}`,
    done: () => o.gatherOnly === true || finishedCell({ dir: foldDir(o.outDir, fold.index), settings }) !== undefined,
    run: async () => {
      const r = await trainCell(plan, fold, o, i === 0);
      return { stopped: r.stopped, value: r.result };
    },
  })), o.gatherOnly ? undefined : log);
  const aborted = outcome.stopped;

  // Every cell is scored from its files (its predictions and record), however and wherever it was trained.
  const results: FoldResult[] = [];
  const scored: EvaluatedSlide[] = [];
  const missing: number[] = [];
  for (const fold of plan.chosen) {
    const dir = foldDir(o.outDir, fold.index);
    const record = finishedCell({ dir, settings });
    if (!record) {
      missing.push(fold.index);
      continue;
    }
    const predictions = path.join(dir, 'predictions.arrow');
    const preds = readPredictions(predictions);
    for (const id of fold.test) {
      const s = data.sections.get(id)!;
      const p = preds.sections.get(id);
      if (!p || p.spotIds.length !== s.n || p.spotIds.some((spot, i) => spot !== s.spotIds[i])) {
        throw new Error(`${predictions} does not hold section ${id}'s ${s.n} spots in the store's order; train fold ${fold.index} again (delete ${path.join(dir, CELL_RECORD)})`);
      }
      scored.push({ fold: fold.index, section: id, metrics: slideMetrics(p.values, s.values, s.n, data.genes) });
    }
    const result = outcome.trained.get(`fold ${fold.index}`) ?? resultOfRecord(fold, dir, record);
    results.push(result);
    const last = scored.filter((x) => x.fold === fold.index);
    log(`fold ${fold.index}: test PCC(M) ${last.map((x) => `${x.section} ${x.metrics.pccM.toFixed(3)}`).join(', ')}`);
  }
  if (missing.length && !aborted) {
    throw new Error(`${o.outDir}: fold ${missing.join(', ')} not finished (no ${CELL_RECORD} with these settings); run the command again to train ${missing.length === 1 ? 'it' : 'them'}, resuming from the last checkpoint`);
  }
  if (scored.length === 0 && aborted) throw new RunStopped('stopped on request before a fold finished; run the same command again to resume from the last checkpoint');
  if (scored.length === 0) throw new Error('no fold finished; nothing to score');
  const evaluation = evaluate(scored, data.genes, Math.min(50, data.genes.length));
  fs.mkdirSync(o.outDir, { recursive: true });
  await writeMetricsTables(o.outDir, metricsTables(evaluation, variant));
  await writeFileAtomic(path.join(o.outDir, 'results.json'), JSON.stringify({
    variant, mode, config, description, store: path.resolve(o.storeDir), features: data.featuresDir, folds: o.folds ?? 'lopo', warnings,
    summary: evaluation.summary,
    perFold: evaluation.folds.map((f) => ({ fold: f.index, mse: f.mse, mae: f.mae, pccM: f.pccM, pccH: f.pccH, slides: f.slides })),
    training: results.map((r) => ({ fold: r.fold.index, test: r.fold.test, validation: r.validation, bestEpoch: r.train.bestEpoch, epochsRun: r.train.epochsRun, bestValidationPcc: r.train.bestValidationPcc, stoppedEarly: r.train.stoppedEarly })),
    highlyPredictiveGenes: evaluation.highlyPredictive.genes,
    aborted,
  }, null, 1) + '\n');
  return { variant, mode, config, folds: results, evaluation, warnings, aborted };
}

/** A cell trained by an earlier run or another process, as this run's result. */
function resultOfRecord(fold: Fold, dir: string, r: CellRecord): FoldResult {
  const t = r.training;
  let history: TrainResult['history'] = [];
  try {
    history = JSON.parse(fs.readFileSync(path.join(dir, 'history.json'), 'utf8')) as TrainResult['history'];
  } catch {
    // history.json is the log of the epochs, not needed to score the cell
  }
  return {
    fold, validation: t.validation, predictions: path.join(dir, 'predictions.arrow'),
    train: { checkpoint: path.join(dir, t.checkpoint), bestEpoch: t.bestEpoch, bestValidationPcc: t.bestValidationPcc, epochsRun: t.epochsRun, stoppedEarly: t.stoppedEarly, aborted: false, resumedFrom: null, history },
  };
}

export { readPredictions };

/**
 * Predictions of a set of sections as an Arrow file: section, spot_id, prediction [genes]. `meta`
 * (the checkpoint, relative to the file's folder; the model) goes to the schema's metadata: no
 * absolute path and no time, so that the same run anywhere writes the same bytes.
 */
export async function writePredictions(file: string, sections: readonly Pick<SectionInputs, 'id' | 'n' | 'spotIds'>[], preds: Map<string, Float32Array>, genes: readonly string[], meta: Record<string, unknown>): Promise<void> {
  const G = genes.length;
  const total = sections.reduce((n, s) => n + s.n, 0);
  const values = new Float32Array(total * G);
  let at = 0;
  for (const s of sections) {
    values.set(preds.get(s.id)!, at);
    at += s.n * G;
  }
  const geneMeta = { 'triplex:genes': JSON.stringify(genes) };
  await writeArrowFile(file, buildTable([
    { name: 'section', column: { kind: 'utf8', values: sections.flatMap((s) => s.spotIds.map(() => s.id)) } },
    { name: 'spot_id', column: { kind: 'utf8', values: sections.flatMap((s) => s.spotIds) } },
    { name: 'prediction', column: { kind: 'vector', values, width: G }, metadata: geneMeta },
  ], { ...geneMeta, 'triplex:prediction': JSON.stringify(meta) }));
}


