import * as vscode from 'vscode';
import { registerCompareModelsCommand } from './commands/compareModels';
import { registerComputeInfoCommand } from './commands/computeInfo';
import { registerExportH5adCommand } from './commands/exportH5ad';
import { registerTrainFoldCommand } from './commands/trainFold';
import { registerNotebooks, type NotebookApi } from './notebook/register';
import { registerGetStartedCommand } from './commands/getStarted';
import { registerSyntheticStoreCommand } from './commands/syntheticStore';
import { registerStatusBar } from './statusBar';
import { registerResultsCommand } from './webviews/resultsPanel';
import { registerSlideViewerCommand } from './webviews/slideViewer';

/** Wires the extension's contributions together; each lives in its own module. */
export function activate(context: vscode.ExtensionContext): NotebookApi {
  registerComputeInfoCommand(context);
  const log = vscode.window.createOutputChannel('TRIPLEX');
  context.subscriptions.push(log);
  registerStatusBar(context, log);
  registerResultsCommand(context, log);
  registerTrainFoldCommand(context, log);
  registerSlideViewerCommand(context, log);
  registerCompareModelsCommand(context, log);
  registerExportH5adCommand(context, log);
  registerSyntheticStoreCommand(context, log);
  registerGetStartedCommand(context);
  return registerNotebooks(context);
}

export function deactivate(): void {
  // Everything registered is disposed through context.subscriptions (kernels included).
}
