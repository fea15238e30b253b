import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initCompute, type ComputeReport } from '../src/runtime/compute/backend';
import { benchForward, benchTrainingStep, createResNet18 } from './resnet18.bench';
import { mib, printTable } from './table';
import { benchCrops, printCropBench } from './crops.bench';
import { benchWsi, printWsiBench } from './wsi.bench';
import { benchFeatureEncoders } from './features.bench';
import { benchData, extractChild } from './data.bench';
import { benchTriplex } from './triplex.bench';
import { benchKernel } from './kernel.bench';
import { benchViewer } from './viewer.bench';
import { benchViewerWholeSlide } from './viewerWsi.bench';
import { benchEngine } from './engine.bench';
import { benchEngineResnet } from './engineResnet.bench';
import { baselineChild, benchBaselines } from './baselines.bench';
import { benchGlobalScale, globalChild } from './globalScale.bench';
import { benchVisium } from './visium.bench';

/**
 * `npm run bench`: throughput and memory of the compute layer, printed beside a PyTorch peer
 * run on the same machine in the same invocation (Debian's torch; see docs for OpenBLAS).
 * Environment: BENCH_ITERATIONS (default 3), BENCH_TRIPLEX=frozen,inference,full (a subset), BENCH_ONLY=<parts>, BENCH_SKIP_TORCH=1, TRIPLEX_BACKEND,
 * TRIPLEX_THREADS, BENCH_BASELINES=stnet,histogene,hist2st,egn,bleep (a subset), BENCH_BASELINES_PRESET=demo.
 */

const BATCH = 16;
const SIZE = 224;
/** Targets from the foundation issue, for the wasm backend on 2 cores. */
const TARGETS = { forward: 12, train: 2 };

interface TorchResult { forward: number; train: number; threads: number; torch: string; blas: string; peakRssBytes: number }

