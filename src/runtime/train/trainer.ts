import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { selectEngine, type EngineChoice } from '../engine/choice';
import { trainWithDeviceRecovery, type RunPosition } from './deviceRecovery';
import type { Executor } from '../engine/executor';
import { createTfjsExecutor } from '../engine/tfjs';
import { slideMetrics } from '../eval/metrics';
import { inputStats, meanExpression } from './sectionStats';
import { seededResNet18StateDict } from '../models/resnet18Weights';
import { activeViews, type TriplexConfig } from '../models/triplexConfig';
import { removePartials, writeFileAtomic } from '../store/atomic';
import { withLock } from '../store/lock';
import { mulberry32 } from '../util/random';
import type { StateDict } from '../weights/stateDict';
import { stepLR } from './adam';
import { epochBatches, sectionBatches, type Pick, type TargetInput } from './batches';
import { requireCounts, type SectionInputs, type TrainingData } from './data';
import { EngineLearner } from './engineLearner';
import type { FoldLearner, Learner, PredictOptions } from './learner';
import { CHECKPOINT_FORMAT, CHECKPOINT_VERSION, checkPredictedGenes, readCheckpoint, writeCheckpoint, type CheckpointInfo, type EpochRecord, type TargetMode } from './checkpoints';

export { CHECKPOINT_FORMAT, checkPredictedGenes, readCheckpoint, type CheckpointInfo, type EpochRecord, type TargetMode } from './checkpoints';
import { BaselineLearner } from './baselineLearner';
import { baselineStart, createBaselineNet, isBaseline, type BaselineSettings } from '../baselines/registry';
import { SPOT_SIZE } from '../image/crops';
import { cacheLayer3, initialTrunk, loadTargetCrops, targetCropSource } from './targetCrops';
import { currentExecutor } from '../executors/grid';

export type { Learner } from './learner';

/**
 * Training of one fold (spec, "Training"): Adam lr 1e-4 with StepLR(50, 0.9), batches of 128
 * spots (each one pass of the engine), early stopping on the mean PCC of a
 * validation split drawn from the training patients (patience 20), seeded, with a checkpoint
 * written atomically after every epoch from which a killed run resumes, progress events, and an
 * abort signal checked before every batch.
 */

/**
 * How the target encoder is trained; recorded with every result. `frozen`: the cached token
 * maps of the frozen ResNet18 (nothing of the trunk is trained); `layer4`: the trunk's last stage
 * fine-tuned on cached conv1..layer3 maps of the crops; `full`: the whole trunk fine-tuned on the
 * crops, as the paper.
 */

export interface TrainOptions {
  /** TRIPLEX's configuration, or a baseline's settings (baselines/registry.ts). */
  config: TriplexConfig | BaselineSettings;
  mode: TargetMode;
  train: readonly string[];
  /** Sections for early stopping; empty = no early stopping, the last epoch is kept. */
  validation: readonly string[];
  /** Folder of the run's files: last.safetensors, best.safetensors, history.json, timings.json. */
  outDir: string;
  epochs?: number;
  patience?: number;
  batchSize?: number;
  /**
   * Kept in the run's signature only, so that runs begun when the TF.js model accumulated its
   * gradients over micro-batches still resume: every engine now takes a batch in one pass.
   */
  microBatch?: number;
  /**
   * Modes layer4 and full: the ResNet18 weights the store's features were extracted with (the
   * target encoder starts from them); none = the seeded initialisation `triplex extract` uses without --weights.
   */
  weights?: string;
  learningRate?: number;
  lrStep?: number;
  lrGamma?: number;
  seed?: number;
  /**
   * 'pytorch' (default): every parameter starts as PyTorch's defaults, as the reference.
   * 'mean-bias': the heads' biases start at the training spots' mean expression (for short runs).
   */
  init?: 'pytorch' | 'mean-bias';
  /** Continue from outDir's last checkpoint when it is from this same run (default true). */
  resume?: boolean;
  /** The engine (default auto: onnxruntime when it loads; TRIPLEX_ENGINE overrides). */
  engine?: EngineChoice;
  /** One line saying which engine trains, and why. */
  onEngine?: (line: string) => void;
  /** The executor instead of the engine choice (tests, programs that hold one); a GPU device lost mid-run moves the run to the CPU (deviceRecovery.ts). */
  executor?: Executor;
  /** The one line saying a GPU device was lost and where the run goes on (default: stderr). */
  onDeviceLost?: (line: string) => void;
  /** Lines about the run's inputs: a section's crops resampled to the training scale (modes layer4 and full). */
  onNote?: (line: string) => void;
  signal?: AbortSignal;
  onProgress?: (event: TrainProgress) => void;
}

