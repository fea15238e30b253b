import * as path from 'node:path';
import { Command, Option } from 'commander';
import { initCompute } from '../runtime/compute/backend';
import { formatMetricsTable } from '../runtime/eval/metrics';
import { activeViews, PRESETS, triplexConfig, VARIANTS } from '../runtime/models/triplexConfig';
import { crossValidate, cvCells, foldDir, trainCvCell, writePredictions, ALL_VIEWS, RunStopped, type CvOptions } from '../runtime/train/cv';
import { STREAM_FEATURES_BYTES, loadTrainingData } from '../runtime/train/data';
import { trainingScaleNotes } from '../runtime/image/cropScale';
import { predictSections, prepareTargetInputs, type TargetMode, type TrainProgress } from '../runtime/train/trainer';
import { againOnCpuIfDeviceLost } from '../runtime/train/deviceRecovery';
import { CheckpointUsageError, loadModelCheckpoint } from '../runtime/train/referenceCheckpoint';
import type { Fold } from '../runtime/eval/folds';
import { BASELINES } from '../runtime/baselines/model';
import { isBaselineName } from '../runtime/baselines/registry';
import { benchmarkPlan, runBenchmark } from '../runtime/eval/benchmark';
import { BENCHMARK_MODELS, modelLabel, type BenchmarkModel } from '../runtime/eval/table1';
import { checkRegularFile } from '../runtime/data/files';
import { computeOptions, decimalNumber, wholeNumber } from './options';
import { commandOutput, JSON_OPTION } from './jsonOutput';
import { cellArgs, checkExecutorFlags, executorOptions, runOnSlurm, type ExecutorFlags, type GridCell } from './executor';

/** `triplex cv`, `triplex train-fold`, `triplex ablation` and `triplex predict`. */

interface TrainFlags {
  model: string;
  preset: string;
  folds: string;
  mode: TargetMode;
  epochs: number;
  patience: number;
  batch: number;
  microBatch?: number;
  lr: number;
  seed: number;
  init: 'pytorch' | 'mean-bias';
  standardizeInputs?: boolean;
  validation: number;
  features?: string;
  weights?: string;
  progress: 'text' | 'json';
  out?: string;
}


function trainingOptions(cmd: Command, withModel = true): Command {
  if (withModel) cmd.addOption(new Option('--model <name>', `a TRIPLEX variant, or one of the published models it is compared with (${BASELINES.join(', ')})`).choices([...VARIANTS.map((v) => v.name), ...BASELINES]).default('triplex'));
  return cmd
    .addOption(new Option('--preset <name>', 'hyperparameters: the paper\'s per-dataset configs, or the small demo one').choices(Object.keys(PRESETS)).default('bc1'))
    .option('--folds <scheme>', "lopo (leave one patient out), kfold:<k> (k folds grouped by patient), or section (one fold per section; sections of a patient are near-duplicates, so it is optimistic)", 'lopo')
    .addOption(new Option('--mode <mode>', 'target encoder: frozen (cached token maps), layer4 (last stage fine-tuned on cached layer3 maps) or full (whole ResNet18 fine-tuned, as the paper)').choices(['frozen', 'layer4', 'full']).default('frozen'))
    .option('--weights <checkpoint>', 'modes layer4 and full: the ResNet18 weights the features were extracted with (the target encoder starts from them); stnet: DenseNet-121 weights (.pth, .ckpt, .safetensors); bleep: the ResNet18 it starts from (default: the encoder of `triplex extract` without --weights)')
    .option('--epochs <n>', 'maximum epochs', wholeNumber(1), 200)
    .option('--patience <n>', 'epochs without a better validation PCC before stopping', wholeNumber(1), 20)
    .option('--batch <n>', 'spots per optimiser step', wholeNumber(1), 128)
    .option('--micro-batch <n>', 'no effect on training (every engine takes a batch in one pass; lower --batch if a step does not fit in memory); kept so that runs begun with it resume (it is part of their signature)', wholeNumber(1))
    .option('--lr <rate>', 'Adam learning rate (StepLR: x0.9 every 50 epochs)', decimalNumber(0, 1, { min: true }), 1e-4)
    .option('--seed <n>', 'seed of initialisation, batches, augmentation and dropout', wholeNumber(0, 2 ** 32 - 1), 0)
    .addOption(new Option('--init <how>', "pytorch (the reference's defaults) or mean-bias (heads start at the training mean; for short runs)").choices(['pytorch', 'mean-bias']).default('pytorch'))
    .option('--standardize-inputs', 'standardise each frozen feature channel with training statistics (for encoders without pretrained weights)')
    .option('--validation <fraction>', 'share of each fold\'s training sections held out (whole patients) for early stopping', decimalNumber(0, 1, { max: true }), 0.15)
    .option('--features <key>', 'features folder under <store>/features (default: the only one)')
    .addOption(new Option('--progress <format>', 'text: a line per epoch; json: one JSON object per line (event, fold, epoch, loss, validation PCC, spots/s, ETA), for programs such as the editor').choices(['text', 'json']).default('text'));
}

