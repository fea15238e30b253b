import * as vscode from 'vscode';
import { parseNotebook, serializeNotebook, type Cell, type Notebook } from './nbformat';

export const NOTEBOOK_TYPE = 'triplex-notebook';

/** The editor's side of nbformat.ts: NotebookData <-> nbformat 4 JSON. */
export class TriplexSerializer implements vscode.NotebookSerializer {
  deserializeNotebook(content: Uint8Array): vscode.NotebookData {
    const nb = parseNotebook(content, 'this notebook');
    const data = new vscode.NotebookData(nb.cells.map((c) => {
      const cell = new vscode.NotebookCellData(c.kind === 'code' ? vscode.NotebookCellKind.Code : vscode.NotebookCellKind.Markup, c.source, c.language);
      cell.outputs = c.outputs.map((o) => new vscode.NotebookCellOutput(o.items.map((i) => new vscode.NotebookCellOutputItem(i.data, i.mime)), o.metadata));
      if (c.executionCount !== undefined) cell.executionSummary = { executionOrder: c.executionCount };
      cell.metadata = c.metadata;
      return cell;
    }));
    data.metadata = nb.metadata;
    return data;
  }

  serializeNotebook(data: vscode.NotebookData): Uint8Array {
    const nb: Notebook = {
      metadata: data.metadata ?? {},
      cells: data.cells.map((c): Cell => ({
        kind: c.kind === vscode.NotebookCellKind.Code ? 'code' : 'markdown',
        source: c.value,
        language: c.languageId,
        outputs: (c.outputs ?? []).map((o) => ({ items: o.items.map((i) => ({ mime: i.mime, data: i.data })), metadata: o.metadata })),
        executionCount: c.executionSummary?.executionOrder,
        metadata: c.metadata,
      })),
    };
    return serializeNotebook(nb);
  }
}