export interface TrainProgress {
  kind: 'batch' | 'epoch' | 'resumed';
  epoch: number;
  epochs: number;
  batch: number;
  batches: number;
  /** Mean training loss over the epoch so far. */
  loss: number;
  validationPcc?: number;
  bestEpoch?: number;
  spotsPerSecond: number;
  /** Seconds left if every epoch runs (early stopping may end sooner). */
  etaSeconds: number;
}

/** An epoch's timings (timings.json). */
export interface EpochTiming { epoch: number; seconds: number; spotsPerSecond: number; /** The first epoch after a GPU device was lost: the line that said so. */ deviceLost?: string }

export interface TrainResult {
  /** The best epoch's weights (the last epoch's without validation). */
  checkpoint: string;
  bestEpoch: number;
  bestValidationPcc: number | null;
  epochsRun: number;
  stoppedEarly: boolean;
  aborted: boolean;
  resumedFrom: number | null;
  history: EpochRecord[];
  /** The line saying a GPU device was lost and the run went on from its last checkpoint on the CPU. */ deviceLost?: string;
}

/** The micro-batch a run's signature records when none is given (TF.js's old defaults: 32 spots, 8 in mode full). */
const SIGNED_MICRO_BATCH = 32;
const SIGNED_MICRO_BATCH_FULL = 8;

/**
 * TRIPLEX on the engine (models/triplex.ts), run by onnxruntime, or where it is missing or TF.js is
 * asked for, by the engine's TF.js interpreter of the same graphs; `onEngine` gets one line saying
 * which, and why. `trunk`: the weights (torchvision names) the target encoder starts from, modes
 * layer4 and full (the engine's ResNet18, models/resnet18.ts). `executor`: this one instead of the
 * engine choice (tests; the CPU after a GPU device was lost).
 */
export async function createLearner(config: TriplexConfig, o: { seed?: number; trunk?: StateDict; trained?: 'all' | 'layer4'; engine?: EngineChoice; onEngine?: (line: string) => void; executor?: Executor }): Promise<Learner> {
  const executor = await engineExecutor(o.engine, o.onEngine, 'TRIPLEX runs its engine graphs', o.executor);
  const trunk = o.trunk ? { mode: o.trained === 'layer4' ? 'layer4' as const : 'full' as const, weights: o.trunk } : undefined;
  return new EngineLearner(config, executor, o.seed ?? 0, trunk);
}

/** A checkpoint's model weights, without the optimiser's state. */
const modelWeights = (sd: StateDict): StateDict => new Map([...sd].filter(([k]) => !k.startsWith('optimizer.')));

/** Mixes a run seed with a purpose and an epoch: independent, repeatable streams. */
const streamSeed = (seed: number, purpose: number, epoch: number): number => Math.floor(mulberry32((seed * 7919 + purpose * 104729 + epoch * 15485863) >>> 0)() * 0x100000000);

/** What the target view takes in each mode. */
export const targetInputOf = (mode: TargetMode): TargetInput => (mode === 'full' ? 'crops' : mode === 'layer4' ? 'layer3' : 'tokens');

/** Trains one fold; returns when early stopping, the epoch limit or the abort signal ends it. */
export async function trainFold(data: TrainingData, options: TrainOptions): Promise<TrainResult> {
  // One writer per run folder: a second train-fold (or a cv's fold) on the same folder refuses, naming this one.
  // A Slurm task names its job: the lock of one killed on another node is cleared by the next submission (executors/slurm.ts).
  const job = currentExecutor().job;
  return withLock(options.outDir, job ? `fold training (slurm job ${job})` : 'fold training', (lock) => {
    if (lock.tookOver) console.warn(`warning: ${lock.tookOver}`);
    return trainWithDeviceRecovery(options, (opts, at, deviceLost) => trainFoldLocked(data, opts, at, deviceLost));
  });
}

