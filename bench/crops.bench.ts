import { startRssSampler } from './timing';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cropSpots, type SpotCentre } from '../src/runtime/image/crops';
import { openSlideImage } from '../src/runtime/image/slideImage';
import { mib, printTable } from './table';

/**
 * Crop throughput on the real HER2+ section C2 (JPEG, 9274 x 9911 px): opening (decoding) the
 * image, 224 target crops and 1120 neighbour views for all of C2's spots, visited in y order in
 * batches as feature extraction does, and memory; once with the image decoded whole, once in
 * bands under a small budget.
 */

export interface CropBenchOptions {
  /** Full-resolution image (default: the shared C2 JPEG). */
  image?: string;
  /** Spot file with pixel_x and pixel_y columns (default: C2_selection.tsv). */
  spots?: string;
  /** Budget for band mode (default 64 MiB). */
  bandBytes?: number;
  /** Timed passes over all spots, per view (default 3). */
  iterations?: number;
  /** Spots per cropSpots call (default 32: 120 MiB of neighbour views). */
  batch?: number;
  /** Which modes to run, in this order (default bands, then whole). */
  modes?: readonly ('bands' | 'whole')[];
}

export interface CropBenchResult {
  mode: 'whole' | 'bands' | 'tiles';
  budgetBytes: number | undefined;
  spots: number;
  openMs: number;
  /** 224 x 224 target crops per second, mean and best pass. */
  targetPerSecond: number;
  targetBest: number;
  /** 1120 x 1120 neighbour views (25 tiles + mask) per second, mean and best pass. */
  neighborPerSecond: number;
  neighborBest: number;
  /** Decodes (whole image, bands or lone regions) over the open and all passes. */
  decodes: number;
  /** Decoded pixel bytes the image held at the end. */
  residentBytes: number;
  rssBeforeBytes: number;
  /** Highest RSS sampled while opening and cutting 224 crops (the image's own memory). */
  peakRssCropsBytes: number;
  /** Highest RSS sampled while cutting neighbour views (adds the batches: 3.8 MB per spot). */
  peakRssNeighborsBytes: number;
}

const C2 = ['her2st', 'ST-imgs', 'C', 'C2', '5714_HE_BT_C2.jpg'];
const C2_SPOTS = ['her2st', 'ST-spotfiles', 'C2_selection.tsv'];

/** Runs band mode first so that its peak RSS is not the whole image's memory waiting for GC. */
export async function benchCrops(options: CropBenchOptions = {}): Promise<CropBenchResult[]> {
  const image = options.image ?? sharedData(...C2);
  const spotFile = options.spots ?? sharedData(...C2_SPOTS);
  for (const f of [image, spotFile]) {
    if (!fs.existsSync(f)) throw new Error(`crop bench: ${f} not found (the shared HER2+ data beside the project)`);
  }
  const spots = readSpotCentres(spotFile);
  const run = { iterations: options.iterations ?? 3, batch: options.batch ?? 32 };
  const results: CropBenchResult[] = [];
  for (const mode of options.modes ?? ['bands', 'whole']) {
    results.push(await benchMode(image, spots, mode === 'bands' ? options.bandBytes ?? 64 * 2 ** 20 : undefined, run));
  }
  return results;
}

export function printCropBench(results: CropBenchResult[]): void {
  const first = results[0];
  printTable(`Crops from the C2 JPEG: ${first?.spots ?? 0} real spots in y order (spots/s; MiB)`,
    ['mode', 'open ms', '224 crop', '224 best', '1120 view', '1120 best', 'decodes', 'held', 'RSS before', 'peak open+224', 'peak 1120'],
    results.map((r) => [
      r.mode === 'whole' ? 'whole image' : `bands (${mib(r.budgetBytes ?? 0).toFixed(0)} MiB)`,
      r.openMs, r.targetPerSecond, r.targetBest, r.neighborPerSecond, r.neighborBest, r.decodes,
      mib(r.residentBytes), mib(r.rssBeforeBytes), mib(r.peakRssCropsBytes), mib(r.peakRssNeighborsBytes),
    ]));
  console.log('peak RSS is sampled every 5 ms; without --expose-gc the second mode starts with the first one\'s garbage');
}

async function benchMode(image: string, spots: SpotCentre[], budget: number | undefined,
  run: { iterations: number; batch: number }): Promise<CropBenchResult> {
  global.gc?.(); // with --expose-gc, frees the previous mode's pixels before measuring
  const cropsSampler = startRssSampler();
  const rssBeforeBytes = process.memoryUsage.rss();
  let t = performance.now();
  const img = await openSlideImage(image, budget === undefined ? {} : { maxDecodedBytes: budget });
  const openMs = performance.now() - t;
  try {
    const ordered = [...spots].sort((a, b) => a.y - b.y);
    const pass = async (view: 'target' | 'neighbor'): Promise<number> => {
      t = performance.now();
      for (let i = 0; i < ordered.length; i += run.batch) {
        await cropSpots(img, ordered.slice(i, i + run.batch), { target: view === 'target', neighbor: view === 'neighbor' });
      }
      return (ordered.length * 1000) / (performance.now() - t);
    };
    const target = await timePasses(run.iterations, () => pass('target'));
    const peakRssCropsBytes = cropsSampler.stop();
    const neighborsSampler = startRssSampler();
    const neighbor = await timePasses(run.iterations, () => pass('neighbor'));
    const { decodes, residentBytes } = img.stats();
    return {
      mode: img.mode, budgetBytes: budget, spots: spots.length, openMs,
      targetPerSecond: target.mean, targetBest: target.best, neighborPerSecond: neighbor.mean, neighborBest: neighbor.best,
      decodes, residentBytes, rssBeforeBytes, peakRssCropsBytes, peakRssNeighborsBytes: neighborsSampler.stop(),
    };
  } finally {
    img.close();
  }
}

/** Mean and best rate over the passes; every pass is timed (band mode pays its decodes each pass). */
async function timePasses(iterations: number, pass: () => Promise<number>): Promise<{ mean: number; best: number }> {
  const rates: number[] = [];
  for (let i = 0; i < iterations; i++) rates.push(await pass());
  const seconds = rates.reduce((s, r) => s + 1 / r, 0);
  return { mean: rates.length / seconds, best: Math.max(...rates) };
}


/** pixel_x / pixel_y of a HER2+ spot file (tab-separated, with a header). */
function readSpotCentres(file: string): SpotCentre[] {
  const [header, ...rows] = fs.readFileSync(file, 'utf8').trim().split('\n').map((line) => line.split('\t'));
  const ix = header.indexOf('pixel_x');
  const iy = header.indexOf('pixel_y');
  if (ix < 0 || iy < 0) throw new Error(`${file}: no pixel_x / pixel_y columns in the header`);
  return rows.map((r, i) => ({ id: `row ${i + 2}`, x: Number(r[ix]), y: Number(r[iy]) }));
}

/** The shared real data beside the project (../shared/data), found from the bundle's folder. */
function sharedData(...parts: string[]): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`crop bench: no package.json above ${__dirname}`);
    dir = up;
  }
  return path.join(dir, '..', 'shared', 'data', ...parts);
}
