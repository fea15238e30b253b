import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ComputeReport } from '../src/runtime/compute/backend';
import { DropoutStreams } from '../src/runtime/engine/dropout';
import type { Executor } from '../src/runtime/engine/executor';
import { Graph, type Sym } from '../src/runtime/engine/graph';
import { LayerNorm, Linear, ParamTable, TransformerBlock, type Mode } from '../src/runtime/engine/nn';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { compileTrainStep, initialState } from '../src/runtime/engine/step';
import { createTfjsExecutor } from '../src/runtime/engine/tfjs';
import { mulberry32 } from '../src/runtime/util/random';
import { printTable } from './table';
import { throughput } from './timing';

/**
 * The engine room's first figure: BC1's neighbor encoder (4 blocks, d 512, 4 heads, mlp 4,
 * dropout 0.3, relative bias, masked keys, final LayerNorm) and a Linear(512, 250) head on the
 * tokens' mean, MSE loss, Adam: one training step over 128 spots (3,200 tokens), and inference,
 * defined once and run on onnxruntime and on TF.js, beside bench/torch_engine.py (the same module
 * from the PyTorch reference) in the same invocation.
 */

const D = 512;
const GENES = 250;
const TOKENS = 25;

function neighborModel(table: ParamTable, batch: number) {
  const blocks = Array.from({ length: 4 }, (_, i) => new TransformerBlock(table, `neighbor.blocks.${i}`, { dim: D, heads: 4, mlpRatio: 4, dropout: 0.3, relativePositionBias: true }));
  const norm = new LayerNorm(table, 'neighbor.norm', D);
  const head = new Linear(table, 'fc_neighbor', D, GENES);
  return (g: Graph, mode: Mode): { out: Sym; loss: Sym } => {
    let x = g.input('x', [batch, TOKENS, D]);
    const keep = g.input('mask', [batch, TOKENS]);
    for (const b of blocks) x = b.apply(g, x, mode, keep);
    const out = head.apply(g, g.mean(norm.apply(g, x), [1])); // [B, genes]
    const err = g.sub(out, g.input('y', [batch, GENES]));
    return { out, loss: g.mean(g.square(err), [0, 1]) };
  };
}

interface Figures { train: number; trainBest: number; inference: number; inferenceBest: number; buildMs: number; nodes: number }

async function measure(executor: Executor, batch: number, iterations: number): Promise<Figures> {
  const table = new ParamTable(0);
  const model = neighborModel(table, batch);
  const random = mulberry32(1);
  const feeds = {
    x: Float32Array.from({ length: batch * TOKENS * D }, () => random() * 2 - 1),
    mask: Float32Array.from({ length: batch * TOKENS }, (_, i) => (i % TOKENS === 12 || random() > 0.2 ? 1 : 0)),
    y: Float32Array.from({ length: batch * GENES }, () => random() * 2 - 1),
  };
  const t0 = performance.now();
  const step = await compileTrainStep(executor, (g) => model(g, 'train').loss);
  const buildMs = performance.now() - t0;
  const state = initialState(table.initialValues());
  const timed = async (run: () => Promise<unknown>) => {
    const r = await throughput(batch, iterations, run);
    return [r.mean, r.best];
  };
  const streams = new DropoutStreams();
  streams.reseed(1, table.dropoutLayers);
  const [train, trainBest] = await timed(() => step.run(state, feeds, 1e-4, streams));
  const nodes = step.program.nodeCount;
  await step.program.dispose();

  const g = new Graph('float32');
  const { out } = model(g, 'inference');
  const predict = await executor.compile({ out }, 'predict');
  const params = Object.fromEntries([...g.params().keys()].map((n) => [`param:${n}`, state.params.get(n) as Float32Array]));
  const [inference, inferenceBest] = await timed(() => predict.run({ ...params, x: feeds.x, mask: feeds.mask }));
  await predict.dispose();
  return { train, trainBest, inference, inferenceBest, buildMs, nodes };
}

function torchPeer(batch: number, iterations: number, threads: number): Record<string, number | string> | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [path.join(__dirname, '..', 'bench', 'torch_engine.py'), String(batch), String(iterations), String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) return `not run: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as Record<string, number | string>;
}

export async function benchEngine(report: ComputeReport, iterations: number): Promise<void> {
  const batch = 128;
  const threads = os.availableParallelism();
  const rows: (string | number)[][] = [];
  const ort = await createOrtExecutor({ threads });
  let ours: Figures | undefined;
  if ('unavailable' in ort) console.log(`onnxruntime engine: unavailable (${ort.unavailable})`);
  else {
    ours = await measure(ort, batch, iterations);
    rows.push([ort.describe(), ours.train, ours.trainBest, ours.inference, ours.inferenceBest, `${ours.nodes} nodes, ${ours.buildMs.toFixed(0)} ms`]);
  }
  if (process.env.BENCH_ENGINE_TFJS) {
    const tf = await measure(createTfjsExecutor(), batch, 1);
    rows.push([`TF.js engine (${report.backend})`, tf.train, tf.trainBest, tf.inference, tf.inferenceBest, '-']);
  }
  const torch = torchPeer(batch, iterations, report.threads);
  if (typeof torch !== 'string') rows.push([`PyTorch ${torch.torch} (${torch.blas}, ${torch.threads} threads)`, torch.train as number, torch.trainBest as number, torch.inference as number, torch.inferenceBest as number, '-']);
  printTable(`Engine: BC1 neighbor encoder + head, batch ${batch} spots x 25 tokens (spots/s)`, ['engine', 'train', 'train best', 'inference', 'inf best', 'step graph'], rows);
  if (typeof torch === 'string') console.log(`PyTorch peer: ${torch}`);
  else if (ours) console.log(`ratio to PyTorch: training ${(ours.train / (torch.train as number)).toFixed(2)}x, inference ${(ours.inference / (torch.inference as number)).toFixed(2)}x`);
}
