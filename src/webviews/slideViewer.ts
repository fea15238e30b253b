import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { parseViewerOutbound, type TileSource, type ViewerInbound, type ViewerOutbound } from '../protocol/webviews';
import { writeFileAtomic } from '../runtime/store/atomic';
import { openDatasetStore } from '../runtime/store/datasetStore';
import { pathInside } from '../runtime/store/identifiers';
import { readPredictions } from '../runtime/store/predictions';
import { computeEnv } from '../notebook/controller';
import { post, webviewHtml } from './html';
import { exportAsH5ad } from '../commands/exportH5ad';
import type { TilePyramid } from '../runtime/image/tiles';
import { SlideTileRequests } from './tileRequests';
import { viewerExportChoices } from '../commands/h5adExportTask';
import { viewerPanels } from '../runtime/eval/slideComparison';
import { multiplesFor, restoredRequest, sectionData, sectionView, valuesFor, viewerGenes, type SectionData } from './viewerData';
import { viewExportBytes } from './viewExport';
import { readCategoryColumns } from '../runtime/store/categories';
import { exportSelectionCsv, saveSelectionAsCategory, type SelectionContext } from './selectionActions';

/**
 * "TRIPLEX: Open Slide Viewer": one section of a store, its image tiled (by `triplex tiles` in a
 * child process, cached in the store), its spots coloured by a gene's ground truth, prediction or
 * error. The store's tables are read here (Arrow files, no computation); everything that decodes
 * images runs in the `triplex` child process. With `compare`, the truth and several runs'
 * held-out predictions side by side on one colour scale, each with its PCC (the paper's Figure 2).
 */

export interface SlideViewerRequest {
  store: string;
  section?: string;
  /** A predictions.arrow (cv, train-fold or predict) holding this section. */
  predictions?: string;
  gene?: string;
  /** Comparison mode: run folders, or benchmark folders standing for their models' runs. */
  compare?: string[];
  /** Where the viewer's "Export CSV" writes, without a save dialog (scripts and tests). */
  csvDestination?: string;
}

export interface SlideViewerHandle {
  panel: vscode.WebviewPanel;
  /** The section shown now (the viewer's section switcher changes it). */
  readonly section: string;
  genes: string[];
  spotIds: string[];
  /** Every message the webview sent, in order (validated). */
  received: ViewerOutbound[keyof ViewerOutbound][];
  /** Resolves at the first `rendered` message of `gene` (any gene when omitted). */
  whenRendered(gene?: string): Promise<ViewerOutbound['rendered']>;
  /** Sends a message to the webview as if it had asked (the gene picker, a click). */
  simulate<K extends keyof ViewerOutbound>(type: K, payload: ViewerOutbound[K]): Promise<void>;
  /** Files the view was exported to (PNG or SVG), in order. */
  exported: string[];
}

const cliEnv = () => ({ ...process.env, ...computeEnv(), ELECTRON_RUN_AS_NODE: '1' });

function runCli(extensionPath: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(extensionPath, 'dist', 'cli.js'), ...args], { env: cliEnv(), maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => (error ? reject(new Error(stderr.trim().split('\n').pop() || error.message, { cause: error })) : resolve(stdout)));
  });
}

/** The viewer's webview type: VS Code reopens panels of this type after a window reload (the serializer below). */
export const VIEW_TYPE = 'triplex.slideViewer';

/** Where an exported view is offered first: the store's viewer folder for the section. */
const exportTarget = (store: string, section: string, name: string, format: 'png' | 'svg') => pathInside(pathInside(path.join(store, 'viewer'), section), `${name.replace(/[^\w.-]+/g, '_')}.${format}`);

/**
 * Opens the viewer on a section of a store (in `existing`, a panel VS Code restored after a window
 * reload, or a new one). The viewer's section switcher, gene picker, grid and export come back here.
 */
