import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { EXPECTED, launchChromium, serve, THEMES } from './helpers/browser';
import { MIME, type CurvePayload, type GeneMapPayload, type MetricsPayload, type TablePayload } from '../../src/protocol/outputs';
import { repoRoot } from './helpers/paths';

/**
 * The notebook renderer (dist/renderers/index.js) in a real headless Chromium, the way VS Code
 * loads it (an ES module whose activate() returns renderOutputItem), under a light and a dark
 * theme's CSS variables. Screenshots go to test/.tmp/screenshots/ for a person to look at.
 */

const root = repoRoot();
const renderers = path.join(root, 'dist', 'renderers');
const shots = path.join(root, 'test', '.tmp', 'screenshots');

const table: TablePayload = {
  title: 'spots',
  columns: [{ name: 'spot_id', type: 'Utf8' }, { name: 'pixel_x', type: 'Float64' }, { name: 'label', type: 'Utf8' }],
  rows: Array.from({ length: 60 }, (_, i) => [`10x${i}`, 100 + i * 0.5, i === 3 ? '<img src=x onerror="window.pwned=1">' : null]),
  totalRows: 8000,
};
const metrics: MetricsPayload = {
  title: 'leave one patient out', columns: ['MSE', 'MAE', 'PCC(M)', 'PCC(H)'], better: ['lower', 'lower', 'higher', 'higher'],
  rows: [
    { model: 'tem', values: [{ mean: 0.30, std: 0.01 }, { mean: 0.40, std: 0.02 }, { mean: 0.20, std: 0.05 }, { mean: 0.50, std: 0.04 }] },
    { model: 'triplex', values: [{ mean: 0.25, std: 0.01 }, { mean: 0.41, std: 0.02 }, { mean: 0.30, std: 0.05 }, { mean: Number.NaN, std: Number.NaN }] },
  ],
};
const n = 12;
const grid = Array.from({ length: n * n }, (_, i) => i);
const truth = grid.map((i) => Math.sin(i / 9));
const geneMap: GeneMapPayload = {
  gene: 'ERBB2', section: 'C1', spotIds: grid.map((i) => `s${i}`),
  x: grid.map((i) => (i % n) * 224), y: grid.map((i) => Math.floor(i / n) * 224),
  source: { store: '/data/store', predictions: '/data/store/runs/triplex-frozen/fold-0/predictions.arrow' },
  panels: [{ title: 'ground truth', values: truth }, { title: 'prediction', values: truth.map((v) => 0.8 * v) }, { title: 'error (prediction - truth)', values: truth.map((v) => -0.2 * v), diverging: true }],
  pcc: 1,
};
const curve: CurvePayload = {
  title: 'TRIPLEX, fold 0',
  series: [{ name: 'training loss', x: [1, 2, 3, 4], y: [1, 0.6, 0.45, 0.4], axis: 'loss' }, { name: 'validation PCC', x: [1, 2, 3, 4], y: [0.1, 0.2, 0.26, 0.27], axis: 'metric' }],
};