function cvOptions(store: string, o: TrainFlags, log: (m: string) => void, signal: AbortSignal): CvOptions {
  return {
    storeDir: store, outDir: o.out ?? path.join(store, 'runs', isBaselineName(o.model) ? o.model : `${o.model}-${o.mode}`), variant: o.model, preset: o.preset, folds: o.folds, mode: o.mode,
    epochs: o.epochs, patience: o.patience, batchSize: o.batch, microBatch: o.microBatch, learningRate: o.lr, seed: o.seed, init: o.init, standardizeInputs: o.standardizeInputs, validationFraction: o.validation,
    features: o.features, weights: o.weights, signal, log, onProgress: o.progress === 'json' ? jsonProgress : epochLine(log),
  };
}

/** Every progress event as a JSON line on stdout (batches at most twice a second). */
let lastBatchLine = 0;
function jsonProgress(fold: Fold, e: TrainProgress): void {
  if (e.kind === 'batch') {
    const now = performance.now();
    if (now - lastBatchLine < 500) return;
    lastBatchLine = now;
  }
  const finite = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v : null);
  console.log(JSON.stringify({
    event: e.kind, fold: fold.index, epoch: e.epoch, epochs: e.epochs, batch: e.batch, batches: e.batches,
    loss: finite(e.loss), validationPcc: finite(e.validationPcc), bestEpoch: e.bestEpoch ?? null, spotsPerSecond: finite(e.spotsPerSecond), etaSeconds: finite(e.etaSeconds),
  }));
}

/** One line per epoch (and one on resuming). */
function epochLine(log: (m: string) => void): (fold: Fold, e: TrainProgress) => void {
  return (fold, e) => {
    if (e.kind === 'resumed') log(`fold ${fold.index}: resuming after epoch ${e.epoch} from the last checkpoint`);
    if (e.kind !== 'epoch') return;
    const eta = Number.isFinite(e.etaSeconds) ? `, at most ${formatSeconds(e.etaSeconds)} left` : '';
    log(`fold ${fold.index} epoch ${e.epoch + 1}/${e.epochs}: loss ${e.loss.toFixed(4)}, validation PCC ${e.validationPcc?.toFixed(3) ?? 'n/a'} (best epoch ${(e.bestEpoch ?? 0) + 1}), ${e.spotsPerSecond.toFixed(1)} spots/s${eta}`);
  };
}

const formatSeconds = (s: number) => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

/** An abort controller tripped by Ctrl-C: the run stops after the current batch, keeping its checkpoints (`notice` says what stops when). */
export function interruptible(notice = 'stopping after the current batch'): AbortController {
  const controller = new AbortController();
  process.once('SIGINT', () => {
    console.error(`${notice} (Ctrl-C again to quit at once)`);
    controller.abort();
    process.once('SIGINT', () => process.exit(130));
  });
  return controller;
}

/** Ctrl-C: a local run stops after the current batch; a followed Slurm grid is cancelled (scancel). */
const stopper = (o: ExecutorFlags) => interruptible(o.executor === 'slurm' ? 'cancelling the Slurm jobs' : undefined);

