import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readDataset } from '../src/runtime/data/read';
import { preprocess } from '../src/runtime/data/preprocess';
import { writeDatasetStore } from '../src/runtime/store/datasetStore';
import { extractFeatures } from '../src/runtime/features/extract';
import { writeSyntheticDataset } from '../src/runtime/synthetic/generator';
import { mib, printTable } from './table';

/**
 * The data layer's figures: reading and preprocessing one ~300-spot HER2+ section (target < 2 s),
 * feature extraction throughput on real HER2+ crops (target >= 35 images/s, PyTorch's per-crop
 * ResNet18 here), and the peak memory of extracting a 5,000-spot slide (target < 2 GiB), each
 * extraction in a child process of its own so that its peak RSS is its own.
 */

const HER2 = path.join(__dirname, '..', '..', 'shared', 'data', 'her2st');

/** Entry of the child process: extract features for a store and print JSON figures. */
export async function extractChild(store: string, sections: string[] | undefined): Promise<void> {
  const t = performance.now();
  const summary = await extractFeatures(store, { encoder: 'resnet18', sections });
  const seconds = (performance.now() - t) / 1000;
  const tiles = summary.sections.reduce((n, s) => n + s.tilesEncoded, 0);
  const spots = summary.sections.reduce((n, s) => n + s.spots, 0);
  console.log(JSON.stringify({ seconds, tiles, spots, engine: summary.encoder.engine, peakRssBytes: process.resourceUsage().maxRSS * 1024 }));
}

interface ChildResult { seconds: number; tiles: number; spots: number; engine: string; peakRssBytes: number }

function runChild(store: string, sections?: string[]): ChildResult {
  const args = [path.join(__dirname, 'bench.js'), '--extract-child', store, ...(sections ? [sections.join(',')] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.status !== 0) throw new Error(`feature extraction child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as ChildResult;
}

export async function benchData(): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-bench-data-'));
  try {
    const rows: (string | number)[][] = [];
    if (fs.existsSync(HER2)) {
      let t = performance.now();
      const d1 = await readDataset(HER2, { sections: ['D1'] });
      const readSeconds = (performance.now() - t) / 1000;
      t = performance.now();
      preprocess(d1);
      const preSeconds = (performance.now() - t) / 1000;
      const spots = d1.sections[0].spots.length;
      rows.push([`read + preprocess HER2+ D1 (${spots} spots, ${d1.sections[0].genes.length} genes)`, `${(readSeconds + preSeconds).toFixed(2)} s`, '< 2 s', readSeconds + preSeconds < 2 ? 'met' : 'MISSED']);

      // Real crops: the first 40 spots of C2, 25 neighbour tiles each (no tile is shared at 290 px spacing).
      const c2 = await readDataset(HER2, { sections: ['C2'] });
      c2.sections[0].spots = c2.sections[0].spots.slice(0, 40);
      const sub = c2.sections[0];
      sub.counts = { ...sub.counts, nSpots: 40, indptr: sub.counts.indptr.slice(0, 41) };
      const store = path.join(tmp, 'c2');
      await writeDatasetStore(store, { format: 'her2st', path: HER2 }, preprocess(c2, { genes: 50, minSpotFraction: 0 }));
      const r = runChild(store);
      const rate = r.tiles / r.seconds;
      rows.push([`extract HER2+ C2, 40 spots (${r.tiles} tiles, ${r.engine})`, `${rate.toFixed(1)} images/s`, '>= 35 images/s', rate >= 35 ? 'met' : 'MISSED']);
    } else {
      console.log(`(the shared HER2+ data is not at ${HER2}; its rows are skipped)`);
    }

    // A 5,000-spot slide: the synthetic generator at an 80 x 80 array (about 18,600 px square).
    const big = path.join(tmp, 'big');
    await writeSyntheticDataset(big, { patients: 1, sectionsPerPatient: 1, gridSize: 80, genes: 60, seed: 5 });
    const ds = await readDataset(big);
    const store = path.join(tmp, 'big-store');
    await writeDatasetStore(store, { format: ds.format, path: big }, preprocess(ds, { genes: 50 }));
    const r = runChild(store);
    rows.push([`extract a ${r.spots}-spot slide (${r.tiles} tiles): peak RSS`, `${mib(r.peakRssBytes).toFixed(0)} MiB`, '< 2048 MiB', r.peakRssBytes < 2 * 2 ** 30 ? 'met' : 'MISSED']);
    rows.push([`  same run: throughput`, `${(r.spots / r.seconds).toFixed(1)} spots/s, ${(r.tiles / r.seconds).toFixed(1)} images/s`, '', '']);
    printTable('Data layer', ['measure', 'figure', 'target', ''], rows);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