/** What a model brings to the one training loop: its learner, what identifies its run, and its batches. */
interface FoldSetup {
  learner: FoldLearner;
  /** Model-specific parts of the run's signature and checkpoint metadata. */
  identity: Record<string, unknown>;
  info: Partial<CheckpointInfo>;
  batchesOf(sections: readonly SectionInputs[], batchSize: number, seed: number): Pick[][];
  /** What validation predictions take as the target input (TRIPLEX's mode). */
  target?: TargetInput;
  /** Signed with the run only (see TrainOptions.microBatch). */
  microBatch: number;
  /** Writes checkpoint tensors (a baseline's reference spots need the training sections named). */
  load(sd: StateDict, source: string, optimizerStep?: number): void;
}

async function trainFoldLocked(data: TrainingData, options: TrainOptions, at: RunPosition, lostLine?: string): Promise<TrainResult> {
  // Options left undefined (cv passes every one it has) take the defaults, not `undefined`.
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as TrainOptions;
  const o = {
    epochs: 200, patience: 20, batchSize: 128, learningRate: 1e-4, lrStep: 50, lrGamma: 0.9, seed: 0, resume: true, ...given,
  };
  requireCounts(data, 'trained on');
  const sectionsOf = (ids: readonly string[], role: string) => ids.map((id) => {
    const s = data.sections.get(id);
    if (!s) throw new Error(`${role} section ${id} is not loaded`);
    return s;
  });
  const trainSections = sectionsOf(o.train, 'training');
  const validationSections = sectionsOf(o.validation, 'validation');
  if (trainSections.length === 0) throw new Error('no training sections');
  const overlap = o.validation.filter((s) => o.train.includes(s));
  if (overlap.length) throw new Error(`sections ${overlap.join(', ')} are both in training and in validation`);
  const config = o.config;
  const setup = isBaseline(config)
    ? await baselineSetup(data, config, o, trainSections, validationSections)
    : await triplexSetup(data, config, o, trainSections, validationSections);
  const { learner } = setup;
  const signed = (features: string) => ({
    ...setup.identity,
    config, mode: o.mode, train: o.train, validation: o.validation, seed: o.seed, init: o.init ?? 'pytorch', batchSize: o.batchSize, microBatch: setup.microBatch,
    learningRate: o.learningRate, lrStep: o.lrStep, lrGamma: o.lrGamma, features, genes: data.genes,
  });
  // The features by their place in the store, not on this disk: the same run on a copy of the store,
  // or with the store moved, signs (and writes) the same bytes. Runs begun before that were signed
  // with the absolute path, and still resume.
  const signature = runSignature(signed(storeRelativeFeatures(data.featuresDir)));
  const legacySignature = runSignature(signed(path.resolve(data.featuresDir)));
  const history: EpochRecord[] = [];
  let startEpoch = 0;
  let bestEpoch = -1;
  let bestPcc: number | null = null;
  let resumedFrom: number | null = null;
  const lastFile = path.join(o.outDir, 'last.safetensors');
  const bestFile = path.join(o.outDir, 'best.safetensors');
  const historyFile = path.join(o.outDir, 'history.json');
  const timingsFile = path.join(o.outDir, 'timings.json');
  let timings: EpochTiming[] = [];
  let deviceLost = lostLine; // noted on the first epoch after a device loss
  try {
    fs.mkdirSync(o.outDir, { recursive: true });
    await removePartials(o.outDir); // a checkpoint half-written when a run was killed
    if (o.resume && fs.existsSync(lastFile)) {
      const { info, weights } = await readCheckpoint(lastFile);
      if (info.signature !== signature && info.signature !== legacySignature) {
        throw new Error(`${lastFile} is from another run (different configuration, sections, seed or features); ` +
          'choose another output folder, or delete it to start over');
      }
      setup.load(weights, lastFile, info.step);
      history.push(...info.history.map(content));
      startEpoch = info.epoch;
      // Timings of the epochs kept (a kill may have come between the checkpoint and timings.json).
      // A run begun before timings.json had them in its checkpoints' history.
      const kept = fs.existsSync(timingsFile) ? readTimings(timingsFile) : info.history.filter((h) => h.seconds !== undefined).map((h) => ({ epoch: h.epoch, seconds: h.seconds!, spotsPerSecond: h.spotsPerSecond ?? NaN }));
      timings = kept.filter((t) => t.epoch < startEpoch);
      bestEpoch = info.bestEpoch;
      bestPcc = info.bestValidationPcc;
      resumedFrom = startEpoch;
      o.onProgress?.({ kind: 'resumed', epoch: startEpoch, epochs: o.epochs, batch: 0, batches: 0, loss: history.at(-1)?.loss ?? NaN, validationPcc: bestPcc ?? undefined, bestEpoch, spotsPerSecond: 0, etaSeconds: NaN });
    }
    const info = (epoch: number): CheckpointInfo => ({
      format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, config, mode: o.mode, genes: data.genes, epoch, step: learner.step,
      bestEpoch, bestValidationPcc: bestPcc, signature, history, train: [...o.train], trainPatients: trainSections.map((s) => s.patient), validation: [...o.validation],
      featuresDir: storeRelativeFeatures(data.featuresDir),
      ...(data.cropMpp ? { mpp: data.cropMpp } : {}),
      ...setup.info,
    });
    /** history.json (content only, comparable between runs) and timings.json (this run's clock). */
    const writeHistory = async () => {
      await writeFileAtomic(historyFile, JSON.stringify(history, null, 1) + '\n');
      await writeFileAtomic(timingsFile, JSON.stringify(timings, null, 1) + '\n');
    };
    // A run killed after its last checkpoint but before history.json resumes with nothing left to
    // train: the files are brought up to the checkpoint now.
    if (resumedFrom !== null) await writeHistory();
    const stopped = () => bestEpoch >= 0 && validationSections.length > 0 && history.length - 1 - bestEpoch >= o.patience;
    let aborted = false;
    const started = performance.now();
    let spotsDone = 0;
    const perEpoch = trainSections.reduce((n, s) => n + s.n, 0);
    for (let epoch = startEpoch; epoch < o.epochs && !stopped(); epoch++) {
      const t0 = performance.now();
      at.epoch = epoch;
      const learningRate = stepLR(o.learningRate, epoch, o.lrStep, o.lrGamma);
      const augment = mulberry32(streamSeed(o.seed, 2, epoch));
      const batches = setup.batchesOf(trainSections, o.batchSize, streamSeed(o.seed, 3, epoch));
      let lossSum = 0;
      let spots = 0;
      for (let b = 0; b < batches.length; b++) {
        if (o.signal?.aborted) { aborted = true; break; }
        const batch = batches[b];
        at.batch = b + 1;
        const loss = await learner.trainBatch(batch, { learningRate, dropoutSeed: streamSeed(o.seed, 1, epoch * 100_003 + b), augment });
        lossSum += loss * batch.length;
        spots += batch.length;
        spotsDone += batch.length;
        const rate = spotsDone / ((performance.now() - started) / 1000);
        o.onProgress?.({
          kind: 'batch', epoch, epochs: o.epochs, batch: b + 1, batches: batches.length, loss: lossSum / spots, spotsPerSecond: rate,
          etaSeconds: ((o.epochs - epoch) * perEpoch - spots) / rate, bestEpoch, validationPcc: bestPcc ?? undefined,
        });
        // Let the event loop run (progress output, abort requests from other tasks).
        await new Promise((resolve) => setImmediate(resolve));
      }
      if (aborted) break;
      at.batch = 0;
      const validationPcc = validationSections.length ? await meanValidationPcc(learner, data, validationSections, setup.target) : null;
      const seconds = (performance.now() - t0) / 1000;
      history.push({ epoch, loss: lossSum / spots, validationPcc, learningRate });
      timings.push({ epoch, seconds, spotsPerSecond: spots / seconds, ...(deviceLost ? { deviceLost } : {}) });
      deviceLost = undefined;
      const improved = validationPcc === null || bestPcc === null || validationPcc > bestPcc;
      if (improved) {
        bestEpoch = epoch;
        bestPcc = validationPcc;
        await writeCheckpoint(bestFile, learner, info(epoch + 1), false);
      }
      await writeCheckpoint(lastFile, learner, info(epoch + 1), true);
      at.wrote = true;
      await writeHistory();
      const rate = spotsDone / ((performance.now() - started) / 1000);
      o.onProgress?.({
        kind: 'epoch', epoch, epochs: o.epochs, batch: batches.length, batches: batches.length, loss: lossSum / spots, validationPcc: validationPcc ?? undefined,
        bestEpoch, spotsPerSecond: rate, etaSeconds: ((o.epochs - epoch - 1) * perEpoch) / rate,
      });
    }
    if (bestEpoch < 0 && !fs.existsSync(bestFile)) {
      throw new Error(`training was stopped before its first epoch ended; nothing was written to ${o.outDir}`);
    }
    return {
      checkpoint: bestFile, bestEpoch, bestValidationPcc: bestPcc, epochsRun: history.length, stoppedEarly: stopped() && history.length < o.epochs,
      aborted, resumedFrom, history: history.map((h) => ({ ...h, ...timingOf(timings, h.epoch) })),
    };
  } finally {
    await learner.dispose();
  }
}

