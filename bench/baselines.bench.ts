import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BLEEP_PRESETS } from '../src/runtime/baselines/bleep';
import { EGN_PRESETS } from '../src/runtime/baselines/egn';
import { HIST2ST_PRESETS } from '../src/runtime/baselines/hist2st';
import { hist2stAdjacency } from '../src/runtime/baselines/hist2stHost';
import { HISTOGENE_PRESETS } from '../src/runtime/baselines/histogene';
import { BASELINES, declareInputs, type BaselineName, type BaselineNet, type InputName } from '../src/runtime/baselines/model';
import { baselineLabel, createBaselineNet, type BaselinePreset } from '../src/runtime/baselines/registry';
import { STNET_PRESETS } from '../src/runtime/baselines/stnet';
import { DropoutStreams } from '../src/runtime/engine/dropout';
import { Graph, type HostArray } from '../src/runtime/engine/graph';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { compileTrainStep, initialState } from '../src/runtime/engine/step';
import { mulberry32, normal } from '../src/runtime/util/random';
import { mib, printTable } from './table';
import { benchChild, throughput } from './timing';

/**
 * The five published baselines (ST-Net, HisToGene, Hist2ST, EGN, BLEEP) at their PAPER presets on
 * the native engine (onnxruntime, graphs from our autodiff), beside a PyTorch implementation of
 * the same configuration (bench/torch_baselines.py, the parity tests' reference models) run in the
 * same invocation with as many threads:
 * - training: spots/s of one optimiser step (forward, loss, backward, Adam lr 1e-4; dropout masks
 *   and batch statistics as in training): spot models (ST-Net, EGN, BLEEP) a batch of 16 crops of
 *   224 px (EGN with K = 9 exemplars of 512-d features, 250 genes); section models (HisToGene,
 *   Hist2ST) one section of 128 spots, fewer than the paper's sections of 300-700 spots;
 * - inference: spots/s of the predict graph, a batch of 64 for spot models and the same 128-spot
 *   section for section models. BLEEP's inference is the projected image embedding only: the
 *   retrieval (reference embeddings, cosine top-k on the host) is not timed.
 * The batch's inputs are made once and fed to every step on both sides (host-side input assembly,
 * crop augmentation and EGN's exemplar retrieval are not timed; Hist2ST's augmented copies are fed
 * to both, and the host time to make them is printed as a note). One warm-up step, then
 * BENCH_ITERATIONS timed ones. Each model runs in a child process on each side, so the peak RSS
 * printed is that model's.
 *
 * Not in the default parts: the five paper models took 17.7 minutes on 2 cores (both sides, with
 * another job holding the load at 4.5-7; less on a quiet machine, but well over the default run's
 * budget), and the ours side peaks at 12.6 GB (EGN). Run it with BENCH_ONLY=baselines npm run bench;
 * BENCH_BASELINES=stnet,hist2st picks models, BENCH_BASELINES_PRESET=demo runs the demo presets
 * (about a minute and a half: a quick check of the machinery).
 */

const GENES = 250;
const FEATURE_DIM = 512;
const SPOT_TRAIN_BATCH = 16;
const SPOT_INFER_BATCH = 64;
const SECTION_SPOTS = 128;

const PRESETS: Record<BaselineName, Record<BaselinePreset, object>> = {
  stnet: STNET_PRESETS, histogene: HISTOGENE_PRESETS, hist2st: HIST2ST_PRESETS, egn: EGN_PRESETS, bleep: BLEEP_PRESETS,
};

interface Setup { model: BaselineName; preset: BaselinePreset; config: object; trainSpots: number; inferSpots: number; unit: 'spot' | 'section' }

function setupOf(model: BaselineName, preset: BaselinePreset): Setup {
  const unit = model === 'histogene' || model === 'hist2st' ? 'section' : 'spot';
  return {
    model, preset, config: PRESETS[model][preset], unit,
    trainSpots: unit === 'spot' ? SPOT_TRAIN_BATCH : SECTION_SPOTS,
    inferSpots: unit === 'spot' ? SPOT_INFER_BATCH : SECTION_SPOTS,
  };
}

interface Figures {
  train: number; trainBest: number; inference: number; inferenceBest: number;
  /** onnxruntime session builds (graph recorded, differentiated, serialised, session created), ms. */
  trainBuildMs: number; predictBuildMs: number; nodes: number; parameters: number;
  peakRssBytes: number; engine: string; note?: string;
}

const threadsOf = () => Number(process.env.TRIPLEX_THREADS) || os.availableParallelism();

/**
 * Random inputs `names` for n spots of one section laid out as rows of 16 (a 128-spot section is
 * 8 x 16 spots), as the learner feeds them.
 */
