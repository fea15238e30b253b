import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import type { ComputeReport } from '../src/runtime/compute/backend';
import { spotGrid, type SpotGrid } from '../src/runtime/model/triplex/apeg';
import { triplexConfig } from '../src/runtime/model/triplex/config';
import { TriplexModel, type TriplexInputs } from '../src/runtime/model/triplex/model';
import { Adam } from '../src/runtime/train/adam';
import { epochBatches } from '../src/runtime/train/batches';
import type { SectionInputs } from '../src/runtime/train/data';
import { batchGradients, DEFAULT_MICRO_BATCH } from '../src/runtime/train/trainer';
import { EngineLearner } from '../src/runtime/train/engineLearner';
import { ortExecutor } from '../src/runtime/engine/choice';
import type { Executor } from '../src/runtime/engine/executor';
import { createTfjsExecutor } from '../src/runtime/engine/tfjs';
import { mulberry32, normal } from '../src/runtime/util/random';
import { mib, printTable } from './table';
import { throughput } from './timing';

/**
 * TRIPLEX throughput (BC1 preset, 250 genes, d = 512) in the three settings of the issue, beside
 * the PyTorch implementation of the same configuration (bench/torch_triplex.py, run in the same
 * invocation): frozen-target training (batch 128 from two 300-spot slides, the global encoder over
 * both slides every step, Adam), whole-slide inference (600 spots, global encoder once, batches of
 * 128), and full fine-tuning (batch 16 crops in one engine graph, the ResNet18 trunk trained with everything else).
 */

const GENES = 250;
const DIM = 512;

interface Slide { features: tf.Tensor2D; grid: SpotGrid; n: number }

function slide(rows: number, cols: number, seed: number): Slide {
  const r: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) { r.push(i); c.push(j); }
  const n = r.length;
  return { features: tf.tensor2d(normal(mulberry32(seed), n * DIM), [n, DIM]), grid: spotGrid(r, c), n };
}

function spotInputs(batch: number, seed: number, slides: Slide[]): { inputs: TriplexInputs; truth: tf.Tensor2D; dispose(): void } {
  const random = mulberry32(seed);
  const target = tf.tensor3d(normal(random, batch * 49 * DIM), [batch, 49, DIM]);
  const neighbors = tf.tensor3d(normal(random, batch * 25 * DIM), [batch, 25, DIM]);
  const mask = tf.tensor2d(Float32Array.from({ length: batch * 25 }, () => (random() < 0.9 ? 1 : 0)), [batch, 25]);
  const truth = tf.tensor2d(normal(random, batch * GENES), [batch, GENES]);
  // Half the batch from each slide.
  const total = slides.reduce((n, s) => n + s.n, 0);
  const globalRows = Int32Array.from({ length: batch }, (_, i) => (i % 2 === 0 ? i / 2 : slides[0].n + (i - 1) / 2) % total);
  return {
    inputs: { target, neighbors, mask, slides: slides.map((s) => ({ features: s.features, grid: s.grid })), globalRows },
    truth, dispose: () => tf.dispose([target, neighbors, mask, truth]),
  };
}

interface Timing { mean: number; best: number; leaked: number; note?: string }

async function timedAsync(spots: number, iterations: number, step: () => Promise<unknown>): Promise<Timing> {
  return { ...(await throughput(spots, iterations, step)), leaked: 0 };
}

async function ortLearner(trunk?: 'full', executor?: Executor): Promise<EngineLearner> {
  const e = executor ?? await ortExecutor();
  if ('unavailable' in e) throw new Error(`onnxruntime is unavailable: ${e.unavailable}`);
  return new EngineLearner(triplexConfig({ preset: 'bc1', genes: GENES }), e, 0, trunk ? { mode: trunk } : undefined);
}

/**
 * Mode full on the engine (onnxruntime, or the engine's TF.js interpreter as the trainer runs it
 * without onnxruntime): batch 16 (8 spots of each of two 300-spot slides) in one graph, the whole
 * ResNet18 trained.
 */
