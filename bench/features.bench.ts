import * as os from 'node:os';
import { computeReport, initCompute } from '../src/runtime/compute/backend';
import { mulberry32, normal } from '../src/runtime/util/random';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { createTfjsExecutor } from '../src/runtime/engine/tfjs';
import { ResNet18Encoder } from '../src/runtime/features/resnet18Encoder';
import { seededResNet18StateDict } from '../src/runtime/models/resnet18Weights';
import { onnxRuntimeStatus, type ImageEncoder } from '../src/runtime/onnx/engine';
import { mib } from './table';
import { relativeError } from '../src/runtime/util/numeric';

/**
 * Frozen-feature extraction (the engine's ResNet18 graph, inference, tokens + pooled, weights as
 * constants, one program per batch shape) on onnxruntime-node against the same graph on the
 * engine's TF.js interpreter, with the same weights and images. Target from the issue: at least
 * 35 images/s, PyTorch's per-crop ResNet18 forward on this 2-core machine.
 */

export interface FeatureBenchRow {
  engine: string;
  threads: number;
  /** Images per second, mean over the timed iterations. */
  imagesPerSecond: number;
  best: number;
  /** The process's peak RSS once this engine has run (a high-water mark: engines run in row order). */
  peakRssBytes: number;
  /** max |pooled - pooled(TF.js)| / max |pooled(TF.js)| on the benchmark batch. */
  relativeErrorVsTfjs?: number;
}

export interface FeatureBenchResult {
  title: string;
  header: string[];
  rows: (string | number)[][];
  results: FeatureBenchRow[];
  notes: string[];
}

export const FEATURE_TARGET_IMAGES_PER_SECOND = 35;

interface Timed { mean: number; best: number; pooled: Float32Array }

async function timeEncoder(encoder: ImageEncoder, images: Float32Array, batch: number, iterations: number): Promise<Timed> {
  const first = await encoder.encode(images, batch); // warm-up: the program's build, allocations, kernel set-up
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await encoder.encode(images, batch);
    times.push(performance.now() - t);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: (batch * 1000) / mean, best: (batch * 1000) / Math.min(...times), pooled: first.pooled };
}

const peakRss = () => process.resourceUsage().maxRSS * 1024;

/**
 * Runs onnxruntime-node with one thread per core and with one thread, then the engine's TF.js
 * interpreter on the active backend (initCompute() first if nothing chose one). Environment:
 * BENCH_ITERATIONS.
 */
export async function benchFeatureEncoders(options: { batch?: number; iterations?: number } = {}): Promise<FeatureBenchResult> {
  const batch = options.batch ?? 16;
  const iterations = options.iterations ?? Number(process.env.BENCH_ITERATIONS ?? 5);
  const report = computeReport() ?? (await initCompute());
  const weights = seededResNet18StateDict(0);
  const images = normal(mulberry32(7), batch * 224 * 224 * 3); // [batch, 224, 224, 3], ImageNet-normalised scale
  const results: FeatureBenchRow[] = [];
  const pooledOf = new Map<FeatureBenchRow, Float32Array>();
  const notes: string[] = [];
  const rssBefore = process.memoryUsage().rss;

  const ort = onnxRuntimeStatus();
  if (ort.available) {
    const cores = os.availableParallelism();
    for (const threads of [...new Set([cores, 1])]) {
      const executor = await createOrtExecutor({ threads });
      if ('unavailable' in executor) throw new Error(executor.unavailable);
      const encoder = new ResNet18Encoder(executor, weights, 'seed-0 trunk', batch);
      const r = await timeEncoder(encoder, images, batch, iterations);
      await encoder.dispose();
      const row: FeatureBenchRow = { engine: `onnxruntime-node ${ort.version}`, threads, imagesPerSecond: r.mean, best: r.best, peakRssBytes: peakRss() };
      results.push(row);
      pooledOf.set(row, r.pooled);
    }
  } else {
    notes.push(`onnxruntime-node: ${ort.reason}`);
  }

  const tfjs = new ResNet18Encoder(createTfjsExecutor(), weights, 'seed-0 trunk', batch);
  const r = await timeEncoder(tfjs, images, batch, iterations);
  await tfjs.dispose();
  results.push({ engine: `engine on tfjs-${report.backend}`, threads: report.threads, imagesPerSecond: r.mean, best: r.best, peakRssBytes: peakRss(), relativeErrorVsTfjs: 0 });
  for (const [row, pooled] of pooledOf) row.relativeErrorVsTfjs = relativeError(pooled, r.pooled);

  const fastest = results.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
  const ok = fastest.imagesPerSecond >= FEATURE_TARGET_IMAGES_PER_SECOND;
  notes.push(`target: ${FEATURE_TARGET_IMAGES_PER_SECOND} images/s; fastest ${fastest.engine} (${fastest.threads} thread(s)) ` +
    `${fastest.imagesPerSecond.toFixed(1)} images/s ${ok ? 'meets it' : 'is BELOW it'}`);
  notes.push(`RSS before the first engine ran (TF.js backend started): ${mib(rssBefore).toFixed(0)} MiB`);
  return {
    title: `Frozen ResNet18 features (tokens + pooled), batch ${batch} at 224x224: images/s, peak RSS (MiB, high-water mark in row order)`,
    header: ['engine', 'threads', 'images/s', 'best', 'peak RSS', 'rel. err vs tfjs'],
    rows: results.map((x) => [x.engine, String(x.threads), x.imagesPerSecond, x.best, mib(x.peakRssBytes), (x.relativeErrorVsTfjs ?? 0).toExponential(1)]),
    results,
    notes,
  };
}
