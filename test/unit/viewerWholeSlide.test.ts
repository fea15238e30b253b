import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { viewerDir } from '../../src/cli/viewer';
import { parseViewerOutbound, type ViewerInbound, type ViewerOutbound } from '../../src/protocol/webviews';
import type { TileAnswer } from '../../src/runtime/image/tileServe';
import { writeTilePyramid } from '../../src/runtime/image/tiles';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { SlideTileRequests } from '../../src/webviews/tileRequests';
import { EXPECTED, launchChromium, serve } from './helpers/browser';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';
import { STRIPED, stripeCentre, stripes, writeStripedSlideStore } from './helpers/stripedSlide';
import { ViewerPage } from './helpers/viewerPage';

/**
 * The slide viewer on a whole slide in headless Chromium, its extension side played by the same
 * SlideTileRequests and `triplex tiles --serve` child the panel uses: zoomed in past the written
 * levels, the view asks for the tiles it shows, a pan drops the stale requests, the view is never
 * blank (the top written level scaled up meanwhile), and the cut tiles are drawn (the canvas shows
 * the full resolution's 3 px stripes where the slide has them); the scale bar's length matches
 * the slide's microns per pixel at each zoom.
 */

const root = repoRoot();
const cli = path.join(root, 'dist', 'cli.js');
const SECTION = 'S1';

/** Independently of the viewer: the scale bar's length in screen px (the largest 1, 2, 5 x 10^k um within 120 px). */
function expectedBarPx(mpp: number, scale: number): number {
  const umPerPx = mpp / scale;
  const nice = [-2, -1, 0, 1, 2, 3, 4].flatMap((e) => [1, 2, 5].map((m) => m * 10 ** e)).filter((um) => um <= 120 * umPerPx);
  return Math.max(...nice) / umPerPx;
}

