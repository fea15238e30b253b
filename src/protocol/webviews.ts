/**
 * Messages between the extension and its webviews (the results table and the slide viewer):
 * one payload map per direction and panel, a typed `post`, and validators that every receiver
 * runs on arrival (a malformed or unknown message is logged and ignored, never trusted).
 */
import type { MeanStd } from './outputs';

/** One cross-validation run as the results table shows it. */
export interface RunSummary {
  /** Model variant (triplex, tem, no-gem, ...). */
  variant: string;
  /** The paper's grouping of the variant (views, position encoding, fusion, loss). */
  group: string;
  description: string;
  mode: string;
  folds: string;
  dir: string;
  /** [MSE, MAE, PCC(M), PCC(H)] as mean and sample std over folds (std NaN for one fold). */
  values: MeanStd[];
  perFold: { fold: number; slides: number; values: number[] }[];
  aborted: boolean;
}

export interface RunRowView extends RunSummary {
  label: string;
}

/** Extension -> results table. */
export interface ResultsInbound {
  results: { title: string; root: string; columns: string[]; better: ('lower' | 'higher')[]; rows: RunRowView[]; best: number[]; problems: string[] };
}
/** Results table -> extension. */
export interface ResultsOutbound {
  ready: Record<string, never>;
  /** The table is drawn: rows and the best row per column, as shown. */
  rendered: { rows: number; best: number[] };
  export: { format: 'csv' | 'markdown' };
  /** "Export .h5ad" of one run (its `dir` as the table was sent it; the extension exports only a run it listed). */
  exportH5ad: { dir: string };
}

export type Message<M> = { [K in keyof M]: { type: K; payload: M[K] } }[keyof M];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isIntArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x));

/** Validates a message from the results table; undefined when it is not one. */
export function parseResultsOutbound(value: unknown): Message<ResultsOutbound> | undefined {
  if (!isObject(value) || !isObject(value.payload)) return undefined;
  const p = value.payload;
  switch (value.type) {
    case 'ready': return { type: 'ready', payload: {} };
    case 'rendered': return Number.isInteger(p.rows) && isIntArray(p.best) ? { type: 'rendered', payload: { rows: p.rows as number, best: p.best } } : undefined;
    case 'export': return p.format === 'csv' || p.format === 'markdown' ? { type: 'export', payload: { format: p.format } } : undefined;
    case 'exportH5ad': return typeof p.dir === 'string' && p.dir.length > 0 && p.dir.length < 4096 ? { type: 'exportH5ad', payload: { dir: p.dir } } : undefined;
    default: return undefined;
  }
}

/** Validates a message from the extension to the results table. */
export function parseResultsInbound(value: unknown): Message<ResultsInbound> | undefined {
  if (!isObject(value) || value.type !== 'results' || !isObject(value.payload)) return undefined;
  const p = value.payload;
  if (typeof p.title !== 'string' || !Array.isArray(p.rows) || !Array.isArray(p.columns) || !isIntArray(p.best) || !Array.isArray(p.problems)) return undefined;
  return { type: 'results', payload: p as unknown as ResultsInbound['results'] };
}

/**
 * The tile pyramid as the viewer loads it: `base` + `<level>/<col>_<row>.jpeg`. A whole slide's
 * (`onDemand`) has levels 0..writtenLevels on disk; the viewer asks for the tiles of higher levels
 * it shows (`wantTiles`) and loads each once the extension says it is cut (`tile`).
 */
export interface TileSource { base: string; width: number; height: number; tileSize: number; maxLevel: number; format: 'jpeg'; onDemand?: true; writtenLevels?: number }

/** A Deep Zoom tile's name, `level/col_row`, as the viewer asks for it. */
export const TILE_NAME = /^\d{1,2}\/\d{1,7}_\d{1,7}$/;
/** Tiles asked for at once (the viewer's bound on requests in flight). */
export const MAX_TILE_REQUESTS = 8;

