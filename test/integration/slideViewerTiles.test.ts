import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ViewerOutbound } from '../../src/protocol/webviews';
import { stringColumn } from '../../src/runtime/store/arrow';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { writePredictions } from '../../src/runtime/train/cv';
import type { SlideViewerHandle } from '../../src/webviews/slideViewer';
import { STRIPED, stripeCentre, stripes, writeStripedSlideStore } from '../unit/helpers/stripedSlide';
import { canProbeWebviews, probeWebview } from './webviewProbe';

/**
 * The slide viewer on a whole slide in a real VS Code: a pyramidal TIFF whose full resolution
 * shows 3 px stripes that its written levels lack, the panel opened on it, zoomed in (key presses
 * in the real webview) past the written levels; the webview asks the extension for the tiles, the
 * panel's `triplex tiles --serve` child cuts them into the store, the webview loads them through
 * VS Code's resource route (CSP, localResourceRoots) and draws them: the canvas shows the stripes.
 * The child is replaced on a section switch and ends with the panel.
 */

const SECTION = 'S1';
/** A second section showing the same slide, for the section switch. */
const OTHER = 'S2';
/** Two spots in opposite corners, away from the centre that the test zooms into. */
const SPOTS = [[60, 60], [STRIPED.width - 60, STRIPED.height - 60]] as const;
/** Screen px per slide px that the test zooms to (Deep Zoom level 13, the full resolution, cut on demand). */
const ZOOM = 2.5;

const within = async <T>(what: string, ms: number, poll: () => T | undefined): Promise<T> => {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = poll();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
};

/** Running `triplex tiles <store> --section <section> --serve` processes (from /proc's command lines), of any section when omitted. */
function tileServers(store: string, section?: string): string[] {
  return fs.readdirSync('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      const args = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return args.includes('--serve') && args.includes(store) && (!section || args[args.indexOf('--section') + 1] === section);
    } catch {
      return false; // ended meanwhile
    }
  });
}