/** The long flags train-fold takes: what a cell's task is given of the invoking command's options. */
const trainFoldFlags = () => new Set(trainFoldCommand().options.map((x) => x.long!).filter(Boolean));

/** A model's folds as grid cells, each a `triplex train-fold --cell-only` of its own. */
function modelCells(cmd: Command, options: CvOptions, key: string, progress?: string): GridCell[] {
  const { folds, settings } = cvCells(options);
  const flags = trainFoldFlags();
  const mode = isBaselineName(options.variant ?? '') ? undefined : options.mode;
  return folds.map((fold) => ({
    key: `${key}/fold-${fold}`, dir: foldDir(options.outDir, fold), settings,
    args: cellArgs(cmd, flags, { model: options.variant ?? 'triplex', mode, fold, out: options.outDir, progress }),
  }));
}

export function cvCommand(): Command {
  return executorOptions(trainingOptions(new Command('cv')
    .description('cross-validate a model variant: train each fold with early stopping on held-out training patients, score its test slides')
    .argument('<store>', 'dataset store with extracted features')
    .option('--out <dir>', 'run folder (default <store>/runs/<model>-<mode>)')
    .option(...JSON_OPTION)))
    .action(async (store: string, o: TrainFlags & ExecutorFlags & { json?: boolean }, cmd: Command) => {
      checkExecutorFlags(cmd, o);
      await initCompute(computeOptions(cmd));
      const controller = stopper(o);
      const say = commandOutput(o.json);
      const options = cvOptions(store, o, say.log, controller.signal);
      if (o.executor === 'slurm') {
        const cells = modelCells(cmd, options, o.model);
        if (await runOnSlurm(o, { root: options.outDir, name: 'triplex-cv', cells }, say.log, controller.signal, (cell, line) => say.log(`[${cell}] ${line}`)) === 'detached') return;
        options.gatherOnly = true;
      }
      const result = await crossValidate(options);
      const model = isBaselineName(o.model) ? o.model : `${o.model} (${o.mode})`;
      say.result(() => `\n${formatMetricsTable([{ model, summary: result.evaluation.summary }])}\nmetrics and predictions -> ${options.outDir}`, {
        run: options.outDir, model: result.variant, mode: result.mode, aborted: result.aborted, summary: result.evaluation.summary,
        folds: result.evaluation.folds, highlyPredictive: result.evaluation.highlyPredictive, warnings: result.warnings,
      });
      if (result.aborted) process.exitCode = 130;
    });
}

export function trainFoldCommand(): Command {
  return executorOptions(trainingOptions(new Command('train-fold')
    .description('train and score a single fold of a cross-validation (resumes from its last checkpoint)')
    .argument('<store>', 'dataset store with extracted features')
    .requiredOption('--fold <k>', 'fold index (0-based)', wholeNumber(0))
    .option('--out <dir>', 'run folder (default <store>/runs/<model>-<mode>)')
    .option('--cell-only', 'train and record this fold as a cell of a grid (holding only the fold\'s lock), leaving the table to the command that gathers the grid (what a Slurm task runs)')))
    .action(async (store: string, o: TrainFlags & ExecutorFlags & { fold: number; cellOnly?: boolean }, cmd: Command) => {
      checkExecutorFlags(cmd, o);
      await initCompute(computeOptions(cmd));
      const controller = stopper(o);
      // Slurm ends a cancelled, timed-out or preempted task with SIGTERM: stop as on Ctrl-C, the last checkpoint kept.
      if (o.cellOnly) process.once('SIGTERM', () => controller.abort());
      const options: CvOptions = { ...cvOptions(store, o, console.log, controller.signal), onlyFolds: [o.fold] };
      if (o.cellOnly) {
        const cell = await trainCvCell(options, o.fold);
        if (cell.stopped) throw new RunStopped(`fold ${o.fold}: stopped on request; its last checkpoint is kept`);
        console.log(`fold ${o.fold}: cell recorded (${cell.record?.executor}${cell.record?.job ? ` job ${cell.record.job}` : ''})`);
        return;
      }
      if (o.executor === 'slurm') {
        // A grid of one cell, its Slurm files in the fold's folder; JSON progress lines of the task are passed on as they are (for the editor).
        const cells = modelCells(cmd, options, o.model, o.progress).filter((c) => c.key.endsWith(`/fold-${o.fold}`));
        const relay = (_: string, line: string) => console.log(o.progress === 'json' && line.startsWith('{') ? line : `[slurm] ${line}`);
        if (await runOnSlurm(o, { root: cells[0].dir, name: 'triplex-train-fold', cells }, console.log, controller.signal, relay) === 'detached') return;
        options.gatherOnly = true;
      }
      const result = await crossValidate(options);
      const f = result.evaluation.folds[0];
      console.log(`fold ${o.fold}: MSE ${f.mse.toFixed(4)}, MAE ${f.mae.toFixed(4)}, PCC(M) ${f.pccM.toFixed(3)}, PCC(H) ${f.pccH.toFixed(3)} (over this fold's genes)`);
      if (result.aborted) process.exitCode = 130;
    });
}

