/**
 * Messages between the extension host and a notebook's kernel process (Node IPC). One payload
 * map per direction; both sides import these types, so a message that one side sends and the
 * other does not understand fails to compile.
 */
import type { MimeBundle } from './outputs';

export type CellLanguage = 'typescript' | 'javascript';

/** Extension -> kernel. */
export interface ToKernelMap {
  /** Run one cell. `label` names the cell in stack traces ("Cell 3"). */
  execute: { id: number; label: string; code: string; language: CellLanguage };
  /** Ask the running cell to stop: its `notebook.signal` is aborted. */
  interrupt: object;
  /** Property names for completion after `expression.` (live values of the kernel). */
  complete: { id: number; expression: string };
}

/** Kernel -> extension. */
export interface FromKernelMap {
  ready: { pid: number; node: string };
  stream: { id: number; name: 'stdout' | 'stderr'; text: string };
  display: { id: number; bundle: MimeBundle };
  done: { id: number };
  /** The cell threw or failed to compile; `stack` has the cell's own line numbers. */
  failed: { id: number; name: string; message: string; stack: string };
  completions: { id: number; items: { name: string; kind: 'function' | 'class' | 'value' }[] };
}

type Envelope<M> = { [K in keyof M]: { type: K } & M[K] }[keyof M];
export type ToKernel = Envelope<ToKernelMap>;
export type FromKernel = Envelope<FromKernelMap>;

/** Runtime check of a message's shape (a kernel's stdout noise or a stray IPC message is ignored). */
export function isFromKernel(value: unknown): value is FromKernel {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as { type?: unknown; id?: unknown };
  switch (m.type) {
    case 'ready': return true;
    case 'stream': case 'display': case 'done': case 'failed': case 'completions': return typeof m.id === 'number';
    default: return false;
  }
}

export function isToKernel(value: unknown): value is ToKernel {
  if (typeof value !== 'object' || value === null) return false;
  const m = value as { type?: unknown; id?: unknown; code?: unknown };
  switch (m.type) {
    case 'execute': return typeof m.id === 'number' && typeof m.code === 'string';
    case 'interrupt': return true;
    case 'complete': return typeof m.id === 'number';
    default: return false;
  }
}