/** The models of a comparison: Table 1's label, and the fold whose held-out prediction is shown. */
export interface ComparisonPanels {
  panels: { label: string; fold: number }[];
  /** Runs left out, each with why (no fold of theirs tests the section). */
  left: string[];
}

/** One gene of a comparison: each model's prediction and PCC on the slide, and the colour scale all panels share. */
export interface ComparisonValues {
  /** In the order of `ComparisonPanels.panels`; `pcc` null where undefined, `problem` says why when not a constant series. */
  panels: { prediction: number[]; pcc: number | null; problem?: string }[];
  scale: { lo: number; hi: number; rule: string };
}

/** A categorical column of the section's spots (the store's `label`, `patient`, or a saved category), in spot order. */
export interface CategoryColumnView { name: string; source: 'spots' | 'saved'; values: (string | null)[] }

/** Colour maps the viewer offers: for values, and diverging ones (centred on 0) for errors. */
export const VALUE_MAPS = ['viridis', 'magma', 'cividis'] as const;
export const ERROR_MAPS = ['red-blue', 'pink-green'] as const;

/** How the viewer draws: colour maps, the colour range's rule, spot size and opacities. */
export interface ViewerDisplay {
  valueMap: (typeof VALUE_MAPS)[number];
  errorMap: (typeof ERROR_MAPS)[number];
  /** 'percentile': the 1st to 99th percentile of the values shown; 'minmax': all of them. */
  range: 'percentile' | 'minmax';
  /** Times the data's spot diameter (0.25 to 3). */
  spotScale: number;
  spotOpacity: number;
  imageOpacity: number;
}

export const DEFAULT_DISPLAY: ViewerDisplay = { valueMap: 'viridis', errorMap: 'red-blue', range: 'percentile', spotScale: 1, spotOpacity: 1, imageOpacity: 1 };

/** What opened a viewer: enough to open it again after a window reload. */
export interface ViewerRequest { store: string; section: string; predictions?: string; compare?: string[] }

/** Several genes at once: a small-multiples grid, or one gene-set score. */
export interface ViewerMultiples { purpose: 'grid' | 'score'; genes: string[] }

/** The webview's saved state (vscode.setState), which the extension's serializer reopens from. */
export interface ViewerSavedState {
  request: ViewerRequest;
  gene: string;
  view?: { scale: number; tx: number; ty: number };
  display: ViewerDisplay;
  multiples?: ViewerMultiples;
  rightPanel?: 'prediction' | 'error';
}

/** Extension -> slide viewer. */
export interface ViewerInbound {
  init: {
    store: string;
    section: string;
    /** Where the predictions come from (a predictions.arrow), if any. */
    predictions?: string;
    genes: string[];
    gene: string;
    spots: { ids: string[]; x: number[]; y: number[]; labels: (string | null)[] };
    /** Spot diameter in image pixels (drawn to scale). */
    spotDiameter: number;
    /** How spotDiameter was found (the platform's diameter and the image's scale, or the spot spacing). */
    spotDiameterFrom?: string;
    /** Microns per image pixel, when the store knows it (the scale bar). */
    mpp?: number;
    /** The store's sections, for the section switcher. */
    sections?: { id: string; spots: number }[];
    /** The run folders compared (comparison mode), to reopen the same view. */
    runs?: string[];
    tiles?: TileSource;
    hasTruth: boolean;
    hasPrediction: boolean;
    /** Comparison mode (the paper's Figure 2): the truth, then one panel per model, in this order. */
    compare?: ComparisonPanels;
    /** Categorical columns to overlay (none: the store has none for this section). */
    categories?: CategoryColumnView[];
  };
  /** One gene's values in spot order; the PCC of truth and prediction on this slide. */
  values: { gene: string; truth?: number[]; prediction?: number[]; pcc?: number; compare?: ComparisonValues };
  spotDetail: { spotId: string; crop: string; neighbors: string; maskedTiles: number };
  /** Several genes' values for a grid or a score: from the ground truth where the store has counts, else the prediction. */
  multiples: { purpose: 'grid' | 'score'; source: 'ground truth' | 'prediction'; genes: { gene: string; values: number[] }[]; unknown: string[] };
  error: { message: string };
  /** An on-demand tile is cut (load it from the tile source), or why it cannot be. */
  tile: { tile: string; error?: string };
  /** The categorical columns again, after a selection was saved as one (`saved` says which). */
  categories: { columns: CategoryColumnView[]; saved?: { name: string; label: string; spots: number } };
}