export async function benchFullTrainingEngine(iterations: number, executor?: Executor): Promise<Timing> {
  const learner = await ortLearner('full', executor);
  const random = mulberry32(9);
  const slides = [sectionInputs('S1', 20, 15, 5), sectionInputs('S2', 20, 15, 6)];
  for (const s of slides) s.crops = Uint8Array.from({ length: s.n * 224 * 224 * 3 }, () => Math.floor(random() * 256));
  let step = 0;
  const r = await timedAsync(16, iterations, () => {
    const picks = slides.flatMap((section, k) => epochBatches([section], 8, 10 * step + k)[0]);
    step++;
    return learner.trainBatch(picks, { learningRate: 1e-4, dropoutSeed: step, augment: mulberry32(step), microBatch: 16 });
  });
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

const describeGraphs = async (learner: EngineLearner) => {
  const graphs = await learner.compiled();
  return graphs.map((g) => `${g.key}: ${g.nodes} nodes, session ${g.buildMs.toFixed(0)} ms`).join('; ');
};

/** The trainer's step on the native engine: the whole batch of 128 (64 of each of two 300-spot slides) in one graph. */
export async function benchFrozenTrainingEngine(iterations: number): Promise<Timing> {
  const learner = await ortLearner();
  const slides = [sectionInputs('S1', 20, 15, 1), sectionInputs('S2', 20, 15, 2)];
  let step = 0;
  const r = await timedAsync(128, iterations, () => {
    const picks = slides.flatMap((section, k) => epochBatches([section], 64, 10 * step + k)[0]);
    step++;
    return learner.trainBatch(picks, { learningRate: 1e-4, dropoutSeed: step, augment: mulberry32(step), microBatch: 128 });
  });
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

/** Whole-slide inference on the native engine: the global encoder over 600 spots once, then batches of 256 (learner.predict). */
export async function benchInferenceEngine(iterations: number): Promise<Timing> {
  const learner = await ortLearner();
  const section = sectionInputs('S', 24, 25, 4);
  const data = { storeDir: '', featuresDir: '', genes: [], hasCounts: false, dim: DIM, sections: new Map([['S', section]]) };
  const r = await timedAsync(section.n, iterations, () => learner.predict(data, [section]));
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

function timed(spots: number, iterations: number, step: () => void): Timing {
  step();
  const tensors = tf.memory().numTensors;
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    step();
    times.push(performance.now() - t);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: (spots * 1000) / mean, best: (spots * 1000) / Math.min(...times), leaked: tf.memory().numTensors - tensors };
}

/** Spots per forward/backward pass in the frozen setting (BENCH_MICRO_BATCH, default the trainer's 32). */
const MICRO = Number(process.env.BENCH_MICRO_BATCH ?? DEFAULT_MICRO_BATCH);

/** A slide of random frozen inputs, as the trainer holds a section. */
function sectionInputs(id: string, rows: number, cols: number, seed: number): SectionInputs {
  const random = mulberry32(seed);
  const r: number[] = [];
  const c: number[] = [];
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) { r.push(i); c.push(j); }
  const n = r.length;
  return {
    id, patient: id, n, spotIds: r.map((x, i) => `${x}x${c[i]}`), storeRows: [], grid: spotGrid(r, c),
    values: normal(random, n * GENES), global: normal(random, n * DIM), neighbors: normal(random, n * 25 * DIM),
    mask: Float32Array.from({ length: n * 25 }, () => (random() < 0.9 ? 1 : 0)), target: normal(random, n * 49 * DIM),
  };
}

/** The trainer's own step (batchGradients, then Adam) on batches of 128 spots from two slides. */
export function benchFrozenTraining(iterations: number): Timing {
  const model = new TriplexModel(triplexConfig({ preset: 'bc1', genes: GENES }));
  const vars = model.trainableVariables();
  const optimizer = new Adam(vars, model.params.names());
  const slides = [sectionInputs('S1', 20, 15, 1), sectionInputs('S2', 20, 15, 2)];
  let step = 0;
  const r = timed(128, iterations, () => {
    // 64 spots of each slide, as the PyTorch peer draws them: the global encoder covers both.
    const picks = slides.flatMap((section, k) => epochBatches([section], 64, 10 * step + k)[0]);
    step++;
    const { grads } = batchGradients(model, vars, picks, MICRO, { dim: DIM, genes: GENES, augment: mulberry32(step), dropoutSeed: step });
    optimizer.apply(grads);
    tf.dispose(grads);
  });
  optimizer.dispose();
  model.dispose();
  return r;
}

export function benchInference(iterations: number): Timing {
  const model = new TriplexModel(triplexConfig({ preset: 'bc1', genes: GENES }));
  const s = slide(24, 25, 4);
  const batches = [0, 1, 2, 3, 4].map((b) => {
    const n = Math.min(128, s.n - b * 128);
    const x = spotInputs(n, 10 + b, [s]);
    x.inputs.globalRows = Int32Array.from({ length: n }, (_, i) => b * 128 + i);
    return x;
  });
  const r = timed(s.n, iterations, () => {
    const encoded = model.encodeSlide({ features: s.features, grid: s.grid }, 'inference');
    for (const b of batches) {
      const y = tf.tidy(() => model.forward(b.inputs, 'inference', [encoded]).fusion);
      y.dataSync();
      y.dispose();
    }
    encoded.dispose();
  });
  for (const b of batches) b.dispose();
  s.features.dispose();
  model.dispose();
  return r;
}

interface TorchTriplex { spotsPerSecond: number; best: number; threads: number; blas: string; peakRssMiB: number; torch?: string }

function torchPeer(mode: string, iterations: number, threads: number): TorchTriplex | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [path.join(__dirname, '..', 'bench', 'torch_triplex.py'), mode, String(iterations), String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) return `not run: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as TorchTriplex;
}

/**
 * The three settings, ours then PyTorch's, one table: on the native engine (onnxruntime) where it
 * runs them (frozen training, inference), and on TF.js (the fallback, and full fine-tuning).
 * BENCH_TRIPLEX picks settings; BENCH_ENGINES=ort,tfjs picks engines (default both).
 */
export async function benchTriplex(report: ComputeReport, iterations: number): Promise<void> {
  const tfjs = `tfjs-${report.backend}`;
  const settings = [
    { name: 'frozen-target training (batch 128 in one graph, 2 x 300-spot slides)', engine: 'ort', mode: 'frozen', run: benchFrozenTrainingEngine, target: 1.2 },
    { name: `frozen-target training (batch 128 as ${128 / MICRO} x ${MICRO}, 2 x 300-spot slides)`, engine: tfjs, mode: 'frozen', run: (n: number) => Promise.resolve(benchFrozenTraining(n)), target: 0.8 },
    { name: 'whole-slide inference (600 spots)', engine: 'ort', mode: 'inference', run: benchInferenceEngine, target: 2.0 },
    { name: 'whole-slide inference (600 spots)', engine: tfjs, mode: 'inference', run: (n: number) => Promise.resolve(benchInference(n)), target: 1.0 },
    { name: 'full fine-tuning (batch 16 crops in one graph, ResNet18 trained)', engine: 'ort', mode: 'full', run: benchFullTrainingEngine, target: 1.0 },
    { name: 'full fine-tuning (batch 16 crops in one graph, ResNet18 trained; the engine\'s TF.js interpreter)', engine: tfjs, mode: 'full', run: (n: number) => benchFullTrainingEngine(n, createTfjsExecutor()), target: undefined },
  ];
  const engines = (process.env.BENCH_ENGINES ?? 'ort,tfjs').split(',');
  const peers = new Map<string, TorchTriplex | string>();
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  const chosen = (process.env.BENCH_TRIPLEX ?? 'frozen,inference,full').split(',');
  for (const s of settings.filter((x) => chosen.includes(x.mode) && engines.includes(x.engine === 'ort' ? 'ort' : 'tfjs'))) {
    console.log(`triplex: ${s.name} on ${s.engine}...`);
    const ours = await s.run(iterations);
    if (!peers.has(s.mode)) peers.set(s.mode, torchPeer(s.mode, iterations, report.threads));
    const peer = peers.get(s.mode)!;
    const ratio = typeof peer === 'string' ? NaN : ours.mean / peer.spotsPerSecond;
    rows.push([s.name, s.engine, ours.mean, ours.best, typeof peer === 'string' ? '-' : peer.spotsPerSecond, Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-', s.target ? `${s.target}x` : '-']);
    console.log(`  ours ${ours.mean.toFixed(2)} spots/s (best ${ours.best.toFixed(2)}), PyTorch ${typeof peer === 'string' ? peer : peer.spotsPerSecond.toFixed(2)}`);
    if (ours.note) notes.push(`${s.mode} on ${s.engine}: graphs built: ${ours.note}`);
    if (ours.leaked) notes.push(`${s.mode} on ${s.engine}: ${ours.leaked} tensors leaked`);
    if (typeof peer === 'string') notes.push(`PyTorch peer (${s.mode}): ${peer}`);
    else if (s.target !== undefined) notes.push(`${s.mode} on ${s.engine}: ${ratio >= s.target ? 'meets' : 'BELOW'} the target of ${s.target}x PyTorch (${peer.blas} BLAS, ${peer.threads} threads)`);
  }
  printTable(`TRIPLEX BC1 throughput (spots/s), ${report.threads} thread(s) vs PyTorch; peak RSS ${mib(process.resourceUsage().maxRSS * 1024).toFixed(0)} MiB`,
    ['setting', 'engine', 'ours', 'ours best', 'PyTorch', 'ratio', 'target'], rows);
  for (const n of notes) console.log(n);
}
