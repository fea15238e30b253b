import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { writeTilePyramid } from '../../src/runtime/image/tiles';
import type { ResultsInbound, ViewerInbound } from '../../src/protocol/webviews';
import { VIRIDIS } from '../../webview/viewer/colormap';
import { EXPECTED, launchChromium, serve, THEMES } from './helpers/browser';
import { repoRoot } from './helpers/paths';

/**
 * The webview pages (dist/webview/*.js) in headless Chromium, with `acquireVsCodeApi` standing in
 * for VS Code's: messages in through window.postMessage, messages out recorded. Screenshots go to
 * test/.tmp/screenshots/.
 */

const root = repoRoot();
const shots = path.join(root, 'test', '.tmp', 'screenshots');

const results: ResultsInbound['results'] = {
  title: 'Cross-validation results (3 runs)', root: '/data/store/runs/ablation-frozen',
  columns: ['MSE', 'MAE', 'PCC(M)', 'PCC(H)'], better: ['lower', 'lower', 'higher', 'higher'],
  rows: [
    { label: 'triplex', variant: 'triplex', group: 'model', description: 'TRIPLEX: target, neighbor and global views fused', mode: 'frozen', folds: 'lopo', dir: '/runs/triplex', aborted: false,
      values: [{ mean: 0.25, std: 0.02 }, { mean: 0.41, std: 0.01 }, { mean: 0.31, std: 0.05 }, { mean: 0.52, std: 0.04 }],
      perFold: [{ fold: 0, slides: 2, values: [0.24, 0.4, 0.3, 0.5] }, { fold: 1, slides: 2, values: [0.26, 0.42, 0.32, 0.54] }] },
    { label: 'tem', variant: 'tem', group: 'views', description: 'TEM: the target view alone', mode: 'frozen', folds: 'lopo', dir: '/runs/tem', aborted: false,
      values: [{ mean: 0.3, std: 0.02 }, { mean: 0.4, std: 0.01 }, { mean: 0.2, std: 0.05 }, { mean: 0.5, std: 0.04 }],
      perFold: [{ fold: 0, slides: 2, values: [0.3, 0.4, 0.2, 0.5] }, { fold: 1, slides: 2, values: [0.3, 0.4, 0.2, 0.5] }] },
    { label: 'no-gem <b>x</b>', variant: 'no-gem', group: 'views', description: 'TRIPLEX without the global view', mode: 'frozen', folds: 'lopo', dir: '/runs/no-gem', aborted: true,
      values: [{ mean: 0.28, std: Number.NaN }, { mean: 0.43, std: Number.NaN }, { mean: Number.NaN, std: Number.NaN }, { mean: 0.45, std: Number.NaN }],
      perFold: [{ fold: 0, slides: 2, values: [0.28, 0.43, Number.NaN, 0.45] }] },
  ],
  best: [0, 1, 0, 0],
  problems: ['/runs/broken/results.json: not a readable results.json (Unexpected end of JSON input)'],
};

const tmp = path.join(root, 'test', '.tmp', 'webviews');

