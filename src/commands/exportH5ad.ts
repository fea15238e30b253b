import * as path from 'node:path';
import * as vscode from 'vscode';
import { trackRun } from '../statusBar';
import { defaultH5adFile, startH5adExport, type H5adExportOutcome, type H5adExportRequest } from './h5adExportTask';

/**
 * "TRIPLEX: Export as AnnData (.h5ad)", and the "Export .h5ad" buttons of the results table and
 * the slide viewer: asks where to write (`<run or store>.h5ad` beside it), runs `triplex export`
 * in a child process under a cancellable notification, then says what was written (with a way to
 * reveal it) or why nothing was.
 */

/** Exports `request.source`; undefined when the user closes the save dialog. */
export async function exportAsH5ad(context: vscode.ExtensionContext, request: H5adExportRequest, log: vscode.OutputChannel): Promise<H5adExportOutcome | undefined> {
  const name = path.basename(path.resolve(request.source));
  const destination = request.destination ?? (await vscode.window.showSaveDialog({
    defaultUri: vscode.Uri.file(defaultH5adFile(request.source)),
    filters: { AnnData: ['h5ad'] },
    title: `Export ${name} as AnnData (.h5ad)`,
    saveLabel: 'Export',
  }))?.fsPath;
  if (!destination) return undefined;
  log.appendLine(`[export] ${request.source} -> ${destination}`);
  const outcome = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `TRIPLEX: exporting ${name} as AnnData`, cancellable: true }, (progress, token) => {
    const tracked = trackRun(`Export ${name}`);
    const task = startH5adExport(context.extensionPath, { ...request, destination }, (line, stream) => {
      log.appendLine(`[export] ${line}`);
      if (stream === 'stderr') {
        progress.report({ message: line });
        tracked.update(line);
      }
    });
    token.onCancellationRequested(() => task.child.cancel());
    return task.done.finally(() => tracked.end());
  });
  log.appendLine(`[export] ${outcome.status}: ${outcome.message}`);
  if (outcome.status === 'done') {
    void vscode.window.showInformationMessage(`TRIPLEX ${outcome.message}`, 'Reveal in File Explorer').then((choice) => {
      if (choice) void vscode.commands.executeCommand('revealFileInOS', vscode.Uri.file(outcome.file));
    });
  } else if (outcome.status === 'cancelled') {
    void vscode.window.showInformationMessage(`TRIPLEX: ${outcome.message}`);
  } else {
    void vscode.window.showErrorMessage(`TRIPLEX could not export ${request.source} to ${outcome.file}: ${outcome.message}`, 'Show Log').then((choice) => {
      if (choice) log.show();
    });
  }
  return outcome;
}

const fsPathOf = (v: vscode.Uri | string) => (typeof v === 'string' ? v : v.fsPath);

export function registerExportH5adCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  // Arguments (all optional): the run or store folder (a Uri from the explorer, or a path), and the file to write.
  context.subscriptions.push(vscode.commands.registerCommand('triplex.exportH5ad', async (source?: vscode.Uri | string, destination?: vscode.Uri | string): Promise<H5adExportOutcome | undefined> => {
    const folder = source === undefined ? (await vscode.window.showOpenDialog({
      canSelectFolders: true, canSelectFiles: false, canSelectMany: false,
      title: 'Export as AnnData: a run folder (triplex cv, Train Fold) or a dataset store (triplex preprocess)', openLabel: 'Export',
    }))?.[0]?.fsPath : fsPathOf(source);
    if (!folder) return undefined;
    return exportAsH5ad(context, { source: folder, ...(destination === undefined ? {} : { destination: fsPathOf(destination) }) }, log);
  }));
}
