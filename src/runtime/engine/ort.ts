import * as os from 'node:os';
import type * as OrtTypes from 'onnxruntime-node';
import { loadOnnxRuntime, onnxRuntimeStatus, type OrtModule } from '../onnx/engine';
import { checkFeeds, type Executor, type Feeds, type Program } from './executor';
import { Graph, type DType, type HostArray, type Shape, type Sym } from './graph';
import { emitOnnx } from './onnx';

/**
 * The native engine: a recorded graph as one ONNX model on onnxruntime-node's CPU execution
 * provider (MLAS products, 84-91 GFLOP/s a thread here against TF.js wasm's 26). One session per
 * graph, i.e. per shape bucket; callers cache programs by their shapes.
 */

/** onnxruntime's execution providers we run graphs on. */
export type Provider = 'cpu' | 'webgpu' | 'cuda';

export interface OrtExecutorOptions {
  /** Intra-op threads (the calling thread included); 0 or unset: one per core. */
  threads?: number;
  /** The execution provider (default cpu); a GPU provider falls back to the CPU for ops it lacks. */
  provider?: Provider;
}

const ORT_TYPE: Record<DType, OrtTypes.Tensor.Type> = { float32: 'float32', float64: 'float64', int64: 'int64' };

class OrtProgram implements Program {
  constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtTypes.InferenceSession,
    private readonly declared: ReadonlyMap<string, { shape: Shape; dtype: DType }>,
    readonly buildMs: number,
    readonly nodeCount: number,
  ) {}

  async run(feeds: Feeds): Promise<Record<string, HostArray>> {
    checkFeeds(this.declared, feeds);
    const inputs: Record<string, OrtTypes.Tensor> = {};
    // Tensors wrap the typed arrays without copying.
    for (const [name, d] of this.declared) inputs[name] = new this.ort.Tensor(ORT_TYPE[d.dtype], feeds[name] as never, [...d.shape]);
    const result = await this.session.run(inputs);
    const out: Record<string, HostArray> = {};
    for (const name of this.session.outputNames) out[name] = result[name].data as HostArray;
    return out;
  }

  async dispose(): Promise<void> {
    await this.session.release();
  }
}

/** The onnxruntime executor, or undefined with the reason when onnxruntime-node does not load. */
export async function createOrtExecutor(options: OrtExecutorOptions = {}): Promise<Executor | { unavailable: string }> {
  const ort = await loadOnnxRuntime();
  const status = onnxRuntimeStatus();
  if (!ort) return { unavailable: status.reason ?? 'onnxruntime-node did not load' };
  const threads = options.threads || os.availableParallelism();
  const provider = options.provider ?? 'cpu';
  const executionProviders = provider === 'cpu' ? ['cpu'] : [provider, 'cpu'];
  return {
    kind: 'ort',
    provider,
    threads,
    describe: () => `onnxruntime-node ${status.version ?? '?'} (${provider} execution provider, ${threads} CPU thread${threads === 1 ? '' : 's'})`,
    async compile(outputs: Readonly<Record<string, Sym>>, name?: string): Promise<Program> {
      const model = emitOnnx(outputs, name);
      const graph = Object.values(outputs)[0].graph;
      const declared = new Map(model.inputs.map((n) => {
        const s = graph.inputs.get(n) as Sym;
        return [n, { shape: s.shape, dtype: s.dtype }] as const;
      }));
      const t0 = performance.now();
      const session = await ort.InferenceSession.create(model.bytes, {
        executionProviders,
        graphOptimizationLevel: 'all',
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
      });
      return new OrtProgram(ort, session, declared, performance.now() - t0, model.nodeCount);
    },
  };
}

/**
 * Whether a GPU provider can run here: a one-node session is built on it. The WebGPU provider is
 * inside onnxruntime-node's npm binary (Dawn over Vulkan: it needs the GPU driver's Vulkan ICD);
 * CUDA's is not (onnxruntime-node's install script fetches it, with CUDA 12 and cuDNN 9 installed
 * by the user). Returns undefined when it runs, else why not.
 */
export async function probeProvider(provider: Exclude<Provider, 'cpu'>): Promise<string | undefined> {
  const ort = await loadOnnxRuntime();
  if (!ort) return onnxRuntimeStatus().reason ?? 'onnxruntime-node did not load';
  const supported = ort.listSupportedBackends().find((b) => b.name === provider);
  if (!supported) return `this onnxruntime-node build has no ${provider} provider`;
  const g = new Graph('float32');
  const x = g.input('x', [2, 2]);
  try {
    const session = await ort.InferenceSession.create(emitOnnx({ y: g.add(x, x) }, 'probe').bytes, { executionProviders: [provider] });
    await session.release();
    return undefined;
  } catch (e) {
    const message = (e instanceof Error ? e.message : String(e)).split('\n')[0];
    const why = /Failed to get a WebGPU adapter[^.]*/.exec(message)?.[0] ?? (/Failed to load (shared )?librar/i.test(message) ? 'its provider library is not installed' : message);
    return `${provider}: ${why}`;
  }
}