describe('notebook renderers in Chromium', () => {
  let server: { base: string; close: () => void };
  let base: string;
  let browser: Browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(renderers, 'index.js')), 'dist/renderers/index.js is missing; run node scripts/build.mjs');
    fs.mkdirSync(shots, { recursive: true });
    server = await serve(renderers);
    base = server.base;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });

  /** A page with the theme's variables, the renderer activated, and each payload rendered into its own element. */
  async function render(theme: keyof typeof THEMES, outputs: [string, unknown][]): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1000, height: 800 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(base);
    await page.evaluate(async ({ vars, outputs, url }) => {
      for (const [k, v] of Object.entries(vars)) document.body.style.setProperty(k, v);
      document.body.style.background = vars['--vscode-editor-background'];
      const module = await import(url) as { activate: (ctx: unknown) => { renderOutputItem: (item: unknown, el: HTMLElement) => Promise<void> } };
      const posted: unknown[] = [];
      Object.assign(window, { __posted: posted });
      const renderer = module.activate({ postMessage: (m: unknown) => posted.push(m) });
      for (const [mime, payload] of outputs) {
        const el = document.createElement('div');
        el.dataset.mime = mime;
        document.body.append(el);
        await renderer.renderOutputItem({ id: mime, mime, json: () => payload, text: () => JSON.stringify(payload) }, el);
      }
    }, { vars: THEMES[theme] as Record<string, string>, outputs, url: `${base}/index.js` });
    assert.deepEqual(errors, []);
    return page;
  }

  for (const theme of ['light', 'dark', 'high-contrast'] as const) {
    test(`${theme} theme: tables page, values are text (never HTML), the best metric is marked, plots draw every spot`, async () => {
      const page = await render(theme, [[MIME.table, table], [MIME.metrics, metrics], [MIME.geneMap, geneMap], [MIME.curve, curve]]);
      try {
        const t = page.locator(`[data-mime="${MIME.table}"]`);
        assert.equal(await t.locator('tbody tr').count(), 25);
        assert.match(await t.locator('.pager span').innerText(), /rows 1-25 of 60 \(first 60 of 8000 kept\), page 1\/3/);
        assert.equal(await t.locator('tbody tr').nth(3).locator('td').nth(2).innerText(), '<img src=x onerror="window.pwned=1">');
        assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
        await t.getByText('Next ›').click();
        await t.getByText('Next ›').click();
        assert.equal(await t.locator('tbody tr').count(), 10);
        assert.equal(await t.getByText('Next ›').isDisabled(), true);

        const m = page.locator(`[data-mime="${MIME.metrics}"]`);
        const best = await m.locator('td.best').allInnerTexts();
        assert.deepEqual(best, ['0.400 ± 0.020', '0.500 ± 0.040', '0.250 ± 0.010', '0.300 ± 0.050'], 'row by row: tem wins MAE and PCC(H) (triplex has none), triplex MSE and PCC(M)');
        assert.ok((await m.locator('td').allInnerTexts()).includes('– ± –'), 'an undefined PCC(H) is shown as a dash');
        const green = await m.locator('td.best').first().evaluate((el) => getComputedStyle(el).color);
        assert.equal(green, EXPECTED[theme].green, 'the best cell takes the theme colour');

        const g = page.locator(`[data-mime="${MIME.geneMap}"]`);
        await g.locator('.main-svg').first().waitFor();
        assert.equal(await g.locator('.scatterlayer .point').count(), 3 * n * n, 'every spot in every panel');
        assert.match(await g.locator('.gtitle').textContent() ?? '', /ERBB2 on C1 \(PCC 1\.000\)/);
        const titleColour = await g.locator('.gtitle').evaluate((el) => getComputedStyle(el).fill);
        assert.equal(titleColour, EXPECTED[theme].foreground, 'plot text takes the theme foreground');

        await g.locator('button.open-viewer').click();
        assert.deepEqual(await page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted), [
          { type: 'openSlideViewer', store: '/data/store', section: 'C1', gene: 'ERBB2', predictions: '/data/store/runs/triplex-frozen/fold-0/predictions.arrow' },
        ]);

        const c = page.locator(`[data-mime="${MIME.curve}"]`);
        await c.locator('.main-svg').first().waitFor();
        assert.equal(await c.locator('.scatterlayer .trace').count(), 2);
        await page.screenshot({ path: path.join(shots, `renderers-${theme}.png`), fullPage: true });
      } finally {
        await page.close();
      }
    });
  }

  test('an unknown MIME type and a broken payload are reported in the output, not thrown', async () => {
    const page = await render('light', [['application/vnd.triplex.unknown+json', {}], [MIME.metrics, { title: 'x' }]]);
    try {
      assert.match(await page.locator('[data-mime="application/vnd.triplex.unknown+json"]').innerText(), /cannot draw/);
      assert.match(await page.locator(`[data-mime="${MIME.metrics}"]`).innerText(), /could not draw this/);
    } finally {
      await page.close();
    }
  });
});