export function ablationCommand(): Command {
  return executorOptions(trainingOptions(new Command('ablation')
    .description("run the paper's ablation grid (views, position encoding, fusion, fusion loss; Tables 3-5) and print one table")
    .argument('<store>', 'dataset store with extracted features')
    .option('--variants <list>', `comma-separated subset of ${VARIANTS.map((v) => v.name).join(',')}`)
    .option('--out <dir>', 'folder of the runs (default <store>/runs/ablation-<mode>)'), false))
    .action(async (store: string, o: Omit<TrainFlags, 'model'> & ExecutorFlags & { variants?: string }, cmd: Command) => {
      checkExecutorFlags(cmd, o);
      await initCompute(computeOptions(cmd));
      const controller = stopper(o);
      const names = o.variants ? o.variants.split(',').map((s) => s.trim()) : VARIANTS.map((v) => v.name);
      const unknown = names.filter((n) => !VARIANTS.some((v) => v.name === n));
      if (unknown.length) throw new Error(`unknown variant ${unknown.join(', ')}; choose from ${VARIANTS.map((v) => v.name).join(', ')}`);
      const data = loadTrainingData(store, { views: ALL_VIEWS, features: o.features });
      const root = o.out ?? path.join(store, 'runs', `ablation-${o.mode}`);
      const rows: Parameters<typeof formatMetricsTable>[0][number][] = [];
      // A variant without the target view has no target encoder to fine-tune: in the grid of mode
      // layer4 or full it is the same run as in mode frozen, and is trained (and recorded) so.
      const runs = names.map((name) => {
        const withTarget = activeViews(triplexConfig({ preset: o.preset, variant: name, genes: data.genes.length, dim: data.dim })).includes('target');
        const mode = withTarget ? o.mode : 'frozen';
        if (mode !== o.mode) console.log(`${name}: no target view, so mode ${o.mode} trains nothing more than mode frozen; trained in mode frozen`);
        return { name, mode, options: { ...cvOptions(store, { ...o, mode, model: name, out: path.join(root, name) }, console.log, controller.signal), data } };
      });
      if (o.executor === 'slurm') {
        const cells = runs.flatMap((r) => modelCells(cmd, r.options, r.name));
        if (await runOnSlurm(o, { root, name: 'triplex-ablation', cells }, console.log, controller.signal, (cell, line) => console.log(`[${cell}] ${line}`)) === 'detached') return;
      }
      for (const { name, mode, options } of runs) {
        const v = VARIANTS.find((x) => x.name === name)!;
        const result = await crossValidate({ ...options, gatherOnly: o.executor === 'slurm' });
        rows.push({ model: `${v.group}: ${name}${mode !== o.mode ? ' (frozen)' : ''}`, summary: result.evaluation.summary });
        if (result.aborted) {
          process.exitCode = 130;
          break;
        }
      }
      console.log('');
      console.log(formatMetricsTable(rows));
      console.log(`mode ${o.mode}, preset ${o.preset}, folds ${o.folds}; runs -> ${root}`);
    });
}