const runSignature = (signed: Record<string, unknown>): string => createHash('sha256').update(JSON.stringify(signed)).digest('hex').slice(0, 24);

/** `features/<encoder key>`: the features folder by its place in its store (`<store>/features/<key>`). */
const storeRelativeFeatures = (featuresDir: string): string => `${path.basename(path.dirname(path.resolve(featuresDir)))}/${path.basename(featuresDir)}`;

/** An epoch's content without timings (checkpoints before they moved out held them). */
const content = (h: EpochRecord): EpochRecord => ({ epoch: h.epoch, loss: h.loss, validationPcc: h.validationPcc, learningRate: h.learningRate });

const timingOf = (timings: readonly EpochTiming[], epoch: number): Partial<EpochTiming> => {
  const t = timings.find((x) => x.epoch === epoch);
  return t ? { seconds: t.seconds, spotsPerSecond: t.spotsPerSecond } : {};
};

/** timings.json of a run folder; none (or unreadable: it is only a record) = no timings. */
function readTimings(file: string): EpochTiming[] {
  try {
    const t = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return Array.isArray(t) ? t.filter((x): x is EpochTiming => typeof x?.epoch === 'number' && typeof x.seconds === 'number' && typeof x.spotsPerSecond === 'number') : [];
  } catch {
    return [];
  }
}

