import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { viewerDir } from '../src/cli/viewer';
import { parseViewerOutbound, type ViewerOutbound } from '../src/protocol/webviews';
import { readSlide } from '../src/runtime/data/slide';
import { SlideTileCutter } from '../src/runtime/image/slideTiles';
import { writeTilePyramid, type TilePyramid } from '../src/runtime/image/tiles';
import { writeSpotStore } from '../src/runtime/store/datasetStore';
import { mulberry32 } from '../src/runtime/util/random';
import { SlideTileRequests } from '../src/webviews/tileRequests';
import { launchChromium, serve } from '../test/unit/helpers/browser';
import { ViewerPage } from '../test/unit/helpers/viewerPage';
import { printTable } from './table';
import { HEIGHT, inTissue, WIDTH, writeBenchSlide } from './wsi.bench';

/**
 * The slide viewer zooming into a whole slide: the 100,000 x 80,000 px pyramidal BigTIFF of the
 * wsi part (JPEG tiles, 0.25 um/px), its overview written as `triplex tiles` writes it, the page
 * in headless Chromium and the extension's side played by SlideTileRequests and the `triplex
 * tiles --serve` child. Each trial fits the slide, then zooms with one wheel event onto a new
 * tissue point to full resolution (level 17, cut on demand); timed by the viewer itself (its
 * `tilesDrawn` message) from the first frame at that zoom to the frame that draws the first
 * on-demand tile, and to the frame that draws them all. Beside it, what cutting a tile costs in
 * the process that does it (why the extension host does not): 16 full-resolution tissue tiles cut
 * in this process, with the longest time its event loop was blocked.
 */

/** Cuts CUTS full-resolution tiles at random tissue places into a scratch copy of the pyramid: ms per tile and the longest event-loop block. */
async function cutInProcess(file: string, pyramid: TilePyramid, scratch: string): Promise<{ perTileMs: number; maxBlockMs: number }> {
  const rand = mulberry32(3);
  const cutter = new SlideTileCutter(file, { ...pyramid, dir: scratch });
  await cutter.open();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const t0 = performance.now();
  for (let i = 0; i < CUTS; i++) {
    let [x, y] = [0, 0];
    do [x, y] = [rand() * WIDTH, rand() * HEIGHT]; while (!inTissue(x, y));
    await cutter.file(`${pyramid.maxLevel}/${Math.floor(x / 256)}_${Math.floor(y / 256)}`);
  }
  const perTileMs = (performance.now() - t0) / CUTS;
  delay.disable();
  cutter.close();
  return { perTileMs, maxBlockMs: delay.max / 1e6 };
}

