// The slide viewer's state: what the extension sent, the shared view, the panels shown, and the
// typed line back to the extension. Every other module of the viewer reads and changes it here.
import type { ViewerInbound, ViewerOutbound } from '../../src/protocol/webviews';
import type { OverlayDraw, TileCache, View } from './canvasView';

interface VsCodeApi { postMessage(message: unknown): void }
declare function acquireVsCodeApi(): VsCodeApi;
const vscode = acquireVsCodeApi();
export const post = <K extends keyof ViewerOutbound>(type: K, payload: ViewerOutbound[K]) => vscode.postMessage({ type, payload });

export type PanelKind = 'truth' | 'prediction' | 'error';
export const TITLES: Record<PanelKind, string> = { truth: 'ground truth', prediction: 'prediction', error: 'error (prediction − truth)' };

export interface State {
  init: ViewerInbound['init'];
  values?: ViewerInbound['values'];
  view: View;
  panels: PanelKind[];
  annotations: boolean;
  tiles?: TileCache;
  categories?: number[];
  labels: string[];
}

/** The one viewer of the page. */
export const viewer: {
  state?: State;
  /** Until the user pans or zooms, the slide stays fitted to the panels (they resize as the page lays out). */
  userMoved: boolean;
  /** When the message that asks for a redraw arrived (0: none pending), for the `rendered` report. */
  pendingSince: number;
  /** Drawn over every panel's spots, in order (selections, categorical overlays). */
  overlays: OverlayDraw[];
} = { userMoved: false, pendingSince: 0, overlays: [] };

/** The state, once `init` has arrived (the handlers that call this are wired only then). */
export function current(): State {
  if (!viewer.state) throw new Error('slide viewer: no section yet');
  return viewer.state;
}

/** A panel's values in spot order (the error is prediction − truth). */
export function valuesOf(kind: PanelKind): number[] | undefined {
  const v = viewer.state?.values;
  if (!v) return undefined;
  if (kind === 'truth') return v.truth;
  if (kind === 'prediction') return v.prediction;
  if (!v.truth || !v.prediction) return undefined;
  const t = v.truth;
  return v.prediction.map((p, i) => p - t[i]);
}