function runTorchPeer(threads: number, iterations: number): TorchResult | string {
  if (process.env.BENCH_SKIP_TORCH) return 'skipped (BENCH_SKIP_TORCH)';
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const script = path.join(__dirname, '..', 'bench', 'torch_resnet18.py');
  const r = spawnSync(python, [script, String(BATCH), String(SIZE), String(iterations), String(threads)], { encoding: 'utf8' });
  if (r.status !== 0) {
    const why = (r.stderr || r.error?.message || '').trim().split('\n').pop();
    return `not run: ${why} (apt-get install python3-torch python3-torchvision libopenblas0-pthread)`;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as TorchResult;
}

/**
 * BENCH_ONLY=crops,wsi,resnet18,features,data,engine,engine-resnet,triplex,global-scale,visium,kernel,viewer,viewer-wsi,baselines runs only
 * those parts (default: all but baselines, in this order). `baselines` (the five published models at
 * their paper sizes beside PyTorch, 15-20 minutes on 2 cores) runs only when named: BENCH_ONLY=baselines.
 */
const PARTS = ['crops', 'wsi', 'resnet18', 'features', 'data', 'engine', 'engine-resnet', 'triplex', 'global-scale', 'visium', 'kernel', 'viewer', 'viewer-wsi', 'baselines'] as const;
const DEFAULT_PARTS = PARTS.filter((p) => p !== 'baselines');
const only = (process.env.BENCH_ONLY ?? DEFAULT_PARTS.join(',')).split(',').map((p) => p.trim());
const unknown = only.filter((p) => !(PARTS as readonly string[]).includes(p));
if (unknown.length) throw new Error(`BENCH_ONLY: unknown part ${unknown.join(', ')}; the parts are ${PARTS.join(', ')}`);
const wants = (part: (typeof PARTS)[number]) => only.includes(part);

async function main(): Promise<void> {
  const iterations = Number(process.env.BENCH_ITERATIONS ?? 3);
  const report = await initCompute();
  console.log(`TRIPLEX bench (${only.join(', ')}): ${iterations} timed iterations after one warm-up`);
  console.log(`backend ${report.backend} ${report.version}, ${report.threads} thread(s)${report.simd ? ', SIMD' : ''}; node ${report.node}`);

  // Crops first, so that their memory figures are not inflated by the models below.
  if (wants('crops')) printCropBench(await benchCrops({ iterations }));
  if (wants('wsi')) printWsiBench(await benchWsi());
  if (wants('resnet18')) benchResNet18(report, iterations);
  if (wants('features')) {
    const features = await benchFeatureEncoders();
    printTable(features.title, features.header, features.rows);
    for (const note of features.notes) console.log(note);
  }
  if (wants('data')) await benchData();
  if (wants('engine')) await benchEngine(report, iterations);
  if (wants('engine-resnet')) await benchEngineResnet(iterations);
  if (wants('triplex')) await benchTriplex(report, iterations);
  if (wants('global-scale')) benchGlobalScale();
  if (wants('visium')) await benchVisium();
  if (wants('kernel')) await benchKernel();
  if (wants('viewer')) await benchViewer();
  if (wants('viewer-wsi')) await benchViewerWholeSlide();
  if (wants('baselines')) await benchBaselines(iterations);
}

/** ResNet18 forward and training step at 224x224, batch 16, beside the PyTorch peer. */
function benchResNet18(report: ComputeReport, iterations: number): void {
  const net = createResNet18({ seed: 0 });
  const forward = benchForward(net, BATCH, SIZE, iterations);
  const train = benchTrainingStep(net, BATCH, SIZE, iterations);
  net.dispose();
  const ourPeak = process.resourceUsage().maxRSS * 1024;

  const torch = runTorchPeer(report.threads, iterations);
  const rows: (string | number)[][] = [
    [`TRIPLEX tfjs-${report.backend}`, forward.imagesPerSecond, forward.best, train.imagesPerSecond, train.best, mib(ourPeak), report.backend === 'wasm' ? mib(train.backendBytes) : '-'],
  ];
  if (typeof torch !== 'string') {
    rows.push([`PyTorch ${torch.torch} (${torch.blas} BLAS)`, torch.forward, '-', torch.train, '-', mib(torch.peakRssBytes), '-']);
  }
  printTable(`ResNet18 throughput (images/s, ${SIZE}x${SIZE}, batch ${BATCH}) and peak memory (MiB)`,
    ['engine', 'forward', 'fwd best', 'train step', 'train best', 'peak RSS', 'wasm heap'], rows);
  if (typeof torch === 'string') console.log(`PyTorch peer: ${torch}`);
  else {
    console.log(`ratio to PyTorch: forward ${(forward.imagesPerSecond / torch.forward).toFixed(2)}x, training ${(train.imagesPerSecond / torch.train).toFixed(2)}x` +
      (torch.blas === 'reference' ? ' (PyTorch on the reference BLAS is not a fair peer: apt-get install libopenblas0-pthread)' : ''));
  }
  if (report.backend === 'wasm') {
    const ok = (v: number, t: number) => (v >= t ? `meets ${t}` : `BELOW the target of ${t}`);
    console.log(`targets on wasm: forward ${forward.imagesPerSecond.toFixed(1)} img/s ${ok(forward.imagesPerSecond, TARGETS.forward)}; ` +
      `training ${train.imagesPerSecond.toFixed(2)} img/s ${ok(train.imagesPerSecond, TARGETS.train)}; wasm heap ${mib(train.backendBytes).toFixed(0)} MiB of 4096`);
  }
  console.log(`tensors leaked over the timed iterations: forward ${forward.tensorsLeaked}, training ${train.tensorsLeaked}`);
}

const child = process.argv.indexOf('--extract-child');
const baseline = process.argv.indexOf('--baseline-child');
const global = process.argv.indexOf('--global-child');
const run = child >= 0 ? () => extractChild(process.argv[child + 1], process.argv[child + 2]?.split(','))
  : baseline >= 0 ? () => baselineChild(process.argv[baseline + 1], process.argv[baseline + 2])
  : global >= 0 ? () => globalChild(Number(process.argv[global + 1]), process.argv[global + 2] === 'whole') : main;
run().then(() => process.exit(0), (e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
