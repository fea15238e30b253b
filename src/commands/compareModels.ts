import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { comparisonRuns, sectionsPredicted, storeOfRuns, type ComparisonRun } from '../runtime/eval/slideComparison';
import { openDatasetStore } from '../runtime/store/datasetStore';
import { openSlideViewer, type SlideViewerHandle } from '../webviews/slideViewer';

/**
 * "TRIPLEX: Compare Models on a Slide" (the paper's Figure 2): pick a benchmark folder or run
 * folders, the models, the section and the gene; the slide viewer opens in comparison mode with
 * the truth and each model's held-out prediction side by side. Every choice can be given as an
 * argument instead (tests, other commands).
 */

export interface CompareModelsRequest {
  /** A benchmark folder (its models' runs), or run folders. */
  folders: string[];
  /** Models to show (names such as `tem` or labels such as `TEM`); asked when absent (all preselected). */
  models?: string[];
  /** The store the runs were trained on; by default the one their results.json records. */
  store?: string;
  section?: string;
  gene?: string;
}

async function askFolders(): Promise<string[] | undefined> {
  const picked = await vscode.window.showOpenDialog({
    canSelectFolders: true, canSelectFiles: false, canSelectMany: true,
    title: 'Compare models: a benchmark folder (triplex benchmark --out), or run folders (triplex cv)', openLabel: 'Compare',
  });
  return picked?.map((u) => u.fsPath);
}

async function askModels(runs: ComparisonRun[]): Promise<ComparisonRun[] | undefined> {
  if (runs.length < 2) return runs;
  const picked = await vscode.window.showQuickPick(runs.map((run) => ({ label: run.label, description: vscode.workspace.asRelativePath(run.dir), picked: true, run })),
    { canPickMany: true, title: 'Compare models: models to show beside the truth' });
  return picked?.length ? picked.map((p) => p.run) : undefined;
}

async function askStore(): Promise<string | undefined> {
  const stores = (await vscode.workspace.findFiles('**/store.json', '**/node_modules/**', 100)).map((u) => path.dirname(u.fsPath));
  return (await vscode.window.showQuickPick(stores.map((s) => ({ label: vscode.workspace.asRelativePath(s), store: s })),
    { title: 'Compare models: the dataset store the runs were trained on (their results.json does not name one that exists)' }))?.store;
}

async function askSection(store: string, runs: ComparisonRun[]): Promise<string | undefined> {
  const predicted = runs.map(sectionsPredicted);
  const items = openDatasetStore(store).manifest.sections
    .map((s) => ({ s, by: predicted.filter((p) => p.has(s.id)).length }))
    .filter(({ by }) => by > 0)
    .map(({ s, by }) => ({ label: s.id, description: `patient ${s.patient}, ${s.spots} spots; held out by ${by} of ${runs.length} models` }));
  if (items.length === 0) throw new Error(`none of the runs predicts a section of ${store}; were they trained on another store?`);
  return (await vscode.window.showQuickPick(items, { title: 'Compare models: section' }))?.label;
}

/** Genes to offer: those a run found highly predictive first (Figure 2 shows such genes), then the store's. */
async function askGene(store: string, runs: ComparisonRun[]): Promise<string | undefined> {
  const highly = new Set(runs.flatMap((r) => {
    const file = path.join(r.dir, 'results.json');
    if (!fs.existsSync(file)) return [];
    const genes = (JSON.parse(fs.readFileSync(file, 'utf8')) as { highlyPredictiveGenes?: unknown }).highlyPredictiveGenes;
    return Array.isArray(genes) ? genes.filter((g): g is string => typeof g === 'string') : [];
  }));
  const genes = openDatasetStore(store).genes;
  const items = [...genes.filter((g) => highly.has(g)).map((g) => ({ label: g, description: 'highly predictive' })), ...genes.filter((g) => !highly.has(g)).map((g) => ({ label: g }))];
  return (await vscode.window.showQuickPick(items, { title: 'Compare models: gene (another can be picked in the viewer)' }))?.label;
}

async function compareModels(context: vscode.ExtensionContext, given: CompareModelsRequest | undefined, log: vscode.OutputChannel): Promise<SlideViewerHandle | undefined> {
  const folders = given?.folders ?? await askFolders();
  if (!folders?.length) return undefined;
  const all = comparisonRuns(folders);
  const wanted = given?.models;
  const runs = wanted ? all.filter((r) => wanted.includes(r.model) || wanted.includes(r.label)) : await askModels(all);
  if (!runs?.length) {
    if (wanted) throw new Error(`no run of ${wanted.join(', ')} in ${folders.join(', ')}; it holds ${all.map((r) => r.model).join(', ')}`);
    return undefined;
  }
  const store = given?.store ?? storeOfRuns(runs) ?? await askStore();
  if (!store) return undefined;
  const section = given?.section ?? await askSection(store, runs);
  if (!section) return undefined;
  const gene = given?.gene ?? await askGene(store, runs);
  if (!gene) return undefined;
  return openSlideViewer(context, { store, section, gene, compare: runs.map((r) => r.dir) }, log);
}

export function registerCompareModelsCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  context.subscriptions.push(vscode.commands.registerCommand('triplex.compareModels', async (given?: CompareModelsRequest | vscode.Uri): Promise<SlideViewerHandle | undefined> => {
    try {
      return await compareModels(context, given instanceof vscode.Uri ? { folders: [given.fsPath] } : given, log);
    } catch (err) {
      void vscode.window.showErrorMessage(`TRIPLEX model comparison: ${(err as Error).message}`);
      throw err;
    }
  }));
}
