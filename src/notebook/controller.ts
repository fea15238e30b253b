import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { KernelProcess, type CellOutcome, type CellSink } from '../kernel/client';
import { CellQueue, type QueuedCell } from '../kernel/queue';
import type { CellLanguage } from '../protocol/kernel';
import type { MimeBundle } from '../protocol/outputs';
import { NOTEBOOK_TYPE } from './serializer';

export const CONTROLLER_ID = 'triplex-kernel';
const STREAM_FLUSH_MS = 50;

export const RESTRICTED_MODE_MESSAGE = 'This workspace is in Restricted Mode, so TRIPLEX does not run notebook cells: a cell runs code with your permissions. '
  + 'Trust the folder (command "Workspaces: Manage Workspace Trust") to run it.';

/** One notebook's kernel process, cell queue and execution counter. */
class Session {
  readonly queue = new CellQueue();
  private kernel: Promise<KernelProcess> | undefined;
  executionOrder = 0;

  constructor(private readonly notebook: vscode.NotebookDocument, private readonly kernelScript: string, private readonly log: vscode.OutputChannel) {}

  /** The running kernel, or a new one (after a restart, a crash, or the first run). */
  async ensureKernel(): Promise<KernelProcess> {
    const existing = this.kernel && await this.kernel.catch(() => undefined);
    if (existing?.alive) return existing;
    this.executionOrder = 0;
    const started = KernelProcess.start({
      kernelScript: this.kernelScript,
      notebookDir: notebookDir(this.notebook),
      env: computeEnv(),
      onStray: (text) => this.log.append(text),
    });
    this.kernel = started;
    const kernel = await started;
    this.log.appendLine(`[kernel] started for ${this.notebook.uri.fsPath} (pid ${kernel.pid})`);
    kernel.onExit((reason) => this.log.appendLine(`[kernel] ${this.notebook.uri.fsPath}: ${reason}`));
    return kernel;
  }

  /** The kernel if one is running now (no start). */
  async current(): Promise<KernelProcess | undefined> {
    const k = this.kernel && await this.kernel.catch(() => undefined);
    return k?.alive ? k : undefined;
  }

  async interrupt(): Promise<void> {
    this.queue.cancelPending();
    const outcome = await (await this.current())?.interrupt();
    if (outcome) this.log.appendLine(`[kernel] interrupt: ${outcome}`);
  }

  async restart(): Promise<void> {
    this.queue.cancelPending();
    (await this.current())?.dispose('the kernel was restarted');
    this.kernel = undefined;
  }

  dispose(): void {
    this.queue.cancelPending();
    void this.current().then((k) => k?.dispose('the notebook was closed'));
  }
}

/** The compute settings, as the CLI gets them (an environment variable wins over the setting). */
export function computeEnv(): Record<string, string> {
  const config = vscode.workspace.getConfiguration('triplex');
  return {
    TRIPLEX_BACKEND: process.env.TRIPLEX_BACKEND ?? config.get<string>('computeBackend', 'auto'),
    TRIPLEX_THREADS: process.env.TRIPLEX_THREADS ?? String(config.get<number>('computeThreads', 0)),
    TRIPLEX_ENGINE: process.env.TRIPLEX_ENGINE ?? config.get<string>('engine', 'auto'),
  };
}

/** Where a notebook's cells run: its folder, else the first workspace folder, else home. */
function notebookDir(notebook: vscode.NotebookDocument): string {
  if (notebook.uri.scheme === 'file') return path.dirname(notebook.uri.fsPath);
  return vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
}

/**
 * Runs TypeScript and JavaScript cells of TRIPLEX notebooks, each notebook in its own kernel
 * process, cells first in first out.
 */
