import { initCompute } from '../src/runtime/compute/backend';
import { printTable } from './table';
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
import { benchPredictScale, predictChild } from './predictScale.bench';
import { benchVisium } from './visium.bench';

/**
 * `npm run bench`: throughput and memory of the compute layer, printed beside a PyTorch peer
 * run on the same machine in the same invocation (Debian's torch; see docs for OpenBLAS).
 * Environment: BENCH_ITERATIONS (default 3), BENCH_TRIPLEX=frozen,inference,full (a subset), BENCH_ONLY=<parts>, BENCH_SKIP_TORCH=1, TRIPLEX_BACKEND,
 * TRIPLEX_THREADS, BENCH_BASELINES=stnet,histogene,hist2st,egn,bleep (a subset), BENCH_BASELINES_PRESET=demo.
 */

/**
 * BENCH_ONLY=crops,wsi,features,data,engine,engine-resnet,triplex,global-scale,predict-scale,visium,kernel,viewer,viewer-wsi,baselines runs only
 * those parts (default: all but baselines and predict-scale, in this order). `baselines` (the five published models at
 * their paper sizes beside PyTorch, 15-20 minutes on 2 cores) runs only when named: BENCH_ONLY=baselines;
 * so does `predict-scale`, which writes a 7.6 GB features file to the temporary folder.
 */
const PARTS = ['crops', 'wsi', 'features', 'data', 'engine', 'engine-resnet', 'triplex', 'global-scale', 'predict-scale', 'visium', 'kernel', 'viewer', 'viewer-wsi', 'baselines'] as const;
const DEFAULT_PARTS = PARTS.filter((p) => p !== 'baselines' && p !== 'predict-scale');
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
  if (wants('predict-scale')) await benchPredictScale();
  if (wants('visium')) await benchVisium();
  if (wants('kernel')) await benchKernel();
  if (wants('viewer')) await benchViewer();
  if (wants('viewer-wsi')) await benchViewerWholeSlide();
  if (wants('baselines')) await benchBaselines(iterations);
}

const child = process.argv.indexOf('--extract-child');
const baseline = process.argv.indexOf('--baseline-child');
const global = process.argv.indexOf('--global-child');
const predict = process.argv.indexOf('--predict-child');
const run = child >= 0 ? () => extractChild(process.argv[child + 1], process.argv[child + 2]?.split(','))
  : baseline >= 0 ? () => baselineChild(process.argv[baseline + 1], process.argv[baseline + 2])
  : global >= 0 ? () => globalChild(Number(process.argv[global + 1]), process.argv[global + 2] === 'whole')
  : predict >= 0 ? () => predictChild(process.argv[predict + 1], process.argv[predict + 2] === 'whole') : main;
run().then(() => process.exit(0), (e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