/** Slide viewer -> extension. */
export interface ViewerOutbound {
  ready: Record<string, never>;
  selectGene: { gene: string };
  spotClicked: { spotId: string };
  /** The view was drawn with this gene (after an init or a gene change), in `ms` since the message arrived. */
  rendered: { gene: string; ms: number };
  /** "Export .h5ad": the open run or store (the extension knows which; it asks when the view shows several). */
  exportH5ad: Record<string, never>;
  /** "Save as category": these spots get `label` (the name when empty) in category `name` (the extension asks for one when empty). */
  saveCategory: { name: string; label: string; spotIds: string[] };
  /** "Export CSV": the selection's spot ids (the extension asks where, with a save dialog). */
  exportSelection: { spotIds: string[] };
  /** A lasso or rectangle selected `count` spots, hit-tested and summarised in `ms`. */
  selected: { count: number; ms: number };
  /** Several genes at once (at most MAX_MULTIPLES). */
  selectGenes: ViewerMultiples;
  /** Another section of the same store. */
  selectSection: { section: string };
  /** The current view as an image to save: a PNG as a data: URL, or SVG text. */
  exportView: { format: 'png' | 'svg'; data: string; name: string };
  /** The on-demand tiles the view shows and lacks, most wanted first (at most MAX_TILE_REQUESTS; replaces the previous list). */
  wantTiles: { tiles: string[] };
  /** The on-demand tiles a view lacked are all drawn (`tiles` of them in the last frame): the first `firstMs` and all `allMs` after the view first lacked them. */
  tilesDrawn: { tiles: number; firstMs: number; allMs: number };
}

/** At most a section's spots, each a short id. */
const isSpotIds = (v: unknown): v is string[] => Array.isArray(v) && v.length <= 1_000_000 && v.every((x) => typeof x === 'string' && x.length > 0 && x.length < 200);

/** Genes in one grid or score. */
export const MAX_MULTIPLES = 50;
const MAX_EXPORT = 64 * 1024 * 1024;