function inputsFor(net: BaselineNet, n: number, names: readonly InputName[], random: () => number): Record<string, HostArray> {
  const G = net.dims.genes;
  const D = net.dims.featureDim;
  const K = net.exemplarCount ?? 0;
  const S = net.cropSize;
  const rows = Array.from({ length: n }, (_, i) => Math.floor(i / 16));
  const cols = Array.from({ length: n }, (_, i) => i % 16);
  const uniform = (count: number, scale: number) => Float32Array.from({ length: count }, () => random() * scale);
  const out: Record<string, HostArray> = {};
  for (const name of names) {
    if (name === 'crops') out.crops = Float32Array.from({ length: n * S * S * 3 }, () => Math.floor(random() * 256));
    else if (name === 'truth') out.truth = normal(random, n * G);
    else if (name === 'rows') out.rows = BigInt64Array.from(rows, BigInt);
    else if (name === 'cols') out.cols = BigInt64Array.from(cols, BigInt);
    else if (name === 'counts') out.counts = Float32Array.from({ length: n * G }, () => (random() > 0.4 ? Math.floor(random() * 9) : 0));
    else if (name === 'sizeFactors') out.sizeFactors = Float32Array.from({ length: n }, () => 0.5 + random());
    else if (name === 'adjacency') out.adjacency = hist2stAdjacency(rows, cols);
    else if (name === 'own') out.own = normal(random, n * D);
    else if (name === 'exemplars') out.exemplars = normal(random, n * K * D);
    else if (name === 'exemplarTargets') out.exemplarTargets = uniform(n * K * G, 3);
  }
  return out;
}

/** Ours, for one model, in this process (the child). */
async function measureOurs(s: Setup, iterations: number): Promise<Figures> {
  const ort = await createOrtExecutor({ threads: threadsOf() });
  if ('unavailable' in ort) throw new Error(`onnxruntime is unavailable: ${ort.unavailable}`);
  const net = createBaselineNet({ model: s.model, preset: s.preset, config: { ...s.config } }, { genes: GENES, featureDim: FEATURE_DIM }, 0);
  const random = mulberry32(1);
  const notes: string[] = [];

  const n = s.trainSpots;
  const feeds = inputsFor(net, n, net.needs, random);
  if (net.trainingFeeds) {
    const t = performance.now();
    Object.assign(feeds, net.trainingFeeds(feeds.crops as Float32Array, n, random));
    notes.push(`host augmentation ${(performance.now() - t).toFixed(0)} ms per step (not timed)`);
  }
  let t0 = performance.now();
  const step = await compileTrainStep(ort, (g) => net.loss(g, declareInputs(g, net, n)), undefined, `${net.name}_train_${n}`);
  const trainBuildMs = performance.now() - t0;
  const state = { ...initialState(net.table.initialValues()), buffers: net.initialBuffers?.() ?? new Map<string, Float32Array>() };
  const parameters = [...state.params.values()].reduce((a, p) => a + p.length, 0);
  const streams = new DropoutStreams();
  let seed = 0;
  const train = await throughput(n, iterations, () => {
    streams.reseed(++seed, net.table.dropoutLayers);
    return step.run(state, feeds, 1e-4, streams);
  });
  const nodes = step.program.nodeCount;
  await step.program.dispose();

  const m = s.inferSpots;
  const g = new Graph('float32');
  const out = net.predict(g, declareInputs(g, net, m));
  t0 = performance.now();
  const predict = await ort.compile({ out }, `${net.name}_predict_${m}`);
  const predictBuildMs = performance.now() - t0;
  const names = net.needs.filter((x) => x !== 'truth' && x !== 'counts' && x !== 'sizeFactors');
  const inferFeeds: Record<string, HostArray> = m === n && s.unit === 'section' ? Object.fromEntries(names.map((x) => [x, feeds[x]])) : inputsFor(net, m, names, random);
  for (const p of g.params().keys()) inferFeeds[`param:${p}`] = state.params.get(p) as Float32Array;
  for (const b of g.buffers().keys()) inferFeeds[`buffer:${b}`] = state.buffers.get(b) as Float32Array;
  const inference = await throughput(m, iterations, () => predict.run(inferFeeds));
  await predict.dispose();
  return {
    train: train.mean, trainBest: train.best, inference: inference.mean, inferenceBest: inference.best,
    trainBuildMs, predictBuildMs, nodes, parameters, peakRssBytes: process.resourceUsage().maxRSS * 1024, engine: ort.describe(),
    note: notes.join('; ') || undefined,
  };
}

/** `node dist/bench.js --baseline-child '<setup json>' <iterations>`: prints ours' figures as one JSON line. */
export async function baselineChild(setupJson: string, iterations: string): Promise<void> {
  console.log(JSON.stringify(await measureOurs(JSON.parse(setupJson) as Setup, Number(iterations))));
}

const lastLine = (text: string) => text.trim().split('\n').pop() ?? '';

function runOurs(s: Setup, iterations: number): Figures | string {
  return benchChild<Figures>(['--baseline-child', JSON.stringify(s), String(iterations)], { maxBuffer: 64 * 2 ** 20, stderrLines: 1 });
}

