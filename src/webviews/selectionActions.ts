import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ViewerInbound, ViewerOutbound } from '../protocol/webviews';
import { categoryNameProblem, readCategoryColumns, saveCategory, writeSpotIdsCsv } from '../runtime/store/categories';
import { openDatasetStore } from '../runtime/store/datasetStore';
import { post } from './html';

/**
 * The slide viewer's selection actions on the extension side: "Save as category" (asks for a
 * name when the viewer gave none, writes the store's categories.arrow, sends the columns back)
 * and "Export CSV" (asks where with a save dialog, unless the viewer was opened with a
 * destination, as scripts and tests do). Every spot id is checked against the section first.
 */

export interface SelectionContext {
  webview: vscode.Webview;
  store: string;
  section: string;
  /** Row indices of the section in spots.arrow, and their spot ids. */
  rows: number[];
  spotIds: string[];
  /** Where "Export CSV" writes without asking (SlideViewerRequest.csvDestination). */
  csvDestination?: string;
  log: vscode.OutputChannel;
}

function unknownSpots(c: SelectionContext, ids: readonly string[]): string | undefined {
  const known = new Set(c.spotIds);
  const unknown = ids.filter((id) => !known.has(id));
  return unknown.length ? `section ${c.section} has no spot ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ` (and ${unknown.length - 3} more)` : ''}` : undefined;
}

async function fail(c: SelectionContext, message: string): Promise<void> {
  c.log.appendLine(`[viewer] ${message}`);
  void vscode.window.showErrorMessage(`TRIPLEX: ${message}`);
  await post<ViewerInbound, 'error'>(c.webview, 'error', { message });
}

/** Saves the selection as a category of the store and sends the viewer its categories again. */
export async function saveSelectionAsCategory(c: SelectionContext, request: ViewerOutbound['saveCategory']): Promise<void> {
  const wrong = unknownSpots(c, request.spotIds);
  if (wrong) return fail(c, `The selection was not saved: ${wrong}`);
  const store = openDatasetStore(c.store);
  const name = request.name.trim() || await vscode.window.showInputBox({
    title: `Save ${request.spotIds.length} spots of ${c.section} as a category`,
    prompt: "The category's name: letters, digits, '.', '_' and '-'",
    validateInput: (v) => categoryNameProblem(store, v.trim()),
  });
  if (!name) return;
  try {
    const saved = await saveCategory(c.store, { name: name.trim(), label: request.label, section: c.section, spotIds: request.spotIds });
    c.log.appendLine(`[viewer] ${c.section}: ${saved.spots} spots saved as ${saved.name} = ${saved.label} in ${saved.file}`);
    await post<ViewerInbound, 'categories'>(c.webview, 'categories', {
      columns: readCategoryColumns(openDatasetStore(c.store), c.rows),
      saved: { name: saved.name, label: saved.label, spots: saved.spots },
    });
  } catch (err) {
    await fail(c, `The selection was not saved as a category: ${(err as Error).message}`);
  }
}

/** Writes the selection's spot ids as CSV where the user chooses (or to the given destination). */
export async function exportSelectionCsv(c: SelectionContext, request: ViewerOutbound['exportSelection']): Promise<void> {
  const wrong = unknownSpots(c, request.spotIds);
  if (wrong) return fail(c, `The selection was not exported: ${wrong}`);
  const file = c.csvDestination ?? (await vscode.window.showSaveDialog({
    title: `Export ${request.spotIds.length} spot ids of ${c.section}`,
    defaultUri: vscode.Uri.file(path.join(path.resolve(c.store), `${c.section}-selection.csv`)),
    filters: { CSV: ['csv'] },
  }))?.fsPath;
  if (!file) return;
  try {
    await writeSpotIdsCsv(file, c.section, request.spotIds);
    c.log.appendLine(`[viewer] ${c.section}: ${request.spotIds.length} spot ids written to ${file}`);
    if (!c.csvDestination) void vscode.window.showInformationMessage(`TRIPLEX: ${request.spotIds.length} spot ids written to ${file}`);
  } catch (err) {
    await fail(c, `The selection was not exported: ${(err as Error).message}`);
  }
}
