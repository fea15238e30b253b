import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { makeFolds } from '../runtime/eval/folds';
import { VARIANTS } from '../runtime/models/triplexConfig';
import { BASELINES, type BaselineName } from '../runtime/baselines/model';
import { modelLabel, table1Group } from '../runtime/eval/table1';
import { computeEnv } from '../notebook/controller';
import { startCli } from './cliProcess';
import { trackRun } from '../statusBar';
import { openResultsPanel, type ResultsPanelHandle } from '../webviews/resultsPanel';
import { openSlideViewer, type SlideViewerHandle } from '../webviews/slideViewer';
import { readPredictions } from '../runtime/store/predictions';
import { featuresKey, SEEDED_RESNET18_WEIGHTS } from '../runtime/features/featuresKey';
import { onPath } from '../runtime/executors/slurmTools';

/**
 * "TRIPLEX: Train Fold": pick a store, a model variant, a fold, the training mode, the preset and
 * the epochs (the last choices remembered per workspace), then train that fold in a background
 * `triplex train-fold` process, with a cancellable progress notification (epoch, loss,
 * validation PCC, ETA) and the full log in the "TRIPLEX" output channel. Cancelling sends the
 * process SIGINT: it stops after the current batch and keeps its last checkpoint (checkpoints
 * are written atomically, so none is ever half-written). When it ends, the fold's predictions
 * open in the slide viewer and its metrics in the results table.
 */

export type TrainingMode = 'frozen' | 'layer4' | 'full';

const isBaseline = (name: string): name is BaselineName => (BASELINES as readonly string[]).includes(name);

export interface TrainFoldRequest {
  store: string;
  variant: string;
  fold: number;
  mode: TrainingMode;
  epochs: number;
  preset: string;
  /** Modes layer4 and full: the ResNet18 weights the store's features were extracted with. */
  weights?: string;
  /** Further `triplex train-fold` options (e.g. ['--batch', '32']). */
  extraArgs?: string[];
  /** slurm: one Slurm task (offered when sbatch is on the PATH; resources from the triplex.slurm settings). */
  executor?: 'local' | 'slurm';
}

export interface TrainFoldOutcome {
  status: 'done' | 'cancelled' | 'failed';
  exitCode: number | null;
  /** The last lines the process wrote (the reason, when it failed). */
  message: string;
  outDir: string;
  results?: ResultsPanelHandle;
  viewer?: SlideViewerHandle;
}

export interface TrainFoldRun {
  request: TrainFoldRequest;
  outDir: string;
  done: Promise<TrainFoldOutcome>;
  /** Same as the notification's Cancel. */
  cancel(): void;
}

const STATE_KEY = 'triplex.trainFold.defaults';
const PRESETS = ['demo', 'bc1', 'bc2', 'scc'];

interface Manifest { sections: { id: string; patient: string; spots: number }[]; source?: { path?: string }; counts?: false }

function readManifest(store: string): Manifest {
  const file = path.join(store, 'store.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
  } catch (err) {
    throw new Error(`${file} is not a readable TRIPLEX store manifest: ${(err as Error).message}`, { cause: err });
  }
}

