// The slide viewer: a section's H&E image, tiled, with its spots coloured by a gene's ground truth,
// prediction or error, panels side by side under one pan and zoom, the gene's PCC on the slide,
// pathologist annotations as an overlay, a searchable gene picker, hover values, and a clicked
// spot's crop and neighbour view. In comparison mode (init.compare), the truth and several models'
// predictions in a grid on one colour scale, each titled with its PCC (comparison.ts).
// This file wires the roles together: state.ts (what is shown), render.ts (drawing), panels.ts
// (layout), interaction.ts (pointer and keyboard input), toolbar.ts and displayControls.ts
// (controls), exportView.ts (PNG and SVG), selection.ts (lasso, rectangle and what a selection
// becomes), overlays.ts (categorical overlays). What is shown is saved with the webview's
// setState; after a window reload the extension reopens the same section and gene, and this page
// the same view.
import { parseViewerInbound, type ViewerInbound } from '../../src/protocol/webviews';
import { baseStyles, el } from '../ui/controls';
import { TileCache } from './canvasView';
import { buildDisplayRow, showMultiples } from './displayControls';
import { resetHitTest } from './interaction';
import { buildPanels, observePanels, showComparison, showDetail } from './panels';
import { OVERLAY_STYLES, overlayBar, setCategories } from './overlays';
import { schedule } from './render';
import { attachSelection, refreshSelection, SELECTION_STYLES, selectionBar, selectionSaved } from './selection';
import { post, savedState, viewer, type PanelKind } from './state';
import { buildToolbar, headline } from './toolbar';

baseStyles(`
body { padding: 0; margin: 0; overflow: hidden; }
#root { display: flex; flex-direction: column; height: 100vh; }
.toolbar { padding: 6px 10px; margin: 0; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); }
.headline { font-weight: 600; margin-left: 8px; }
.panels { flex: 1; display: flex; gap: 4px; min-height: 0; }
.panels.grid { display: grid; }
.panel { flex: 1; position: relative; min-width: 0; min-height: 0; }
.panel canvas { width: 100%; height: 100%; display: block; cursor: grab; touch-action: none; }
.panel canvas.dragging { cursor: grabbing; }
.panel .label { position: absolute; left: 8px; top: 6px; padding: 2px 6px; background: var(--vscode-editor-background); opacity: 0.9; border-radius: 3px; }
.panel .scale { position: absolute; right: 8px; bottom: 8px; display: flex; flex-direction: column; gap: 1px; background: var(--vscode-editor-background); padding: 3px 6px 1px; border-radius: 3px; font-size: 11px; }
.panel .scale canvas { width: 140px; height: 10px; cursor: default; }
.panel .scale .ticks { display: flex; justify-content: space-between; font-variant-numeric: tabular-nums; }
.panel canvas.slide:focus-visible { outline: 2px solid var(--vscode-focusBorder); outline-offset: -2px; }
.controls { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; padding: 4px 10px; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); }
.slider { display: inline-flex; gap: 4px; align-items: center; font-size: 12px; }
.slider input { width: 80px; accent-color: var(--vscode-focusBorder); }
#gene-list { min-width: 220px; }
#tooltip { position: fixed; pointer-events: none; background: var(--vscode-editorHoverWidget-background, #333); color: var(--vscode-editorHoverWidget-foreground, #fff);
  border: 1px solid var(--vscode-editorHoverWidget-border, #555); padding: 3px 6px; font-size: 12px; display: none; z-index: 2; white-space: pre; }
#detail { display: none; gap: 8px; padding: 6px 10px; border-top: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); align-items: flex-start; }
#detail img { height: 160px; image-rendering: auto; border: 1px solid var(--vscode-editorWidget-border, #888); }
.shared-scale { display: flex; gap: 6px; align-items: center; font-size: 11px; }
.shared-scale canvas { width: 160px; height: 10px; }
.legend { display: flex; gap: 10px; flex-wrap: wrap; font-size: 11px; }
.legend span::before { content: ''; display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 4px; border: 2px solid var(--c); }
.error { color: var(--vscode-errorForeground); padding: 6px 10px; }
.selection-tools { display: flex; flex-direction: column; align-items: flex-start; gap: 4px; padding: 4px 10px; border-bottom: 1px solid var(--vscode-editorWidget-border, rgba(128,128,128,0.35)); }
${SELECTION_STYLES}${OVERLAY_STYLES}`);