export async function openSlideViewer(context: vscode.ExtensionContext, request: SlideViewerRequest, log: vscode.OutputChannel, existing?: vscode.WebviewPanel): Promise<SlideViewerHandle> {
  const manifest = openDatasetStore(request.store).manifest;
  let section = request.section ?? manifest.sections[0]?.id;
  if (!section) throw new Error(`${request.store} has no sections`);
  let data = sectionData(request, section);
  const report = (d: SectionData) => {
    for (const m of d.comparison?.missing ?? []) log.appendLine(`[viewer] ${d.section}: ${m.run.label} left out: ${m.reason}`);
    for (const m of d.comparison?.models ?? []) if (m.problem) log.appendLine(`[viewer] ${d.section}: ${m.problem}`);
  };
  report(data);
  let genes = viewerGenes(data);
  if (genes.length === 0) throw new Error(`${request.store}: no genes to show (a store without counts needs predictions)`);
  let gene = request.gene && genes.includes(request.gene) ? request.gene : genes[0];

  const storeUri = vscode.Uri.file(path.resolve(request.store));
  const title = () => `${section}: ${data.comparison ? 'models compared' : 'slide viewer'}`;
  const options = { enableScripts: true, localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist'), storeUri] };
  const panel = existing ?? vscode.window.createWebviewPanel(VIEW_TYPE, title(), vscode.ViewColumn.Active, { ...options, retainContextWhenHidden: true });
  panel.webview.options = options;
  panel.title = title();
  panel.webview.html = webviewHtml(panel.webview, { title: title(), script: vscode.Uri.joinPath(context.extensionUri, 'dist', 'webview', 'viewer.js'), imgFromRoots: true });

  // A whole slide's tiles above its overview are cut when the view needs them, by one
  // `triplex tiles --serve` child per section shown (tileRequests.ts).
  let onDemand: SlideTileRequests | undefined;
  const tilesOf = async (id: string): Promise<TileSource | undefined> => {
    onDemand?.close();
    onDemand = undefined;
    if (!manifest.sections.find((s) => s.id === id)?.image) return undefined;
    try {
      const p = JSON.parse(await runCli(context.extensionPath, ['tiles', request.store, '--section', id])) as TilePyramid;
      const base = panel.webview.asWebviewUri(vscode.Uri.file(path.join(path.resolve(p.dir), 'slide_files'))).toString();
      if (p.onDemand) {
        onDemand = new SlideTileRequests({ file: process.execPath, args: [path.join(context.extensionPath, 'dist', 'cli.js'), 'tiles', request.store, '--section', id, '--serve'], env: cliEnv() }, (a) => {
          if ('error' in a) log.appendLine(`[viewer] ${id}: tile ${a.tile}: ${a.error}`);
          void post<ViewerInbound, 'tile'>(panel.webview, 'tile', 'error' in a ? { tile: a.tile, error: a.error } : { tile: a.tile });
        });
        onDemand.warm();
      }
      return { base, width: p.width, height: p.height, tileSize: p.tileSize, maxLevel: p.maxLevel, format: 'jpeg', ...(p.onDemand ? { onDemand: true as const, writtenLevels: p.writtenLevels ?? 0 } : {}) };
    } catch (err) {
      log.appendLine(`[viewer] no tiles for ${id}: ${(err as Error).message}`);
      void post<ViewerInbound, 'error'>(panel.webview, 'error', { message: `The image of ${id} could not be tiled: ${(err as Error).message}` });
      return undefined;
    }
  };
  let tiles = tilesOf(section);

  const sendInit = async () => {
    await post<ViewerInbound, 'init'>(panel.webview, 'init', {
      store: request.store, section, predictions: request.predictions, genes, gene,
      ...sectionView(data),
      tiles: await tiles, hasTruth: !!data.truth, hasPrediction: !!data.prediction,
      ...(data.comparison ? { compare: viewerPanels(data.comparison), runs: request.compare } : {}),
      categories: readCategoryColumns(data.store, data.rows),
    });
    await post<ViewerInbound, 'values'>(panel.webview, 'values', valuesFor(data, gene));
  };

  // The section shown now (the section switcher changes it).
  const selection = (): SelectionContext => ({ webview: panel.webview, store: request.store, section, rows: data.rows, spotIds: data.spotIds, csvDestination: request.csvDestination, log });
  const received: SlideViewerHandle['received'] = [];
  const exported: string[] = [];
  const waiters: { gene?: string; resolve: (r: ViewerOutbound['rendered']) => void }[] = [];
  const handle = async (message: NonNullable<ReturnType<typeof parseViewerOutbound>>) => {
    received.push(message.payload);
    switch (message.type) {
      case 'ready':
        await sendInit();
        break;
      case 'selectGene':
        if (!genes.includes(message.payload.gene)) {
          log.appendLine(`[viewer] ignored an unknown gene '${message.payload.gene}'`);
          return;
        }
        gene = message.payload.gene;
        await post<ViewerInbound, 'values'>(panel.webview, 'values', valuesFor(data, gene));
        break;
      case 'selectGenes':
        await post<ViewerInbound, 'multiples'>(panel.webview, 'multiples', multiplesFor(data, message.payload));
        break;
      case 'selectSection': {
        const next = message.payload.section;
        if (!manifest.sections.some((s) => s.id === next)) {
          log.appendLine(`[viewer] ignored an unknown section '${next}'`);
          return;
        }
        try {
          const nextData = sectionData(request, next);
          const nextGenes = viewerGenes(nextData);
          if (nextGenes.length === 0) throw new Error('no genes to show on it');
          report(nextData);
          [section, data, genes] = [next, nextData, nextGenes];
          if (!genes.includes(gene)) gene = genes[0];
          panel.title = title();
          tiles = tilesOf(section);
          await sendInit();
        } catch (err) {
          await post<ViewerInbound, 'error'>(panel.webview, 'error', { message: `Section ${next} cannot be shown: ${(err as Error).message}` });
        }
        break;
      }
      case 'spotClicked':
        try {
          const r = JSON.parse(await runCli(context.extensionPath, ['spot-view', request.store, '--spot', message.payload.spotId, '--section', section])) as { crop: string; neighbors: string; maskedTiles: number };
          const uri = (f: string) => `${panel.webview.asWebviewUri(vscode.Uri.file(path.resolve(f))).toString()}?t=${fs.statSync(f).mtimeMs}`;
          await post<ViewerInbound, 'spotDetail'>(panel.webview, 'spotDetail', { spotId: message.payload.spotId, crop: uri(r.crop), neighbors: uri(r.neighbors), maskedTiles: r.maskedTiles });
        } catch (err) {
          await post<ViewerInbound, 'error'>(panel.webview, 'error', { message: `No view of spot ${message.payload.spotId}: ${(err as Error).message}` });
        }
        break;
      case 'exportView': {
        const { format, name } = message.payload;
        try {
          const bytes = viewExportBytes(message.payload);
          const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(exportTarget(request.store, section, name, format)), filters: format === 'png' ? { 'PNG image': ['png'] } : { 'SVG image': ['svg'] }, title: 'Export the view' });
          if (!target) return;
          await writeFileAtomic(target.fsPath, bytes);
          exported.push(target.fsPath);
          log.appendLine(`[viewer] ${section}: view exported to ${target.fsPath} (${bytes.length} bytes)`);
        } catch (err) {
          void vscode.window.showErrorMessage(`TRIPLEX could not export the view of ${section}: ${(err as Error).message}`);
        }
        break;
      }
      case 'exportH5ad': {
        // The run shown (or one of the runs compared), or the store; asked when there are several.
        try {
          const choices = viewerExportChoices(request);
          const chosen = choices.length === 1 ? choices[0] : await vscode.window.showQuickPick(choices, { title: 'Export as AnnData (.h5ad)' });
          if (chosen) await exportAsH5ad(context, chosen.request, log);
        } catch (err) {
          void vscode.window.showErrorMessage(`TRIPLEX could not export ${section} as AnnData: ${(err as Error).message}`);
        }
        break;
      }
      case 'saveCategory':
        await saveSelectionAsCategory(selection(), message.payload);
        break;
      case 'exportSelection':
        await exportSelectionCsv(selection(), message.payload);
        break;
      case 'wantTiles':
        onDemand?.want(message.payload.tiles);
        break;
      case 'tilesDrawn':
        log.appendLine(`[viewer] ${section}: on-demand tiles drawn, the first in ${message.payload.firstMs.toFixed(0)} ms, all in ${message.payload.allMs.toFixed(0)} ms`);
        break;
      case 'selected':
        log.appendLine(`[viewer] ${section}: ${message.payload.count} spots selected in ${message.payload.ms.toFixed(1)} ms`);
        break;
      case 'rendered':
        log.appendLine(`[viewer] ${section}: ${message.payload.gene} drawn in ${message.payload.ms.toFixed(0)} ms`);
        for (const w of waiters.splice(0)) {
          if (w.gene === undefined || w.gene === message.payload.gene) w.resolve(message.payload);
          else waiters.push(w);
        }
        break;
    }
  };
  panel.webview.onDidReceiveMessage(async (raw: unknown) => {
    const message = parseViewerOutbound(raw);
    if (!message) {
      log.appendLine(`[viewer] ignored a malformed message from the webview: ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    await handle(message);
  }, undefined, context.subscriptions);
  panel.onDidDispose(() => onDemand?.close(), undefined, context.subscriptions);

  return {
    panel, received, exported,
    get section() { return section; },
    get genes() { return genes; },
    get spotIds() { return data.spotIds; },
    whenRendered: (g) => new Promise((resolve) => {
      const seen = received.find((m): m is ViewerOutbound['rendered'] => 'gene' in m && 'ms' in m && (g === undefined || m.gene === g));
      if (seen) resolve(seen);
      else waiters.push({ gene: g, resolve });
    }),
    simulate: async (type, payload) => {
      const message = parseViewerOutbound({ type, payload });
      if (message) await handle(message);
    },
  };
}

function registerSerializer(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  context.subscriptions.push(vscode.window.registerWebviewPanelSerializer(VIEW_TYPE, {
    async deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown) {
      const request = restoredRequest(state);
      if (typeof request === 'string') {
        log.appendLine(`[viewer] a slide viewer was not reopened after the reload: ${request}`);
        panel.dispose();
        return;
      }
      try {
        await openSlideViewer(context, request, log, panel);
      } catch (err) {
        log.appendLine(`[viewer] a slide viewer was not reopened after the reload: ${(err as Error).message}`);
        panel.dispose();
      }
    },
  }));
}

export function registerSlideViewerCommand(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  registerSerializer(context, log);
  context.subscriptions.push(vscode.commands.registerCommand('triplex.openSlideViewer', async (given?: SlideViewerRequest | vscode.Uri): Promise<SlideViewerHandle | undefined> => {
    let request = given instanceof vscode.Uri ? { store: given.fsPath } : given;
    if (!request) {
      const stores = (await vscode.workspace.findFiles('**/store.json', '**/node_modules/**', 100)).map((u) => path.dirname(u.fsPath));
      const store = (await vscode.window.showQuickPick(stores.map((s) => ({ label: vscode.workspace.asRelativePath(s), store: s })), { title: 'Slide viewer: dataset store' }))?.store;
      if (!store) return undefined;
      const manifest = openDatasetStore(store).manifest;
      const section = (await vscode.window.showQuickPick(manifest.sections.map((s) => ({ label: s.id, description: `patient ${s.patient}, ${s.spots} spots${s.image ? '' : ', no image'}` })), { title: 'Slide viewer: section' }))?.label;
      if (!section) return undefined;
      const runs = (await vscode.workspace.findFiles(new vscode.RelativePattern(store, '**/predictions.arrow'), undefined, 200)).map((u) => u.fsPath)
        .filter((f) => {
          try {
            return readPredictions(f).sections.has(section);
          } catch {
            return false; // an unreadable file is not offered
          }
        });
      const none = { label: 'ground truth only', file: undefined as string | undefined };
      const pick = runs.length ? await vscode.window.showQuickPick([...runs.map((f) => ({ label: path.relative(store, f), file: f as string | undefined })), none], { title: 'Slide viewer: predictions to compare' }) : none;
      if (!pick) return undefined;
      request = { store, section, predictions: pick.file };
    }
    try {
      return await openSlideViewer(context, request, log);
    } catch (err) {
      void vscode.window.showErrorMessage(`TRIPLEX slide viewer: ${(err as Error).message}`);
      throw err;
    }
  }));
}