export function parseViewerOutbound(value: unknown): Message<ViewerOutbound> | undefined {
  if (!isObject(value) || !isObject(value.payload)) return undefined;
  const p = value.payload;
  switch (value.type) {
    case 'ready': return { type: 'ready', payload: {} };
    case 'selectGene': return typeof p.gene === 'string' && p.gene.length < 200 ? { type: 'selectGene', payload: { gene: p.gene } } : undefined;
    case 'spotClicked': return typeof p.spotId === 'string' && p.spotId.length < 200 ? { type: 'spotClicked', payload: { spotId: p.spotId } } : undefined;
    case 'rendered': return typeof p.gene === 'string' && typeof p.ms === 'number' ? { type: 'rendered', payload: { gene: p.gene, ms: p.ms } } : undefined;
    case 'exportH5ad': return Object.keys(p).length === 0 ? { type: 'exportH5ad', payload: {} } : undefined;
    case 'saveCategory':
      return typeof p.name === 'string' && p.name.length < 200 && typeof p.label === 'string' && p.label.length < 400 && isSpotIds(p.spotIds) && p.spotIds.length > 0
        ? { type: 'saveCategory', payload: { name: p.name, label: p.label, spotIds: p.spotIds } } : undefined;
    case 'exportSelection': return isSpotIds(p.spotIds) && p.spotIds.length > 0 ? { type: 'exportSelection', payload: { spotIds: p.spotIds } } : undefined;
    case 'selected': return Number.isInteger(p.count) && typeof p.ms === 'number' ? { type: 'selected', payload: { count: p.count as number, ms: p.ms } } : undefined;
    case 'selectGenes': return isMultiples(p) ? { type: 'selectGenes', payload: { purpose: p.purpose, genes: p.genes } } : undefined;
    case 'selectSection': return typeof p.section === 'string' && p.section.length < 200 ? { type: 'selectSection', payload: { section: p.section } } : undefined;
    case 'exportView':
      return (p.format === 'png' || p.format === 'svg') && typeof p.data === 'string' && p.data.length < MAX_EXPORT && typeof p.name === 'string' && p.name.length < 200
        ? { type: 'exportView', payload: { format: p.format, data: p.data, name: p.name } } : undefined;
    case 'wantTiles':
      return Array.isArray(p.tiles) && p.tiles.length <= MAX_TILE_REQUESTS && p.tiles.every((t) => typeof t === 'string' && TILE_NAME.test(t))
        ? { type: 'wantTiles', payload: { tiles: [...new Set(p.tiles as string[])] } } : undefined;
    case 'tilesDrawn':
      return Number.isInteger(p.tiles) && typeof p.firstMs === 'number' && typeof p.allMs === 'number'
        ? { type: 'tilesDrawn', payload: { tiles: p.tiles as number, firstMs: p.firstMs, allMs: p.allMs } } : undefined;
    default: return undefined;
  }
}

function isMultiples(v: unknown): v is ViewerMultiples {
  return isObject(v) && (v.purpose === 'grid' || v.purpose === 'score') && isStrings(v.genes) && v.genes.length > 0 && v.genes.length <= MAX_MULTIPLES && v.genes.every((g) => g.length < 200);
}

const isFraction = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
const isView = (v: unknown) => isObject(v) && [v.scale, v.tx, v.ty].every((x) => typeof x === 'number' && Number.isFinite(x)) && (v.scale as number) > 0;

export function isDisplay(v: unknown): v is ViewerDisplay {
  return isObject(v) && (VALUE_MAPS as readonly unknown[]).includes(v.valueMap) && (ERROR_MAPS as readonly unknown[]).includes(v.errorMap)
    && (v.range === 'percentile' || v.range === 'minmax') && typeof v.spotScale === 'number' && v.spotScale >= 0.25 && v.spotScale <= 3
    && isFraction(v.spotOpacity) && isFraction(v.imageOpacity);
}

/**
 * Validates a saved viewer state (what a webview stored with setState, handed back by VS Code
 * after a reload); undefined when it is not one, so that the serializer says so instead of opening
 * something else.
 */
export function parseViewerSavedState(value: unknown): ViewerSavedState | undefined {
  if (!isObject(value) || !isObject(value.request) || typeof value.gene !== 'string' || !isDisplay(value.display)) return undefined;
  const r = value.request;
  if (typeof r.store !== 'string' || typeof r.section !== 'string' || (r.predictions !== undefined && typeof r.predictions !== 'string') || (r.compare !== undefined && !isStrings(r.compare))) return undefined;
  if (value.view !== undefined && !isView(value.view)) return undefined;
  if (value.multiples !== undefined && !isMultiples(value.multiples)) return undefined;
  if (value.rightPanel !== undefined && value.rightPanel !== 'prediction' && value.rightPanel !== 'error') return undefined;
  return value as unknown as ViewerSavedState;
}

const isNumbers = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' || x === null);
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

