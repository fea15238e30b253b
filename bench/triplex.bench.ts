import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ComputeReport } from '../src/runtime/compute/backend';
import { spotGrid } from '../src/runtime/models/spotGrid';
import { triplexConfig } from '../src/runtime/models/triplexConfig';
import { epochBatches } from '../src/runtime/train/batches';
import type { SectionInputs } from '../src/runtime/train/data';
import { EngineLearner } from '../src/runtime/train/engineLearner';
import { ortExecutor } from '../src/runtime/engine/choice';
import { createTfjsExecutor } from '../src/runtime/engine/tfjs';
import { mulberry32, normal } from '../src/runtime/util/random';
import { mib, printTable } from './table';
import { throughput } from './timing';

/**
 * TRIPLEX throughput (BC1 preset, 250 genes, d = 512) in the three settings of the issue, beside
 * the PyTorch implementation of the same configuration (bench/torch_triplex.py, run in the same
 * invocation): frozen-target training (batch 128 from two 300-spot slides, the global encoder over
 * both slides every step, Adam), whole-slide inference (600 spots, global encoder once, batches of
 * 256), and full fine-tuning (batch 16, the ResNet18 trunk trained with everything else). The one
 * model (models/triplex.ts) on each executor: onnxruntime, and the engine's TF.js interpreter
 * (the fallback).
 */

const GENES = 250;
const DIM = 512;

interface Timing { mean: number; best: number; note?: string }

const timedAsync = (spots: number, iterations: number, step: () => Promise<unknown>): Promise<Timing> => throughput(spots, iterations, step);

type ExecutorKind = 'ort' | 'tfjs';

async function learnerOn(kind: ExecutorKind, trunk?: 'full'): Promise<EngineLearner> {
  let executor = createTfjsExecutor();
  if (kind === 'ort') {
    const e = await ortExecutor();
    if ('unavailable' in e) throw new Error(`onnxruntime is unavailable: ${e.unavailable}`);
    executor = e;
  }
  return new EngineLearner(triplexConfig({ preset: 'bc1', genes: GENES }), executor, 0, trunk ? { mode: trunk } : undefined);
}