interface TorchFigures { train: number; trainBest: number; inference: number; inferenceBest: number; parameters: number; threads: number; torch: string; blas: string; peakRssBytes: number }

function runTorch(s: Setup, iterations: number): TorchFigures | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const spec = { model: s.model, config: s.config, genes: GENES, featureDim: FEATURE_DIM, trainSpots: s.trainSpots, inferSpots: s.inferSpots, iterations, threads: threadsOf() };
  const r = spawnSync(python, [path.join(__dirname, '..', 'bench', 'torch_baselines.py'), JSON.stringify(spec)], { encoding: 'utf8' });
  if (r.status !== 0) return `not run: ${lastLine(r.stderr || r.error?.message || `exit ${r.status ?? r.signal}`)}`;
  return JSON.parse(lastLine(r.stdout)) as TorchFigures;
}

export async function benchBaselines(iterations: number): Promise<void> {
  const chosen = (process.env.BENCH_BASELINES ?? BASELINES.join(',')).split(',').map((x) => x.trim());
  const unknown = chosen.filter((x) => !(BASELINES as readonly string[]).includes(x));
  if (unknown.length) throw new Error(`BENCH_BASELINES: unknown model ${unknown.join(', ')}; the baselines are ${BASELINES.join(', ')}`);
  const preset: BaselinePreset = process.env.BENCH_BASELINES_PRESET === 'demo' ? 'demo' : 'paper';
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  let engine = '';
  let peer = '';
  for (const model of BASELINES.filter((x) => chosen.includes(x))) {
    const s = setupOf(model, preset);
    const label = baselineLabel(model);
    const sizes = s.unit === 'spot' ? `batch ${s.trainSpots} / ${s.inferSpots}` : `section ${s.trainSpots}`;
    console.log(`baselines: ${label} (${preset} preset, ${sizes}) on onnxruntime...`);
    const ours = runOurs(s, iterations);
    if (typeof ours !== 'string') {
      engine = ours.engine;
      console.log(`  ours: train ${ours.train.toFixed(2)} spots/s (best ${ours.trainBest.toFixed(2)}), inference ${ours.inference.toFixed(2)} (best ${ours.inferenceBest.toFixed(2)}); ` +
        `sessions ${(ours.trainBuildMs / 1000).toFixed(1)} s + ${(ours.predictBuildMs / 1000).toFixed(1)} s; ${ours.parameters.toLocaleString('en')} parameters`);
      if (ours.note) notes.push(`${label}: ${ours.note}`);
    } else {
      console.log(`  ours: ${ours}`);
      notes.push(`${label} on onnxruntime: ${ours}`);
    }
    console.log(`baselines: ${label} on PyTorch...`);
    const torch = runTorch(s, iterations);
    if (typeof torch !== 'string') {
      peer = `PyTorch ${torch.torch} (${torch.blas} BLAS, ${torch.threads} threads)`;
      console.log(`  PyTorch: train ${torch.train.toFixed(2)} spots/s (best ${torch.trainBest.toFixed(2)}), inference ${torch.inference.toFixed(2)} (best ${torch.inferenceBest.toFixed(2)})`);
      if (typeof ours !== 'string' && torch.parameters !== ours.parameters) notes.push(`${label}: PyTorch's model has ${torch.parameters.toLocaleString('en')} parameters, ours ${ours.parameters.toLocaleString('en')}`);
    } else {
      console.log(`  PyTorch: ${torch}`);
      notes.push(`PyTorch peer (${label}): ${torch}`);
    }
    const o = typeof ours === 'string' ? undefined : ours;
    const t = typeof torch === 'string' ? undefined : torch;
    rows.push([
      label, sizes,
      o?.train ?? '-', t?.train ?? '-', o && t ? ratio(o.train, t.train) : '-',
      o?.inference ?? '-', t?.inference ?? '-', o && t ? ratio(o.inference, t.inference) : '-',
      o ? `${(o.trainBuildMs / 1000).toFixed(1)} + ${(o.predictBuildMs / 1000).toFixed(1)}` : '-',
      o ? mib(o.peakRssBytes) : '-', t ? mib(t.peakRssBytes) : '-',
    ]);
  }
  printTable(`Baselines, ${preset} presets, ${GENES} genes (spots/s; ratio = ours / PyTorch): ${engine || 'onnxruntime'} vs ${peer || 'PyTorch'}`,
    ['model', 'spots (train / inference)', 'train ours', 'train PyTorch', 'ratio', 'inf ours', 'inf PyTorch', 'ratio', 'sessions (s)', 'RSS ours', 'RSS PyTorch'], rows);
  console.log(`sessions: onnxruntime session builds of the training step + the predict graph (not in the figures); RSS: peak MiB of each side's process for that model.`);
  console.log(`section models (HisToGene, Hist2ST): one section of ${SECTION_SPOTS} spots (the paper's have 300-700); BLEEP inference = projected image embeddings (retrieval not timed).`);
  for (const n of notes) console.log(n);
}
