/**
 * Rich outputs: the vendor MIME types a kernel emits, their JSON payloads, and the notebook
 * renderers that draw them. Imported by the runtime (which builds payloads), the kernel (which
 * sends them), the serializer (which saves them) and the renderers (which draw them).
 */

export const MIME = {
  table: 'application/vnd.triplex.table+json',
  geneMap: 'application/vnd.triplex.genemap+json',
  curve: 'application/vnd.triplex.curve+json',
  metrics: 'application/vnd.triplex.metrics+json',
} as const;
export type RichMime = (typeof MIME)[keyof typeof MIME];

/**
 * The static rendering that gene maps, curves and metrics also carry, for Jupyter and GitHub
 * (which cannot run our renderers). VS Code still draws the vendor type: its output picker puts
 * MIME types it does not know before those it does (image/svg+xml, text/plain).
 */
export const SVG_MIME = 'image/svg+xml';

/** mime type -> value: a JSON value for `*json` types, a string otherwise (base64 for images). */
export type MimeBundle = Record<string, unknown>;

export type Cell = string | number | boolean | null;

/** A table, the first rows of it at most (paged by the renderer). */
export interface TablePayload {
  title?: string;
  columns: { name: string; type: string }[];
  rows: Cell[][];
  /** Rows of the whole table; more than `rows.length` when it was cut. */
  totalRows: number;
}

/** One section's spots, one panel per value set (ground truth, prediction, error). */
export interface GeneMapPayload {
  gene: string;
  section: string;
  spotIds: string[];
  /** Spot centres in image pixels. */
  x: number[];
  y: number[];
  panels: { title: string; values: number[]; diverging?: boolean }[];
  /** PCC between the first two panels across spots, when there are two. */
  pcc?: number;
  /** Where the values come from, so that the slide viewer can open them. */
  source?: { store: string; predictions?: string };
}

/** Renderer -> extension (notebook renderer messaging). */
export interface RendererMessage {
  type: 'openSlideViewer';
  store: string;
  section: string;
  gene: string;
  predictions?: string;
}

export function parseRendererMessage(value: unknown): RendererMessage | undefined {
  const m = value as Partial<RendererMessage> | null;
  if (typeof m !== 'object' || m === null || m.type !== 'openSlideViewer') return undefined;
  if (typeof m.store !== 'string' || typeof m.section !== 'string' || typeof m.gene !== 'string' || (m.predictions !== undefined && typeof m.predictions !== 'string')) return undefined;
  return { type: 'openSlideViewer', store: m.store, section: m.section, gene: m.gene, predictions: m.predictions };
}

/** Training curves: loss on the left axis, metrics on the right. */
export interface CurvePayload {
  title: string;
  series: { name: string; x: number[]; y: number[]; axis: 'loss' | 'metric' }[];
}

export interface MeanStd { mean: number; std: number }

/** Models x metrics, mean +- std over folds; `better` says which direction wins per column. */
export interface MetricsPayload {
  title: string;
  columns: string[];
  better: ('lower' | 'higher')[];
  rows: { model: string; values: MeanStd[] }[];
}

export interface PayloadOf {
  [MIME.table]: TablePayload;
  [MIME.geneMap]: GeneMapPayload;
  [MIME.curve]: CurvePayload;
  [MIME.metrics]: MetricsPayload;
}

/**
 * Index of the best row per column of a models x metrics table: the lowest mean where lower is
 * better, else the highest; an undefined (NaN) mean never wins; -1 when a column has none.
 * Shared by the notebook renderer and the results table.
 */
export function bestPerColumn(rows: readonly { values: readonly MeanStd[] }[], better: readonly ('lower' | 'higher')[]): number[] {
  return better.map((direction, c) => {
    let best = -1;
    rows.forEach((r, i) => {
      const v = r.values[c]?.mean;
      if (!Number.isFinite(v)) return;
      if (best < 0 || (direction === 'lower' ? v < rows[best].values[c].mean : v > rows[best].values[c].mean)) best = i;
    });
    return best;
  });
}
