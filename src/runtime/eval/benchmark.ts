import * as fs from 'node:fs';
import * as path from 'node:path';
import { isBaselineName } from '../baselines/registry';
import { writeFileAtomic } from '../store/atomic';
import { withLock } from '../store/lock';
import { crossValidate, ALL_VIEWS, type CvOptions, type CvResult } from '../train/cv';
import type { TrainingData } from '../train/data';
import { loadTrainingData } from '../train/data';
import { sectionsWithoutImage } from '../train/targetCrops';
import type { TargetMode, TrainProgress } from '../train/trainer';
import type { Fold } from './folds';
import { BENCHMARK_MODELS, isBenchmarkModel, modelLabel, table1Csv, table1Group, table1Markdown, type BenchmarkModel, type Table1Row } from './table1';

/**
 * `triplex benchmark`: every model of the paper's comparison on every fold of one store under one
 * protocol (the same folds, genes, preprocessing, validation split of training patients for early
 * stopping, metrics and seeds), each model a cross-validation run of its own folder, resumed
 * where it stopped and skipped when done, then one table in Table 1's layout:
 *   <out>/benchmark.json (the protocol: a second run must match it), <out>/<model>/ (cv runs),
 *   <out>/table1.md, table1.csv, results.json.
 */

export interface BenchmarkOptions {
  storeDir: string;
  outDir: string;
  models?: readonly string[];
  folds?: string;
  preset?: string;
  epochs?: number;
  patience?: number;
  batchSize?: number;
  learningRate?: number;
  seed?: number;
  validationFraction?: number;
  /** TRIPLEX's target mode for its variants (the baselines train as their papers do). */
  mode?: TargetMode;
  /** Every model's output bias: PyTorch's initialisation, or the training mean (short runs). */
  init?: 'pytorch' | 'mean-bias';
  /** TRIPLEX's frozen inputs standardised per channel (an encoder without pretrained weights). */
  standardizeInputs?: boolean;
  features?: string;
  /** Train nothing: gather the cells trained elsewhere (a Slurm array). */
  gatherOnly?: boolean;
  signal?: AbortSignal;
  log?: (message: string) => void;
  onProgress?: (model: BenchmarkModel, fold: Fold, event: TrainProgress) => void;
}

export interface BenchmarkRow extends Table1Row {
  /** Wall time of this invocation's training and scoring of the model (0 when skipped as done). */
  seconds: number;
  dir: string;
}

export interface BenchmarkResult {
  rows: BenchmarkRow[];
  markdown: string;
  aborted: boolean;
}

/** What identifies a benchmark folder's protocol: cells of another store or configuration cannot be mixed in. */
interface Protocol {
  store: string;
  folds: string;
  preset: string;
  epochs: number;
  patience: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  validationFraction: number;
  mode: TargetMode;
  init: 'pytorch' | 'mean-bias';
  standardizeInputs: boolean;
  features: string;
}

export function parseModels(list: readonly string[] | undefined): BenchmarkModel[] {
  const names = list?.length ? list : BENCHMARK_MODELS;
  const unknown = names.filter((m) => !isBenchmarkModel(m));
  if (unknown.length) throw new Error(`unknown model ${unknown.join(', ')}; choose from ${BENCHMARK_MODELS.join(', ')}`);
  return [...new Set(names)] as BenchmarkModel[];
}

export function runBenchmark(o: BenchmarkOptions): Promise<BenchmarkResult> {
  return withLock(o.outDir, 'triplex benchmark', (lock) => {
    if (lock.tookOver) (o.log ?? console.warn)(`warning: ${lock.tookOver}`);
    return runBenchmarkLocked(o);
  });
}

/**
 * The benchmark's models not done in an earlier run, each with the cross-validation that trains it
 * (for an executor that trains the cells elsewhere); checks the folder's protocol first.
 */
export function benchmarkPlan(o: BenchmarkOptions): { model: BenchmarkModel; cv: CvOptions }[] {
  const { models, cv } = prepare(o);
  return models.filter((m) => !finishedRun(path.join(o.outDir, m))).map((m) => ({ model: m, cv: cv(m) }));
}

/** The models, the protocol (checked against the folder's), and each model's cross-validation options. */
function prepare(o: BenchmarkOptions): { models: BenchmarkModel[]; protocol: Protocol; data: TrainingData; cv: (model: BenchmarkModel) => CvOptions } {
  const log = o.log ?? (() => undefined);
  const models = parseModels(o.models);
  const data = loadTrainingData(o.storeDir, { views: ALL_VIEWS, features: o.features });
  const protocol: Protocol = {
    store: path.resolve(o.storeDir), folds: o.folds ?? 'lopo', preset: o.preset ?? 'bc1', epochs: o.epochs ?? 200, patience: o.patience ?? 20,
    batchSize: o.batchSize ?? 128, learningRate: o.learningRate ?? 1e-4, seed: o.seed ?? 0, validationFraction: o.validationFraction ?? 0.15,
    mode: o.mode ?? 'frozen', init: o.init ?? 'pytorch', standardizeInputs: o.standardizeInputs ?? false, features: path.basename(data.featuresDir),
  };
  checkProtocol(o.outDir, protocol);
  // What the models need is checked before any trains: a store without images fails now, not after hours.
  const baselines = models.filter(isBaselineName);
  const imageless = sectionsWithoutImage(o.storeDir, data.sections.keys());
  if (baselines.length && imageless.length) {
    throw new Error(`${o.storeDir}: sections ${imageless.join(', ')} have no image, and ${baselines.join(', ')} learn from the spots' crops; ` +
      're-run `triplex preprocess` with --with-images, or leave those models out with --models');
  }
  const cv = (model: BenchmarkModel): CvOptions => ({
    storeDir: o.storeDir, outDir: path.join(o.outDir, model), variant: model, preset: protocol.preset, folds: protocol.folds, mode: isBaselineName(model) ? 'frozen' : protocol.mode,
    epochs: protocol.epochs, patience: protocol.patience, batchSize: protocol.batchSize, learningRate: protocol.learningRate, seed: protocol.seed,
    validationFraction: protocol.validationFraction, init: protocol.init, standardizeInputs: protocol.standardizeInputs, features: o.features, data, signal: o.signal, log: (m) => log(m.startsWith(`${model}: `) ? m : `${model}: ${m}`),
    onProgress: (fold, e) => o.onProgress?.(model, fold, e), gatherOnly: o.gatherOnly,
  });
  return { models, protocol, data, cv };
}

