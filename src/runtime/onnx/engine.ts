import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
// Types only: erased from the bundle, so the optional package is never required at load time.
import type * as OrtTypes from 'onnxruntime-node';
import type { EngineStatus } from '../compute/report';

/** The onnxruntime-node module, when it loads. */
export type OrtModule = typeof OrtTypes;

/**
 * A frozen image encoder: images in, features out, on whichever engine runs it.
 * Input is always NHWC and ImageNet-normalised, whatever layout the model itself wants.
 */
export interface ImageEncoder {
  readonly name: string;
  /** Width of the pooled feature (512 for ResNet18; from the model for a user's encoder). */
  readonly embeddingWidth: number;
  /** Side of the square input images. */
  readonly inputSize: number;
  /** Whether `encode` also returns the 7x7x512 ResNet18 token map. */
  readonly providesTokens: boolean;
  /** batch: [n, size, size, 3] NHWC, ImageNet-normalised -> pooled [n, width], tokens [n, 7, 7, 512]. */
  encode(batch: Float32Array, n: number): Promise<{ pooled: Float32Array; tokens?: Float32Array }>;
  dispose(): Promise<void>;
}

export interface OnnxEncoderOptions {
  /** Intra-op threads (the calling thread included); 0 or unset means one per core. */
  threads?: number;
  /** Side of the input when the model's spatial dimensions are dynamic (default 224). */
  inputSize?: number;
  /**
   * How a 3-D output [n, tokens, width] (a ViT's last hidden state) becomes one vector per image:
   * 'mean' over all tokens (default) or the first token ('cls'), for ViTs whose model card
   * recommends the class token. A model whose first output is already [n, width] needs neither.
   */
  tokenPooling?: 'mean' | 'cls';
  /** Display name for an in-memory model (a path names itself). */
  name?: string;
}

const PACKAGE = 'onnxruntime-node';
let loaded: { ort?: OrtModule; status: EngineStatus } | undefined;

function load(): { ort?: OrtModule; status: EngineStatus } {
  if (loaded) return loaded;
  const role = 'the native engine: TRIPLEX training and inference, and frozen-feature extraction';
  let version: string | undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    version = (require(`${PACKAGE}/package.json`) as { version: string }).version;
  } catch {
    loaded = { status: { name: PACKAGE, role, available: false, reason: 'not installed (it is an optional dependency; npm install it to extract features about 4x faster than TF.js wasm)' } };
    return loaded;
  }
  try {
    const moduleName = PACKAGE; // a variable keeps bundlers from trying to inline the optional package
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const ort = require(moduleName) as OrtModule;
    loaded = { ort, status: { name: PACKAGE, role, available: true, version } };
  } catch (e) {
    const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
    loaded = { status: { name: PACKAGE, role, available: false, version, reason: `installed but failed to load its native binding: ${message}` } };
  }
  return loaded;
}

/** onnxruntime-node, or undefined when it is missing or fails to load (see onnxRuntimeStatus for why). */
export async function loadOnnxRuntime(): Promise<OrtModule | undefined> {
  return Promise.resolve(load().ort);
}

/** Whether onnxruntime-node is usable here, with its version, or the reason it is not. */
export function onnxRuntimeStatus(): EngineStatus {
  return load().status;
}

type Dim = number | string;
interface ImageInput { name: string; layout: 'NCHW' | 'NHWC'; size: number; fixedBatch?: number }
interface Outputs { pooled: string; tokens?: string; pooledRank: 2 | 3; width?: number }

const isSize = (d: Dim | undefined): d is number => typeof d === 'number' && d > 0;
const shapeText = (s: readonly Dim[]) => `[${s.map((d) => (isSize(d) ? d : `${d || '?'}`)).join(', ')}]`;

/** Finds the image input: float32, rank 4, 3 channels at axis 1 (NCHW) or 3 (NHWC). */
function imageInput(session: OrtTypes.InferenceSession, source: string, requestedSize: number | undefined): ImageInput {
  const described = session.inputMetadata.map((m) => (m.isTensor ? `${m.name} ${m.type} ${shapeText(m.shape)}` : `${m.name} (not a tensor)`)).join(', ');
  const candidates = session.inputMetadata.filter((m): m is OrtTypes.InferenceSession.TensorValueMetadata =>
    m.isTensor && m.type === 'float32' && m.shape.length === 4 && (m.shape[1] === 3 || m.shape[3] === 3));
  if (candidates.length === 0) {
    throw new Error(`${source} has no image input: TRIPLEX needs a float32 input of shape [batch, 3, height, width] (NCHW) or ` +
      `[batch, height, width, 3] (NHWC); its inputs are ${described || '(none)'}. Export the image encoder alone, with a 3-channel image input.`);
  }
  const m = candidates[0];
  const extra = session.inputNames.filter((n) => n !== m.name);
  if (extra.length) {
    throw new Error(`${source} takes inputs besides the image ${m.name}: ${extra.join(', ')}. TRIPLEX feeds only the image; export the encoder with a single input.`);
  }
  const layout = m.shape[1] === 3 ? 'NCHW' : 'NHWC';
  const [h, w] = layout === 'NCHW' ? [m.shape[2], m.shape[3]] : [m.shape[1], m.shape[2]];
  let size = requestedSize ?? 224;
  if (isSize(h) || isSize(w)) {
    if (!isSize(h) || !isSize(w) || h !== w) throw new Error(`${source}: image input ${m.name} is ${shapeText(m.shape)}; TRIPLEX feeds square crops, so height and width must be equal (or both dynamic).`);
    if (requestedSize !== undefined && requestedSize !== h) throw new Error(`${source}: inputSize ${requestedSize} was asked for, but the model's input ${m.name} is fixed at ${h}x${h}.`);
    size = h;
  }
  return { name: m.name, layout, size, ...(isSize(m.shape[0]) ? { fixedBatch: m.shape[0] } : {}) };
}

