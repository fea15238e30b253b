import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's main entry registers no gradients (the @tensorflow/tfjs umbrella does); training needs them.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import * as wasm from '@tensorflow/tfjs-backend-wasm';
import type { BackendChoice, BackendName, ComputeReport, EngineStatus } from './report';
import { planWasmThreads, unrefWasmWorkers } from './wasmThreads';
import { registerWasmTrainingKernels } from './wasmKernels';
import { registerWasmDepthwiseKernels } from './wasmDepthwiseKernels';
import { registerWasmOneHotKernel } from './wasmOneHot';
import { registerWasmSliceKernels } from './wasmSlice';
import { guardWasmOutOfMemory } from './wasmOutOfMemory';
import { onnxRuntimeStatus } from '../onnx/engine';

export type { BackendChoice, BackendName, ComputeReport, EngineStatus } from './report';

const CHOICES: readonly BackendChoice[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** How to choose the compute backend. Unset fields fall back to TRIPLEX_BACKEND / TRIPLEX_THREADS. */
export interface ComputeOptions {
  backend?: BackendChoice;
  /** Threads for the wasm backend; 0 or unset means one per core. */
  threads?: number;
}

let current: ComputeReport | undefined;
let wasmState: { threads: number; reason?: string } | undefined;

/** The package that provides `name`'s version, or undefined when it is not installed. */
function packageVersion(name: string): string | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return undefined;
  }
}

let tfjsNodeStatus: EngineStatus | undefined;

/**
 * Loads @tensorflow/tfjs-node if it can (registering the 'tensorflow' backend). It is optional:
 * its install script downloads libtensorflow, which fails without internet, and npm then skips it.
 */
function probeTfjsNode(): EngineStatus {
  if (tfjsNodeStatus) return tfjsNodeStatus;
  const role = 'native TensorFlow CPU kernels (fastest training)';
  const name = '@tensorflow/tfjs-node';
  const version = packageVersion(name);
  if (!version) {
    tfjsNodeStatus = {
      name, role, available: false,
      reason: 'not installed: it is an optional dependency, and npm skips it when its install script cannot download libtensorflow (no internet access during npm install)',
    };
    return tfjsNodeStatus;
  }
  try {
    const moduleName = name; // a variable keeps bundlers from trying to inline the optional package
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(moduleName);
    tfjsNodeStatus = { name, role, available: tf.findBackendFactory('tensorflow') !== null, version };
    if (!tfjsNodeStatus.available) tfjsNodeStatus.reason = `loaded, but registered no 'tensorflow' backend on this copy of tfjs-core ${tf.version_core} (install matching versions)`;
  } catch (e) {
    const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
    tfjsNodeStatus = { name, role, available: false, version, reason: `installed but failed to load: ${message}` };
  }
  return tfjsNodeStatus;
}

function parseChoice(value: string, from: string): BackendChoice {
  const v = value.trim().toLowerCase();
  if ((CHOICES as readonly string[]).includes(v)) return v as BackendChoice;
  throw new Error(`${from} is "${value}"; expected one of ${CHOICES.join(', ')}`);
}

function requestedThreads(options: ComputeOptions): number {
  const fromEnv = process.env.TRIPLEX_THREADS ? Number(process.env.TRIPLEX_THREADS) : 0;
  const n = options.threads || fromEnv || os.availableParallelism();
  if (!Number.isInteger(n) || n < 1) throw new Error(`thread count must be a positive integer, got ${String(options.threads ?? process.env.TRIPLEX_THREADS)}`);
  return n;
}

async function startWasm(threads: number): Promise<void> {
  if (!wasmState) {
    let reason: string | undefined;
    let plan: ReturnType<typeof planWasmThreads> | undefined;
    if (threads > 1) {
      try {
        plan = planWasmThreads(tf, wasm, threads);
      } catch (e) {
        reason = `wasm threads unavailable, using 1: ${e instanceof Error ? e.message : String(e)}`;
      }
    }
    registerWasmTrainingKernels();
    registerWasmDepthwiseKernels();
    registerWasmOneHotKernel();
    registerWasmSliceKernels();
    guardWasmOutOfMemory();
    try {
      if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
    } finally {
      plan?.restore();
    }
    unrefWasmWorkers(tf.backend());
    const wasmModule = (tf.backend() as unknown as { wasm: { tfjs: { getThreadsCount(): number } } }).wasm;
    wasmState = { threads: plan ? wasmModule.tfjs.getThreadsCount() : 1, reason };
  } else {
    await tf.setBackend('wasm');
  }
}