/** Asks for everything, with the remembered choices first; undefined when the user gives up. */
async function ask(context: vscode.ExtensionContext): Promise<TrainFoldRequest | undefined> {
  const remembered = context.workspaceState.get<Partial<TrainFoldRequest>>(STATE_KEY, {});
  const stores = (await vscode.workspace.findFiles('**/store.json', '**/node_modules/**', 100)).map((u) => path.dirname(u.fsPath))
    .filter((dir) => fs.existsSync(path.join(dir, 'features')));
  if (stores.length === 0) {
    void vscode.window.showWarningMessage('No TRIPLEX dataset store with features in this workspace: create one with `triplex preprocess` and `triplex extract` (or the quick-start notebook).');
    return undefined;
  }
  const byRecent = (a: string, b: string) => Number(b === remembered.store) - Number(a === remembered.store);
  const store = (await vscode.window.showQuickPick(stores.sort(byRecent).map((s) => {
    const m = readManifest(s);
    return { label: vscode.workspace.asRelativePath(s), description: `${m.sections.length} sections, ${new Set(m.sections.map((x) => x.patient)).size} patients`, store: s };
  }), { title: 'Train fold (1/6): dataset store', ignoreFocusOut: true }))?.store;
  if (!store) return undefined;

  const models = [
    ...VARIANTS.map((v) => ({ label: v.name, description: v.group, detail: v.description })),
    ...BASELINES.map((b) => ({ label: b, description: `published model (${table1Group(b)})`, detail: `${modelLabel(b)} as the paper compares it, on the same folds and protocol` })),
  ];
  const variant = (await vscode.window.showQuickPick(models.map((m) => ({ ...m, picked: m.label === remembered.variant }))
    .sort((a, b) => Number(b.label === (remembered.variant ?? 'triplex')) - Number(a.label === (remembered.variant ?? 'triplex'))), { title: 'Train fold (2/6): model variant', ignoreFocusOut: true }))?.label;
  if (!variant) return undefined;

  const manifest = readManifest(store);
  const { folds } = makeFolds(manifest.sections, 'lopo');
  const foldItems = folds.map((f) => ({ label: `fold ${f.index}`, description: `test patient ${f.testPatients.join(', ')}: ${f.test.join(', ')}`, index: f.index }))
    .sort((a, b) => Number(b.index === remembered.fold && store === remembered.store) - Number(a.index === remembered.fold && store === remembered.store));
  const fold = (await vscode.window.showQuickPick(foldItems, { title: 'Train fold (3/6): fold (leave one patient out)', ignoreFocusOut: true }))?.index;
  if (fold === undefined) return undefined;

  const modes: { label: TrainingMode; detail: string }[] = [
    { label: 'frozen', detail: 'target encoder frozen: cached token maps (fast)' },
    { label: 'layer4', detail: 'last ResNet18 stage fine-tuned on cached layer3 maps of the crops (slower)' },
    { label: 'full', detail: 'whole ResNet18 fine-tuned on the crops, as the paper (much slower: about 1.5 spots/s here)' },
  ];
  // The published models train as their papers do: the target-encoder mode is TRIPLEX's.
  const mode = isBaseline(variant) ? 'frozen' : (await vscode.window.showQuickPick(modes.sort((a, b) => Number(b.label === (remembered.mode ?? 'frozen')) - Number(a.label === (remembered.mode ?? 'frozen'))), { title: 'Train fold (4/6): training mode', ignoreFocusOut: true }))?.label;
  if (!mode) return undefined;
  let weights: string | undefined;
  if (mode !== 'frozen' && !fs.existsSync(path.join(store, 'features', featuresKey({ encoder: 'resnet18', weights: SEEDED_RESNET18_WEIGHTS })))) {
    // The target encoder starts from the weights the features came from; the store's are not the seeded ones.
    const picked = await vscode.window.showOpenDialog({
      title: 'The ResNet18 weights the store\'s features were extracted with', canSelectMany: false, openLabel: 'Use these weights',
      filters: { 'ResNet18 weights': ['ckpt', 'pth', 'pt', 'safetensors'] }, defaultUri: remembered.weights ? vscode.Uri.file(remembered.weights) : undefined,
    });
    if (!picked?.length) return undefined;
    weights = picked[0].fsPath;
  }

  const synthetic = /synthetic/i.test(manifest.source?.path ?? '');
  const defaultPreset = remembered.preset ?? (synthetic ? 'demo' : 'bc1');
  const preset = (await vscode.window.showQuickPick(PRESETS.sort((a, b) => Number(b === defaultPreset) - Number(a === defaultPreset)).map((p) => ({ label: p, description: p === 'demo' ? 'small, for minutes on a laptop' : 'the paper\'s hyperparameters' })), { title: 'Train fold (5/6): preset', ignoreFocusOut: true }))?.label;
  if (!preset) return undefined;

  const epochsText = await vscode.window.showInputBox({
    title: 'Train fold (6/6): maximum epochs (early stopping may end sooner)', value: String(remembered.epochs ?? 50), ignoreFocusOut: true,
    validateInput: (v) => (/^[1-9]\d*$/.test(v.trim()) ? undefined : 'a whole number of epochs, at least 1'),
  });
  if (!epochsText) return undefined;
  let executor: TrainFoldRequest['executor'] = 'local';
  if (onPath('sbatch')) {
    const partition = vscode.workspace.getConfiguration('triplex.slurm').get<string>('partition') || 'its default partition';
    const where = [{ label: 'This machine', executor: 'local' as const }, { label: 'Slurm cluster', description: `a task on ${partition} (settings: triplex.slurm)`, executor: 'slurm' as const }]
      .sort((a, b) => Number(b.executor === remembered.executor) - Number(a.executor === remembered.executor));
    const picked = await vscode.window.showQuickPick(where, { title: 'Train fold: where to train', ignoreFocusOut: true });
    if (!picked) return undefined;
    executor = picked.executor;
  }
  const request: TrainFoldRequest = { store, variant, fold, mode, preset, epochs: Number(epochsText.trim()), executor, ...(weights ? { weights } : {}) };
  await context.workspaceState.update(STATE_KEY, request);
  return request;
}

/** `--executor slurm` and the resources of the triplex.slurm settings. */
function slurmArgs(): string[] {
  const c = vscode.workspace.getConfiguration('triplex.slurm');
  const given = (key: string) => c.get<string>(key)?.trim();
  return ['--executor', 'slurm', ...['partition', 'time', 'mem', 'gpus'].flatMap((k) => (given(k) ? [`--${k}`, given(k)!] : [])),
    ...(c.get<string[]>('sbatchArgs') ?? []).map((a) => `--sbatch-arg=${a}`)];
}

