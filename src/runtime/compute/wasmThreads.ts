import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type * as tfc from '@tensorflow/tfjs-core';

/**
 * Multi-threaded wasm under Node.
 *
 * tfjs-backend-wasm ships a threaded SIMD build but switches threads off under Node, because its
 * pthread workers are started from Blob URLs, which Node's worker_threads cannot load. We turn
 * the flag back on and hand the workers a real file: the package's own worker script, edited to
 * import the emscripten glue from its path on disk. The edit depends on the text of
 * tfjs-backend-wasm 4.22; when it no longer applies we say so and stay on one thread.
 */
export interface WasmThreadsPlan {
  /** Undo the temporary hooks once the backend has initialised. */
  restore(): void;
}

const WORKER_IMPORT = /if\(typeof e\.data\.urlOrBlob=="string"\)\{importScripts\(e\.data\.urlOrBlob\)\}else\{var objectUrl=URL\.createObjectURL\(e\.data\.urlOrBlob\);importScripts\(objectUrl\);URL\.revokeObjectURL\(objectUrl\)\}/;

interface WasmBackendModule {
  setThreadsCount(n: number): void;
}

/** Prepares the wasm backend to start with `threads` threads. Throws with a reason when it cannot. */
export function planWasmThreads(tf: typeof tfc, wasm: WasmBackendModule, threads: number): WasmThreadsPlan {
  if (typeof SharedArrayBuffer === 'undefined') throw new Error('SharedArrayBuffer is not available in this Node process');
  const pkgDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
  const glue = path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
  const workerModule = path.join(pkgDir, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js');
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { wasmWorkerContents } = require(workerModule) as { wasmWorkerContents: string };
  if (!WORKER_IMPORT.test(wasmWorkerContents)) throw new Error('the wasm worker script of this tfjs-backend-wasm version is not the one TRIPLEX knows how to load under Node');
  const patched = wasmWorkerContents.replace(/\n/g, '\\n').replace(WORKER_IMPORT, `importScripts(${JSON.stringify(glue)});`);

  // One file per version and content, written atomically and reused by every later process.
  const hash = createHash('sha256').update(patched).digest('hex').slice(0, 16);
  const workerFile = path.join(os.tmpdir(), `triplex-wasm-worker-${hash}.cjs`);
  if (!fs.existsSync(workerFile)) {
    const partial = `${workerFile}.${process.pid}.partial`;
    fs.writeFileSync(partial, patched);
    fs.renameSync(partial, workerFile);
  }

  const createObjectURL = URL.createObjectURL;
  URL.createObjectURL = (blob: Blob) => (blob.type === 'application/javascript' ? workerFile : createObjectURL(blob));
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  // The backend caps its thread pool at half the logical cores it sees (it assumes hyper-threads);
  // show it 2n cores while it initialises so that n threads means n.
  // The real module object (a bundler's namespace copy would not be seen by the wasm glue).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeOs = require('node:os') as { cpus: typeof os.cpus };
  const cpus = nodeOs.cpus;
  nodeOs.cpus = () => {
    const real = cpus();
    return Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
  };
  return {
    restore() {
      nodeOs.cpus = cpus;
      URL.createObjectURL = createObjectURL;
    },
  };
}

interface EmscriptenWorker {
  unref?: () => void;
}
interface PThreadPool {
  unusedWorkers: EmscriptenWorker[];
  runningWorkers: EmscriptenWorker[];
}

/**
 * The pool's running workers hold a reference on the event loop, so a finished CLI command would
 * never exit. Unreferencing them lets Node exit when our own work is done.
 */
export function unrefWasmWorkers(backend: unknown): number {
  const pool = (backend as { wasm?: { PThread?: PThreadPool } }).wasm?.PThread;
  if (!pool) return 0;
  const workers = [...pool.unusedWorkers, ...pool.runningWorkers];
  for (const w of workers) w.unref?.();
  return pool.runningWorkers.length;
}
