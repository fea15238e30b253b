import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { computeEnv } from '../notebook/controller';
import { trackRun } from '../statusBar';
import { startCli } from './cliProcess';

/**
 * "TRIPLEX: Make the Synthetic Store" (the walkthrough's second step): the embedded synthetic
 * dataset in the HER2+ layout, preprocessed into a dataset store and encoded with the frozen
 * ResNet18, by `triplex synth`, `preprocess` and `extract` in a child process under a cancellable
 * notification. The store is what Train Fold and the slide viewer open next.
 */

export interface SyntheticStoreRequest {
  /** The folder to write `synthetic/` and `store/` into (default: `triplex-demo` in the workspace). */
  folder: string;
  patients?: number;
  sections?: number;
  grid?: number;
}

export interface SyntheticStoreOutcome {
  status: 'done' | 'cancelled' | 'failed';
  store: string;
  message: string;
}

async function askFolder(): Promise<string | undefined> {
  const workspace = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  if (workspace) return path.join(workspace, 'triplex-demo');
  const picked = await vscode.window.showOpenDialog({ canSelectFolders: true, canSelectFiles: false, title: 'Make the synthetic store in which folder?', openLabel: 'Here' });
  return picked?.[0] ? path.join(picked[0].fsPath, 'triplex-demo') : undefined;
}

export async function makeSyntheticStore(context: vscode.ExtensionContext, request: SyntheticStoreRequest, log: vscode.OutputChannel): Promise<SyntheticStoreOutcome> {
  const data = path.join(request.folder, 'synthetic');
  const store = path.join(request.folder, 'store');
  if (fs.existsSync(path.join(store, 'store.json')) || fs.existsSync(data)) {
    return { status: 'failed', store, message: `${request.folder} already holds a synthetic dataset or store; open it with Train Fold, or delete the folder to make a new one.` };
  }
  const steps: [string, string[]][] = [
    ['generating the dataset', ['synth', '--out', data, '--patients', String(request.patients ?? 3), '--sections', String(request.sections ?? 2), '--grid', String(request.grid ?? 7)]],
    ['preprocessing it into a store', ['preprocess', data, '--out', store]],
    ['encoding every spot (frozen ResNet18)', ['extract', store]],
  ];
  const tracked = trackRun('Synthetic store');
  try {
    return await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: 'TRIPLEX: making the synthetic store', cancellable: true }, async (progress, token) => {
      for (const [i, [what, args]] of steps.entries()) {
        const message = `${i + 1}/${steps.length}: ${what}`;
        progress.report({ message });
        tracked.update(message);
        log.appendLine(`[synthetic store] triplex ${args.join(' ')}`);
        const child = startCli(context.extensionPath, args, computeEnv(), (line) => void log.appendLine(`[synthetic store] ${line}`));
        const cancel = token.onCancellationRequested(() => child.cancel());
        const { code, tail } = await child.exited.finally(() => cancel.dispose());
        if (code !== 0) {
          const status = child.cancelled || code === 130 ? 'cancelled' : 'failed';
          return { status, store, message: status === 'cancelled' ? `cancelled while ${what}` : `triplex ${args[0]} failed: ${tail.join('\n')}` };
        }
      }
      return { status: 'done', store, message: `the synthetic store is in ${store}` } as const;
    });
  } finally {
    tracked.end();
  }
}

export function registerSyntheticStoreCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  context.subscriptions.push(vscode.commands.registerCommand('triplex.makeSyntheticStore', async (given?: SyntheticStoreRequest): Promise<SyntheticStoreOutcome | undefined> => {
    const folder = given?.folder ?? await askFolder();
    if (!folder) return undefined;
    const outcome = await makeSyntheticStore(context, { ...given, folder }, log);
    log.appendLine(`[synthetic store] ${outcome.status}: ${outcome.message}`);
    if (outcome.status === 'done') {
      void vscode.window.showInformationMessage(`TRIPLEX: ${outcome.message}. Next: train a fold on it.`, 'Train Fold').then((choice) => {
        if (choice) void vscode.commands.executeCommand('triplex.trainFold');
      });
    } else if (outcome.status === 'failed') {
      void vscode.window.showErrorMessage(`TRIPLEX could not make the synthetic store: ${outcome.message}`, 'Show Log').then((choice) => {
        if (choice) log.show();
      });
    }
    return outcome;
  }));
}