export class TriplexController implements vscode.Disposable {
  private readonly controller: vscode.NotebookController;
  private readonly sessions = new Map<string, Session>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly kernelScript: string, private readonly log: vscode.OutputChannel) {
    this.controller = vscode.notebooks.createNotebookController(CONTROLLER_ID, NOTEBOOK_TYPE, 'TRIPLEX (TypeScript)');
    this.controller.supportedLanguages = ['typescript', 'javascript'];
    this.controller.supportsExecutionOrder = true;
    this.controller.description = 'Node.js kernel with the TRIPLEX runtime';
    this.controller.executeHandler = (cells, notebook) => this.execute(cells, notebook);
    this.controller.interruptHandler = (notebook) => this.session(notebook).interrupt();
    this.disposables.push(this.controller, vscode.workspace.onDidCloseNotebookDocument((nb) => {
      this.sessions.get(nb.uri.toString())?.dispose();
      this.sessions.delete(nb.uri.toString());
    }));
  }

  get id(): string {
    return this.controller.id;
  }

  /** Ends the notebook's kernel; the next run starts a fresh one. */
  async restart(notebook: vscode.NotebookDocument): Promise<void> {
    await this.session(notebook).restart();
  }

  /** The notebook's running kernel, if any (completion asks it for live names). */
  kernelOf(notebook: vscode.NotebookDocument): Promise<KernelProcess | undefined> {
    return this.sessions.get(notebook.uri.toString())?.current() ?? Promise.resolve(undefined);
  }

  private session(notebook: vscode.NotebookDocument): Session {
    const key = notebook.uri.toString();
    let s = this.sessions.get(key);
    if (!s) {
      s = new Session(notebook, this.kernelScript, this.log);
      this.sessions.set(key, s);
    }
    return s;
  }

  private async execute(cells: vscode.NotebookCell[], notebook: vscode.NotebookDocument): Promise<void> {
    if (!vscode.workspace.isTrusted) {
      for (const cell of cells) {
        const execution = this.controller.createNotebookCellExecution(cell);
        execution.start(Date.now());
        await execution.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.stderr(RESTRICTED_MODE_MESSAGE)]));
        execution.end(false, Date.now());
      }
      return;
    }
    const session = this.session(notebook);
    const queued: QueuedCell[] = cells.map((cell) => {
      const execution = this.controller.createNotebookCellExecution(cell); // shown as pending
      const entry: QueuedCell = {
        run: () => this.runCell(session, cell, execution),
        cancel: () => execution.end(undefined),
      };
      execution.token.onCancellationRequested(() => session.queue.cancel(entry));
      return entry;
    });
    await session.queue.enqueue(queued);
  }

  private async runCell(session: Session, cell: vscode.NotebookCell, execution: vscode.NotebookCellExecution): Promise<boolean> {
    const started = Date.now();
    execution.start(started);
    await execution.clearOutput();
    let kernel: KernelProcess;
    try {
      kernel = await session.ensureKernel();
    } catch (err) {
      await execution.replaceOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error(new Error(`The TRIPLEX kernel did not start: ${(err as Error).message}`))]));
      execution.end(false, Date.now());
      return false;
    }
    execution.executionOrder = ++session.executionOrder;
    const sink = new OutputSink(execution);
    const language: CellLanguage = cell.document.languageId === 'javascript' ? 'javascript' : 'typescript';
    const outcome: CellOutcome = await kernel.execute(cell.document.getText(), { label: `Cell ${cell.index + 1}`, language }, sink);
    await sink.flush();
    if (outcome.status === 'failed') {
      const { name, message, stack } = outcome.error;
      await execution.appendOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error({ name, message, stack })]));
    } else if (outcome.status === 'died') {
      const error = new Error(`The kernel stopped while running this cell: ${outcome.reason}.`);
      error.name = 'KernelDied';
      error.stack = `${error.name}: ${error.message}`;
      await execution.appendOutput(new vscode.NotebookCellOutput([vscode.NotebookCellOutputItem.error(error)]));
    }
    execution.end(outcome.status === 'ok', Date.now());
    return outcome.status === 'ok';
  }

  dispose(): void {
    for (const s of this.sessions.values()) s.dispose();
    this.sessions.clear();
    for (const d of this.disposables) d.dispose();
  }
}

/**
 * Streams a cell's output into the editor as it comes: text is gathered for a few milliseconds
 * and appended to the cell's last output of the same stream; displays become outputs in order.
 */
class OutputSink implements CellSink {
  private pending: { name: 'stdout' | 'stderr'; text: string } | undefined;
  private last: { name: 'stdout' | 'stderr'; output: vscode.NotebookCellOutput } | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Appends run one after another, so outputs keep their order. */
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly execution: vscode.NotebookCellExecution) {}

  stream(name: 'stdout' | 'stderr', text: string): void {
    if (this.pending && this.pending.name !== name) this.flushText();
    this.pending = this.pending ? { name, text: this.pending.text + text } : { name, text };
    this.timer ??= setTimeout(() => this.flushText(), STREAM_FLUSH_MS);
  }

  display(bundle: MimeBundle): void {
    this.flushText();
    const items = Object.entries(bundle).map(([mime, value]) => toItem(mime, value));
    this.last = undefined;
    this.enqueue(() => this.execution.appendOutput(new vscode.NotebookCellOutput(items)));
  }

  async flush(): Promise<void> {
    this.flushText();
    await this.chain;
  }

  private flushText(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const chunk = this.pending;
    this.pending = undefined;
    if (!chunk) return;
    const item = chunk.name === 'stdout' ? vscode.NotebookCellOutputItem.stdout(chunk.text) : vscode.NotebookCellOutputItem.stderr(chunk.text);
    const last = this.last;
    if (last?.name === chunk.name) {
      this.enqueue(() => this.execution.appendOutputItems(item, last.output));
    } else {
      const output = new vscode.NotebookCellOutput([item]);
      this.last = { name: chunk.name, output };
      this.enqueue(() => this.execution.appendOutput(output));
    }
  }

  private enqueue(step: () => Thenable<void>): void {
    // An append can fail only when the execution is gone (its notebook closed); the cell must
    // still end, so the failure is logged and the chain goes on.
    this.chain = this.chain.then(step).then(undefined, (err: unknown) => console.error('TRIPLEX: a cell output could not be shown:', err));
  }
}

function toItem(mime: string, value: unknown): vscode.NotebookCellOutputItem {
  if (mime.startsWith('image/') && mime !== 'image/svg+xml' && typeof value === 'string') {
    return new vscode.NotebookCellOutputItem(Buffer.from(value, 'base64'), mime);
  }
  if (mime.endsWith('json')) return vscode.NotebookCellOutputItem.json(value, mime);
  return vscode.NotebookCellOutputItem.text(String(value), mime);
}