/** Mode full: batch 16 (8 spots of each of two 300-spot slides) in one graph, the whole ResNet18 trained. */
export async function benchFullTrainingEngine(iterations: number, kind: ExecutorKind = 'ort'): Promise<Timing> {
  const learner = await learnerOn(kind, 'full');
  const random = mulberry32(9);
  const slides = [sectionInputs('S1', 20, 15, 5), sectionInputs('S2', 20, 15, 6)];
  for (const s of slides) s.crops = Uint8Array.from({ length: s.n * 224 * 224 * 3 }, () => Math.floor(random() * 256));
  let step = 0;
  const r = await timedAsync(16, iterations, () => {
    const picks = slides.flatMap((section, k) => epochBatches([section], 8, 10 * step + k)[0]);
    step++;
    return learner.trainBatch(picks, { learningRate: 1e-4, dropoutSeed: step, augment: mulberry32(step) });
  });
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

const describeGraphs = async (learner: EngineLearner) => {
  const graphs = await learner.compiled();
  return graphs.map((g) => `${g.key}: ${g.nodes} nodes, session ${g.buildMs.toFixed(0)} ms`).join('; ');
};

/** The trainer's step: the whole batch of 128 (64 of each of two 300-spot slides) in one graph. */
export async function benchFrozenTrainingEngine(iterations: number, kind: ExecutorKind = 'ort'): Promise<Timing> {
  const learner = await learnerOn(kind);
  const slides = [sectionInputs('S1', 20, 15, 1), sectionInputs('S2', 20, 15, 2)];
  let step = 0;
  const r = await timedAsync(128, iterations, () => {
    const picks = slides.flatMap((section, k) => epochBatches([section], 64, 10 * step + k)[0]);
    step++;
    return learner.trainBatch(picks, { learningRate: 1e-4, dropoutSeed: step, augment: mulberry32(step) });
  });
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

/** Whole-slide inference: the global encoder over 600 spots once, then batches of 256 (learner.predict). */
export async function benchInferenceEngine(iterations: number, kind: ExecutorKind = 'ort'): Promise<Timing> {
  const learner = await learnerOn(kind);
  const section = sectionInputs('S', 24, 25, 4);
  const data = { storeDir: '', featuresDir: '', genes: [], hasCounts: false, dim: DIM, sections: new Map([['S', section]]) };
  const r = await timedAsync(section.n, iterations, () => learner.predict(data, [section]));
  r.note = await describeGraphs(learner);
  await learner.dispose();
  return r;
}

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

interface TorchTriplex { spotsPerSecond: number; best: number; threads: number; blas: string; peakRssMiB: number; torch?: string }

function torchPeer(mode: string, iterations: number, threads: number): TorchTriplex | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [path.join(__dirname, '..', 'bench', 'torch_triplex.py'), mode, String(iterations), String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) return `not run: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as TorchTriplex;
}

/**
 * The three settings, ours then PyTorch's, one table: the engine's graphs on onnxruntime and on
 * the TF.js interpreter (the fallback). BENCH_TRIPLEX picks settings; BENCH_ENGINES=ort,tfjs picks
 * executors (default both).
 */
export async function benchTriplex(report: ComputeReport, iterations: number): Promise<void> {
  const tfjs = `tfjs-${report.backend}`;
  const settings = [
    { name: 'frozen-target training (batch 128 in one graph, 2 x 300-spot slides)', mode: 'frozen', run: benchFrozenTrainingEngine, targets: { ort: 1.2, tfjs: 0.8 } },
    { name: 'whole-slide inference (600 spots)', mode: 'inference', run: benchInferenceEngine, targets: { ort: 2.0, tfjs: 1.0 } },
    { name: 'full fine-tuning (batch 16 crops in one graph, ResNet18 trained)', mode: 'full', run: benchFullTrainingEngine, targets: { ort: 1.0, tfjs: undefined } },
  ].flatMap((x) => (['ort', 'tfjs'] as const).map((kind) => ({ ...x, kind, engine: kind === 'ort' ? 'ort' : tfjs, target: x.targets[kind] })));
  const engines = (process.env.BENCH_ENGINES ?? 'ort,tfjs').split(',');
  const peers = new Map<string, TorchTriplex | string>();
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  const chosen = (process.env.BENCH_TRIPLEX ?? 'frozen,inference,full').split(',');
  for (const s of settings.filter((x) => chosen.includes(x.mode) && engines.includes(x.kind))) {
    console.log(`triplex: ${s.name} on ${s.engine}...`);
    const ours = await s.run(iterations, s.kind);
    if (!peers.has(s.mode)) peers.set(s.mode, torchPeer(s.mode, iterations, report.threads));
    const peer = peers.get(s.mode)!;
    const ratio = typeof peer === 'string' ? NaN : ours.mean / peer.spotsPerSecond;
    rows.push([s.name, s.engine, ours.mean, ours.best, typeof peer === 'string' ? '-' : peer.spotsPerSecond, Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : '-', s.target ? `${s.target}x` : '-']);
    console.log(`  ours ${ours.mean.toFixed(2)} spots/s (best ${ours.best.toFixed(2)}), PyTorch ${typeof peer === 'string' ? peer : peer.spotsPerSecond.toFixed(2)}`);
    if (ours.note) notes.push(`${s.mode} on ${s.engine}: graphs built: ${ours.note}`);
    if (typeof peer === 'string') notes.push(`PyTorch peer (${s.mode}): ${peer}`);
    else if (s.target !== undefined) notes.push(`${s.mode} on ${s.engine}: ${ratio >= s.target ? 'meets' : 'BELOW'} the target of ${s.target}x PyTorch (${peer.blas} BLAS, ${peer.threads} threads)`);
  }
  printTable(`TRIPLEX BC1 throughput (spots/s), ${report.threads} thread(s) vs PyTorch; peak RSS ${mib(process.resourceUsage().maxRSS * 1024).toFixed(0)} MiB`,
    ['setting', 'engine', 'ours', 'ours best', 'PyTorch', 'ratio', 'target'], rows);
  for (const n of notes) console.log(n);
}