/**
 * Picks the feature outputs: `pooled` (+ `tokens` [n, 7, 7, 512]) when the model has both (a
 * ResNet18 exported with TRIPLEX's output names), else the first output: 2-D [n, width] as is, or 3-D [n, tokens, width] pooled per
 * `tokenPooling`.
 */
function featureOutputs(session: OrtTypes.InferenceSession, source: string): Outputs {
  const meta = new Map(session.outputMetadata.map((m) => [m.name, m]));
  const shapeOf = (name: string): readonly Dim[] | undefined => {
    const m = meta.get(name);
    return m?.isTensor && m.type === 'float32' ? m.shape : undefined;
  };
  const pooledShape = shapeOf('pooled');
  const tokensShape = shapeOf('tokens');
  if (pooledShape?.length === 2 && tokensShape?.length === 4 && tokensShape.slice(1).join() === '7,7,512') {
    return { pooled: 'pooled', tokens: 'tokens', pooledRank: 2, width: Number(pooledShape[1]) };
  }
  const first = session.outputNames[0];
  const shape = first === undefined ? undefined : shapeOf(first);
  if (!shape || (shape.length !== 2 && shape.length !== 3)) {
    const described = session.outputMetadata.map((m) => (m.isTensor ? `${m.name} ${m.type} ${shapeText(m.shape)}` : m.name)).join(', ');
    throw new Error(`${source}: its first output must be float32 features [batch, width] or [batch, tokens, width]; its outputs are ${described || '(none)'}. ` +
      'Export the encoder so that its first output is the embedding.');
  }
  const width = shape[shape.length - 1];
  return { pooled: first as string, pooledRank: shape.length as 2 | 3, ...(isSize(width) ? { width } : {}) };
}

/** [n, s, s, 3] -> [n, 3, s, s]. */
function nhwcToNchw(x: Float32Array, n: number, s: number): Float32Array {
  const out = new Float32Array(x.length);
  const plane = s * s;
  for (let b = 0; b < n; b++) {
    const src = b * plane * 3;
    for (let p = 0; p < plane; p++) {
      out[src + p] = x[src + p * 3];
      out[src + plane + p] = x[src + p * 3 + 1];
      out[src + 2 * plane + p] = x[src + p * 3 + 2];
    }
  }
  return out;
}

/** [n, t, w] -> [n, w]: the mean over tokens, or the first token. */
function poolTokens(x: Float32Array, n: number, t: number, w: number, how: 'mean' | 'cls'): Float32Array {
  const out = new Float32Array(n * w);
  for (let b = 0; b < n; b++) {
    if (how === 'cls') {
      out.set(x.subarray(b * t * w, b * t * w + w), b * w);
      continue;
    }
    const acc = new Float64Array(w);
    for (let k = 0; k < t; k++) for (let j = 0; j < w; j++) acc[j] += x[(b * t + k) * w + j];
    for (let j = 0; j < w; j++) out[b * w + j] = acc[j] / t;
  }
  return out;
}

/**
 * An ImageEncoder on onnxruntime-node for a user's ONNX image encoder (e.g. a pathology foundation
 * model), given as bytes or as a path to a .onnx file. (The built-in ResNet18 runs the engine's
 * graph instead: features/resnet18Encoder.ts.)
 * Threads: one intra-op thread per core unless told; graph optimisation 'all'.
 */
