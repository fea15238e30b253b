import type { Executor, Program } from '../engine/executor';
import { Graph, type Sym } from '../engine/graph';
import { ResNet18Trunk, type Stage } from '../models/resnet18';
import { resnet18TensorsFrom } from '../models/resnet18Weights';
import type { ImageEncoder } from '../onnx/engine';
import type { StateDict } from '../weights/stateDict';

/**
 * The frozen ResNet18 of TRIPLEX (models/resnet18.ts, inference mode) on an engine executor:
 * onnxruntime, or the engine's TF.js interpreter where onnxruntime is missing. Frozen features
 * (tokens + pooled per 224 px crop), the layer3 maps mode `layer4` caches, and the map of a
 * whole tile (dense features) are each one recorded graph with the weights as constants.
 *
 * Engine graphs have concrete shapes: one program per input shape, built on first use and kept.
 * Batches of crops run `batch` at a time (the last one zero-padded), so an extraction builds two
 * programs at most (a batch, and a single crop for the masked tiles' zero input).
 */

/** Side of a crop, and width of the pooled feature. */
const SIZE = 224;
const WIDTH = 512;
/** The default number of crops per program run (extraction's default batch). */
export const DEFAULT_ENCODER_BATCH = 32;

type Part = 'features' | 'layer3' | 'map';

export class ResNet18Encoder implements ImageEncoder {
  readonly embeddingWidth = WIDTH;
  readonly inputSize = SIZE;
  readonly providesTokens = true;
  private readonly trunk = new ResNet18Trunk();
  private readonly weights: Map<string, Float32Array>;
  private readonly programs = new Map<string, Promise<Program>>();
  private disposed = false;

  /**
   * `weights`: a torchvision resnet18 state dict (wrapper prefixes stripped, every shape checked
   * and named with `source`). `batch`: crops per program run.
   */
  constructor(private readonly executor: Executor, weights: StateDict, source: string, readonly batch = DEFAULT_ENCODER_BATCH, readonly name = 'resnet18') {
    if (!Number.isInteger(batch) || batch < 1) throw new Error(`ResNet18 encoder batch must be a positive integer, got ${batch}`);
    this.weights = new Map([...resnet18TensorsFrom(weights, source)].map(([k, t]) => [k, t.data]));
  }

  /** What runs the graphs: engine, version, provider and threads. */
  describe(): string {
    return this.executor.describe();
  }

  /** The program of one part at one input shape: NHWC [n, side, side, 3] in. */
  private program(part: Part, n: number, side: number): Promise<Program> {
    const key = `${part}|${n}|${side}`;
    let p = this.programs.get(key);
    if (!p) {
      const g = new Graph('float32');
      const x = g.transpose(g.input('images', [n, side, side, 3]), [0, 3, 1, 2]); // [n, 3, side, side]
      const stages: Stage[] = part === 'layer3' ? ['stem', 'layer1', 'layer2', 'layer3'] : ['stem', 'layer1', 'layer2', 'layer3', 'layer4'];
      const h = this.trunk.apply(g, x, 'inference', { stages, constants: this.weights }); // [n, C, side/s, side/s]
      const nhwc = g.transpose(h, [0, 2, 3, 1]);
      const outputs: Record<string, Sym> = part === 'features' ? { tokens: nhwc, pooled: g.mean(h, [2, 3]) } : { tokens: nhwc };
      p = this.executor.compile(outputs, `triplex_resnet18_${part}`);
      p.catch(() => this.programs.delete(key)); // a failed build is not kept: the next call tries again
      this.programs.set(key, p);
    }
    return p;
  }

  private checkOpen(): void {
    if (this.disposed) throw new Error(`the ${this.name} encoder was disposed`);
  }

  /**
   * Runs `n` NHWC crops of `side` through a part, `this.batch` at a time (a single crop of
   * features or a map alone), the last run zero-padded; returns each output's rows for the n crops.
   */
  private async runCrops(part: Part, images: Float32Array, n: number, side: number): Promise<Record<string, Float32Array>> {
    this.checkOpen();
    const per = side * side * 3;
    if (!Number.isInteger(n) || n < 1 || images.length !== n * per) {
      throw new Error(`${this.name}: expected ${n} NHWC images of ${side}x${side}x3 (${n * per} values), got ${images.length} values`);
    }
    const chunk = n === 1 && part !== 'layer3' ? 1 : this.batch;
    const program = await this.program(part, chunk, side);
    const out: Record<string, Float32Array> = {};
    let padded: Float32Array | undefined;
    for (let from = 0; from < n; from += chunk) {
      const take = Math.min(chunk, n - from);
      let x = images.subarray(from * per, (from + take) * per);
      if (take < chunk) {
        padded ??= new Float32Array(chunk * per);
        padded.set(x);
        x = padded;
      }
      const result = await program.run({ images: x });
      for (const [name, v] of Object.entries(result)) {
        const rows = v.length / chunk;
        out[name] ??= new Float32Array(n * rows);
        out[name].set((v as Float32Array).subarray(0, take * rows), from * rows);
      }
    }
    return out;
  }

  /** batch: [n, 224, 224, 3] NHWC, ImageNet-normalised -> pooled [n, 512], tokens [n, 7, 7, 512]. */
  async encode(batch: Float32Array, n: number): Promise<{ pooled: Float32Array; tokens: Float32Array }> {
    const { pooled, tokens } = await this.runCrops('features', batch, n, SIZE);
    return { pooled, tokens };
  }

  /** conv1 .. layer3 of normalised crops: [n, 224, 224, 3] -> [n, 14, 14, 256] (what mode layer4 caches). */
  async layer3(batch: Float32Array, n: number): Promise<Float32Array> {
    return (await this.runCrops('layer3', batch, n, SIZE)).tokens;
  }

  /** The layer4 map [side/32, side/32, 512] of one normalised NHWC image [side, side, 3] (dense features). */
  async map(image: Float32Array, side: number): Promise<Float32Array> {
    if (side % 32 !== 0) throw new Error(`${this.name}: a map's side must be a multiple of 32 (the trunk's stride), got ${side}`);
    return (await this.runCrops('map', image, 1, side)).tokens;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const programs = [...this.programs.values()];
    this.programs.clear();
    for (const p of await Promise.allSettled(programs)) if (p.status === 'fulfilled') await p.value.dispose();
  }
}