describe('webview pages in Chromium', () => {
  let pyramid: Awaited<ReturnType<typeof writeTilePyramid>>;
  let server: { base: string; close: () => void };
  let browser: Browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'webview', 'results.js')), 'dist/webview/results.js is missing; run node scripts/build.mjs');
    fs.mkdirSync(shots, { recursive: true });
    fs.mkdirSync(tmp, { recursive: true });
    // A 3000 x 2400 px image with a known pattern, tiled as the extension tiles it.
    const image = path.join(tmp, 'slide.jpg');
    const w = 3000, h = 2400;
    const rgb = Buffer.alloc(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      rgb[o] = 230 - ((x >> 6) & 1) * 40; rgb[o + 1] = 180; rgb[o + 2] = 210 - ((y >> 6) & 1) * 40;
    }
    await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg().toFile(image);
    pyramid = await writeTilePyramid(image, path.join(tmp, 'tiles'));
    server = await serve({ '/': path.join(root, 'dist', 'webview'), '/tiles': path.join(tmp, 'tiles', 'slide_files'), '/detail': path.join(tmp, 'tiles', 'slide_files') });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });

  /** Opens a page with the theme and the VS Code API stand-in, then loads the bundle. */
  async function open(bundle: string, theme: keyof typeof THEMES): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.base);
    await page.evaluate((vars) => {
      for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
      const sent: unknown[] = [];
      Object.assign(window, { __sent: sent, acquireVsCodeApi: () => ({ postMessage: (m: unknown) => sent.push(m), getState: () => undefined, setState: () => undefined }) });
    }, THEMES[theme] as Record<string, string>);
    await page.addScriptTag({ url: `${server.base}/${bundle}` });
    assert.deepEqual(errors, []);
    return page;
  }
  const sent = (page: Page) => page.evaluate(() => (window as unknown as { __sent: { type: string; payload: unknown }[] }).__sent);
  const deliver = (page: Page, message: unknown) => page.evaluate((m) => window.postMessage(m, '*'), message);

  for (const theme of ['light', 'dark', 'high-contrast'] as const) {
    test(`results table (${theme}): groups, best marks, escaped labels, per-fold drill-down, exports, a malformed message ignored`, async () => {
      const page = await open('results.js', theme);
      try {
        assert.deepEqual(await sent(page), [{ type: 'ready', payload: {} }]);
        await deliver(page, { type: 'results', payload: { title: 42 } }); // malformed: ignored
        await deliver(page, { type: 'bogus', payload: {} });
        await deliver(page, { type: 'results', payload: results });
        await page.locator('table.results').waitFor();
        assert.deepEqual(await page.locator('tr.group td').allInnerTexts(), ['model', 'views']);
        assert.deepEqual(await page.locator('tr.run td:first-child').allInnerTexts(), ['triplex', 'tem', 'no-gem <b>x</b> (stopped early)']);
        assert.deepEqual(await page.locator('td.best').allInnerTexts(), ['0.250 ± 0.020', '0.310 ± 0.050', '0.520 ± 0.040', '0.400 ± 0.010']);
        assert.equal(await page.locator('b').count(), 0, 'a label was read as HTML');
        assert.match(await page.locator('.problem').innerText(), /broken[\\/]results\.json/);

        await page.locator('tr.run').nth(0).click();
        assert.deepEqual(await page.locator('table.folds tr td:first-child').allInnerTexts(), ['0', '1']);
        assert.match(await page.locator('.detail h3').innerText(), /triplex: per fold/);

        await page.locator('#export-csv').click();
        await page.locator('#export-markdown').click();
        // Each run's own "Export .h5ad" names that run's folder, and does not drill down into it.
        assert.deepEqual(await page.locator('tr.run vscode-button').allInnerTexts(), ['Export .h5ad', 'Export .h5ad', 'Export .h5ad']);
        await page.locator('#export-h5ad-1').click();
        assert.match(await page.locator('.detail h3').innerText(), /triplex: per fold/);
        const messages = await sent(page);
        assert.deepEqual(messages.slice(1), [
          { type: 'rendered', payload: { rows: 3, best: [0, 1, 0, 0] } },
          { type: 'export', payload: { format: 'csv' } },
          { type: 'export', payload: { format: 'markdown' } },
          { type: 'exportH5ad', payload: { dir: '/runs/tem' } },
        ]);
        const colour = await page.locator('td.best').first().evaluate((e) => getComputedStyle(e).color);
        assert.equal(colour, EXPECTED[theme].green);
        await page.screenshot({ path: path.join(shots, `results-table-${theme}.png`), fullPage: true });
      } finally {
        await page.close();
      }
    });
  }

  /** A 20 x 16 spot array over the image, two annotation classes, two genes. */
  function viewerInit(withTiles: boolean): ViewerInbound['init'] {
    const ids: string[] = [], x: number[] = [], y: number[] = [], labels: (string | null)[] = [];
    for (let r = 0; r < 16; r++) for (let c = 0; c < 20; c++) {
      ids.push(`${c}x${r}`); x.push(75 + c * 150); y.push(75 + r * 150); labels.push(c < 10 ? 'invasive cancer' : r < 8 ? 'connective tissue' : null);
    }
    return {
      store: '/store', section: 'C1', genes: ['ERBB2', 'GATA3', 'ACTB'], gene: 'ERBB2', spots: { ids, x, y, labels }, spotDiameter: 100,
      tiles: withTiles ? { base: `${server.base}/tiles`, width: pyramid.width, height: pyramid.height, tileSize: pyramid.tileSize, maxLevel: pyramid.maxLevel, format: 'jpeg' } : undefined,
      hasTruth: true, hasPrediction: true,
    };
  }
  const valuesOf = (gene: string, n = 320): ViewerInbound['values'] => {
    const truth = Array.from({ length: n }, (_, i) => (gene === 'ERBB2' ? (i % 20) / 19 : ((i * 7) % 13) / 12));
    return { gene, truth, prediction: truth.map((v) => 0.5 * v + 0.25), pcc: 1 };
  };
  const rendered = async (page: Page, gene: string) => {
    for (let i = 0; i < 100; i++) {
      const m = (await sent(page)).find((x) => x.type === 'rendered' && (x.payload as { gene: string }).gene === gene);
      if (m) return m.payload as { gene: string; ms: number };
      await page.waitForTimeout(50);
    }
    throw new Error(`the viewer did not report drawing ${gene}`);
  };

  /** The colour drawn under spot `spot` of the 20 x 16 array in panel `panel`, in the fitted view (fit()'s arithmetic: image 3000 x 2400, 98%). */
  const colourOf = (page: Page, panel: number, spot: number) => page.locator('canvas.slide').nth(panel).evaluate((c: HTMLCanvasElement, i) => {
    const x = 75 + (i % 20) * 150, y = 75 + Math.floor(i / 20) * 150;
    const rect = c.getBoundingClientRect();
    const dpr = c.width / rect.width;
    const ctx = c.getContext('2d') as CanvasRenderingContext2D;
    const scale = Math.min(rect.width / 3000, rect.height / 2400) * 0.98;
    const sx = (rect.width - 3000 * scale) / 2 + x * scale, sy = (rect.height - 2400 * scale) / 2 + y * scale;
    const d = ctx.getImageData(Math.round(sx * dpr), Math.round(sy * dpr), 1, 1).data;
    return [d[0], d[1], d[2]];
  }, spot);
  const lutRgb = (b: number) => (/rgb\((\d+),(\d+),(\d+)\)/.exec(VIRIDIS[b]) as RegExpExecArray).slice(1).map(Number);
  const close = (a: number[], b: number[]) => a.every((v, k) => Math.abs(v - b[k]) <= 3);

  for (const theme of ['light', 'dark', 'high-contrast'] as const) {
    test(`slide viewer (${theme}): tiles under coloured spots, shared colour range, hover, click, gene search, annotations, zoom`, async () => {
      const page = await open('viewer.js', theme);
      const tileRequests: string[] = [];
      page.on('request', (r) => { if (r.url().includes('/tiles/')) tileRequests.push(r.url()); });
      try {
        assert.deepEqual(await sent(page), [{ type: 'ready', payload: {} }]);
        await deliver(page, { type: 'init', payload: { ...viewerInit(true), spots: { ids: ['a'], x: [1, 2], y: [1], labels: [] } } }); // malformed: ignored
        await deliver(page, { type: 'init', payload: viewerInit(true) });
        await deliver(page, { type: 'values', payload: valuesOf('ERBB2') });
        await rendered(page, 'ERBB2');
        assert.match(await page.locator('#headline').innerText(), /ERBB2 on C1: PCC 1\.000/);
        assert.equal(await page.locator('canvas.slide').count(), 2);
        await page.waitForTimeout(500); // tiles load
        assert.ok(tileRequests.length > 0, 'no tiles requested');

        // The colour under spot 19x0 (truth 1.0: the top of the shared range) in the left panel, and
        // under the same spot on the right (prediction 0.75): both from one range [0.25, 1].
        const colourAt = (panel: number, spot: number) => colourOf(page, panel, spot);
        assert.ok(close(await colourAt(0, 19), lutRgb(255)), `truth 1.0: ${await colourAt(0, 19)} vs ${lutRgb(255)}`);
        assert.ok(close(await colourAt(1, 19), lutRgb(Math.round(((0.75 - 0) / 1) * 255))), `prediction 0.75: ${await colourAt(1, 19)}`);
        assert.ok(close(await colourAt(0, 0), lutRgb(0)), 'truth 0 at the bottom of the range');

        // Hover shows the spot and its values; a click asks for its crop and neighbour view.
        const box = await page.locator('canvas.slide').first().boundingBox();
        assert.ok(box);
        const scale = Math.min(box.width / 3000, box.height / 2400) * 0.98;
        const at = (i: number) => ({ x: box.x + (box.width - 3000 * scale) / 2 + (75 + (i % 20) * 150) * scale, y: box.y + (box.height - 2400 * scale) / 2 + (75 + Math.floor(i / 20) * 150) * scale });
        await page.mouse.move(at(45).x, at(45).y);
        assert.match(await page.locator('#tooltip').innerText(), /^5x2\nground truth 0\.263\nprediction 0\.382\nerror 0\.118\nannotation: invasive cancer$/);
        await page.mouse.click(at(45).x, at(45).y);
        assert.deepEqual((await sent(page)).filter((m) => m.type === 'spotClicked'), [{ type: 'spotClicked', payload: { spotId: '5x2' } }]);
        await deliver(page, { type: 'spotDetail', payload: { spotId: '5x2', crop: `${server.base}/detail/${pyramid.maxLevel}/0_0.jpeg`, neighbors: `${server.base}/detail/${pyramid.maxLevel}/1_0.jpeg`, maskedTiles: 3 } });
        await page.locator('#detail img').first().waitFor();
        assert.match(await page.locator('#detail').innerText(), /5x2: its 224 px crop.*3 outside the image/);

        // Searching a gene that matches once selects it.
        await page.locator('#gene-search').click();
        await page.keyboard.type('gata');
        assert.deepEqual((await sent(page)).filter((m) => m.type === 'selectGene'), [{ type: 'selectGene', payload: { gene: 'GATA3' } }]);
        await deliver(page, { type: 'values', payload: valuesOf('GATA3') });
        const switched = await rendered(page, 'GATA3');
        assert.ok(switched.ms < 1000, `gene switch drawn in ${switched.ms} ms`);

        await page.locator('#annotations').click();
        assert.equal(await page.locator('.legend').isVisible(), true);

        // "Export .h5ad" asks the extension, which knows the open store or run.
        await page.locator('#export-h5ad').click();
        assert.deepEqual((await sent(page)).filter((m) => m.type === 'exportH5ad'), [{ type: 'exportH5ad', payload: {} }]);
        assert.deepEqual(await page.locator('.legend span').allInnerTexts(), ['connective tissue', 'invasive cancer']);

        await page.screenshot({ path: path.join(shots, `slide-viewer-${theme}.png`) });

        // Zooming in asks for sharper tiles.
        const before = tileRequests.length;
        const levelOf = (u: string) => Number(/\/tiles\/(\d+)\//.exec(u)?.[1]);
        const coarsest = Math.max(...tileRequests.map(levelOf));
        await page.mouse.move(at(45).x, at(45).y);
        for (let i = 0; i < 6; i++) await page.mouse.wheel(0, -300);
        await page.waitForTimeout(400);
        assert.ok(tileRequests.length > before && Math.max(...tileRequests.slice(before).map(levelOf)) > coarsest, 'no sharper tiles after zooming in');
      } finally {
        await page.close();
      }
    });
  }

  test('slide viewer comparing models (Figure 2): the truth and each model in a grid, one colour scale in one legend, titles with each PCC', async () => {
    const page = await open('viewer.js', 'dark');
    try {
      const compare = { panels: [{ label: 'ST-Net', fold: 2 }, { label: 'TEM', fold: 2 }, { label: 'TRIPLEX', fold: 2 }], left: ['BLEEP (no fold of /b/bleep tests C1)'] };
      await deliver(page, { type: 'init', payload: { ...viewerInit(true), hasPrediction: false, compare } });
      const comparison = (gene: string, pcc: number | null): ViewerInbound['values'] => {
        const truth = valuesOf(gene).truth as number[];
        return {
          gene, truth,
          compare: {
            scale: { lo: 0.1, hi: 0.9, rule: "the truth's 1st to 99th percentile on this section, shared by every panel" },
            panels: [
              { prediction: truth.map((v) => 2 * v), pcc: 0.5 },
              { prediction: truth, pcc },
              { prediction: truth.map(() => 0.5), pcc: null },
            ],
          },
        };
      };
      await deliver(page, { type: 'values', payload: { ...comparison('ERBB2', 1), compare: { panels: [] } } }); // malformed: ignored
      await deliver(page, { type: 'values', payload: comparison('ERBB2', 1) });
      await rendered(page, 'ERBB2');
      assert.equal(await page.locator('canvas.slide').count(), 4);
      assert.deepEqual(await page.locator('.panel .label').allInnerTexts(), ['ground truth', 'ST-Net: PCC 0.500', 'TEM: PCC 1.000', 'TRIPLEX: PCC n/a']);
      assert.match(await page.locator('.panel .label').nth(3).getAttribute('title') ?? '', /fold 2[\s\S]*constant/);
      assert.equal(await page.locator('.panel .scale').count(), 0, 'one legend, not one per panel');
      assert.match(await page.locator('#shared-scale').innerText(), /0\.10[\s\S]*0\.90[\s\S]*ERBB2: one colour scale for every panel, 0\.10 to 0\.90 \(the truth's 1st to 99th percentile/);
      assert.match(await page.locator('.toolbar').innerText(), /left out: BLEEP \(no fold of \/b\/bleep tests C1\)/);
      assert.equal(await page.locator('#right-panel').count(), 0);
      // Two columns of two: the grid that shows a 3000 x 2400 slide largest in this window.
      const boxes = await Promise.all([0, 1, 2].map((i) => page.locator('canvas.slide').nth(i).boundingBox()));
      assert.ok(boxes[0] && boxes[1] && boxes[2] && boxes[1].x > boxes[0].x && Math.abs(boxes[1].y - boxes[0].y) < 1 && boxes[2].y > boxes[0].y);

      // One scale: equal values are equal colours in every panel; beyond the scale, its ends.
      const bucketOf = (v: number) => Math.max(0, Math.min(255, Math.round(((v - 0.1) / 0.8) * 255)));
      for (const [panel, spot, value] of [[0, 0, 0], [0, 10, 10 / 19], [0, 19, 1], [1, 5, 10 / 19], [1, 10, 20 / 19], [2, 10, 10 / 19], [3, 10, 0.5]] as const) {
        const got = await colourOf(page, panel, spot);
        assert.ok(close(got, lutRgb(bucketOf(value))), `panel ${panel}, spot ${spot} (${value.toFixed(3)}): ${got} vs ${lutRgb(bucketOf(value))}`);
      }

      // Hover lists every panel's value; a gene switch retitles every panel.
      const box = boxes[0];
      const scale = Math.min(box.width / 3000, box.height / 2400) * 0.98;
      await page.mouse.move(box.x + (box.width - 3000 * scale) / 2 + (75 + 5 * 150) * scale, box.y + (box.height - 2400 * scale) / 2 + (75 + 2 * 150) * scale);
      assert.match(await page.locator('#tooltip').innerText(), /^5x2\nground truth 0\.263\nST-Net 0\.526\nTEM 0\.263\nTRIPLEX 0\.500\nannotation: invasive cancer$/);
      await deliver(page, { type: 'values', payload: comparison('GATA3', 0.25) });
      await rendered(page, 'GATA3');
      assert.deepEqual(await page.locator('.panel .label').allInnerTexts(), ['ground truth', 'ST-Net: PCC 0.500', 'TEM: PCC 0.250', 'TRIPLEX: PCC n/a']);
      assert.match(await page.locator('#headline').innerText(), /^GATA3 on C1: ground truth and 3 models/);
      await page.screenshot({ path: path.join(shots, 'slide-viewer-compare.png') });
    } finally {
      await page.close();
    }
  });

  test('slide viewer without an image: spots only, fitted to their extent', async () => {
    const page = await open('viewer.js', 'light');
    try {
      await deliver(page, { type: 'init', payload: { ...viewerInit(false), hasPrediction: false } });
      await deliver(page, { type: 'values', payload: { gene: 'ERBB2', truth: valuesOf('ERBB2').truth } });
      await rendered(page, 'ERBB2');
      assert.equal(await page.locator('canvas.slide').count(), 1);
      assert.doesNotMatch(await page.locator('#headline').innerText(), /PCC/);
    } finally {
      await page.close();
    }
  });
});
