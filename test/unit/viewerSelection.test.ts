import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import type { ViewerInbound } from '../../src/protocol/webviews';
import { preprocess } from '../../src/runtime/data/preprocess';
import { stringColumn } from '../../src/runtime/store/arrow';
import { readCategoryColumns, saveCategory, writeSpotIdsCsv } from '../../src/runtime/store/categories';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { launchChromium, serve, THEMES } from './helpers/browser';
import { repoRoot } from './helpers/paths';
import { sectionFrom } from './helpers/sections';

/**
 * The slide viewer's selection in headless Chromium, on a real store: a lasso drawn with the mouse
 * selects the spots of a hand-computed concave polygon, its summary is the hand-computed one, the
 * selection saved as a category (by the runtime call the extension makes with the viewer's
 * message) is read back from the store into the viewer's overlay, whose legend toggles and
 * recolours it (checked by pixel), and the CSV of its spot ids holds exactly those spots.
 */

const root = repoRoot();
const shots = path.join(root, 'test', '.tmp', 'screenshots');
const COLS = 20, ROWS = 16, STEP = 150, DIAMETER = 100;
const centre = (c: number, r: number) => ({ x: 75 + c * STEP, y: 75 + r * STEP });

// A "U" in image pixels over columns 2..9 and rows 2..9 of spot centres, with a notch over columns
// 5..6 from row 6 down: every edge at least 75 px (half a step) from a spot centre.
const U = [[300, 300], [1500, 300], [1500, 1500], [1050, 1500], [1050, 900], [750, 900], [750, 1500], [300, 1500]];
const inU = (c: number, r: number) => c >= 2 && c <= 9 && r >= 2 && r <= 9 && !(c >= 5 && c <= 6 && r >= 6);