export function predictCommand(): Command {
  return new Command('predict')
    .description('predict the expression of every spot of a store\'s sections with a trained checkpoint (counts are not needed)')
    .argument('<store>', 'dataset store with extracted features')
    .requiredOption('--checkpoint <file>', 'best.safetensors of a fold (from `triplex cv` or `triplex train-fold`), or a .ckpt of the authors\' TRIPLEX code (PyTorch Lightning; its configuration is read from its tensors)')
    .option('--genes <file>', 'authors\' .ckpt only: the genes it predicts, one a line, in order (default: the store\'s, when their number matches)')
    .option('--sections <list>', 'comma-separated section ids (default all)')
    .option('--features <key>', 'features folder under <store>/features (default: the only one)')
    .option('--out <file>', 'Arrow file of the predictions (default <store>/predictions/<checkpoint folder>.arrow)')
    .option(...JSON_OPTION)
    .action(async (store: string, o: { checkpoint: string; genes?: string; sections?: string; features?: string; out?: string; json?: boolean }, cmd: Command) => {
      const say = commandOutput(o.json);
      // A named pipe as --checkpoint waited forever, and a folder failed with a bare "EISDIR".
      checkRegularFile(o.checkpoint);
      await initCompute(computeOptions(cmd));
      const sections = o.sections?.split(',').map((s) => s.trim());
      const data = loadTrainingData(store, { views: ALL_VIEWS, features: o.features, sections, streamAbove: STREAM_FEATURES_BYTES });
      const t = performance.now();
      const { model, info, notes } = await loadModelCheckpoint(o.checkpoint, data, { genes: o.genes }).catch((e: unknown) => {
        throw e instanceof CheckpointUsageError ? cmd.error(`error: ${e.message}`, { exitCode: 2 }) : e;
      });
      try {
        notes.push(...trainingScaleNotes((info as { mpp?: number }).mpp, data.cropMpp, store, o.checkpoint));
      } catch (e) {
        await model.dispose();
        throw e;
      }
      for (const line of notes) say.log(line);
      try {
        const chosen = [...data.sections.values()];
        // A GPU device lost under the predictions: they start again on the CPU, with the checkpoint loaded there.
        let attempt = 0;
        const preds = await againOnCpuIfDeviceLost('the predictions', async () => {
          const first = attempt++ === 0;
          const m = first ? model : (await loadModelCheckpoint(o.checkpoint, data, { genes: o.genes })).model;
          try {
            await prepareTargetInputs(m, data, chosen, first ? (line) => {
              notes.push(line);
              say.log(line);
            } : undefined);
            return await predictSections(m, data, chosen);
          } finally {
            if (m !== model) await m.dispose();
          }
        }, { say: (line) => say.log(line) });
        const out = o.out ?? path.join(store, 'predictions', `${path.basename(path.dirname(path.resolve(o.checkpoint)))}.arrow`);
        await writePredictions(out, chosen, preds, info.genes, { checkpoint: path.relative(path.dirname(path.resolve(out)), path.resolve(o.checkpoint)), mode: info.mode, config: info.config });
        const spots = chosen.reduce((n, s) => n + s.n, 0);
        const seconds = (performance.now() - t) / 1000;
        say.result(() => `predicted ${info.genes.length} genes for ${spots} spots of ${chosen.length} sections in ${seconds.toFixed(1)} s (${(spots / seconds).toFixed(1)} spots/s) -> ${out}`,
          { predictions: out, checkpoint: o.checkpoint, mode: info.mode, genes: info.genes, sections: chosen.map((s) => ({ id: s.id, spots: s.n })), seconds, notes });
      } finally {
        await model.dispose();
      }
    });
}

