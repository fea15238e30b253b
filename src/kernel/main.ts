import * as path from 'node:path';
import { inspect } from 'node:util';
import * as vm from 'node:vm';
import { isToKernel, type FromKernel, type ToKernelMap } from '../protocol/kernel';
import type { CellGlobals, NotebookGlobals } from './cellGlobals';
import { CellSyntaxError, compileCell, HELPERS } from './compiler';
import { withPng } from '../runtime/notebook/raster';
import { bundlesOf } from './display';
import { CELL_FILE, mapStack, type CellRecord } from './stack';
import { createModuleLoader, defaultOf } from './modules';

/**
 * The kernel: a Node process per notebook, started by the extension with an IPC channel. It runs
 * one cell at a time in its own global scope, so a cell's top-level names persist for the next.
 * Everything a cell writes (console, process.stdout/stderr) and displays is sent to the extension
 * tagged with the cell's execution id, on the one ordered IPC channel.
 *
 * Environment: TRIPLEX_NOTEBOOK_DIR (the notebook's folder: working directory and module root).
 */

const send = (message: FromKernel) => {
  if (process.connected) process.send?.(message);
};

/**
 * A cell's outputs and its end leave in the order they happened, though a figure first waits
 * for its PNG (`withPng`): each posted message waits for the ones posted before it.
 */
let outbox: Promise<void> = Promise.resolve();
const post = (messages: FromKernel | Promise<FromKernel[]>) => {
  outbox = outbox.then(async () => {
    for (const m of messages instanceof Promise ? await messages : [messages]) send(m);
  });
};

const notebookDir = process.env.TRIPLEX_NOTEBOOK_DIR ?? process.cwd();
const modules = createModuleLoader(notebookDir, path.join(__dirname, 'runtime.js'));

let current: { id: number; controller: AbortController; label: string } | undefined;
/** Every compiled cell, so that a frame in a function defined by an earlier cell maps too. */
const cells = new Map<number, CellRecord>();
/** Output that arrives after its cell ended (a timer, a stray promise) goes to the last cell. */
let lastId = 0;
const outputId = () => current?.id ?? lastId;

function display(...values: unknown[]): void {
  for (const value of values) {
    for (const bundle of bundlesOf(value)) {
      const id = outputId();
      post(withPng(bundle).then(
        (shown): FromKernel[] => [{ type: 'display', id, bundle: shown }],
        // The figure still shows (as SVG and text); the note says why Jupyter will lack its PNG.
        (err: unknown): FromKernel[] => [{ type: 'stream', id, name: 'stderr', text: `TRIPLEX: no PNG for this figure (${err instanceof Error ? err.message : String(err)}); Jupyter shows its text\n` }, { type: 'display', id, bundle }],
      ));
    }
  }
}

const notebook: NotebookGlobals = {
  get signal(): AbortSignal {
    return current?.controller.signal ?? AbortSignal.abort();
  },
  dir: notebookDir,
  display,
  /** Throws if the stop button was pressed; call it in long loops that have no signal parameter. */
  checkInterrupted(): void {
    current?.controller.signal.throwIfAborted();
  },
};

const cellGlobals: CellGlobals = { notebook, display, require: modules.require };
Object.assign(globalThis, cellGlobals, {
  [HELPERS.importModule]: (spec: string) => modules.importModule(spec),
  [HELPERS.defaultOf]: defaultOf,
});

for (const name of ['stdout', 'stderr'] as const) {
  const stream = process[name];
  stream.write = ((chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error | null) => void), callback?: (err?: Error | null) => void) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString(typeof encoding === 'string' ? encoding : 'utf8');
    post({ type: 'stream', id: outputId(), name, text });
    const done = typeof encoding === 'function' ? encoding : callback;
    done?.();
    return true;
  }) as typeof stream.write;
}

function failure(id: number, err: unknown, label: string): FromKernel {
  if (err instanceof CellSyntaxError) {
    return { type: 'failed', id, name: 'SyntaxError', message: err.message, stack: `SyntaxError: ${err.message}\n    at ${label}:${err.line}:${err.column}` };
  }
  if (err instanceof Error) {
    const stack = mapStack(err.stack ?? `${err.name}: ${err.message}`, cells);
    return { type: 'failed', id, name: err.name, message: err.message, stack };
  }
  return { type: 'failed', id, name: 'Error', message: `the cell threw ${inspect(err)}`, stack: '' };
}

async function execute({ id, label, code, language }: ToKernelMap['execute']): Promise<void> {
  current = { id, controller: new AbortController(), label };
  lastId = id;
  try {
    const compiled = compileCell(code, language);
    cells.set(id, { label, compiled });
    const result: unknown = await (vm.runInThisContext(compiled.code, { filename: CELL_FILE(id) }) as Promise<unknown>);
    if (result !== undefined) display(result);
    post({ type: 'done', id });
  } catch (err) {
    post(failure(id, err, label));
  } finally {
    current = undefined;
  }
}

function completions({ id, expression }: ToKernelMap['complete']): void {
  let target: unknown;
  try {
    target = expression === 'require("triplex")' ? modules.require('triplex')
      : /^[\w$.]*$/.test(expression) ? expression.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], globalThis) : undefined;
  } catch {
    target = undefined; // a path through undefined: nothing to complete
  }
  const names = new Set<string>();
  for (let o = target; o !== null && o !== undefined && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) if (!k.startsWith('__') && k !== 'constructor') names.add(k);
    if (typeof o !== 'object' && typeof o !== 'function') break;
  }
  const items = [...names].map((name) => {
    let value: unknown;
    try {
      value = (target as Record<string, unknown>)[name];
    } catch {
      value = undefined;
    }
    const kind = typeof value === 'function' ? (/^class[\s{]/.test(Function.prototype.toString.call(value)) ? 'class' : 'function') : 'value';
    return { name, kind } as const;
  });
  send({ type: 'completions', id, items });
}

const queue: ToKernelMap['execute'][] = [];
let running = false;
async function drain(): Promise<void> {
  if (running) return;
  running = true;
  for (let next = queue.shift(); next; next = queue.shift()) await execute(next);
  running = false;
}

process.on('message', (message: unknown) => {
  if (!isToKernel(message)) return;
  switch (message.type) {
    case 'execute':
      queue.push(message);
      void drain();
      break;
    case 'interrupt':
      current?.controller.abort(new Error(`${current.label} was interrupted`));
      break;
    case 'complete':
      completions(message);
      break;
  }
});

// A failure outside any cell's await (a timer, an unawaited promise) is reported, not fatal:
// the kernel and its variables stay.
process.on('uncaughtException', (err) => post({ type: 'stream', id: outputId(), name: 'stderr', text: `Uncaught ${err.stack ?? String(err)}\n` }));
process.on('unhandledRejection', (err) => post({ type: 'stream', id: outputId(), name: 'stderr', text: `Unhandled rejection: ${err instanceof Error ? err.stack : String(err)}\n` }));
process.on('disconnect', () => process.exit(0));

process.chdir(notebookDir);
send({ type: 'ready', pid: process.pid, node: process.version });
