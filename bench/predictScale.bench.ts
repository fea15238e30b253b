import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { triplexConfig } from '../src/runtime/models/triplexConfig';
import { ALL_VIEWS } from '../src/runtime/train/cv';
import { STREAM_FEATURES_BYTES, loadTrainingData } from '../src/runtime/train/data';
import { EngineLearner } from '../src/runtime/train/engineLearner';
import { writeFeatureStore } from '../test/unit/helpers/featureFiles';
import { mib, printTable } from './table';
import { benchChild, peakRss } from './timing';

/**
 * Full TRIPLEX prediction over whole-slide spot counts (issue 16): a store of one section of N
 * spots on a square grid and its features file (d 512: the global feature, 25 neighbour
 * features and mask, 49 target tokens a spot, about 151 kB; 7.6 GB at 50,000 spots) written in
 * record batches of 256 spots through the writer `triplex extract` uses, random finite values,
 * in the bench's temporary folder and deleted after. Prediction as `triplex predict` runs it
 * (features past STREAM_FEATURES_BYTES read by spot range; demo preset, three views, fresh
 * weights: time does not depend on them) in a child process of its own reporting its time and
 * peak RSS (VmHWM), beside the global view alone over the same spots (global-scale's child).
 * BENCH_PREDICT_SPOTS=5000,50000 (a list; ':whole' reads the features whole, as before, under 2 GiB only),
 * BENCH_PREDICT_GLOBAL=0 leaves out the global view alone, TRIPLEX_THREADS.
 */

const DIM = 512;
const GENES = 250;

interface PredictFigures { spots: number; loadSeconds: number; predictSeconds: number; peakRssBytes: number; featuresBytes: number; streamed: boolean; threads: string }

/** Entry of the child process: loads the store's inputs and predicts every spot; prints JSON figures. */
export async function predictChild(storeDir: string, whole = false): Promise<void> {
  const executor = await createOrtExecutor({ threads: Number(process.env.TRIPLEX_THREADS) || undefined });
  if ('unavailable' in executor) throw new Error(`onnxruntime-node: ${executor.unavailable}`);
  const t0 = performance.now();
  const data = loadTrainingData(storeDir, { views: ALL_VIEWS, ...(whole ? {} : { streamAbove: STREAM_FEATURES_BYTES }) });
  const [section] = data.sections.values();
  const loadSeconds = (performance.now() - t0) / 1000;
  const learner = new EngineLearner(triplexConfig({ preset: 'demo', genes: GENES, dim: DIM }), executor, 0);
  const t1 = performance.now();
  const pred = (await learner.predict(data, [section])).get(section.id)!;
  const predictSeconds = (performance.now() - t1) / 1000;
  if (pred.length !== section.n * GENES || !pred.every(Number.isFinite)) throw new Error('missing or non-finite predictions');
  const file = path.join(data.featuresDir, `${section.id}.arrow`);
  const figures: PredictFigures = {
    spots: section.n, loadSeconds, predictSeconds, peakRssBytes: peakRss(), featuresBytes: fs.statSync(file).size, streamed: section.streamed !== undefined, threads: executor.describe(),
  };
  console.log(JSON.stringify(figures));
}

export async function benchPredictScale(): Promise<void> {
  const runs = (process.env.BENCH_PREDICT_SPOTS ?? '5000,50000').split(',').map((s) => s.trim().split(':'));
  const withGlobal = process.env.BENCH_PREDICT_GLOBAL !== '0';
  const rows: (string | number)[][] = [];
  let engine = '';
  for (const [n, how] of runs) {
    const spots = Number(n);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-bench-predict-'));
    try {
      const t = performance.now();
      const { storeDir } = await writeFeatureStore(path.join(tmp, 'store'), { spots, dim: DIM, batch: 256 });
      const writeSeconds = (performance.now() - t) / 1000;
      const full = benchChild<PredictFigures>(['--predict-child', storeDir, ...(how === 'whole' ? ['whole'] : [])]);
      const global = withGlobal ? benchChild<{ seconds: number; peakRssBytes: number }>(['--global-child', String(spots), 'blocks']) : 'not run';
      const globalCells = typeof global === 'string' ? [global, '-'] : [global.seconds, `${mib(global.peakRssBytes).toFixed(0)} MiB`];
      if (typeof full === 'string') {
        rows.push([`${spots} spots`, '-', writeSeconds, '-', '-', full, ...globalCells]);
        continue;
      }
      engine = full.threads;
      rows.push([`${spots} spots, ${full.streamed ? 'by spot range' : 'read whole'}`, `${(full.featuresBytes / 2 ** 30).toFixed(2)} GiB`, writeSeconds, full.loadSeconds, full.predictSeconds,
        `${mib(full.peakRssBytes).toFixed(0)} MiB`, ...globalCells]);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  printTable(`Full TRIPLEX prediction over whole slides (demo preset, three views, d ${DIM}, ${GENES} genes; ${engine}): seconds and peak RSS (target < 4 GiB at 50,000 spots), the global view alone beside`,
    ['slide', 'features file', 'write s', 'load s', 'predict s', 'peak RSS', 'global alone s', 'global alone RSS'], rows);
}
