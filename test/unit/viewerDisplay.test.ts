import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import sharp from 'sharp';
import { writeTilePyramid } from '../../src/runtime/image/tiles';
import { parseViewerSavedState, type ViewerInbound, type ViewerOutbound } from '../../src/protocol/webviews';
import { restoredRequest } from '../../src/webviews/viewerData';
import { viewExportBytes } from '../../src/webviews/viewExport';
import { bucket, lut } from '../../webview/viewer/colormap';
import { EXPECTED, launchChromium, serve, THEMES } from './helpers/browser';
import { near, rgbOf, ViewerPage } from './helpers/viewerPage';
import { repoRoot } from './helpers/paths';

/**
 * The slide viewer's display in headless Chromium (dist/webview/viewer.js): colour maps and the
 * percentile range checked by pixel, spot size and opacities, the scale bar, keyboard pan and
 * zoom, the small-multiples grid and the gene-set score, the PNG and SVG exports decoded and
 * parsed, and the state restored in a new page as after a window reload. Screenshots under
 * light, dark and high-contrast themes go to out/screenshots/.
 */

const root = repoRoot();
const shots = path.join(root, 'out', 'screenshots');
const tmp = path.join(root, 'test', '.tmp', 'viewerDisplay');

/** A 20 x 16 spot array, 150 px apart on a 3000 x 2400 image; spot i at column i % 20, row i / 20. */
const at = (i: number) => ({ x: 75 + (i % 20) * 150, y: 75 + Math.floor(i / 20) * 150 });
const N = 320;
/** ERBB2: the spot's column (0..19), and one outlier (1000) in the last spot: the 1st-99th percentile range stays [0, 19]. */
const erbb2 = Array.from({ length: N }, (_, i) => (i === N - 1 ? 1000 : i % 20));
/** GATA3: the spot's row (0..15). */
const gata3 = Array.from({ length: N }, (_, i) => Math.floor(i / 20));

