import * as vscode from 'vscode';
import { computeEnv } from './notebook/controller';
import { runCliJson } from './commands/cliProcess';
import type { ComputeReport } from './runtime/compute/report';

/**
 * The TRIPLEX status-bar item: the engine TRIPLEX computes on (asked of `triplex info --json` in a
 * child process after activation, so activation never waits for it; asked again when the engine
 * settings change) and the background runs in progress (Train Fold, AnnData export). Clicking it
 * ("TRIPLEX: Show Status") lists both, with the way to the log; the command also returns what
 * the item shows, for tests and scripts.
 */

export interface StatusSnapshot {
  text: string;
  tooltip: string;
  /** undefined while the engine is being asked for. */
  engine?: string;
  runs: { title: string; detail: string }[];
}

export interface BackgroundRun {
  /** The run's latest progress, e.g. "epoch 2/5, loss 0.41". */
  update(detail: string): void;
  end(): void;
}

const COMMAND = 'triplex.showStatus';
const runs = new Set<{ title: string; detail: string }>();
let refresh: () => void = () => undefined;

/** Shows a background run in the status bar until `end()`; works before and after the item exists. */
export function trackRun(title: string): BackgroundRun {
  const run = { title, detail: 'starting' };
  runs.add(run);
  refresh();
  return {
    update(detail) {
      run.detail = detail;
      refresh();
    },
    end() {
      runs.delete(run);
      refresh();
    },
  };
}

/** One line naming the engine of a compute report. */
export function engineLabel(report: ComputeReport): string {
  if (report.engine?.training === 'onnxruntime') return `onnxruntime (${report.engine.provider ?? 'cpu'})`;
  return `TF.js ${report.backend}`;
}

export function registerStatusBar(context: vscode.ExtensionContext, log: vscode.OutputChannel): void {
  const item = vscode.window.createStatusBarItem('triplex.status', vscode.StatusBarAlignment.Left, 10);
  item.name = 'TRIPLEX';
  item.command = COMMAND;
  let engine: string | undefined;
  let engineDetail = 'asking triplex info which engine loads';

  const snapshot = (): StatusSnapshot => {
    const list = [...runs];
    const busy = list.length === 1 ? ` · ${list[0].title}: ${list[0].detail}` : list.length > 1 ? ` · ${list.length} runs` : '';
    const icon = list.length ? '$(sync~spin)' : engine ? '$(chip)' : '$(loading~spin)';
    const text = `${icon} TRIPLEX${engine ? `: ${engine}` : ''}${busy}`;
    const tooltip = [`Engine: ${engineDetail}`, ...list.map((r) => `${r.title}: ${r.detail}`), 'Click for details.'].join('\n');
    return { text, tooltip, engine, runs: list.map((r) => ({ ...r })) };
  };
  refresh = () => {
    const s = snapshot();
    item.text = s.text;
    item.tooltip = s.tooltip;
    item.accessibilityInformation = { label: s.text.replace(/\$\([^)]*\)\s*/g, ''), role: 'button' };
  };

  let asked = 0;
  const askEngine = () => {
    const ask = ++asked;
    engine = undefined;
    engineDetail = 'asking triplex info which engine loads';
    refresh();
    runCliJson<ComputeReport>(context.extensionPath, ['info', '--json'], computeEnv()).then((report) => {
      if (ask !== asked) return;
      engine = engineLabel(report);
      engineDetail = `${report.engine?.detail ?? engine}; TF.js on ${report.backend} ${report.version}, ${report.threads} thread(s)`;
      refresh();
    }, (err: unknown) => {
      if (ask !== asked) return;
      engine = 'no engine';
      engineDetail = `triplex info failed: ${(err as Error).message}`;
      log.appendLine(`[status] ${engineDetail}`);
      refresh();
    });
  };

  context.subscriptions.push(
    item,
    { dispose: () => (refresh = () => undefined) },
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (['triplex.engine', 'triplex.computeBackend', 'triplex.computeThreads'].some((key) => e.affectsConfiguration(key))) askEngine();
    }),
    vscode.commands.registerCommand(COMMAND, async (options?: { quiet?: boolean }): Promise<StatusSnapshot> => {
      const s = snapshot();
      if (options?.quiet) return s;
      const picks = [
        { label: `$(chip) ${s.engine ?? 'engine: asking…'}`, detail: engineDetail, action: 'info' },
        ...s.runs.map((r) => ({ label: `$(sync~spin) ${r.title}`, detail: r.detail, action: 'log' })),
        { label: '$(output) Show the TRIPLEX log', action: 'log' },
      ];
      void vscode.window.showQuickPick(picks, { title: 'TRIPLEX status', matchOnDetail: true }).then((picked) => {
        if (picked?.action === 'log') log.show();
        else if (picked?.action === 'info') void vscode.commands.executeCommand('triplex.showComputeInfo');
      });
      return s;
    }),
  );
  askEngine();
  item.show();
}