async function runBenchmarkLocked(o: BenchmarkOptions): Promise<BenchmarkResult> {
  const log = o.log ?? (() => undefined);
  const { models, protocol, cv } = prepare(o);
  const rows: BenchmarkRow[] = [];
  let aborted = false;
  for (const model of models) {
    const dir = path.join(o.outDir, model);
    const done = finishedRun(dir);
    if (done) {
      log(`${modelLabel(model)}: done in an earlier run (${dir}); skipped`);
      rows.push({ model, values: done.values, folds: done.folds, seconds: 0, dir });
      continue;
    }
    const t0 = performance.now();
    const result: CvResult = await crossValidate(cv(model));
    const seconds = (performance.now() - t0) / 1000;
    const s = result.evaluation.summary;
    rows.push({ model, values: [s.mse, s.mae, s.pccM, s.pccH], folds: s.folds, seconds, dir });
    log(`${modelLabel(model)}: PCC(M) ${s.pccM.mean.toFixed(3)} over ${s.folds} folds in ${seconds.toFixed(0)} s`);
    if (result.aborted) {
      aborted = true;
      break;
    }
  }
  const caption = `mean ± sample standard deviation over ${protocol.folds} folds of ${path.basename(protocol.store)}; preset ${protocol.preset}, ` +
    `at most ${protocol.epochs} epochs with early stopping on held-out training patients; best of each column in bold`;
  const markdown = table1Markdown(rows, caption);
  fs.mkdirSync(o.outDir, { recursive: true });
  await writeFileAtomic(path.join(o.outDir, 'table1.md'), markdown);
  await writeFileAtomic(path.join(o.outDir, 'table1.csv'), table1Csv(rows));
  await writeFileAtomic(path.join(o.outDir, 'results.json'), JSON.stringify({
    protocol, aborted,
    rows: rows.map((r) => ({
      model: r.model, label: modelLabel(r.model), group: table1Group(r.model), folds: r.folds, seconds: r.seconds, dir: path.relative(o.outDir, r.dir),
      mse: r.values[0], mae: r.values[1], pccM: r.values[2], pccH: r.values[3],
    })),
  }, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 1) + '\n');
  return { rows, markdown, aborted };
}

/** Writes the folder's protocol, or refuses a folder whose cells come from another store or configuration. */
function checkProtocol(outDir: string, protocol: Protocol): void {
  const file = path.join(outDir, 'benchmark.json');
  if (fs.existsSync(file)) {
    let known: Protocol;
    try {
      known = JSON.parse(fs.readFileSync(file, 'utf8')) as Protocol;
    } catch (e) {
      throw new Error(`${file} is not readable JSON (${(e as Error).message}); it records the benchmark's protocol: choose another --out`, { cause: e });
    }
    const differ = (Object.keys(protocol) as (keyof Protocol)[]).filter((k) => known[k] !== protocol[k]);
    if (differ.length) {
      throw new Error(`${outDir} holds a benchmark of another ${differ.map((k) => `${k} (${String(known[k])}, now ${String(protocol[k])})`).join(', ')}; ` +
        'its cells cannot be mixed with these: choose another --out, or delete the folder to start over');
    }
    return;
  }
  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(file, JSON.stringify(protocol, null, 1) + '\n');
}

/** A model's run that finished every fold: its summary, or undefined (absent, stopped, or unreadable: it is run again, resuming). */
function finishedRun(dir: string): { values: Table1Row['values']; folds: number } | undefined {
  const file = path.join(dir, 'results.json');
  if (!fs.existsSync(file)) return undefined;
  try {
    const r = JSON.parse(fs.readFileSync(file, 'utf8')) as { aborted?: boolean; summary?: Record<'mse' | 'mae' | 'pccM' | 'pccH', { mean: number | null; std: number | null }> & { folds: number } };
    if (r.aborted || !r.summary) return undefined;
    const v = (k: 'mse' | 'mae' | 'pccM' | 'pccH') => ({ mean: r.summary![k].mean ?? Number.NaN, std: r.summary![k].std ?? Number.NaN });
    return { values: [v('mse'), v('mae'), v('pccM'), v('pccH')], folds: r.summary.folds };
  } catch {
    return undefined;
  }
}