describe('slide viewer on a whole slide: tiles on demand', () => {
  let server: { base: string; close: () => void };
  let browser: Browser;
  let store = '';
  let tiles: ViewerInbound['init']['tiles'];
  let tileDir = '';

  before(async () => {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'webview', 'viewer.js')), 'dist/webview/viewer.js is missing; run node scripts/build.mjs');
    const dir = tempDir('viewer-wsi');
    ({ store } = await writeStripedSlideStore(dir, SECTION));
    // What `triplex tiles` does when the viewer opens: the overview levels only.
    const slide = openDatasetStore(store).manifest.sections[0].image!.path;
    const pyramid = await writeTilePyramid(slide, path.join(viewerDir(store, SECTION), 'tiles'));
    assert.deepEqual([pyramid.maxLevel, pyramid.writtenLevels], [STRIPED.maxLevel, STRIPED.writtenLevels]);
    tileDir = path.join(pyramid.dir, 'slide_files');
    server = await serve({ '/': path.join(root, 'dist', 'webview'), '/tiles': tileDir });
    tiles = { base: `${server.base}/tiles`, width: pyramid.width, height: pyramid.height, tileSize: pyramid.tileSize, maxLevel: pyramid.maxLevel, format: 'jpeg', onDemand: true, writtenLevels: pyramid.writtenLevels };
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });

  test('zoomed past the written levels: tiles in view asked for, stale ones dropped, the lower level meanwhile, the cut tiles drawn; the scale bar at every zoom', async () => {
    // The extension's side: messages validated as the panel validates them, wantTiles to the queue, answers back as `tile`.
    const wants: string[][] = [];
    const drawn: ViewerOutbound['tilesDrawn'][] = [];
    const shown: { page?: ViewerPage } = {}; // the page, once open
    const requests = new SlideTileRequests({ file: process.execPath, args: [cli, 'tiles', store, '--section', SECTION, '--serve'] },
      (a: TileAnswer) => void shown.page?.deliver('tile', 'error' in a ? { tile: a.tile, error: a.error } : { tile: a.tile }));
    const toHost = (raw: unknown) => {
      const m = parseViewerOutbound(raw);
      if (m?.type === 'wantTiles') {
        wants.push(m.payload.tiles);
        requests.want(m.payload.tiles);
      }
      if (m?.type === 'tilesDrawn') drawn.push(m.payload);
    };
    requests.warm(); // as the panel does when it opens a whole slide
    const v = await ViewerPage.open(browser, server.base, 'light', undefined, toHost);
    shown.page = v;
    try {
      const mpp = openDatasetStore(store).manifest.sections[0].mpp;
      assert.equal(mpp, STRIPED.mpp, 'the store has the slide\'s microns per pixel');
      await v.deliver('init', {
        store, section: SECTION, genes: ['G'], gene: 'G', spots: { ids: ['a'], x: [20], y: [20], labels: [null] }, spotDiameter: 8, mpp,
        sections: [{ id: SECTION, spots: 1 }], tiles, hasTruth: true, hasPrediction: false,
      });
      await v.deliver('values', { gene: 'G', truth: [1] });
      await v.rendered('G');
      await v.page.waitForTimeout(300); // the overview's tiles load
      await v.frames();
      const canvas = v.page.locator('canvas.slide').first();
      const barAt = async (scale: number) => {
        const px = expectedBarPx(STRIPED.mpp, scale);
        return canvas.evaluate((c: HTMLCanvasElement, x: number[]) => {
          const dpr = c.width / c.getBoundingClientRect().width;
          const y = Math.round((c.getBoundingClientRect().height - 11) * dpr);
          return x.map((sx) => { const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.round(sx * dpr), y, 1, 1).data; return `rgb(${d[0]}, ${d[1]}, ${d[2]})`; });
        }, [10 + px - 2, 10 + px + 2]);
      };
      const fitted = (await v.saved()).view!;
      assert.deepEqual(await barAt(fitted.scale).then((b) => b.map((c) => c === EXPECTED.light.foreground)), [true, false], 'the scale bar ends where the slide\'s um/px put it (fitted)');
      assert.equal(wants.length, 0, 'the fitted view shows written levels only: nothing asked');

      // Zoom in (keyboard, about the centre) to about 2.5 screen px per slide px: level 13, cut on demand;
      // then, before anything is cut, pan three tiles away. Snapshot the canvas right after the pan.
      const presses = Math.ceil(Math.log(2.5 / fitted.scale) / Math.log(1.25));
      await canvas.evaluate(async (c: HTMLCanvasElement, n: number) => {
        const frame = () => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
        for (let i = 0; i < n; i++) c.dispatchEvent(new KeyboardEvent('keydown', { key: '+', bubbles: true }));
        await frame();
        for (let i = 0; i < 8; i++) c.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', shiftKey: true, bubbles: true }));
        await frame();
        const copy = document.createElement('canvas');
        [copy.width, copy.height] = [c.width, c.height];
        (copy.getContext('2d') as CanvasRenderingContext2D).drawImage(c, 0, 0);
        (window as unknown as { __snapshot: HTMLCanvasElement }).__snapshot = copy;
      }, presses);
      const view = (await v.saved()).view!;
      assert.ok(view.scale > 2 && view.scale < 3.2, `zoomed to ${view.scale}`);
      assert.ok(wants.length >= 2, 'asked at the zoom, and again after the pan');
      const [zoomed, panned] = [wants[0], wants[1]];
      assert.ok(zoomed.length >= 3 && zoomed.length <= 8 && zoomed.every((t) => t.startsWith('13/')), `the zoomed view's level-13 tiles, at most 8: ${zoomed.join()}`);
      assert.ok(panned.every((t) => !zoomed.includes(t)), 'the panned view needs other tiles');

      // The stripes' centres in the panned view, on a grid of screen points.
      const w = await canvas.evaluate((c: HTMLCanvasElement) => c.getBoundingClientRect().width);
      const h = await canvas.evaluate((c: HTMLCanvasElement) => c.getBoundingClientRect().height);
      const samples: { sx: number; sy: number; want: readonly number[] }[] = [];
      for (let sy = 40; sy < h - 40; sy += 23) {
        for (let sx = 20; sx < w - 20; sx += 9) {
          const ix = Math.floor((sx - view.tx) / view.scale);
          const iy = Math.floor((sy - view.ty) / view.scale);
          if (!stripeCentre(ix)) continue;
          samples.push({ sx: (ix + 0.5) * view.scale + view.tx, sy: (iy + 0.5) * view.scale + view.ty, want: stripes(ix, iy) });
        }
      }
      assert.ok(samples.length > 300, `${samples.length} samples`);
      const read = (source: 'canvas' | 'snapshot') => canvas.evaluate((c: HTMLCanvasElement, [pts, src]) => {
        const from = src === 'canvas' ? c : (window as unknown as { __snapshot: HTMLCanvasElement }).__snapshot;
        const ctx = from.getContext('2d') as CanvasRenderingContext2D;
        const dpr = c.width / c.getBoundingClientRect().width;
        return (pts as { sx: number; sy: number }[]).map((p) => Array.from(ctx.getImageData(Math.floor(p.sx * dpr), Math.floor(p.sy * dpr), 1, 1).data));
      }, [samples, source] as const);
      const matching = (pixels: number[][]) => pixels.filter((px, i) => samples[i].want.every((c, k) => Math.abs(px[k] - c) <= 45)).length / pixels.length;

      const before = await read('snapshot');
      assert.ok(before.every((px) => px[3] === 255), 'never blank: every sampled pixel drawn before any tile is cut');
      const fallback = matching(before);
      assert.ok(fallback < 0.75, `meanwhile the lower level scaled up (${(fallback * 100).toFixed(0)}% of the stripes right)`);

      for (let i = 0; i < 600 && drawn.length === 0; i++) await v.page.waitForTimeout(50);
      assert.ok(drawn.length > 0, 'the viewer reports the on-demand tiles drawn');
      await v.frames();
      const after = matching(await read('canvas'));
      assert.ok(after > 0.97, `the cut tiles drawn: ${(after * 100).toFixed(1)}% of the stripes' centres match the slide`);
      console.log(`# on-demand tiles of the panned view (${drawn[0].tiles} tiles): first drawn ${drawn[0].firstMs.toFixed(0)} ms, all ${drawn[0].allMs.toFixed(0)} ms after the view lacked them (the serving child started when the page opened); stripes right: ${(fallback * 100).toFixed(0)}% before, ${(after * 100).toFixed(1)}% after`);

      // Stale requests: the zoomed view's tiles not yet handed to the cutter were dropped, never cut.
      assert.ok(requests.dropped >= 1, `${requests.dropped} dropped`);
      const neverSent = zoomed.filter((t) => !requests.sent.includes(t));
      assert.ok(neverSent.length >= 1);
      for (const t of neverSent) assert.ok(!fs.existsSync(path.join(tileDir, `${t}.jpeg`)), `${t} (stale) was not cut`);
      for (const t of panned) assert.ok(fs.existsSync(path.join(tileDir, `${t}.jpeg`)), `${t} was cut`);
      assert.equal(new Set(requests.sent).size, requests.sent.length, 'no tile asked of the cutter twice');
      assert.deepEqual(await barAt(view.scale).then((b) => b.map((c) => c === EXPECTED.light.foreground)), [true, false], 'the scale bar ends where the slide\'s um/px put it (zoomed)');
    } finally {
      requests.close();
      await v.close();
    }
  });

  test('a tile the host cannot cut: its error in the viewer\'s status line, the lower level still drawn', async () => {
    const v = await ViewerPage.open(browser, server.base, 'light');
    try {
      await v.deliver('init', {
        store, section: SECTION, genes: ['G'], gene: 'G', spots: { ids: ['a'], x: [20], y: [20], labels: [null] }, spotDiameter: 8, mpp: STRIPED.mpp,
        tiles, hasTruth: true, hasPrediction: false,
      });
      await v.deliver('values', { gene: 'G', truth: [1] });
      await v.rendered('G');
      await v.page.locator('canvas.slide').first().evaluate(async (c: HTMLCanvasElement) => {
        for (let i = 0; i < 14; i++) c.dispatchEvent(new KeyboardEvent('keydown', { key: '+', bubbles: true }));
        await new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
      });
      const asked = (await v.sentOf<{ tiles: string[] }>('wantTiles')).at(-1)!.tiles;
      assert.ok(asked.length > 0);
      const message = `/data/S1.tif: level 0, tile (column 3, row 2) cannot be decoded (invalid distance); the file is damaged or truncated, copy it again`;
      await v.deliver('tile', { tile: asked[0], error: `Deep Zoom tile ${asked[0]}: ${message}` });
      // A malformed answer is ignored (validated on receipt).
      await v.page.evaluate(() => window.postMessage({ type: 'tile', payload: { tile: '../../etc/passwd' } }, '*'));
      await v.frames();
      assert.equal(await v.page.locator('#tile-status').innerText(), `Tile ${asked[0]} of ${SECTION} cannot be shown: Deep Zoom tile ${asked[0]}: ${message}`);
      const next = (await v.sentOf<{ tiles: string[] }>('wantTiles')).at(-1)!.tiles;
      assert.ok(!next.includes(asked[0]), 'a failed tile is not asked for again');
      const centre = await v.page.locator('canvas.slide').first().evaluate((c: HTMLCanvasElement) => Array.from((c.getContext('2d') as CanvasRenderingContext2D).getImageData(c.width >> 1, c.height >> 1, 1, 1).data));
      assert.equal(centre[3], 255, 'the view is not blank there');
    } finally {
      await v.close();
    }
  });
});