const isLabels = (v: unknown): boolean => Array.isArray(v) && v.every((x) => x === null || typeof x === 'string');
function isCategoryColumns(v: unknown, spots: number): boolean {
  return Array.isArray(v) && v.every((c) => isObject(c) && typeof c.name === 'string' && (c.source === 'spots' || c.source === 'saved') && isLabels(c.values) && (c.values as unknown[]).length === spots);
}

function isComparisonPanels(v: unknown): boolean {
  return isObject(v) && isStrings(v.left) && Array.isArray(v.panels) && v.panels.every((x) => isObject(x) && typeof x.label === 'string' && Number.isInteger(x.fold));
}

function isComparisonValues(v: unknown): boolean {
  return isObject(v) && isObject(v.scale) && typeof v.scale.lo === 'number' && typeof v.scale.hi === 'number' && typeof v.scale.rule === 'string'
    && Array.isArray(v.panels) && v.panels.every((x) => isObject(x) && isNumbers(x.prediction) && (x.pcc === null || typeof x.pcc === 'number') && (x.problem === undefined || typeof x.problem === 'string'));
}

export function parseViewerInbound(value: unknown): Message<ViewerInbound> | undefined {
  if (!isObject(value) || !isObject(value.payload)) return undefined;
  const p = value.payload;
  switch (value.type) {
    case 'init': {
      const s = p.spots;
      if (typeof p.section !== 'string' || !isStrings(p.genes) || typeof p.gene !== 'string' || !isObject(s) || !isStrings(s.ids) || !isNumbers(s.x) || !isNumbers(s.y)
        || s.x.length !== s.ids.length || s.y.length !== s.ids.length || typeof p.spotDiameter !== 'number') return undefined;
      if (p.compare !== undefined && !isComparisonPanels(p.compare)) return undefined;
      if (p.categories !== undefined && !isCategoryColumns(p.categories, s.ids.length)) return undefined;
      return { type: 'init', payload: p as unknown as ViewerInbound['init'] };
    }
    case 'values':
      if (typeof p.gene !== 'string' || (p.truth !== undefined && !isNumbers(p.truth)) || (p.prediction !== undefined && !isNumbers(p.prediction))) return undefined;
      if (p.compare !== undefined && !isComparisonValues(p.compare)) return undefined;
      return { type: 'values', payload: p as unknown as ViewerInbound['values'] };
    case 'spotDetail':
      return typeof p.spotId === 'string' && typeof p.crop === 'string' && typeof p.neighbors === 'string' ? { type: 'spotDetail', payload: p as unknown as ViewerInbound['spotDetail'] } : undefined;
    case 'multiples':
      return (p.purpose === 'grid' || p.purpose === 'score') && (p.source === 'ground truth' || p.source === 'prediction') && isStrings(p.unknown)
        && Array.isArray(p.genes) && p.genes.every((g) => isObject(g) && typeof g.gene === 'string' && isNumbers(g.values))
        ? { type: 'multiples', payload: p as unknown as ViewerInbound['multiples'] } : undefined;
    case 'error':
      return typeof p.message === 'string' ? { type: 'error', payload: { message: p.message } } : undefined;
    case 'tile':
      return typeof p.tile === 'string' && TILE_NAME.test(p.tile) && (p.error === undefined || typeof p.error === 'string')
        ? { type: 'tile', payload: { tile: p.tile, ...(p.error !== undefined ? { error: p.error as string } : {}) } } : undefined;
    case 'categories':
      // Its columns' lengths are checked against the section by the viewer (it knows the spots).
      if (!isCategoryColumns(p.columns, Array.isArray(p.columns) && isObject(p.columns[0]) && Array.isArray(p.columns[0].values) ? p.columns[0].values.length : 0)) return undefined;
      if (p.saved !== undefined && !(isObject(p.saved) && typeof p.saved.name === 'string' && typeof p.saved.label === 'string' && Number.isInteger(p.saved.spots))) return undefined;
      return { type: 'categories', payload: p as unknown as ViewerInbound['categories'] };
    default:
      return undefined;
  }
}