/** Starts the training process (here, or a task it submits to Slurm and follows); the returned run ends (done) when the process has exited. */
export function startTrainFold(context: vscode.ExtensionContext, request: TrainFoldRequest, log: vscode.OutputChannel): TrainFoldRun {
  const outDir = path.join(request.store, 'runs', isBaseline(request.variant) ? request.variant : `${request.variant}-${request.mode}`);
  const args = ['train-fold', request.store, '--fold', String(request.fold), '--model', request.variant,
    ...(isBaseline(request.variant) ? [] : ['--mode', request.mode]), '--epochs', String(request.epochs), '--preset', request.preset, '--out', outDir, '--progress', 'json',
    ...(request.weights ? ['--weights', request.weights] : []), ...(request.executor === 'slurm' ? slurmArgs() : []), ...(request.extraArgs ?? [])];
  log.appendLine(`[train fold] triplex ${args.join(' ')}`);
  log.show(true);
  let report: (event: Record<string, unknown>) => void = () => undefined;
  let queued: (job: string) => void = () => undefined;
  // A process that does not stop within 60 s of Cancel is ended; its checkpoints are complete files either way.
  const child = startCli(context.extensionPath, args, computeEnv(), (line, stream) => {
    if (stream === 'stdout' && line.startsWith('{')) {
      try {
        report(JSON.parse(line) as Record<string, unknown>);
        return true;
      } catch {
        // not a progress line after all: logged below like any other output
      }
    }
    const job = /submitted Slurm job array (\d+)/.exec(line)?.[1];
    if (job) queued(job);
    log.appendLine(line);
  }, 60_000);
  const cancel = () => {
    if (child.cancel()) log.appendLine('[train fold] cancelling: the run stops after the current batch and keeps its last checkpoint');
  };

  const tracked = trackRun(`Train Fold ${request.variant}, fold ${request.fold}`);
  const done = vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `TRIPLEX: training ${request.variant}, fold ${request.fold}`, cancellable: true }, async (progress, token) => {
    token.onCancellationRequested(cancel);
    queued = (job) => progress.report({ message: `queued as Slurm job ${job}` });
    let shown = 0;
    report = (e) => {
      const epochs = Number(e.epochs) || request.epochs;
      const epoch = Number(e.epoch) + (e.event === 'epoch' ? 1 : 0);
      const percent = Math.min(100, (100 * epoch) / epochs);
      const parts = [`epoch ${Math.min(epoch + (e.event === 'batch' ? 1 : 0), epochs)}/${epochs}`];
      if (typeof e.loss === 'number') parts.push(`loss ${e.loss.toFixed(4)}`);
      if (typeof e.validationPcc === 'number') parts.push(`validation PCC ${e.validationPcc.toFixed(3)}`);
      if (typeof e.etaSeconds === 'number') parts.push(`at most ${Math.ceil(e.etaSeconds / 60)} min left`);
      progress.report({ message: parts.join(', '), increment: Math.max(0, percent - shown) });
      tracked.update(parts.join(', '));
      shown = Math.max(shown, percent);
      if (e.event === 'epoch' || e.event === 'resumed') log.appendLine(`[train fold] ${e.event === 'resumed' ? 'resumed after ' : ''}${parts.join(', ')}`);
    };
    const { code, tail } = await child.exited.finally(() => tracked.end());
    const status: TrainFoldOutcome['status'] = code === 0 ? 'done' : child.cancelled || code === 130 ? 'cancelled' : 'failed';
    return { status, exitCode: code, message: tail.join('\n'), outDir };
  });

  const finished = Promise.resolve(done).then(async (outcome): Promise<TrainFoldOutcome> => {
    log.appendLine(`[train fold] ${outcome.status} (exit code ${outcome.exitCode})`);
    if (outcome.status === 'failed') {
      void vscode.window.showErrorMessage(`TRIPLEX training of fold ${request.fold} failed: ${outcome.message.split('\n').pop() ?? ''}`, 'Show Log').then((choice) => {
        if (choice) log.show();
      });
      return outcome;
    }
    if (outcome.status === 'cancelled') {
      void vscode.window.showInformationMessage(`TRIPLEX training of fold ${request.fold} was cancelled; its last checkpoint is in ${outDir}, and running it again resumes from there.`);
      return outcome;
    }
    // The fold's predictions on its first test section in the slide viewer, and its metrics in the table.
    const predictions = path.join(outDir, `fold-${request.fold}`, 'predictions.arrow');
    let viewer: SlideViewerHandle | undefined;
    if (fs.existsSync(predictions)) {
      try {
        const section = readPredictions(predictions).sections.keys().next().value;
        viewer = await openSlideViewer(context, { store: request.store, section, predictions }, log);
      } catch (err) {
        log.appendLine(`[train fold] the slide viewer did not open: ${(err as Error).message}`);
      }
    }
    const results = fs.existsSync(path.join(outDir, 'results.json')) ? openResultsPanel(context, outDir, log) : undefined;
    return { ...outcome, results, viewer };
  });
  return { request, outDir, done: finished, cancel };
}

export function registerTrainFoldCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  context.subscriptions.push(vscode.commands.registerCommand('triplex.trainFold', async (given?: TrainFoldRequest): Promise<TrainFoldRun | undefined> => {
    const request = given ?? await ask(context);
    if (!request) return undefined;
    if (given) await context.workspaceState.update(STATE_KEY, given);
    return startTrainFold(context, request, log);
  }));
}
