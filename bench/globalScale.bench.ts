import { spotGrid } from '../src/runtime/models/spotGrid';
import { triplexConfig } from '../src/runtime/models/triplexConfig';
import { createOrtExecutor } from '../src/runtime/engine/ort';
import { queryRowsPerBlock } from '../src/runtime/models/globalBlocks';
import { bucket } from '../src/runtime/models/globalLayout';
import type { SectionInputs, TrainingData } from '../src/runtime/train/data';
import { EngineLearner } from '../src/runtime/train/engineLearner';
import { mulberry32 } from '../src/runtime/util/random';
import { mib, printTable } from './table';
import { benchChild, peakRss } from './timing';

/**
 * Prediction over whole-slide spot counts (issue 16): the global view of TRIPLEX (the GEM
 * variant: the part whose memory grows with the slide; the target and neighbour views run in
 * fixed batches) on onnxruntime, d 512, over N spots on a square grid with APEG, each run in a
 * child process of its own that reports its time and peak RSS (VmHWM). Attention in blocks of
 * query rows (models/globalBlocks.ts) beside the whole-slide N x N graph where that still fits.
 * BENCH_GLOBAL_SPOTS=5000:whole,5000,20000,50000 (a list; ':whole' forces the unblocked graph),
 * BENCH_GLOBAL_PRESET=demo (or bc1: 5 blocks, 8 heads), TRIPLEX_THREADS.
 */

const DIM = 512;
const GENES = 250;

/** Figures of one prediction. */
interface GlobalFigures { spots: number; tokens: number; rows: number; seconds: number; peakRssBytes: number; preset: string; threads: string }

/** Entry of the child process: predicts over `spots` spots and prints JSON figures. */
export async function globalChild(spots: number, whole: boolean): Promise<void> {
  const executor = await createOrtExecutor({ threads: Number(process.env.TRIPLEX_THREADS) || undefined });
  if ('unavailable' in executor) throw new Error(`onnxruntime-node: ${executor.unavailable}`);
  const preset = process.env.BENCH_GLOBAL_PRESET ?? 'demo';
  const config = triplexConfig({ preset, variant: 'gem', genes: GENES, dim: DIM });
  const side = Math.ceil(Math.sqrt(spots));
  const rows = Array.from({ length: spots }, (_, i) => Math.floor(i / side));
  const cols = Array.from({ length: spots }, (_, i) => i % side);
  const random = mulberry32(1);
  const section: SectionInputs = {
    id: 'bench', patient: 'bench', n: spots, spotIds: rows.map((_, i) => String(i)), storeRows: rows.map((_, i) => i), values: new Float32Array(0),
    global: Float32Array.from({ length: spots * DIM }, () => random()), grid: spotGrid(rows, cols),
  };
  const data: TrainingData = { storeDir: '', featuresDir: '', genes: [], hasCounts: false, dim: DIM, sections: new Map([['bench', section]]) };
  const learner = new EngineLearner(config, executor, 0);
  const t = performance.now();
  const pred = (await learner.predict(data, [section], whole ? { globalQueryRows: Infinity } : {})).get('bench')!;
  const seconds = (performance.now() - t) / 1000;
  if (!pred.every(Number.isFinite)) throw new Error('non-finite predictions');
  const tokens = whole ? bucket(spots) : spots; // blocks run over the slide's own spots (engineLearner.ts)
  const figures: GlobalFigures = {
    spots, tokens, rows: whole ? tokens : Math.min(tokens, queryRowsPerBlock(bucket(spots), config.global.heads)), seconds, peakRssBytes: peakRss(), preset,
    threads: executor.describe(),
  };
  console.log(JSON.stringify(figures));
}

export function benchGlobalScale(): void {
  const runs = (process.env.BENCH_GLOBAL_SPOTS ?? '5000:whole,5000,20000,50000').split(',').map((s) => s.trim());
  const rows: (string | number)[][] = [];
  let engine = '';
  for (const run of runs) {
    const [n, how] = run.split(':');
    const f = benchChild<GlobalFigures>(['--global-child', n, how ?? 'blocks']);
    if (typeof f === 'string') {
      rows.push([`${n} spots${how === 'whole' ? ', whole N x N' : ''}`, '-', '-', '-', f]);
      continue;
    }
    engine = `${f.threads}, preset ${f.preset}`;
    rows.push([`${f.spots} spots${how === 'whole' ? ', whole N x N' : ''}`, f.tokens, f.rows, f.seconds, `${mib(f.peakRssBytes).toFixed(0)} MiB`]);
  }
  printTable(`Global-view prediction over whole slides (GEM, d ${DIM}, APEG; ${engine}): time (s) and peak RSS (target < 4 GiB at 50,000 spots)`,
    ['slide', 'tokens', 'query rows', 'seconds', 'peak RSS'], rows);
}
