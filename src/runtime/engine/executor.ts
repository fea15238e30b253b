import type { DType, HostArray, Shape, Sym } from './graph';

/**
 * What both engines offer: a recorded graph compiled once into a runnable program (an ONNX
 * Runtime session, or a TF.js interpreter of the recording), then run with fresh inputs as often
 * as needed.
 */

/** One input value: its data and shape (checked against the graph's declaration). */
export type Feeds = Readonly<Record<string, HostArray>>;

export interface Program {
  /** Runs the program; outputs are fresh arrays owned by the caller. */
  run(feeds: Feeds): Promise<Record<string, HostArray>>;
  /** Frees the session or tensors behind the program. */
  dispose(): Promise<void>;
  /** How long building it took (ms): ONNX Runtime's session creation, say. */
  readonly buildMs: number;
  /** Nodes of the compiled graph. */
  readonly nodeCount: number;
}

export interface Executor {
  /** 'ort' or 'tfjs'. */
  readonly kind: 'ort' | 'tfjs';
  /** onnxruntime's execution provider (cpu, webgpu, cuda). */
  readonly provider?: string;
  /** onnxruntime's intra-op threads. */
  readonly threads?: number;
  /** One line for reports: engine, version, execution provider, threads. */
  describe(): string;
  compile(outputs: Readonly<Record<string, Sym>>, name?: string): Promise<Program>;
}

/** Checks feeds against the declared inputs of the symbols the program reads. */
export function checkFeeds(declared: ReadonlyMap<string, { shape: Shape; dtype: DType }>, feeds: Feeds): void {
  for (const [name, d] of declared) {
    const v = feeds[name];
    if (!v) throw new Error(`no value fed for graph input ${name}`);
    const n = d.shape.reduce((a, b) => a * b, 1);
    if (v.length !== n) throw new Error(`graph input ${name}: ${v.length} values fed, its shape [${d.shape.join(', ')}] holds ${n}`);
    const ok = d.dtype === 'int64' ? v instanceof BigInt64Array : d.dtype === 'float64' ? v instanceof Float64Array : v instanceof Float32Array;
    if (!ok) throw new Error(`graph input ${name}: fed ${v.constructor.name}, declared ${d.dtype}`);
  }
}
