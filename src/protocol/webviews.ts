/**
 * Messages between the extension and its webviews (the results table and the slide viewer):
 * one payload map per direction and panel, a typed `post`, and validators that every receiver
 * runs on arrival (a malformed or unknown message is logged and ignored, never trusted).
 */
import type { MeanStd } from './outputs';

export interface RunRowView {
  label: string;
  variant: string;
  group: string;
  description: string;
  mode: string;
  folds: string;
  dir: string;
  values: MeanStd[];
  perFold: { fold: number; slides: number; values: number[] }[];
  aborted: boolean;
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