const TRIALS = 9;
const CUTS = 16;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function benchViewerWholeSlide(): Promise<void> {
  const root = path.join(__dirname, '..');
  const cli = path.join(root, 'dist', 'cli.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-viewer-wsi-bench-'));
  const browser = await launchChromium();
  let close = () => undefined as void;
  try {
    const file = path.join(dir, 'slide-100k.tif');
    await writeBenchSlide(file);
    const table = path.join(dir, 'spots.csv');
    fs.writeFileSync(table, `spot_id,pixel_x,pixel_y\na,${WIDTH / 2},${HEIGHT / 2}\n`);
    const store = path.join(dir, 'store');
    await writeSpotStore(store, { path: file }, [await readSlide(file, { spots: table, section: 'W1' })]);
    const t = performance.now();
    const pyramid = await writeTilePyramid(file, path.join(viewerDir(store, 'W1'), 'tiles'));
    const overviewMs = performance.now() - t;
    const inProcess = await cutInProcess(file, pyramid, path.join(dir, 'scratch'));
    const server = await serve({ '/': path.join(root, 'dist', 'webview'), '/tiles': path.join(pyramid.dir, 'slide_files') });
    close = server.close;

    const drawn: ViewerOutbound['tilesDrawn'][] = [];
    const shown: { page?: ViewerPage } = {};
    const requests = new SlideTileRequests({ file: process.execPath, args: [cli, 'tiles', store, '--section', 'W1', '--serve'] },
      (a) => void shown.page?.deliver('tile', 'error' in a ? { tile: a.tile, error: a.error } : { tile: a.tile }));
    requests.warm();
    const v = await ViewerPage.open(browser, server.base, 'light', undefined, (raw) => {
      const m = parseViewerOutbound(raw);
      if (m?.type === 'wantTiles') requests.want(m.payload.tiles);
      if (m?.type === 'tilesDrawn') drawn.push(m.payload);
    });
    shown.page = v;
    try {
      await v.deliver('init', {
        store, section: 'W1', genes: ['G'], gene: 'G', spots: { ids: ['a'], x: [WIDTH / 2], y: [HEIGHT / 2], labels: [null] }, spotDiameter: 200, mpp: 0.25,
        tiles: { base: `${server.base}/tiles`, width: pyramid.width, height: pyramid.height, tileSize: pyramid.tileSize, maxLevel: pyramid.maxLevel, format: 'jpeg', onDemand: true, writtenLevels: pyramid.writtenLevels },
        hasTruth: true, hasPrediction: false,
      });
      await v.deliver('values', { gene: 'G', truth: [1] });
      await v.rendered('G');
      await v.page.waitForTimeout(500);
      const canvas = v.page.locator('canvas.slide').first();
      const rand = mulberry32(5);
      const first: number[] = [];
      const all: number[] = [];
      let tiles = 0;
      for (let i = 0; i < TRIALS; i++) {
        let [x, y] = [0, 0];
        do [x, y] = [rand() * WIDTH, rand() * HEIGHT]; while (!inTissue(x, y));
        // Fit ('0'), then one wheel event on the point's place on screen that zooms to 1 screen px per slide px.
        await canvas.evaluate((c: HTMLCanvasElement) => c.dispatchEvent(new KeyboardEvent('keydown', { key: '0', bubbles: true })));
        await v.frames();
        const fit = (await v.saved()).view!;
        const before = drawn.length;
        await canvas.evaluate((c: HTMLCanvasElement, [sx, sy, dy]) => {
          const r = c.getBoundingClientRect();
          c.dispatchEvent(new WheelEvent('wheel', { clientX: r.left + sx, clientY: r.top + sy, deltaY: dy, bubbles: true, cancelable: true }));
        }, [x * fit.scale + fit.tx, y * fit.scale + fit.ty, -Math.log(1 / fit.scale) / 0.0015] as const);
        for (let k = 0; k < 1200 && drawn.length === before; k++) await v.page.waitForTimeout(25);
        const r = drawn[before];
        if (!r) throw new Error(`trial ${i}: no on-demand tile drawn within 30 s`);
        first.push(r.firstMs);
        all.push(r.allMs);
        tiles += r.tiles;
      }
      console.log(`\nViewer on a ${WIDTH.toLocaleString('en')} x ${HEIGHT.toLocaleString('en')} px pyramidal slide: overview (levels 0..${pyramid.writtenLevels} of ${pyramid.maxLevel}) written in ${overviewMs.toFixed(0)} ms; ` +
        `${TRIALS} zooms from the fitted slide to full resolution at random tissue points, ${(tiles / TRIALS).toFixed(1)} on-demand tiles in view on average (1000 x 700 px page)`);
      printTable('Zoom to a drawn on-demand tile (ms, the viewer\'s own figure)', ['what', 'median', 'min', 'max'], [
        ['first tile drawn', median(first), Math.min(...first), Math.max(...first)],
        ['all tiles in view drawn', median(all), Math.min(...all), Math.max(...all)],
      ]);
      console.log(`Cutting a full-resolution tile in-process: ${inProcess.perTileMs.toFixed(1)} ms per tile (${CUTS} tiles), the event loop blocked up to ${inProcess.maxBlockMs.toFixed(1)} ms at a time`);
    } finally {
      requests.close();
      await v.close();
    }
  } finally {
    close();
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
