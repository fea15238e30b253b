import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { ResultsInbound } from '../../src/protocol/webviews';
import { launchChromium, serve, THEMES } from './helpers/browser';
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

describe('webview pages in Chromium', () => {
  let server: { base: string; close: () => void };
  let browser: Browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'webview', 'results.js')), 'dist/webview/results.js is missing; run node scripts/build.mjs');
    fs.mkdirSync(shots, { recursive: true });
    server = await serve(path.join(root, 'dist', 'webview'));
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

  for (const theme of ['light', 'dark'] as const) {
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
        const messages = await sent(page);
        assert.deepEqual(messages.slice(1), [
          { type: 'rendered', payload: { rows: 3, best: [0, 1, 0, 0] } },
          { type: 'export', payload: { format: 'csv' } },
          { type: 'export', payload: { format: 'markdown' } },
        ]);
        const colour = await page.locator('td.best').first().evaluate((e) => getComputedStyle(e).color);
        assert.equal(colour, theme === 'light' ? 'rgb(56, 138, 52)' : 'rgb(137, 209, 133)');
        await page.screenshot({ path: path.join(shots, `results-table-${theme}.png`), fullPage: true });
      } finally {
        await page.close();
      }
    });
  }
});
