// Notebook renderer entry: VS Code loads this module in the output webview and calls
// renderOutputItem for each output of our MIME types. Each kind is drawn by a pure
// render(container, payload) function; plotly is loaded only by the kinds that plot.
import type { ActivationFunction } from 'vscode-notebook-renderer';
import { MIME, type CurvePayload, type GeneMapPayload, type MetricsPayload, type RendererMessage, type TablePayload } from '../../src/protocol/outputs';
import { renderMetrics } from './metrics';
import { renderTable } from './table';
import { ensureStyles } from './theme';

export const activate: ActivationFunction = (context) => ({
  async renderOutputItem(item, element) {
    ensureStyles();
    element.replaceChildren();
    const root = document.createElement('div');
    root.className = 'triplex-output';
    element.append(root);
    try {
      switch (item.mime) {
        case MIME.table:
          renderTable(root, item.json() as TablePayload);
          break;
        case MIME.metrics:
          renderMetrics(root, item.json() as MetricsPayload);
          break;
        case MIME.geneMap:
          {
            const payload = item.json() as GeneMapPayload;
            await (await import('./plots')).renderGeneMap(root, payload);
            const source = payload.source;
            if (source && context.postMessage) {
              const post = context.postMessage;
              const open = document.createElement('button');
              open.className = 'open-viewer';
              open.textContent = 'Open in slide viewer';
              open.title = 'The section\'s H&E image under these spots, in the TRIPLEX slide viewer';
              open.addEventListener('click', () => post({ type: 'openSlideViewer', store: source.store, section: payload.section, gene: payload.gene, predictions: source.predictions } satisfies RendererMessage));
              root.append(open);
            }
          }
          break;
        case MIME.curve:
          await (await import('./plots')).renderCurve(root, item.json() as CurvePayload);
          break;
        default:
          root.textContent = `TRIPLEX cannot draw ${item.mime}`;
      }
    } catch (err) {
      root.textContent = `TRIPLEX could not draw this ${item.mime} output: ${err instanceof Error ? err.message : String(err)}`;
    }
  },
  disposeOutputItem() {
    // Plots are garbage collected with their elements.
  },
});