async function startCpu(): Promise<void> {
  await tf.setBackend('cpu');
  // The cpu backend greets Node users with advice to install tfjs-node; `triplex info` already
  // reports what is available and why.
  (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
}

/**
 * Selects the compute backend: the one asked for, else the fastest that loads
 * (tfjs-node, then wasm, then cpu). May be called again to switch backends.
 */
export async function initCompute(options: ComputeOptions = {}): Promise<ComputeReport> {
  let requested: BackendChoice = 'auto';
  let requestedBy: ComputeReport['requestedBy'] = 'default';
  if (options.backend) {
    requested = parseChoice(options.backend, 'the backend option');
    requestedBy = 'option';
  } else if (process.env.TRIPLEX_BACKEND) {
    requested = parseChoice(process.env.TRIPLEX_BACKEND, 'TRIPLEX_BACKEND');
    requestedBy = 'environment';
  }
  const threads = requestedThreads(options);
  const tfjsNode = probeTfjsNode();
  let backend: BackendName;
  let fallbackReason: string | undefined;

  if (requested === 'tensorflow' && !tfjsNode.available) {
    throw new Error(`the tensorflow backend was requested (${requestedBy}) but @tensorflow/tfjs-node is ${tfjsNode.reason}`);
  }
  if ((requested === 'auto' || requested === 'tensorflow') && tfjsNode.available) {
    await tf.setBackend('tensorflow');
    backend = 'tensorflow';
  } else if (requested === 'cpu') {
    await startCpu();
    backend = 'cpu';
  } else {
    try {
      await startWasm(threads);
      backend = 'wasm';
      if (requested === 'auto') fallbackReason = `@tensorflow/tfjs-node ${tfjsNode.reason}`;
    } catch (e) {
      if (requested === 'wasm') throw e;
      await startCpu();
      backend = 'cpu';
      fallbackReason = `wasm failed to start: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  const wasmVersion = packageVersion('@tensorflow/tfjs-backend-wasm');
  const engines: EngineStatus[] = [
    tfjsNode,
    { name: '@tensorflow/tfjs-backend-wasm', role: 'WebAssembly SIMD kernels (XNNPACK), threads where possible', available: wasmVersion !== undefined, version: wasmVersion },
    { name: '@tensorflow/tfjs-backend-cpu', role: 'pure JavaScript reference kernels', available: true, version: packageVersion('@tensorflow/tfjs-backend-cpu') },
    onnxRuntimeStatus(),
  ];
  const versions: Record<BackendName, string | undefined> = {
    tensorflow: tfjsNode.version, wasm: wasmVersion, cpu: packageVersion('@tensorflow/tfjs-backend-cpu'),
  };
  const wasmThreadsNote = backend === 'wasm' ? wasmState?.reason : undefined;
  current = {
    backend,
    version: versions[backend] ?? tf.version_core,
    threads: backend === 'wasm' ? wasmState?.threads ?? 1 : backend === 'cpu' ? 1 : threads,
    simd: backend === 'wasm' ? await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') === true : false,
    requested,
    requestedBy,
    ...(fallbackReason || wasmThreadsNote ? { fallbackReason: [fallbackReason, wasmThreadsNote].filter(Boolean).join('; ') } : {}),
    engines,
    node: process.version,
    cores: os.availableParallelism(),
  };
  return current;
}

/** Initialises compute with the defaults (environment, else fastest) unless already done. */
export async function ensureCompute(): Promise<ComputeReport> {
  return current ?? initCompute();
}

/** The report of the last initCompute(), or undefined before the first. */
export function computeReport(): ComputeReport | undefined {
  return current;
}

/** Memory the active backend holds, in bytes: the wasm heap on wasm, tfjs' own count elsewhere. */
export function backendMemoryBytes(): number {
  if (tf.getBackend() === 'wasm') {
    const heap = (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8;
    return heap.length;
  }
  return tf.memory().numBytes;
}