type ResolvedOptions = TrainOptions & { batchSize: number; seed: number };

/** TRIPLEX's part of a fold: checks, the trunk of modes layer4 and full, input statistics. */
async function triplexSetup(data: TrainingData, config: TriplexConfig, o: ResolvedOptions, trainSections: SectionInputs[], validationSections: SectionInputs[]): Promise<FoldSetup> {
  const microBatch = Math.min(o.microBatch ?? (o.mode === 'full' ? SIGNED_MICRO_BATCH_FULL : SIGNED_MICRO_BATCH), o.batchSize);
  if (config.genes !== data.genes.length) throw new Error(`the configuration predicts ${config.genes} genes, the store has ${data.genes.length}`);
  if (config.dim !== data.dim) throw new Error(`the configuration has d = ${config.dim}, the features are ${data.dim} wide`);
  const views = activeViews(config);
  const trainsTrunk = o.mode !== 'frozen' && views.includes('target');
  if (o.mode !== 'frozen' && !trainsTrunk) throw new Error(`mode ${o.mode} fine-tunes the target encoder, but this configuration has no target view; train it in mode frozen`);
  const start = trainsTrunk ? await initialTrunk(data.featuresDir, o.weights) : undefined;
  const learner = await createLearner(config, { seed: o.seed, trunk: start?.weights, trained: o.mode === 'layer4' ? 'layer4' : 'all', engine: o.engine, onEngine: o.onEngine, executor: o.executor });
  try {
    if (start) {
      await loadTargetCrops(data, [...trainSections, ...validationSections], undefined, o.onNote);
      // conv1..layer3 are frozen and run in inference mode: their output is cached once.
      if (o.mode === 'layer4') await cacheLayer3(start, [...trainSections, ...validationSections], { engine: o.engine, executor: o.executor });
    }
  } catch (e) {
    await learner.dispose();
    throw e;
  }
  if (o.init === 'mean-bias') learner.setHeadBias(meanExpression(trainSections, data.genes.length));
  if (config.standardizeInputs) learner.setInputStats(inputStats(trainSections, learner.standardizedViews, data.dim));
  return {
    learner, microBatch, target: targetInputOf(o.mode),
    identity: { trunk: start?.identity },
    info: start ? { trunkWeights: start.identity } : {},
    batchesOf: epochBatches,
    load: (sd, source, step) => learner.load(sd, source, step),
  };
}