const root = document.getElementById('root') ?? document.body;

function build(init: ViewerInbound['init']): void {
  const labels = [...new Set(init.spots.labels.filter((l): l is string => !!l))].sort();
  const panels: PanelKind[] = init.hasTruth && init.hasPrediction ? ['truth', 'prediction'] : init.hasPrediction ? ['prediction'] : ['truth'];
  // After a reload (or when the page reopens the same section), the saved view and settings.
  const saved = savedState();
  const same = saved && saved.request.store === init.store && saved.request.section === init.section ? saved : undefined;
  if (saved) viewer.display = saved.display;
  if (same?.rightPanel && panels.length === 2) panels[1] = same.rightPanel;
  viewer.state = {
    init, panels, annotations: false, labels,
    view: same?.view ? { ...same.view } : { scale: 1, tx: 0, ty: 0 },
    categories: labels.length ? init.spots.labels.map((l) => (l ? labels.indexOf(l) : -1)) : undefined,
    tiles: init.tiles ? new TileCache(init.tiles, schedule, (tiles) => post('wantTiles', { tiles }), (report) => post('tilesDrawn', report)) : undefined,
  };
  viewer.asked = undefined;
  resetHitTest();
  const toolbar = buildToolbar(init, labels);
  const display = buildDisplayRow();
  const row = buildPanels();
  const detail = el('div');
  detail.id = 'detail';
  const tools = el('div', 'selection-tools');
  tools.append(selectionBar(init), overlayBar(init.categories ?? []));
  attachSelection(row);
  root.replaceChildren(toolbar, display, tools, row, detail);
  viewer.userMoved = !!same?.view;
  observePanels(row);
  if (same?.multiples) {
    viewer.asked = same.multiples;
    post('selectGenes', same.multiples);
  }
}

/** One status line for the slide's tiles (the latest problem), under the panels. */
function tileStatus(text: string): void {
  let line = document.getElementById('tile-status');
  if (!line) {
    line = el('div', 'error');
    line.id = 'tile-status';
    line.setAttribute('role', 'status');
    root.append(line);
  }
  line.textContent = text;
}

window.addEventListener('message', (event: MessageEvent<unknown>) => {
  const message = parseViewerInbound(event.data);
  if (!message) {
    console.warn('slide viewer: ignored a malformed message', event.data);
    return;
  }
  const s = viewer.state;
  switch (message.type) {
    case 'init':
      viewer.pendingSince = performance.now();
      build(message.payload);
      break;
    case 'values':
      if (!s) return;
      viewer.pendingSince ||= performance.now();
      s.values = message.payload;
      {
        const h = document.getElementById('headline');
        if (h) h.textContent = headline();
      }
      if (s.init.compare) showComparison(s.init.compare, message.payload);
      refreshSelection();
      schedule();
      break;
    case 'spotDetail':
      showDetail(message.payload);
      break;
    case 'categories':
      if (!s || message.payload.columns.some((c) => c.values.length !== s.init.spots.ids.length)) return;
      setCategories(message.payload.columns, message.payload.saved?.name);
      if (message.payload.saved) selectionSaved(message.payload.saved);
      break;
    case 'multiples':
      if (!s) return;
      viewer.pendingSince ||= performance.now();
      showMultiples(message.payload);
      break;
    case 'error':
      root.append(el('div', 'error', message.payload.message));
      break;
    case 'tile':
      if (!s?.tiles) return;
      s.tiles.answered(message.payload.tile, message.payload.error);
      if (message.payload.error) tileStatus(`Tile ${message.payload.tile} of ${s.init.section} cannot be shown: ${message.payload.error}`);
      break;
  }
});
post('ready', {});
