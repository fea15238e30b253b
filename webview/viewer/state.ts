// The slide viewer's state: what the extension sent, the shared view, the panels shown, and the
// typed line back to the extension. Every other module of the viewer reads and changes it here.
import { DEFAULT_DISPLAY, parseViewerSavedState, type ViewerDisplay, type ViewerInbound, type ViewerMultiples, type ViewerOutbound, type ViewerSavedState } from '../../src/protocol/webviews';
import type { OverlayDraw, TileCache, View } from './canvasView';

interface VsCodeApi { postMessage(message: unknown): void; getState(): unknown; setState(state: unknown): void }
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
  /** Several genes at once, as the extension sent them (a grid or a score). */
  multiples?: ViewerInbound['multiples'];
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
  /** How spots are drawn; kept across sections. */
  display: ViewerDisplay;
  /** The genes of the grid or score asked for (restored after a reload). */
  asked?: ViewerMultiples;
} = { userMoved: false, pendingSince: 0, overlays: [], display: { ...DEFAULT_DISPLAY } };

/** What the page last saved, if it is a viewer's state (after a window reload, the state VS Code kept). */
export function savedState(): ViewerSavedState | undefined {
  return parseViewerSavedState(vscode.getState());
}

/** Saves what is shown, so that a window reload reopens the same view (see the extension's serializer). */
export function saveState(): void {
  const s = viewer.state;
  if (!s) return;
  const { store, section, predictions, runs } = s.init;
  const saved: ViewerSavedState = {
    request: { store, section, ...(predictions ? { predictions } : {}), ...(runs ? { compare: runs } : {}) },
    gene: s.values?.gene ?? s.init.gene,
    view: { ...s.view },
    display: viewer.display,
    ...(viewer.asked ? { multiples: viewer.asked } : {}),
    ...(s.panels[1] === 'error' ? { rightPanel: 'error' as const } : {}),
  };
  vscode.setState(saved);
}

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
