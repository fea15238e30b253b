import * as path from 'node:path';
import { comparisonRuns } from '../runtime/eval/slideComparison';
import type { H5adExportSummary } from '../runtime/store/h5adExport';
import { startCli, type CliChild } from './cliProcess';

/**
 * The AnnData export as the extension runs it, without `vscode` (tested in plain Node): what a
 * panel offers to export, where the file goes by default, and the `triplex export --json` child
 * process that writes it (cancellable; the previous file is kept whole either way).
 */

export interface H5adExportRequest {
  /** A run folder (triplex cv, Train Fold) or a dataset store. */
  source: string;
  /** The .h5ad file; asked for (beside the source) when absent. */
  destination?: string;
  /** A run's store, when not the one its results.json names (the slide viewer knows it). */
  store?: string;
}

export interface H5adExportOutcome {
  status: 'done' | 'cancelled' | 'failed';
  /** The CLI's: 0 written, 130 stopped on request, 1 bad input; null when it could not start or was killed. */
  exitCode: number | null;
  source: string;
  file: string;
  /** What was written, or why nothing was (the CLI's message, which names the file). */
  message: string;
  summary?: H5adExportSummary;
}

/** `<run or store>.h5ad` in the folder that holds the run or store. */
export function defaultH5adFile(source: string): string {
  const dir = path.resolve(source);
  return path.join(path.dirname(dir), `${path.basename(dir)}.h5ad`);
}

/** The run folder of a fold's predictions (`<run>/fold-<k>/predictions.arrow`); undefined for others (`triplex predict`). */
export function runOfPredictions(predictions: string): string | undefined {
  const fold = path.dirname(path.resolve(predictions));
  return /^fold-\d+$/.test(path.basename(fold)) ? path.dirname(fold) : undefined;
}

/** What the slide viewer can export: the runs it shows (each with the viewer's store), then the store itself. */
export function viewerExportChoices(view: { store: string; predictions?: string; compare?: string[] }): { label: string; request: H5adExportRequest }[] {
  const runs = view.compare ? comparisonRuns(view.compare).map((r) => ({ label: r.label, dir: r.dir })) : [];
  const run = view.predictions ? runOfPredictions(view.predictions) : undefined;
  if (run) runs.push({ label: path.basename(run), dir: run });
  return [
    ...runs.map((r) => ({ label: `${r.label}: predictions (run ${r.dir})`, request: { source: r.dir, store: view.store } })),
    { label: `the store's expression (${view.store})`, request: { source: view.store } },
  ];
}

/** Runs `triplex export <source> --h5ad <file> --json`; `onLine` gets each line it logs (progress). */
export function startH5adExport(extensionPath: string, request: H5adExportRequest & { destination: string }, onLine?: (line: string, stream: 'stdout' | 'stderr') => void): { child: CliChild; done: Promise<H5adExportOutcome> } {
  const file = path.resolve(request.destination);
  const args = ['export', request.source, '--h5ad', file, '--json', ...(request.store ? ['--store', request.store] : [])];
  const child = startCli(extensionPath, args, {}, onLine);
  const done = child.exited.then(({ code, stdout, tail }): H5adExportOutcome => {
    const base = { source: request.source, file, exitCode: code };
    if (code === 0) {
      try {
        const summary = JSON.parse(stdout.at(-1) ?? '') as H5adExportSummary;
        return { ...base, status: 'done', summary, message: `wrote ${summary.file}: ${summary.spots} spots x ${summary.genes} genes, ${summary.sections.length} section(s)${summary.layers.length ? `, layers ${summary.layers.join(', ')}` : ''}` };
      } catch {
        return { ...base, status: 'failed', message: `triplex ${args.join(' ')} printed output that is not JSON: ${stdout.join('\n').slice(0, 200)}` };
      }
    }
    const reason = tail.filter((l) => l.trim()).at(-1)?.replace(/^triplex: /, '') ?? `triplex export ended with exit code ${code}`;
    if (code === 130 || child.cancelled) return { ...base, status: 'cancelled', message: `the export was cancelled; ${file} was left as it was` };
    return { ...base, status: 'failed', message: reason };
  });
  return { child, done };
}
