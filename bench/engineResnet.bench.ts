import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Graph, type Sym } from '../src/runtime/engine/graph';
import { Linear, ParamTable } from '../src/runtime/engine/nn';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { compileTrainStep, initialState } from '../src/runtime/engine/step';
import { ResNet18Trunk } from '../src/runtime/models/resnet18';
import { mulberry32, normal } from '../src/runtime/util/random';
import { printTable } from './table';
import { throughput } from './timing';
import { DropoutStreams } from '../src/runtime/engine/dropout';

/**
 * The ResNet18 trunk on the engine (onnxruntime): TRIPLEX's `full` training step (batch 16,
 * 224x224, train-mode batch norm with running statistics, the pooled features through a
 * Linear(512, 250) head, MSE, Adam over trunk and head, compiled into one graph) and inference
 * (running statistics, pooled features), beside bench/torch_resnet18.py doing the same work in
 * the same invocation. TRIPLEX_PROFILE=<dir> writes onnxruntime's profile of the step there.
 */

const BATCH = 16;
const SIZE = 224;
const GENES = 250;

interface TorchResult { forward: number; forwardBest: number; train: number; trainBest: number; threads: number; torch: string; blas: string }

function torchPeer(threads: number, iterations: number): TorchResult | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [path.join(__dirname, '..', 'bench', 'torch_resnet18.py'), String(BATCH), String(SIZE), String(iterations), String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) return `not run: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as TorchResult;
}

const timed = async (iterations: number, run: () => Promise<unknown>): Promise<[number, number]> => {
  const r = await throughput(BATCH, iterations, run);
  return [r.mean, r.best];
};

export async function benchEngineResnet(iterations: number): Promise<void> {
  const threads = Number(process.env.TRIPLEX_THREADS) || os.availableParallelism();
  const ort = await createOrtExecutor({ threads });
  if ('unavailable' in ort) {
    console.log(`engine-resnet: onnxruntime unavailable (${ort.unavailable})`);
    return;
  }
  const trunk = new ResNet18Trunk();
  const table = new ParamTable(1);
  const head = new Linear(table, 'head', 512, GENES);
  const init = trunk.initialValues(0);
  const random = mulberry32(2);
  const x = normal(random, BATCH * 3 * SIZE * SIZE);
  const y = normal(random, BATCH * GENES);
  const pooled = (g: Graph, mode: 'train' | 'inference'): Sym => g.mean(trunk.apply(g, g.input('x', [BATCH, 3, SIZE, SIZE]), mode), [2, 3]); // [B, 512]

  const t0 = performance.now();
  const step = await compileTrainStep(ort, (g) => {
    const err = g.sub(head.apply(g, pooled(g, 'train')), g.input('y', [BATCH, GENES])); // [B, genes]
    return g.mean(g.square(err), [0, 1]);
  });
  const buildMs = performance.now() - t0;
  const state = { ...initialState(new Map([...init.params, ...table.initialValues()])), buffers: init.buffers };
  const [train, trainBest] = await timed(iterations, () => step.run(state, { x, y }, 1e-4, new DropoutStreams()));
  const nodes = step.program.nodeCount;
  await step.program.dispose();

  const g = new Graph('float32');
  const predict = await ort.compile({ out: pooled(g, 'inference') }, 'predict');
  const feeds: Record<string, Float32Array> = { x };
  for (const n of g.params().keys()) feeds[`param:${n}`] = state.params.get(n) as Float32Array;
  for (const n of g.buffers().keys()) feeds[`buffer:${n}`] = state.buffers.get(n) as Float32Array;
  const [forward, forwardBest] = await timed(iterations, () => predict.run(feeds));
  await predict.dispose();

  const rows: (string | number)[][] = [[ort.describe(), forward, forwardBest, train, trainBest, `${nodes} nodes, ${buildMs.toFixed(0)} ms`]];
  const torch = torchPeer(threads, iterations);
  if (typeof torch !== 'string') rows.push([`PyTorch ${torch.torch} (${torch.blas}, ${torch.threads} threads)`, torch.forward, torch.forwardBest, torch.train, torch.trainBest, '-']);
  printTable(`Engine: ResNet18 trunk, ${SIZE}x${SIZE}, batch ${BATCH} (images/s); training = full mode + Linear(512, ${GENES}) head, MSE, Adam`,
    ['engine', 'forward', 'fwd best', 'train', 'train best', 'step graph'], rows);
  if (typeof torch === 'string') console.log(`PyTorch peer: ${torch}`);
  else console.log(`ratio to PyTorch: training ${(train / torch.train).toFixed(2)}x, forward ${(forward / torch.forward).toFixed(2)}x`);
}