describe('slide viewer display in Chromium', () => {
  let server: { base: string; close: () => void };
  let browser: Browser;
  let tiles: ViewerInbound['init']['tiles'];
  const store = path.join(tmp, 'store');

  before(async () => {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'webview', 'viewer.js')), 'dist/webview/viewer.js is missing; run node scripts/build.mjs');
    fs.mkdirSync(shots, { recursive: true });
    fs.mkdirSync(store, { recursive: true });
    fs.writeFileSync(path.join(store, 'store.json'), '{}');
    // A plain pink image: any spot colour differs from it.
    const image = path.join(tmp, 'slide.jpg');
    await sharp({ create: { width: 3000, height: 2400, channels: 3, background: { r: 230, g: 180, b: 210 } } }).jpeg().toFile(image);
    const pyramid = await writeTilePyramid(image, path.join(tmp, 'tiles'));
    server = await serve({ '/': path.join(root, 'dist', 'webview'), '/tiles': path.join(tmp, 'tiles', 'slide_files') });
    tiles = { base: `${server.base}/tiles`, width: pyramid.width, height: pyramid.height, tileSize: pyramid.tileSize, maxLevel: pyramid.maxLevel, format: 'jpeg' };
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });

  function init(): ViewerInbound['init'] {
    const ids = Array.from({ length: N }, (_, i) => `${i % 20}x${Math.floor(i / 20)}`);
    return {
      store, section: 'C1', genes: ['ERBB2', 'GATA3', 'ACTB'], gene: 'ERBB2',
      spots: { ids, x: ids.map((_, i) => at(i).x), y: ids.map((_, i) => at(i).y), labels: ids.map(() => null) },
      spotDiameter: 100, spotDiameterFrom: 'the ST array\'s 100 um spots at 1 um per pixel', mpp: 2,
      sections: [{ id: 'C1', spots: N }, { id: 'C2', spots: 300 }], tiles, hasTruth: true, hasPrediction: false,
    };
  }
  const open = async (theme: keyof typeof THEMES, state?: unknown) => {
    const v = await ViewerPage.open(browser, server.base, theme, state);
    await v.deliver('init', init());
    await v.deliver('values', { gene: 'ERBB2', truth: erbb2 });
    await v.rendered('ERBB2');
    await v.page.waitForTimeout(300); // tiles load
    await v.frames();
    return v;
  };
  const spotColour = (v: ViewerPage, panel: number, i: number, dx = 0) => v.rgbaAt(panel, at(i).x, at(i).y, dx);

  for (const theme of ['light', 'dark', 'high-contrast'] as const) {
    test(`${theme}: colour maps and the percentile range by pixel, colour bar values, spot size and opacities, scale bar, keyboard, section switcher`, async () => {
      const v = await open(theme);
      try {
        // The 1st-99th percentile range ignores the outlier: [0, 19]; value 10 sits at bucket 134.
        assert.deepEqual(await v.page.locator('.panel .scale .ticks').innerText().then((t) => t.split(/\s+/)), ['0.00', '9.50', '19.00']);
        const viridis = lut('viridis');
        for (const i of [0, 10, 19]) assert.ok(near(await spotColour(v, 0, i), rgbOf(viridis[bucket(i, 0, 19)])), `spot ${i}: ${await spotColour(v, 0, i)}`);
        assert.match(await v.page.locator('canvas.slide').first().getAttribute('aria-label') ?? '', /^ground truth: ERBB2 on C1, 320 spots coloured 0\.00 to 19\.00$/);
        // The scale bar (2 um per pixel) in the theme's foreground, bottom left.
        const bar = await v.page.locator('canvas.slide').first().evaluate((c: HTMLCanvasElement) => {
          const dpr = c.width / c.getBoundingClientRect().width;
          const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.round(14 * dpr), Math.round((c.getBoundingClientRect().height - 11) * dpr), 1, 1).data;
          return `rgb(${d[0]}, ${d[1]}, ${d[2]})`;
        });
        assert.equal(bar, EXPECTED[theme].foreground);
        await v.page.screenshot({ path: path.join(shots, `viewer-display-${theme}.png`) });

        // Min-max: the outlier stretches the range to [0, 1000]; then magma.
        await v.setControl('range-rule', 'minmax');
        assert.ok(near(await spotColour(v, 0, 10), rgbOf(viridis[bucket(10, 0, 1000)])));
        assert.match(await v.page.locator('.panel .scale .hi').innerText(), /^1000\.00$/);
        await v.setControl('value-map', 'magma');
        assert.ok(near(await spotColour(v, 0, 10), rgbOf(lut('magma')[bucket(10, 0, 1000)])));

        // Spot size: 60 image px right of a spot's centre is the image at radius 50, the spot at 1.5 x.
        const scale = (await v.saved()).view?.scale ?? 0;
        assert.ok(near(await spotColour(v, 0, 10, 60 * scale), [230, 180, 210], 12), 'the image between spots');
        await v.setControl('spot-size', '1.5');
        assert.ok(near(await spotColour(v, 0, 10, 60 * scale), rgbOf(lut('magma')[bucket(10, 0, 1000)])), 'a larger spot covers it');
        await v.setControl('spot-size', '1');
        await v.setControl('spot-opacity', '0');
        assert.ok(near(await spotColour(v, 0, 10), [230, 180, 210], 12), 'transparent spots show the image');
        await v.setControl('image-opacity', '0');
        assert.equal((await spotColour(v, 0, 10, 60 * scale))[3], 0, 'no image: the canvas is clear between spots');
        await v.setControl('spot-opacity', '1');
        await v.setControl('image-opacity', '1');

        // Keyboard: a panel takes focus; arrows pan by 60 px, + zooms about the centre, 0 fits again.
        const before = (await v.saved()).view!;
        await v.page.locator('canvas.slide').first().focus();
        await v.page.keyboard.press('ArrowRight');
        await v.page.keyboard.press('ArrowDown');
        await v.frames();
        const panned = (await v.saved()).view!;
        assert.deepEqual([panned.tx - before.tx, panned.ty - before.ty, panned.scale], [-60, -60, before.scale]);
        await v.page.keyboard.press('+');
        await v.frames();
        assert.ok(Math.abs((await v.saved()).view!.scale / before.scale - 1.25) < 1e-9);
        await v.page.keyboard.press('0');
        await v.frames();
        assert.deepEqual((await v.saved()).view, before);
        assert.equal(await v.page.locator('#gene-search').getAttribute('aria-label'), 'search 3 genes');

        // The section switcher asks the extension for another section.
        await v.setControl('section', 'C2');
        assert.deepEqual(await v.sentOf('selectSection'), [{ section: 'C2' }]);
      } finally {
        await v.close();
      }
    });
  }

  test('several genes at once: a grid sharing pan and zoom, each gene its own range; a gene-set score of standardised genes', async () => {
    const v = await open('dark');
    try {
      await v.page.locator('#gene-list').click();
      await v.page.keyboard.type('ERBB2, GATA3 ACTB NOPE');
      await v.page.locator('#show-grid').click();
      assert.deepEqual(await v.sentOf('selectGenes'), [{ purpose: 'grid', genes: ['ERBB2', 'GATA3', 'ACTB'] }]);
      assert.match(await v.page.locator('#multi-status').innerText(), /not in this view: NOPE/);
      const actb = erbb2.map(() => 5);
      await v.deliver('multiples', { purpose: 'grid', source: 'ground truth', genes: [{ gene: 'ERBB2', values: erbb2 }, { gene: 'GATA3', values: gata3 }, { gene: 'ACTB', values: actb }], unknown: [] });
      await v.frames();
      await v.frames();
      assert.deepEqual(await v.page.locator('.panel .label').allInnerTexts(), ['ERBB2 (ground truth)', 'GATA3 (ground truth)', 'ACTB (ground truth)']);
      // One view for all: pan the first panel by keyboard, read every panel where the spots went.
      await v.page.locator('canvas.slide').first().focus();
      await v.page.keyboard.press('ArrowLeft');
      await v.frames();
      const viridis = lut('viridis');
      assert.ok(near(await spotColour(v, 0, 170), rgbOf(viridis[bucket(10, 0, 19)])), 'ERBB2 on [0, 19]');
      assert.ok(near(await spotColour(v, 1, 170), rgbOf(viridis[bucket(8, 0, 15)])), 'GATA3 on its own [0, 15]');
      assert.ok(near(await spotColour(v, 2, 170), rgbOf(viridis[128])), 'a constant gene in the middle');
      await v.page.screenshot({ path: path.join(shots, 'viewer-grid-dark.png') });

      // Score: gene A is the spot's class (0, 1, 2 by i % 3); gene B is 30 only in class 2. Each
      // standardised (sample sd), then averaged: the middle class is not where raw means put it.
      await v.page.locator('#show-score').click();
      assert.deepEqual((await v.sentOf('selectGenes'))[1], { purpose: 'score', genes: ['ERBB2', 'GATA3', 'ACTB'] });
      const a = Array.from({ length: N }, (_, i) => i % 3);
      const b = a.map((c) => (c === 2 ? 30 : 0));
      const z = (xs: number[]) => {
        const m = xs.reduce((s, x) => s + x, 0) / xs.length;
        const sd = Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
        return xs.map((x) => (x - m) / sd);
      };
      const [za, zb] = [z(a), z(b)];
      const score = [0, 1, 2].map((c) => (za[c] + zb[c]) / 2); // spots 0, 1, 2 are classes 0, 1, 2
      await v.deliver('multiples', { purpose: 'score', source: 'ground truth', genes: [{ gene: 'A', values: a }, { gene: 'B', values: b }], unknown: [] });
      await v.frames();
      await v.frames();
      assert.equal(await v.page.locator('canvas.slide').count(), 1);
      assert.match(await v.page.locator('.panel .label').innerText(), /gene-set score: 2 genes/);
      for (const c of [0, 1, 2]) assert.ok(near(await spotColour(v, 0, c), rgbOf(viridis[bucket(score[c], score[0], score[2])])), `class ${c}`);
      await v.page.locator('#show-single').click();
      await v.frames();
      assert.equal(await v.page.locator('canvas.slide').count(), 1);
      assert.equal(await v.page.locator('.panel .label').innerText(), 'ground truth');
    } finally {
      await v.close();
    }
  });

  test('exports: the PNG decoded (size, a spot\'s colour), the SVG parsed (a circle per spot in its colour, the image embedded, the scale bar)', async () => {
    const v = await open('light');
    try {
      await v.page.locator('#export-png').click();
      await v.page.locator('#export-svg').click();
      const [png, svg] = await v.sentOf<ViewerOutbound['exportView']>('exportView');
      assert.deepEqual([png.format, png.name, svg.format, svg.name], ['png', 'C1-ERBB2', 'svg', 'C1-ERBB2']);

      const row = (await v.page.locator('.panels').boundingBox())!;
      const canvas = (await v.page.locator('canvas.slide').first().boundingBox())!;
      const bytes = viewExportBytes(png);
      const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height], [Math.round(row.width), Math.round(row.height)]);
      const view = (await v.saved()).view!;
      const px = (i: number) => {
        const x = Math.round(canvas.x - row.x + at(i).x * view.scale + view.tx);
        const y = Math.round(canvas.y - row.y + at(i).y * view.scale + view.ty);
        const o = (y * info.width + x) * info.channels;
        return [data[o], data[o + 1], data[o + 2]];
      };
      for (const i of [0, 10, 19]) assert.ok(near(px(i), rgbOf(lut('viridis')[bucket(i, 0, 19)])), `PNG spot ${i}: ${px(i)}`);

      // The SVG through the browser's XML parser.
      const parsed = await v.page.evaluate((text) => {
        const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
        return {
          error: doc.querySelector('parsererror')?.textContent ?? null,
          fills: Array.from(doc.querySelectorAll('g.spots circle')).map((c) => c.getAttribute('fill')),
          image: doc.querySelector('image.slide-image')?.getAttribute('href') ?? '',
          scaleBar: doc.querySelector('g.scale-bar text')?.textContent ?? '',
          title: doc.querySelector('svg > g > text')?.textContent ?? '',
        };
      }, viewExportBytes(svg).toString('utf8'));
      assert.equal(parsed.error, null);
      assert.equal(parsed.fills.length, N);
      assert.deepEqual(parsed.fills, erbb2.map((x) => lut('viridis')[bucket(x, 0, 19)]));
      assert.equal(parsed.title, 'ground truth');
      assert.match(parsed.scaleBar, /^\d+ (µm|mm)$/); // which unit depends on the panel's height (the selection tools take a row)
      const raster = await sharp(Buffer.from(parsed.image.replace(/^data:image\/jpeg;base64,/, ''), 'base64')).metadata();
      assert.deepEqual([raster.format, raster.width, raster.height], ['jpeg', Math.round(canvas.width), Math.round(canvas.height)]);

      assert.throws(() => viewExportBytes({ format: 'png', data: 'data:image/png;base64,AAAA', name: 'x' }), /not a PNG/);
      assert.throws(() => viewExportBytes({ format: 'svg', data: '<html></html>', name: 'x' }), /not an SVG/);
    } finally {
      await v.close();
    }
  });

  test('state survives a reload: setState holds view, display and grid; a new page given it opens where the old one was; the serializer reads it back', async () => {
    const v = await open('dark');
    let saved;
    try {
      await v.setControl('value-map', 'cividis');
      await v.setControl('spot-size', '0.75');
      await v.page.locator('canvas.slide').first().focus();
      await v.page.keyboard.press('+');
      await v.page.keyboard.press('ArrowUp');
      await v.frames();
      await v.page.locator('#gene-list').click();
      await v.page.keyboard.type('GATA3 ERBB2');
      await v.page.locator('#show-grid').click();
      await v.deliver('multiples', { purpose: 'grid', source: 'ground truth', genes: [{ gene: 'GATA3', values: gata3 }, { gene: 'ERBB2', values: erbb2 }], unknown: [] });
      await v.frames();
      await v.frames();
      saved = await v.saved();
    } finally {
      await v.close();
    }
    assert.deepEqual(parseViewerSavedState(saved), saved, 'the saved state passes the extension\'s validation');
    assert.deepEqual(saved.multiples, { purpose: 'grid', genes: ['GATA3', 'ERBB2'] });
    assert.deepEqual([saved.display.valueMap, saved.display.spotScale], ['cividis', 0.75]);
    // The serializer's side: what reopens the panel, and why not for a state that is not a viewer's.
    assert.deepEqual(restoredRequest(saved), { store, section: 'C1', gene: 'ERBB2' });
    assert.match(restoredRequest({ ...saved, display: { ...saved.display, spotOpacity: 7 } }) as string, /not a slide viewer's/);
    assert.match(restoredRequest({ ...saved, request: { store: path.join(tmp, 'gone'), section: 'C1' } }) as string, /is gone/);

    const again = await ViewerPage.open(browser, server.base, 'dark', saved);
    try {
      await again.deliver('init', init());
      await again.deliver('values', { gene: 'ERBB2', truth: erbb2 });
      assert.deepEqual(await again.sentOf('selectGenes'), [{ purpose: 'grid', genes: ['GATA3', 'ERBB2'] }], 'the grid is asked for again');
      await again.deliver('multiples', { purpose: 'grid', source: 'ground truth', genes: [{ gene: 'GATA3', values: gata3 }, { gene: 'ERBB2', values: erbb2 }], unknown: [] });
      await again.rendered('ERBB2');
      await again.frames();
      await again.frames();
      const restored = await again.saved();
      assert.deepEqual(restored.view, saved.view, 'the same pan and zoom');
      assert.deepEqual(restored.display, saved.display);
      assert.equal(await again.page.locator('#value-map').evaluate((d) => (d as HTMLElement & { value: string }).value), 'cividis');
      assert.equal(await again.page.locator('canvas.slide').count(), 2);
      // A spot inside the first panel under the restored view (clear of its title and colour bar).
      const box = (await again.page.locator('canvas.slide').first().boundingBox())!;
      const v0 = restored.view!;
      const inside = Array.from({ length: N }, (_, i) => i).find((i) => {
        const [x, y] = [at(i).x * v0.scale + v0.tx, at(i).y * v0.scale + v0.ty];
        return x > 40 && x < box.width - 160 && y > 40 && y < box.height - 60;
      });
      assert.ok(inside !== undefined, 'no spot in view');
      const got = await spotColour(again, 0, inside);
      assert.ok(near(got, rgbOf(lut('cividis')[bucket(gata3[inside], 0, 15)])), `GATA3 in cividis where it was: ${got}`);
    } finally {
      await again.close();
    }
  });
});
