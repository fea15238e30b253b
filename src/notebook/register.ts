import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseRendererMessage } from '../protocol/outputs';
import { registerCompletion } from './completion';
import { CONTROLLER_ID, TriplexController } from './controller';
import { NOTEBOOK_TYPE, TriplexSerializer } from './serializer';

export const QUICK_START = 'notebooks/quickstart.triplexnb';

/** What the notebook part gives to tests and to other commands. */
export interface NotebookApi {
  controllerId: string;
  notebookType: string;
}

/**
 * The notebook type: its serializer, its controller (kernel), completion from the kernel,
 * and the commands "Restart Kernel", "Open Quick Start" and "New Notebook".
 */
export function registerNotebooks(context: vscode.ExtensionContext): NotebookApi {
  const log = vscode.window.createOutputChannel('TRIPLEX Kernel');
  const controller = new TriplexController(context.asAbsolutePath('dist/kernel.js'), log);
  const activeNotebook = (uri?: vscode.Uri) => (uri
    ? vscode.workspace.notebookDocuments.find((nb) => nb.uri.toString() === uri.toString())
    : vscode.window.activeNotebookEditor?.notebook);

  const messaging = vscode.notebooks.createRendererMessaging('triplex-renderer');
  context.subscriptions.push(
    log,
    controller,
    messaging.onDidReceiveMessage((e) => void openFromRenderer(e.message, log)),
    vscode.workspace.registerNotebookSerializer(NOTEBOOK_TYPE, new TriplexSerializer(), { transientOutputs: false }),
    registerCompletion(controller),
    vscode.commands.registerCommand('triplex.restartKernel', async (arg?: vscode.Uri | { notebookEditor?: { notebookUri?: vscode.Uri } }) => {
      const uri = arg instanceof vscode.Uri ? arg : arg?.notebookEditor?.notebookUri;
      const notebook = activeNotebook(uri);
      if (!notebook || notebook.notebookType !== NOTEBOOK_TYPE) {
        void vscode.window.showWarningMessage('Open a TRIPLEX notebook to restart its kernel.');
        return;
      }
      await controller.restart(notebook);
      void vscode.window.setStatusBarMessage('TRIPLEX kernel restarted: the next cell starts a fresh one.', 4000);
    }),
    vscode.commands.registerCommand('triplex.openQuickStart', async () => {
      // An untitled copy: the sample in the extension stays as shipped, and the cells write to
      // the workspace folder, not into the extension.
      const bytes = await vscode.workspace.fs.readFile(vscode.Uri.joinPath(context.extensionUri, QUICK_START));
      const data = new TriplexSerializer().deserializeNotebook(bytes);
      const notebook = await vscode.workspace.openNotebookDocument(NOTEBOOK_TYPE, data);
      await vscode.window.showNotebookDocument(notebook);
      return notebook;
    }),
    vscode.commands.registerCommand('triplex.newNotebook', async () => {
      const cell = new vscode.NotebookCellData(vscode.NotebookCellKind.Code, "import * as triplex from 'triplex';\n", 'typescript');
      const notebook = await vscode.workspace.openNotebookDocument(NOTEBOOK_TYPE, new vscode.NotebookData([cell]));
      await vscode.window.showNotebookDocument(notebook);
      return notebook;
    }),
  );
  return { controllerId: CONTROLLER_ID, notebookType: NOTEBOOK_TYPE };
}

/**
 * A gene map's "Open in slide viewer" button: the renderer posts the map's store, section, gene
 * and predictions; they are checked before the viewer opens on them.
 */
export async function openFromRenderer(message: unknown, log: vscode.OutputChannel): Promise<boolean> {
  const m = parseRendererMessage(message);
  if (!m || !fs.existsSync(path.join(m.store, 'store.json')) || (m.predictions !== undefined && !fs.existsSync(m.predictions))) {
    log.appendLine(`[renderer] ignored a message: ${JSON.stringify(message)?.slice(0, 200)}`);
    return false;
  }
  await vscode.commands.executeCommand('triplex.openSlideViewer', { store: m.store, section: m.section, gene: m.gene, predictions: m.predictions });
  return true;
}