export async function createOnnxEncoder(model: Uint8Array | string, opts: OnnxEncoderOptions = {}): Promise<ImageEncoder> {
  const source = typeof model === 'string' ? model : opts.name ?? 'the in-memory ONNX model';
  const ort = await loadOnnxRuntime();
  if (!ort) throw new Error(`cannot run ${source}: ${PACKAGE} is ${onnxRuntimeStatus().reason}. A user's ONNX encoder needs onnxruntime-node; the built-in resnet18 encoder runs without it.`);
  if (typeof model === 'string' && !fs.existsSync(model)) throw new Error(`ONNX model ${model} does not exist; check the path.`);
  const threads = opts.threads || os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`ONNX encoder threads must be a positive integer, got ${threads}`);

  const options: OrtTypes.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
  let session: OrtTypes.InferenceSession;
  try {
    // Two calls because create() is overloaded (path vs bytes); a path lets ORT find external data files.
    session = typeof model === 'string' ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
  } catch (e) {
    const why = (e instanceof Error ? e.message : String(e)).replace(/\.+$/, '');
    throw new Error(`${source} could not be loaded as an ONNX model by ${PACKAGE} ${onnxRuntimeStatus().version ?? ''}: ${why}. ` +
      'Check that it is a complete .onnx file (not truncated, not a PyTorch checkpoint) whose opset this onnxruntime supports.', { cause: e });
  }
  try {
    const input = imageInput(session, source, opts.inputSize);
    const outputs = featureOutputs(session, source);
    const encoder = new OnnxEncoder(ort, session, source, input, outputs, opts.tokenPooling ?? 'mean');
    if (outputs.width === undefined) await encoder.probeWidth(); // dynamic width: learn it from one image
    return encoder;
  } catch (e) {
    await session.release();
    throw e;
  }
}

class OnnxEncoder implements ImageEncoder {
  readonly name: string;
  readonly inputSize: number;
  readonly providesTokens: boolean;
  embeddingWidth: number;
  private disposed = false;

  constructor(
    private readonly ort: OrtModule,
    private readonly session: OrtTypes.InferenceSession,
    private readonly source: string,
    private readonly input: ImageInput,
    private readonly outputs: Outputs,
    private readonly tokenPooling: 'mean' | 'cls',
  ) {
    this.name = `onnx:${path.basename(source)}`;
    this.inputSize = input.size;
    this.providesTokens = outputs.tokens !== undefined;
    this.embeddingWidth = outputs.width ?? 0;
  }

  /** Runs one blank batch to learn a width the model leaves symbolic. */
  async probeWidth(): Promise<void> {
    const n = this.input.fixedBatch ?? 1;
    const { pooled } = await this.runChunk(new Float32Array(n * this.inputSize * this.inputSize * 3), n);
    this.embeddingWidth = pooled.length / n;
  }

  async encode(batch: Float32Array, n: number): Promise<{ pooled: Float32Array; tokens?: Float32Array }> {
    if (this.disposed) throw new Error(`the ONNX encoder for ${this.source} was disposed`);
    const s = this.inputSize;
    const per = s * s * 3;
    if (!Number.isInteger(n) || n < 1 || batch.length !== n * per) {
      throw new Error(`${this.name}.encode: expected ${n} NHWC images of ${s}x${s}x3 (${n * per} values), got ${batch.length} values`);
    }
    const chunk = this.input.fixedBatch ?? n;
    if (chunk === n) return this.runChunk(batch, n);
    // A model exported with a fixed batch size: run it chunk by chunk, zero-padding the last.
    const pooled = new Float32Array(n * this.embeddingWidth);
    const tokens = this.providesTokens ? new Float32Array(n * 49 * 512) : undefined;
    for (let b = 0; b < n; b += chunk) {
      const take = Math.min(chunk, n - b);
      const x = new Float32Array(chunk * per);
      x.set(batch.subarray(b * per, (b + take) * per));
      const r = await this.runChunk(x, chunk);
      pooled.set(r.pooled.subarray(0, take * this.embeddingWidth), b * this.embeddingWidth);
      if (tokens && r.tokens) tokens.set(r.tokens.subarray(0, take * 49 * 512), b * 49 * 512);
    }
    return tokens ? { pooled, tokens } : { pooled };
  }

  /**
   * One session run. onnxruntime-node runs it on the JavaScript thread (plus the intra-op pool),
   * so the event loop is blocked for its duration; the returned arrays are fresh copies.
   */
  private async runChunk(x: Float32Array, n: number): Promise<{ pooled: Float32Array; tokens?: Float32Array }> {
    const s = this.inputSize;
    const nchw = this.input.layout === 'NCHW';
    const feed = new this.ort.Tensor('float32', nchw ? nhwcToNchw(x, n, s) : x, nchw ? [n, 3, s, s] : [n, s, s, 3]);
    const fetches = this.outputs.tokens ? [this.outputs.pooled, this.outputs.tokens] : [this.outputs.pooled];
    let result: OrtTypes.InferenceSession.ReturnType;
    try {
      result = await this.session.run({ [this.input.name]: feed }, fetches);
    } catch (e) {
      throw new Error(`${this.source} failed on a batch of ${n} (${this.input.layout} ${s}x${s}): ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    } finally {
      feed.dispose();
    }
    try {
      const out = result[this.outputs.pooled];
      let pooled = out.data as Float32Array;
      if (this.outputs.pooledRank === 3) {
        const [, t, w] = out.dims;
        pooled = poolTokens(pooled, n, t, w, this.tokenPooling); // [n, t, w] -> [n, w]
      }
      const tokens = this.outputs.tokens ? (result[this.outputs.tokens].data as Float32Array) : undefined; // [n, 7, 7, 512]
      return tokens ? { pooled, tokens } : { pooled };
    } finally {
      for (const t of Object.values(result)) t.dispose();
    }
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.session.release();
  }
}