export function benchmarkCommand(): Command {
  return executorOptions(new Command('benchmark')
    .description("the paper's comparison (Table 1): TRIPLEX, its single-view models and ST-Net, HisToGene, Hist2ST, EGN and BLEEP on every fold under one protocol; resumable, done cells skipped")
    .argument('<store>', 'dataset store with images and extracted features')
    .option('--models <list>', `comma-separated subset of ${BENCHMARK_MODELS.join(',')}`)
    .option('--folds <scheme>', 'lopo (leave one patient out) or kfold:<k> (k folds grouped by patient)', 'lopo')
    .addOption(new Option('--preset <name>', "sizes: the paper's (bc1, bc2, scc; the baselines' paper settings) or the small demo ones").choices(Object.keys(PRESETS)).default('bc1'))
    .addOption(new Option('--mode <mode>', "TRIPLEX's target encoder (frozen, layer4, full); the published models train as their papers do").choices(['frozen', 'layer4', 'full']).default('frozen'))
    .option('--epochs <n>', 'maximum epochs per fold', wholeNumber(1), 200)
    .option('--patience <n>', 'epochs without a better validation PCC before stopping', wholeNumber(1), 20)
    .option('--batch <n>', 'spots per optimiser step (HisToGene and Hist2ST take one section per step)', wholeNumber(1), 128)
    .option('--lr <rate>', 'Adam learning rate, every model (StepLR: x0.9 every 50 epochs)', decimalNumber(0, 1, { min: true }), 1e-4)
    .option('--seed <n>', 'seed of initialisation, batches, augmentation and dropout', wholeNumber(0, 2 ** 32 - 1), 0)
    .option('--validation <fraction>', "share of each fold's training sections held out (whole patients) for early stopping", decimalNumber(0, 1, { max: true }), 0.15)
    .addOption(new Option('--init <how>', "every model's output bias: pytorch (the references' defaults) or mean-bias (the training mean; for short runs)").choices(['pytorch', 'mean-bias']).default('pytorch'))
    .option('--standardize-inputs', "TRIPLEX: standardise each frozen feature channel with training statistics (for encoders without pretrained weights)")
    .option('--features <key>', 'features folder under <store>/features (default: the only one)')
    .option('--out <dir>', 'benchmark folder (default <store>/runs/benchmark-<preset>)')
    .option(...JSON_OPTION))
    .action(async (store: string, o: ExecutorFlags & { models?: string; folds: string; preset: string; mode: TargetMode; epochs: number; patience: number; batch: number; lr: number; seed: number; validation: number; init: 'pytorch' | 'mean-bias'; standardizeInputs?: boolean; features?: string; out?: string; json?: boolean }, cmd: Command) => {
      checkExecutorFlags(cmd, o);
      await initCompute(computeOptions(cmd));
      const say = commandOutput(o.json);
      const controller = stopper(o);
      const out = o.out ?? path.join(store, 'runs', `benchmark-${o.preset}`);
      const options = {
        storeDir: store, outDir: out, models: o.models?.split(',').map((m) => m.trim()).filter(Boolean), folds: o.folds, preset: o.preset, mode: o.mode,
        epochs: o.epochs, patience: o.patience, batchSize: o.batch, learningRate: o.lr, seed: o.seed, validationFraction: o.validation, init: o.init, standardizeInputs: o.standardizeInputs,
        features: o.features, signal: controller.signal, log: say.log,
        onProgress: (model: BenchmarkModel, fold: Fold, e: TrainProgress) => { if (e.kind === 'epoch') say.log(`${modelLabel(model)} fold ${fold.index} epoch ${e.epoch + 1}/${e.epochs}: loss ${e.loss.toFixed(4)}, validation PCC ${e.validationPcc?.toFixed(3) ?? 'n/a'}`); },
      };
      if (o.executor === 'slurm') {
        // The models not done in an earlier run, each cross-validated by cells as `triplex cv` would.
        const cells = benchmarkPlan(options).flatMap((m) => modelCells(cmd, m.cv, m.model));
        if (await runOnSlurm(o, { root: out, name: 'triplex-benchmark', cells }, say.log, controller.signal, (cell, line) => say.log(`[${cell}] ${line}`)) === 'detached') return;
      }
      const result = await runBenchmark({ ...options, gatherOnly: o.executor === 'slurm' });
      say.result(() => `\n${result.markdown}\ntable1.md, table1.csv and results.json -> ${out}`, { benchmark: out, aborted: result.aborted, rows: result.rows });
      if (result.aborted) process.exitCode = 130;
    });
}