suite('Slide viewer on a whole slide in VS Code', function () {
  this.timeout(5 * 60_000);
  let work = '';
  let store = '';
  let predictions = '';

  suiteSetup(async function () {
    // The zoom is key presses in the webview's page (the code-server route only); processes are read from /proc.
    if (!canProbeWebviews() || process.platform !== 'linux') this.skip();
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    work = path.join(folder, '.tmp', 'viewer-wsi');
    fs.rmSync(work, { recursive: true, force: true });
    ({ store } = await writeStripedSlideStore(work, SECTION, { spots: SPOTS, alsoAs: [OTHER] }));
    // A store of a slide has no counts: the viewer shows a prediction.
    const s = openDatasetStore(store);
    const ids = stringColumn(s.spots, 'spot_id');
    predictions = path.join(work, 'run', 'predictions.arrow');
    fs.mkdirSync(path.dirname(predictions), { recursive: true });
    const sections = [SECTION, OTHER].map((id) => ({ id, n: s.rowsOf(id).length, spotIds: s.rowsOf(id).map((r) => ids[r]) }));
    await writePredictions(predictions, sections, new Map(sections.map((x) => [x.id, Float32Array.from(x.spotIds, (_, i) => i + 1)])), ['G'], { variant: 'tem', fold: 0 });
  });
  suiteTeardown(() => { if (work) fs.rmSync(work, { recursive: true, force: true }); });

  test('zoomed past the written levels: tiles asked for through the panel, cut by its child, loaded and drawn', async () => {
    const viewer = await vscode.commands.executeCommand<SlideViewerHandle>('triplex.openSlideViewer', { store, section: SECTION, predictions });
    assert.ok(viewer);
    try {
      await within('the viewer drew nothing', 60_000, () => viewer.received.find((m) => 'gene' in m && 'ms' in m));
      const tileDir = path.join(store, 'viewer', SECTION, 'tiles', 'slide_files');
      assert.ok(fs.existsSync(path.join(tileDir, `${STRIPED.writtenLevels}`)) && !fs.existsSync(path.join(tileDir, `${STRIPED.maxLevel}`)), 'the written levels only, before the zoom');
      const wants = () => viewer.received.filter((m): m is ViewerOutbound['wantTiles'] => 'tiles' in m && Array.isArray(m.tiles));
      assert.equal(wants().length, 0, 'the fitted view shows written levels only: nothing asked');

      // Zoom in about the centre, as a user's '+' presses do.
      const box = await probeWebview('canvas.slide', async (canvas, a: { zoom: number; width: number; height: number }) => {
        const c = canvas as HTMLCanvasElement;
        const rect = c.getBoundingClientRect();
        const presses = Math.ceil(Math.log(a.zoom / (Math.min(rect.width / a.width, rect.height / a.height) * 0.98)) / Math.log(1.25));
        for (let i = 0; i < presses; i++) c.dispatchEvent(new KeyboardEvent('keydown', { key: '+', bubbles: true }));
        await new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve())));
        return { width: rect.width, height: rect.height, dpr: c.width / rect.width, presses };
      }, { zoom: ZOOM, width: STRIPED.width, height: STRIPED.height });
      const drawn = await within('the viewer reported no on-demand tiles drawn', 60_000, () => viewer.received.find((m): m is ViewerOutbound['tilesDrawn'] => 'allMs' in m));
      const asked = wants().flatMap((m) => m.tiles);
      assert.ok(asked.length > 0 && asked.every((t) => t.startsWith(`${STRIPED.maxLevel}/`)), `the full resolution's tiles asked for: ${asked.join()}`);
      for (const t of wants()[0].tiles) assert.ok(fs.existsSync(path.join(tileDir, `${t}.jpeg`)), `${t} cut into the store`);

      // The view as the viewer computes it (fitted with a 2 % margin, then zoomed about the centre
      // by 1.25 per press): the stripes' centres on a grid of screen points.
      const scale = Math.min(box.width / STRIPED.width, box.height / STRIPED.height) * 0.98 * 1.25 ** box.presses;
      assert.ok(scale >= ZOOM && scale < ZOOM * 1.25, `zoomed to ${scale}`);
      const points: { x: number; y: number; want: readonly number[] }[] = [];
      for (let sy = 40; sy < box.height - 40; sy += 23) {
        for (let sx = 20; sx < box.width - 20; sx += 9) {
          const ix = Math.floor(STRIPED.width / 2 + (sx - box.width / 2) / scale);
          const iy = Math.floor(STRIPED.height / 2 + (sy - box.height / 2) / scale);
          if (!stripeCentre(ix)) continue;
          const x = (ix + 0.5 - STRIPED.width / 2) * scale + box.width / 2;
          const y = (iy + 0.5 - STRIPED.height / 2) * scale + box.height / 2;
          points.push({ x: Math.floor(x * box.dpr), y: Math.floor(y * box.dpr), want: stripes(ix, iy) });
        }
      }
      assert.ok(points.length > 100, `${points.length} sample points`);
      const pixels = await probeWebview('canvas.slide', (canvas, at: { x: number; y: number }[]) => {
        const ctx = (canvas as HTMLCanvasElement).getContext('2d') as CanvasRenderingContext2D;
        return at.map((p) => Array.from(ctx.getImageData(p.x, p.y, 1, 1).data));
      }, points.map(({ x, y }) => ({ x, y })));
      const right = pixels.filter((px, i) => points[i].want.every((c, k) => Math.abs(px[k] - c) <= 45)).length / pixels.length;
      console.log(`# real VS Code: ${drawn.tiles} on-demand tiles drawn, the first ${drawn.firstMs.toFixed(0)} ms and all ${drawn.allMs.toFixed(0)} ms after the view lacked them; ${(right * 100).toFixed(1)}% of ${points.length} stripe centres right`);
      assert.ok(right > 0.97, `the cut tiles drawn: ${(right * 100).toFixed(1)}% of the stripes' centres match the slide`);

      // One serving child, for the section shown: another on a section switch, none once the panel closes.
      assert.deepEqual(tileServers(store).length, 1, 'one `triplex tiles --serve` child for the section shown');
      await viewer.simulate('selectSection', { section: OTHER });
      await within(`the ${SECTION} child did not end on the switch to ${OTHER}, or none started for it`, 15_000, () => (tileServers(store, SECTION).length === 0 && tileServers(store, OTHER).length === 1 ? true : undefined));
      viewer.panel.dispose();
      await within('a `triplex tiles --serve` child outlived its panel', 15_000, () => (tileServers(store).length === 0 ? true : undefined));
    } finally {
      viewer.panel.dispose();
    }
  });
});