describe('slide viewer selection in Chromium', () => {
  let dir = '';
  let server: { base: string; close: () => void };
  let browser: Browser;
  before(async () => {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'webview', 'viewer.js')), 'dist/webview/viewer.js is missing; run node scripts/build.mjs');
    fs.mkdirSync(shots, { recursive: true });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-selection-'));
    // A 20 x 16 array: G1 rises along columns, G2 along rows; the left half labelled by a pathologist.
    const grid: [number, number][] = [];
    const dense: number[][] = [];
    for (let r = 0; r < ROWS; r++) for (let c = 0; c < COLS; c++) { grid.push([r, c]); dense.push([1 + c * 3, 1 + r * 2]); }
    const section = sectionFrom('C1', ['G1', 'G2'], dense, grid);
    section.spots.forEach((s, i) => {
      const c = i % COLS, r = Math.floor(i / COLS);
      Object.assign(s, { id: `${c}x${r}`, ...centre(c, r), label: c < 10 ? 'invasive cancer' : undefined });
    });
    await writeDatasetStore(dir, { format: 'her2st', path: '/data/x' }, preprocess({ format: 'her2st', source: '/data/x', sections: [section], problems: [] }, { genes: 2, minSpotFraction: 0, smooth: false }));
    server = await serve(path.join(root, 'dist', 'webview'));
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    server?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** What the extension sends: the store's spots, categories and a gene's truth with a prediction. */
  function fromStore(): { init: ViewerInbound['init']; values: ViewerInbound['values'] } {
    const store = openDatasetStore(dir);
    const rows = store.rowsOf('C1');
    const x = store.spots.getChild('pixel_x')!.toArray() as Float64Array;
    const y = store.spots.getChild('pixel_y')!.toArray() as Float64Array;
    const truth = rows.map((r) => store.values()[r * 2]);
    return {
      init: {
        store: dir, section: 'C1', genes: store.genes, gene: 'G1', hasTruth: true, hasPrediction: true, spotDiameter: DIAMETER,
        spots: { ids: stringColumn(store.spots, 'spot_id'), x: Array.from(x), y: Array.from(y), labels: stringColumn(store.spots, 'label') },
        categories: readCategoryColumns(store, rows),
      },
      values: { gene: 'G1', truth, prediction: truth.map((v, i) => v * 0.5 + (i % 3) * 0.1) },
    };
  }

  async function open(theme: keyof typeof THEMES): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.base);
    await page.evaluate((vars) => {
      for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(k, v);
      const sent: unknown[] = [];
      Object.assign(window, { __sent: sent, acquireVsCodeApi: () => ({ postMessage: (m: unknown) => sent.push(m), getState: () => undefined, setState: () => undefined }) });
    }, THEMES[theme] as Record<string, string>);
    await page.addScriptTag({ url: `${server.base}/viewer.js` });
    assert.deepEqual(errors, []);
    return page;
  }
  const sent = (page: Page) => page.evaluate(() => (window as unknown as { __sent: { type: string; payload: Record<string, unknown> }[] }).__sent);
  const deliver = (page: Page, message: unknown) => page.evaluate((m) => window.postMessage(m, '*'), message);
  async function waitFor(page: Page, type: string, count = 1): Promise<Record<string, unknown>> {
    for (let i = 0; i < 100; i++) {
      const found = (await sent(page)).filter((m) => m.type === type);
      if (found.length >= count) return found[count - 1].payload;
      await page.waitForTimeout(50);
    }
    throw new Error(`the viewer did not send ${type}`);
  }

  /** Screen position (page pixels) of an image point in the first panel, by fit()'s arithmetic (no image: the spots' extent). */
  async function screenOf(page: Page): Promise<(x: number, y: number) => { x: number; y: number }> {
    const box = await page.locator('canvas.slide').first().boundingBox();
    assert.ok(box);
    const w = 75 + (COLS - 1) * STEP + DIAMETER, h = 75 + (ROWS - 1) * STEP + DIAMETER;
    const scale = Math.min(box.width / w, box.height / h) * 0.98;
    return (x, y) => ({ x: box.x + (box.width - w * scale) / 2 + x * scale, y: box.y + (box.height - h * scale) / 2 + y * scale });
  }

  /** The colour at a page point of the first panel (RGBA). */
  const pixel = (page: Page, at: { x: number; y: number }) => page.locator('canvas.slide').first().evaluate((c: HTMLCanvasElement, p) => {
    const rect = c.getBoundingClientRect();
    const dpr = c.width / rect.width;
    const d = (c.getContext('2d') as CanvasRenderingContext2D).getImageData(Math.round((p.x - rect.left) * dpr), Math.round((p.y - rect.top) * dpr), 1, 1).data;
    return [d[0], d[1], d[2], d[3]];
  }, at);

  test('a lasso selects the hand-computed concave polygon; its summary, saved category (read back from the store), legend and CSV', async () => {
    const page = await open('dark');
    try {
      const { init, values } = fromStore();
      assert.deepEqual(init.categories?.map((c) => c.name), ['patient', 'label']);
      await deliver(page, { type: 'init', payload: init });
      await deliver(page, { type: 'values', payload: values });
      await waitFor(page, 'rendered');
      const at = await screenOf(page);

      await page.locator('#tool-lasso').click();
      const first = at(U[0][0], U[0][1]);
      await page.mouse.move(first.x, first.y);
      await page.mouse.down();
      for (const [x, y] of [...U.slice(1), U[0]]) {
        const p = at(x, y);
        await page.mouse.move(p.x, p.y, { steps: 6 });
      }
      await page.mouse.up();
      const selected = await waitFor(page, 'selected');
      const expected = init.spots.ids.filter((_, i) => inU(i % COLS, Math.floor(i / COLS)));
      assert.equal(expected.length, 56); // 8 x 8 less the notch's 2 x 4
      assert.equal(selected.count, 56);
      assert.ok((selected.ms as number) < 50, `selection took ${selected.ms} ms`);
      // Nothing panned while the lasso was drawn, and no spot was "clicked".
      assert.deepEqual((await sent(page)).filter((m) => m.type === 'spotClicked'), []);

      // The summary, computed here by hand from the same values.
      const idx = init.spots.ids.flatMap((_, i) => (inU(i % COLS, Math.floor(i / COLS)) ? [i] : []));
      const t = idx.map((i) => values.truth![i]), p = idx.map((i) => values.prediction![i]);
      const mt = t.reduce((a, b) => a + b) / t.length, mp = p.reduce((a, b) => a + b) / p.length;
      const cov = t.reduce((a, v, k) => a + (v - mt) * (p[k] - mp), 0);
      const pcc = cov / Math.sqrt(t.reduce((a, v) => a + (v - mt) ** 2, 0) * p.reduce((a, v) => a + (v - mp) ** 2, 0));
      assert.equal(await page.locator('#selection-summary').innerText(), `56 spots · mean truth ${mt.toFixed(3)} · mean prediction ${mp.toFixed(3)} · PCC ${pcc.toFixed(3)} (G1, inside the selection)`);

      // Save as category: the viewer's message, handled as the extension handles it.
      await page.locator('#category-name').evaluate((f: HTMLElement & { value: string }) => { f.value = 'region'; });
      await page.locator('#category-label').evaluate((f: HTMLElement & { value: string }) => { f.value = 'tumour'; });
      await page.locator('#save-category').click();
      const save = await waitFor(page, 'saveCategory') as { name: string; label: string; spotIds: string[] };
      assert.deepEqual({ ...save, spotIds: [...save.spotIds].sort() }, { name: 'region', label: 'tumour', spotIds: [...expected].sort() });
      const saved = await saveCategory(dir, { ...save, section: 'C1' });
      const back = fromStore().init.categories ?? [];
      assert.deepEqual(back.find((c) => c.name === 'region')?.values, init.spots.ids.map((id) => (expected.includes(id) ? 'tumour' : null)));
      await deliver(page, { type: 'categories', payload: { columns: back, saved: { name: saved.name, label: saved.label, spots: saved.spots } } });
      await page.locator('#category-legend .category-name').first().waitFor();
      assert.deepEqual(await page.locator('#category-legend .category-name').allInnerTexts(), ['tumour (56)']);
      await page.waitForTimeout(100);
      assert.equal(await page.locator('#overlay').evaluate((d: HTMLElement & { value: string }) => d.value), 'region', 'the overlay picker shows the saved category');
      assert.match(await page.locator('#selection-summary').innerText(), /saved as region = tumour$/);

      // Export CSV: the viewer's message, written as the extension writes it.
      await page.locator('#export-selection').click();
      const exported = await waitFor(page, 'exportSelection') as { spotIds: string[] };
      const csv = path.join(dir, 'selection.csv');
      await writeSpotIdsCsv(csv, 'C1', exported.spotIds);
      assert.equal(fs.readFileSync(csv, 'utf8'), ['section,spot_id', ...expected.map((id) => `C1,${id}`)].join('\n') + '\n');

      // The category overlay by pixel: a ring around spot (3, 3) in the legend's colour; off when
      // toggled; recoloured when its colour is edited. The selection is cleared first (its rings).
      await page.locator('#clear-selection').click();
      assert.equal(await page.locator('#selection-summary').innerText(), 'draw a lasso or a rectangle to select spots');
      const box = await page.locator('canvas.slide').first().boundingBox();
      const scale = (at(1000, 0).x - at(0, 0).x) / 1000;
      const r = Math.max(1.5, (DIAMETER / 2) * scale);
      const ring = r + Math.max(2, Math.min(6, r * 0.35)) / 2;
      const c33 = at(centre(3, 3).x, centre(3, 3).y);
      const onRing = { x: c33.x, y: c33.y - ring };
      assert.ok(box && onRing.y > box.y);
      await page.waitForTimeout(100);
      const near = (got: number[], want: number[]) => want.every((v, k) => Math.abs(v - got[k]) <= 40);
      assert.ok(near(await pixel(page, onRing), [0xe4, 0x1a, 0x1c, 255]), `shown: ${await pixel(page, onRing)}`);
      const c123 = at(centre(12, 3).x, centre(12, 3).y);
      const outside = await pixel(page, { x: c123.x, y: c123.y - ring }); // the same place by a spot outside the category
      await page.locator('#category-legend .category-name').first().click();
      assert.equal(await page.locator('#category-legend .category-name').first().getAttribute('aria-checked'), 'false');
      await page.waitForTimeout(100);
      const hidden = await pixel(page, onRing);
      assert.ok(!near(hidden, [0xe4, 0x1a, 0x1c, 255]), `hidden: ${hidden}`);
      assert.ok(near(hidden, outside), `hidden ${hidden} vs a spot without the category ${outside}`);
      await page.locator('#category-legend .category-name').first().press('Enter');
      await page.locator('#category-legend input[type=color]').first().evaluate((i: HTMLInputElement) => {
        i.value = '#00ff00';
        i.dispatchEvent(new Event('input'));
      });
      await page.waitForTimeout(100);
      assert.ok(near(await pixel(page, onRing), [0, 255, 0, 255]), `recoloured: ${await pixel(page, onRing)}`);
      await page.screenshot({ path: path.join(shots, 'slide-viewer-selection-dark.png') });
    } finally {
      await page.close();
    }
  });

  test('a rectangle selects the spots inside it, drawn from either corner; a gene switch updates the summary', async () => {
    const page = await open('light');
    try {
      const { init, values } = fromStore();
      await deliver(page, { type: 'init', payload: init });
      await deliver(page, { type: 'values', payload: values });
      await waitFor(page, 'rendered');
      const at = await screenOf(page);
      await page.locator('#tool-rectangle').click();
      const drag = async (a: [number, number], b: [number, number]) => {
        await page.mouse.move(at(...a).x, at(...a).y);
        await page.mouse.down();
        await page.mouse.move(at(...b).x, at(...b).y, { steps: 4 });
        await page.mouse.up();
      };
      await drag([300, 300], [760, 760]); // columns and rows 2..4
      assert.equal((await waitFor(page, 'selected')).count, 9);
      await drag([1510, 1210], [1040, 440]); // columns 7..9, rows 3..7, from the bottom-right corner
      assert.equal((await waitFor(page, 'selected', 2)).count, 15);
      assert.match(await page.locator('#selection-summary').innerText(), /^15 spots · mean truth .* \(G1, inside the selection\)$/);
      await deliver(page, { type: 'values', payload: { gene: 'G2', truth: values.truth } });
      await waitFor(page, 'rendered', 2);
      assert.match(await page.locator('#selection-summary').innerText(), /^15 spots · mean truth [0-9.]+$/);
      await page.screenshot({ path: path.join(shots, 'slide-viewer-selection-light.png') });
    } finally {
      await page.close();
    }
  });
});
