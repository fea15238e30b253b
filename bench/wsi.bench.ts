import { startRssSampler } from './timing';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cropSpots, type SpotCentre } from '../src/runtime/image/crops';
import { openSlideImage } from '../src/runtime/image/slideImage';
import { resampledImage } from '../src/runtime/image/wsiImage';
import { mulberry32 } from '../src/runtime/util/random';
import { jpegTile, solidTile, writeTiledTiff, type TiffLevelSpec } from '../test/unit/helpers/tiffWriter';
import { mib, printTable } from './table';

/**
 * A 100,000 x 80,000 px pyramidal slide (BigTIFF, JPEG tiles of 256 px, levels 1, 4, 16, 64,
 * 256, 0.25 um/px), made here: glass everywhere but an ellipse of tissue, whose tiles are a few
 * dozen textures referenced again and again (the file holds each once: a few MB on disk). Timed:
 * opening it, and cutting 1,000 crops at random tissue spots: 224 px at full resolution, 224 px
 * at a model's 0.5 um/px (448 px of level 0 averaged, as extraction resamples), and 250 1120 px
 * neighbour views at 2 um/px (read from the 1/4 level); peak RSS sampled every 5 ms.
 */

export const WIDTH = 100_000;
export const HEIGHT = 80_000;
const TILE = 256;
const MPP = 0.25;
const CROPS = 1000;

export interface WsiBenchResult {
  fileBytes: number;
  writeMs: number;
  openMs: number;
  rssBeforeBytes: number;
  rows: { what: string; ms: number; perSecond: number; tilesDecoded: number; peakRssBytes: number }[];
}

/** Inside the tissue ellipse (full-resolution px). */
export const inTissue = (x: number, y: number) => ((x - WIDTH / 2) / (WIDTH * 0.35)) ** 2 + ((y - HEIGHT / 2) / (HEIGHT * 0.35)) ** 2 <= 1;

async function textures(n: number): Promise<Buffer[]> {
  const rand = mulberry32(7);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const rgb = new Uint8Array(TILE * TILE * 3);
    const [r0, g0, b0] = [180 + 40 * rand(), 90 + 50 * rand(), 150 + 50 * rand()];
    for (let p = 0; p < TILE * TILE; p++) {
      const nuclei = rand() < 0.08 ? -90 : 0;
      rgb[p * 3] = Math.max(0, Math.min(255, r0 + nuclei + 20 * (rand() - 0.5)));
      rgb[p * 3 + 1] = Math.max(0, Math.min(255, g0 + nuclei + 20 * (rand() - 0.5)));
      rgb[p * 3 + 2] = Math.max(0, Math.min(255, b0 + nuclei / 2 + 20 * (rand() - 0.5)));
    }
    out.push(await jpegTile(rgb, TILE, 85));
  }
  return out;
}

/** Writes the slide to `file`; returns its size in bytes. */
export async function writeBenchSlide(file: string): Promise<number> {
  const tissue = await textures(32);
  const glass = await jpegTile(solidTile(TILE, [242, 242, 245]), TILE, 85);
  const levels: TiffLevelSpec[] = [1, 4, 16, 64, 256].map((d) => ({
    width: Math.ceil(WIDTH / d), height: Math.ceil(HEIGHT / d), tileSize: TILE, compression: 'jpeg', photometric: 6,
    tile: (c, r) => (inTissue((c + 0.5) * TILE * d, (r + 0.5) * TILE * d) ? tissue[(c * 7 + r * 13) % tissue.length] : glass),
    ...(d === 1 ? { resolution: { perUnit: 1e4 / MPP, unit: 'cm' as const } } : {}),
  }));
  return writeTiledTiff(file, levels, { bigTiff: true });
}


export async function benchWsi(): Promise<WsiBenchResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-wsi-bench-'));
  try {
    const file = path.join(dir, 'slide-100k.tif');
    let t = performance.now();
    const fileBytes = await writeBenchSlide(file);
    const writeMs = performance.now() - t;
    global.gc?.();
    const rssBeforeBytes = process.memoryUsage.rss();
    const rand = mulberry32(11);
    const spots: SpotCentre[] = [];
    while (spots.length < CROPS) {
      const [x, y] = [rand() * WIDTH, rand() * HEIGHT];
      if (inTissue(x, y)) spots.push({ x, y });
    }
    spots.sort((a, b) => a.y - b.y || a.x - b.x); // as extraction visits them
    const openSampler = startRssSampler();
    t = performance.now();
    const img = await openSlideImage(file);
    const openMs = performance.now() - t;
    openSampler.stop();
    const rows: WsiBenchResult['rows'] = [];
    try {
      const pass = async (what: string, view: typeof img, at: (s: SpotCentre) => SpotCentre, neighbor = false) => {
        const some = neighbor ? spots.filter((_, i) => i % 4 === 0) : spots; // a view is 25 crops: 250 of them
        const before = img.stats().decodes;
        const sampler = startRssSampler();
        const t0 = performance.now();
        for (let i = 0; i < some.length; i += 32) await cropSpots(view, some.slice(i, i + 32).map(at), { target: !neighbor, neighbor });
        const ms = performance.now() - t0;
        rows.push({ what: `${some.length} ${what}`, ms, perSecond: (some.length * 1000) / ms, tilesDecoded: img.stats().decodes - before, peakRssBytes: sampler.stop() });
      };
      await pass('224 px crops at 0.25 um/px (level 0)', img, (s) => s);
      await pass('224 px crops at 0.5 um/px (resampled x2)', resampledImage(img, 2), (s) => ({ x: s.x / 2, y: s.y / 2 }));
      await pass('1120 px views at 2 um/px (level 1, x2)', resampledImage(img, 8), (s) => ({ x: s.x / 8, y: s.y / 8 }), true);
    } finally {
      img.close();
    }
    return { fileBytes, writeMs, openMs, rssBeforeBytes, rows };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function printWsiBench(r: WsiBenchResult): void {
  console.log(`\nWhole slide: ${WIDTH.toLocaleString('en')} x ${HEIGHT.toLocaleString('en')} px pyramidal BigTIFF (JPEG tiles, 5 levels), ${mib(r.fileBytes).toFixed(1)} MiB on disk, ` +
    `written in ${(r.writeMs / 1000).toFixed(1)} s; opened in ${r.openMs.toFixed(0)} ms; RSS before ${mib(r.rssBeforeBytes).toFixed(0)} MiB`);
  printTable('Crops at random tissue spots, in y order, batches of 32 (ms; crops/s; MiB)',
    ['crops', 'ms', 'crops/s', 'tiles decoded', 'peak RSS'],
    r.rows.map((row) => [row.what, row.ms, row.perSecond, row.tilesDecoded, mib(row.peakRssBytes)]));
}
