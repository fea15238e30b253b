import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { BETTER, bestRowPerMetric, findRunResults, METRICS, resultsCsv, resultsMarkdown, runLabel, type RunRow } from '../runtime/eval/runResults';
import { parseResultsOutbound, type ResultsInbound, type ResultsOutbound } from '../protocol/webviews';
import { post, webviewHtml } from './html';
import { exportAsH5ad } from '../commands/exportH5ad';

/** What the command returns: the panel, when its table is drawn, and the export it offers. */
export interface ResultsPanelHandle {
  panel: vscode.WebviewPanel;
  rendered: Promise<ResultsOutbound['rendered']>;
  /** Writes the table as CSV or Markdown to `target` (asked for when absent); the file written. */
  exportTo(format: 'csv' | 'markdown', target?: vscode.Uri): Promise<vscode.Uri | undefined>;
}

/**
 * "TRIPLEX: Open Results Table": the runs under a folder (an ablation, or every run of a store)
 * as one table, mean ± std over folds, the best of each column marked, drill-down per fold, and
 * export as CSV or Markdown; each run exports as AnnData (.h5ad).
 */
export function openResultsPanel(context: vscode.ExtensionContext, root: string, log: vscode.OutputChannel): ResultsPanelHandle {
  const { rows, problems } = findRunResults(root);
  const panel = vscode.window.createWebviewPanel('triplex.results', `TRIPLEX results: ${path.basename(root)}`, vscode.ViewColumn.Active, {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist')],
  });
  panel.webview.html = webviewHtml(panel.webview, { title: 'TRIPLEX results', script: vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview', 'results.js') });

  const exportTo = async (format: 'csv' | 'markdown', target?: vscode.Uri) => {
    const ext = format === 'csv' ? 'csv' : 'md';
    const uri = target ?? await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.file(path.join(root, `results.${ext}`)),
      filters: format === 'csv' ? { CSV: ['csv'] } : { Markdown: ['md'] },
    });
    if (!uri) return undefined;
    const text = format === 'csv' ? resultsCsv(rows) : resultsMarkdown(rows);
    // Written beside and renamed: an existing file is never left half-written.
    const tmp = `${uri.fsPath}.partial-${process.pid}`;
    fs.writeFileSync(tmp, text);
    fs.renameSync(tmp, uri.fsPath);
    log.appendLine(`[results] exported ${rows.length} runs as ${format} to ${uri.fsPath}`);
    return uri;
  };

  let resolveRendered!: (r: ResultsOutbound['rendered']) => void;
  const rendered = new Promise<ResultsOutbound['rendered']>((resolve) => { resolveRendered = resolve; });
  panel.webview.onDidReceiveMessage(async (raw: unknown) => {
    const message = parseResultsOutbound(raw);
    if (!message) {
      log.appendLine(`[results] ignored a malformed message from the webview: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    switch (message.type) {
      case 'ready':
        await post<ResultsInbound, 'results'>(panel.webview, 'results', resultsView(root, rows, problems));
        break;
      case 'rendered':
        resolveRendered(message.payload);
        break;
      case 'export':
        try {
          await exportTo(message.payload.format);
        } catch (err) {
          void vscode.window.showErrorMessage(`TRIPLEX could not export the results: ${(err as Error).message}`);
        }
        break;
      case 'exportH5ad':
        // Only a run this table lists: a path from the page is never used as given.
        if (!rows.some((r) => r.dir === message.payload.dir)) {
          log.appendLine(`[results] ignored an export of '${message.payload.dir}', which is not a run of this table`);
          return;
        }
        await exportAsH5ad(context, { source: message.payload.dir }, log);
        break;
    }
  }, undefined, context.subscriptions);
  return { panel, rendered, exportTo };
}

function resultsView(root: string, rows: RunRow[], problems: string[]): ResultsInbound['results'] {
  return {
    title: `Cross-validation results (${rows.length} run${rows.length === 1 ? '' : 's'})`,
    root,
    columns: [...METRICS],
    better: [...BETTER],
    rows: rows.map((r) => ({ ...r, label: runLabel(r, rows) })),
    best: bestRowPerMetric(rows),
    problems,
  };
}

export function registerResultsCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  context.subscriptions.push(vscode.commands.registerCommand('triplex.openResults', async (folder?: vscode.Uri | string): Promise<ResultsPanelHandle | undefined> => {
    let root = typeof folder === 'string' ? folder : folder?.fsPath;
    if (!root) {
      const found = await vscode.workspace.findFiles('**/results.json', '**/node_modules/**', 200);
      const candidates = [...new Set(found.map((u) => path.dirname(path.dirname(u.fsPath))))].sort();
      const pick = await vscode.window.showQuickPick(candidates.map((c) => ({ label: vscode.workspace.asRelativePath(c), root: c })), { placeHolder: 'Folder of cross-validation runs' });
      root = pick?.root;
    }
    if (!root) return undefined;
    return openResultsPanel(context, root, log);
  }));
}