/**
 * Where a model's engine graphs run: onnxruntime, or where it is missing or TF.js is asked for, the
 * engine's TF.js interpreter of the same graphs (several times slower; the line says so).
 */
async function engineExecutor(choice: EngineChoice | undefined, onEngine: ((line: string) => void) | undefined, who: string, given?: Executor): Promise<Executor> {
  const engine = given ? { executor: given, reason: given.describe() } : await selectEngine(choice);
  if (engine.executor) {
    onEngine?.(`engine: ${engine.reason}`);
    return engine.executor;
  }
  onEngine?.(`engine: ${engine.reason}; ${who} on the TF.js interpreter (several times slower than onnxruntime)`);
  return createTfjsExecutor();
}

const baselineExecutor = (choice?: EngineChoice, onEngine?: (line: string) => void, given?: Executor) => engineExecutor(choice, onEngine, 'the published models run their engine graphs', given);

/** A baseline's part of a fold: its net on the engine, its starting weights, its inputs and reference spots. */
async function baselineSetup(data: TrainingData, settings: BaselineSettings, o: ResolvedOptions, trainSections: SectionInputs[], validationSections: SectionInputs[]): Promise<FoldSetup> {
  if (o.mode !== 'frozen') throw new Error(`--mode ${o.mode} is TRIPLEX's (how its target encoder trains); ${settings.model} trains as its paper does, leave --mode out`);
  const net = createBaselineNet(settings, { genes: data.genes.length, featureDim: data.dim }, o.seed);
  const executor = await baselineExecutor(o.engine, o.onEngine, o.executor);
  const start = await baselineStart(settings, o.weights);
  const learner = new BaselineLearner(net, executor, start?.weights);
  await learner.prepare(data, trainSections, validationSections);
  if (o.init === 'mean-bias' && net.headBias) learner.setHeadBias(meanExpression(trainSections, data.genes.length));
  const train = { sections: trainSections.map((s) => s.id), patients: trainSections.map((s) => s.patient) };
  return {
    learner, microBatch: o.batchSize,
    identity: { weights: start?.identity },
    info: start ? { trunkWeights: start.identity } : {},
    batchesOf: net.unit === 'section' ? sectionBatches : epochBatches,
    load: (sd, source, step) => learner.load(sd, source, step, train),
  };
}

/**
 * Predictions [n, genes] for every spot of each section, in inference mode, on the learner's
 * engine. A model with a trained trunk takes the sections' crops (prepareTargetInputs first).
 */
export function predictSections(learner: FoldLearner, data: TrainingData, sections: readonly SectionInputs[], batchSize?: number, target?: TargetInput): Promise<Map<string, Float32Array>> {
  const o: PredictOptions = { ...(batchSize ? { batchSize } : {}), ...(target ? { target } : {}) };
  return learner.predict(data, sections, o);
}

/**
 * Mean over the validation slides of each slide's mean gene PCC (undefined PCCs left out). In mode
 * layer4 the validation crops go through the cached layer3 maps: the same values, as conv1..layer3
 * are frozen and run in inference mode either way.
 */
