import { fork, type ChildProcess } from 'node:child_process';
import { isFromKernel, type CellLanguage, type FromKernel, type FromKernelMap, type ToKernel } from '../protocol/kernel';
import type { MimeBundle } from '../protocol/outputs';

/**
 * The extension's side of a kernel: starts the kernel process, runs cells one at a time, relays
 * their output, interrupts and ends it. No `vscode` here, so it is tested in plain Node.
 */

export interface CellSink {
  stream(name: 'stdout' | 'stderr', text: string): void;
  display(bundle: MimeBundle): void;
}

export type CellOutcome =
  | { status: 'ok' }
  | { status: 'failed'; error: FromKernelMap['failed'] }
  /** The process ended during the cell (crash, out of memory, killed by interrupt or restart). */
  | { status: 'died'; reason: string };

export interface KernelOptions {
  /** dist/kernel.js */
  kernelScript: string;
  /** Folder of the notebook: the kernel's working directory and module root. */
  notebookDir: string;
  env?: Record<string, string>;
  /** Output that belongs to no running cell (late timers), and the kernel's own stderr. */
  onStray?: (text: string) => void;
  /** Grace before an interrupt ends the process (default 3 s). */
  interruptGraceMs?: number;
}

export class KernelProcess {
  private readonly child: ChildProcess;
  private readonly ready: Promise<void>;
  private nextId = 1;
  private running: { id: number; sink: CellSink; settle: (o: CellOutcome) => void; finished: Promise<CellOutcome> } | undefined;
  private readonly pendingCompletions = new Map<number, (items: FromKernelMap['completions']['items']) => void>();
  private exitReason: string | undefined;
  private readonly exitListeners: ((reason: string) => void)[] = [];
  /** Set while an interrupt that ends the process is on its way (the outcome says so). */
  private killedBy: string | undefined;

  static async start(options: KernelOptions): Promise<KernelProcess> {
    const kernel = new KernelProcess(options);
    await kernel.ready;
    return kernel;
  }

  private constructor(private readonly options: KernelOptions) {
    this.child = fork(options.kernelScript, [], {
      cwd: options.notebookDir,
      env: { ...process.env, ...options.env, TRIPLEX_NOTEBOOK_DIR: options.notebookDir, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced',
    });
    // Writes that bypass process.stdout (native code, the wasm runtime) still reach the cell.
    this.child.stdout?.setEncoding('utf8').on('data', (text: string) => this.stray('stdout', text));
    this.child.stderr?.setEncoding('utf8').on('data', (text: string) => this.stray('stderr', text));
    this.ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: unknown) => {
        if (isFromKernel(m) && m.type === 'ready') {
          resolve();
        }
      };
      this.child.on('message', onMessage);
      this.child.once('exit', (code, signal) => reject(new Error(`the kernel process exited while starting (${signal ?? `exit code ${code}`})`)));
      this.child.once('error', reject);
    });
    this.child.on('message', (m: unknown) => {
      if (isFromKernel(m)) this.receive(m);
    });
    this.child.on('exit', (code, signal) => {
      const reason = this.killedBy ?? (signal ? `the kernel process was ended by ${signal}` : `the kernel process exited with code ${code}`);
      this.exitReason = reason;
      this.running?.settle({ status: 'died', reason });
      this.running = undefined;
      for (const resolve of this.pendingCompletions.values()) resolve([]);
      this.pendingCompletions.clear();
      for (const listener of this.exitListeners) listener(reason);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get alive(): boolean {
    return this.exitReason === undefined;
  }

  onExit(listener: (reason: string) => void): void {
    this.exitListeners.push(listener);
  }

  /** Runs one cell; resolves when it has finished, failed, or the process has died. */
  execute(code: string, cell: { label: string; language: CellLanguage }, sink: CellSink): Promise<CellOutcome> {
    if (this.exitReason) return Promise.resolve({ status: 'died', reason: this.exitReason });
    if (this.running) throw new Error('the kernel is already running a cell; cells are queued by the controller');
    const id = this.nextId++;
    let settle!: (o: CellOutcome) => void;
    const finished = new Promise<CellOutcome>((resolve) => { settle = resolve; });
    this.running = { id, sink, settle, finished };
    this.post({ type: 'execute', id, label: cell.label, code, language: cell.language });
    return finished;
  }

  /**
   * Asks the running cell to stop (its `notebook.signal` aborts); if it has not ended within the
   * grace period (a synchronous loop never looks), ends the process. Resolves with what happened.
   */
  async interrupt(): Promise<'idle' | 'stopped' | 'killed'> {
    const running = this.running;
    if (!running || !this.alive) return 'idle';
    this.post({ type: 'interrupt' });
    const grace = this.options.interruptGraceMs ?? 3000;
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([
      running.finished.then(() => true),
      new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), grace); }),
    ]);
    clearTimeout(timer);
    if (ended) return 'stopped';
    this.dispose(`the cell did not stop within ${(grace / 1000).toFixed(0)} s of the interrupt, so the kernel process was ended (its variables are gone; the next run starts a new kernel)`);
    return 'killed';
  }

  /** Property names of a live value, for completion. */
  complete(expression: string): Promise<FromKernelMap['completions']['items']> {
    if (!this.alive) return Promise.resolve([]);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pendingCompletions.set(id, resolve);
      this.post({ type: 'complete', id, expression });
      setTimeout(() => {
        if (this.pendingCompletions.delete(id)) resolve([]); // a busy kernel does not answer
      }, 2000).unref?.();
    });
  }

  /** Ends the process (restart, notebook closed). A running cell resolves as 'died'. */
  dispose(reason = 'the kernel was shut down'): void {
    if (!this.alive) return;
    this.killedBy ??= reason;
    this.child.kill('SIGKILL');
  }

  private post(message: ToKernel): void {
    this.child.send(message);
  }

  private receive(m: FromKernel): void {
    switch (m.type) {
      case 'ready':
        return;
      case 'completions':
        this.pendingCompletions.get(m.id)?.(m.items);
        this.pendingCompletions.delete(m.id);
        return;
    }
    const cell = this.running?.id === m.id ? this.running : undefined;
    switch (m.type) {
      case 'stream':
        if (cell) cell.sink.stream(m.name, m.text);
        else this.stray(m.name, m.text);
        return;
      case 'display':
        if (cell) cell.sink.display(m.bundle);
        else this.stray('stdout', '[a display() after its cell ended was dropped]\n');
        return;
      case 'done':
      case 'failed':
        if (!cell) return;
        this.running = undefined;
        cell.settle(m.type === 'done' ? { status: 'ok' } : { status: 'failed', error: m });
        return;
    }
  }

  private stray(name: 'stdout' | 'stderr', text: string): void {
    if (this.running) this.running.sink.stream(name, text);
    else this.options.onStray?.(text);
  }
}