async function meanValidationPcc(learner: FoldLearner, data: TrainingData, sections: readonly SectionInputs[], target?: TargetInput): Promise<number> {
  const preds = await predictSections(learner, data, sections, undefined, target);
  const scores = sections.map((s) => slideMetrics(preds.get(s.id)!, s.values, s.n, data.genes).pccM).filter(Number.isFinite);
  return scores.length ? scores.reduce((a, b) => a + b, 0) / scores.length : 0;
}

/**
 * A model with the weights of a checkpoint, checked against the store's genes and features, on the
 * chosen engine. `genesByName`: the store's genes may differ (external validation aligns them by
 * name afterwards, eval/evaluate.ts); the model still predicts its own genes.
 */
export async function loadTrainedModel(file: string, data?: { genes: string[]; dim: number; hasCounts?: boolean; featuresDir?: string; genesByName?: boolean }, engine?: EngineChoice): Promise<{ model: FoldLearner; info: CheckpointInfo }> {
  const { info, weights } = await readCheckpoint(file);
  if (data) {
    checkPredictedGenes(file, info.genes, data);
    const trainedOn = path.basename(info.featuresDir);
    if (data.featuresDir && path.basename(data.featuresDir) !== trainedOn && /^[\w]+-[0-9a-f]{8,}$/.test(trainedOn)) {
      throw new Error(`${file} was trained on features '${trainedOn}', the store's are '${path.basename(data.featuresDir)}' (another encoder or weights); ` +
        'extract the store\'s features with the encoder and weights the model was trained with, or choose them with --features');
    }
    if (!isBaseline(info.config) && info.config.dim !== data.dim) throw new Error(`${file} takes ${info.config.dim}-wide features, the store's are ${data.dim} wide; extract features with the encoder the model was trained on`);
  }
  const config = info.config;
  if (isBaseline(config)) {
    const net = createBaselineNet(config, { genes: info.genes.length, featureDim: data?.dim ?? 0 });
    const model = new BaselineLearner(net, await baselineExecutor(engine));
    model.load(modelWeights(weights), file, undefined, { sections: info.train, patients: info.trainPatients ?? [] });
    return { model, info };
  }
  return { model: await triplexModelWithWeights(config, info.mode, modelWeights(weights), file, engine), info };
}

/** A TRIPLEX model of `config` in `mode` on the chosen engine, holding `weights` (every tensor checked by name and shape; `source` names them in errors). */
export async function triplexModelWithWeights(config: TriplexConfig, mode: TargetMode, weights: StateDict, source: string, engine?: EngineChoice): Promise<FoldLearner> {
  // The trunk's starting values do not matter: `weights` replace them.
  const trunk = mode !== 'frozen' && activeViews(config).includes('target') ? seededResNet18StateDict(0) : undefined;
  const model = await createLearner(config, { trunk, trained: mode === 'layer4' ? 'layer4' : 'all', engine });
  try {
    model.load(weights, source);
  } catch (e) {
    await model.dispose();
    throw e;
  }
  return model;
}

/**
 * Crops a prediction holds whole, in bytes (about 1,780 spots at 147 kB a crop); a larger section
 * (a Visium-size section, a whole-slide grid) has its crops cut window by window as the
 * predictions walk its spots.
 */
export const STREAM_CROPS_BYTES = 256 * 2 ** 20;

/**
 * Prepares what a model's target view needs beyond the frozen features, for predictions: the
 * crops, when it has a trained trunk (held whole, or cut by spot range past `streamCropsAbove`
 * bytes of crops).
 */
export async function prepareTargetInputs(model: FoldLearner, data: TrainingData, sections: readonly SectionInputs[], say?: (line: string) => void,
  o: { streamCropsAbove?: number } = {}): Promise<void> {
  if (!model.hasTrunk) return;
  const limit = o.streamCropsAbove ?? STREAM_CROPS_BYTES;
  const large = (s: SectionInputs) => !s.crops && s.n * SPOT_SIZE * SPOT_SIZE * 3 > limit;
  await loadTargetCrops(data, sections.filter((s) => !large(s)), undefined, say);
  for (const s of sections.filter(large)) s.cropSource ??= await targetCropSource(data, s, undefined, say);
}
