import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseViewerOutbound, parseViewerSavedState, DEFAULT_DISPLAY } from '../../src/protocol/webviews';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { spotDiameterPx, spotSpacing } from '../../src/runtime/store/spotDiameter';
import { multiplesFor, sectionData, sectionView, valuesFor } from '../../src/webviews/viewerData';
import { formatMicrons, geneSetScore, parseGeneList, scaleBar, symmetricRange, valueRange } from '../../webview/viewer/scale';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * The slide viewer's arithmetic and data, without a browser: colour ranges, gene-set scores, the
 * scale bar, spot diameters from the data, the messages' validation, and what the extension sends
 * for a section of a real (synthetic HER2+) store.
 */

/** A rows x cols square grid of spots `step` pixels apart. */
const grid = (rows: number, cols: number, step: number) => {
  const x: number[] = [], y: number[] = [];
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) { x.push(100 + c * step); y.push(100 + r * step); }
  return { x, y };
};

describe('slide viewer: ranges, scores, scale bar, spot size', () => {
  test('colour range: the 1st-99th percentile leaves one outlier out; min-max keeps it; errors symmetric; nothing finite gives [0, 1]', () => {
    const values = [...Array.from({ length: 99 }, (_, i) => i), 10_000]; // 0..98 and an outlier
    // numpy.percentile(values, [1, 99]): positions 0.99 and 98.01 of 100 sorted values.
    const [lo, hi] = valueRange([values], 'percentile');
    assert.ok(Math.abs(lo - 0.99) < 1e-9 && Math.abs(hi - (98 + 0.01 * (10_000 - 98))) < 1e-9, `${lo} ${hi}`);
    assert.deepEqual(valueRange([values], 'minmax'), [0, 10_000]);
    assert.deepEqual(valueRange([[1, Number.NaN, 3], undefined, [2]], 'minmax'), [1, 3], 'pooled, NaN skipped');
    assert.deepEqual(valueRange([[Number.NaN]], 'percentile'), [0, 1]);
    assert.deepEqual(symmetricRange([-2, 0.5, 1], 'minmax'), [-2, 2]);
  });

  test('gene-set score: the mean of z-scores (sample sd), a constant gene adds 0, a missing value is skipped', () => {
    // [1, 2, 3]: mean 2, sd 1 -> z = -1, 0, 1; [0, 10, 20]: mean 10, sd 10 -> the same z.
    assert.deepEqual(geneSetScore([[1, 2, 3], [0, 10, 20]]), [-1, 0, 1]);
    assert.deepEqual(geneSetScore([[1, 2, 3], [5, 5, 5]]), [-0.5, 0, 0.5]);
    const withGap = geneSetScore([[1, Number.NaN, 3]]);
    // [1, 3]: mean 2, sd sqrt(2) -> z = -1/sqrt(2), 1/sqrt(2).
    assert.ok(Math.abs(withGap[0] + Math.SQRT1_2) < 1e-12 && Math.abs(withGap[2] - Math.SQRT1_2) < 1e-12);
    assert.ok(Number.isNaN(withGap[1]));
    assert.deepEqual(parseGeneList(' ERBB2, GATA3;ACTB\nERBB2  KRT5 '), ['ERBB2', 'GATA3', 'ACTB', 'KRT5']);
  });

  test('scale bar: a round length at most 120 screen px, in µm or mm', () => {
    // 0.5 um per image pixel, shown at 0.25 screen px per image pixel: 2 um per screen px, at most 240 um -> 200 um in 100 px.
    assert.deepEqual(scaleBar(0.5, 0.25), { microns: 200, px: 100 });
    assert.deepEqual(scaleBar(1, 0.01), { microns: 10_000, px: 100 });
    assert.equal(scaleBar(0, 1), undefined);
    assert.deepEqual([formatMicrons(200), formatMicrons(10_000), formatMicrons(2500)], ['200 µm', '10 mm', '2.5 mm']);
  });

  test('spot diameter: the platform\'s microns over mpp, else the measured spacing (ST: half, Visium: 0.55), else the fallback', () => {
    const st = grid(6, 6, 200);
    assert.equal(spotSpacing(st.x, st.y), 200);
    assert.equal(spotDiameterPx(st.x, st.y, 'her2st', undefined, 7).px, 100);
    assert.equal(spotDiameterPx(st.x, st.y, 'her2st', 0.5, 7).px, 200);
    const visium = grid(6, 6, 100);
    assert.ok(Math.abs(spotDiameterPx(visium.x, visium.y, 'visium', undefined, 7).px - 55) < 1e-9);
    // A cohort store says no platform: 100 px apart at 1 um per pixel is Visium's 100 um pitch.
    const cohort = spotDiameterPx(visium.x, visium.y, 'cohort', 1, 7);
    assert.equal(cohort.px, 55);
    assert.match(cohort.from, /Visium's 55 um spots at 1 um per pixel/);
    assert.match(spotDiameterPx(st.x, st.y, 'h5ad', undefined, 7).from, /assumed/);
    assert.deepEqual(spotDiameterPx([5], [5], 'her2st', undefined, 7).px, 7);
  });

  test('messages: new outbound messages and the saved state are validated; malformed ones refused', () => {
    assert.deepEqual(parseViewerOutbound({ type: 'selectGenes', payload: { purpose: 'grid', genes: ['A', 'B'] } }), { type: 'selectGenes', payload: { purpose: 'grid', genes: ['A', 'B'] } });
    assert.equal(parseViewerOutbound({ type: 'selectGenes', payload: { purpose: 'grid', genes: [] } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'selectGenes', payload: { purpose: 'sum', genes: ['A'] } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'selectGenes', payload: { purpose: 'grid', genes: Array.from({ length: 51 }, (_, i) => `G${i}`) } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'selectSection', payload: { section: 3 } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'exportView', payload: { format: 'gif', data: '', name: 'x' } }), undefined);
    const state = { request: { store: '/s', section: 'A1' }, gene: 'ERBB2', view: { scale: 0.5, tx: 1, ty: 2 }, display: DEFAULT_DISPLAY };
    assert.deepEqual(parseViewerSavedState(state), state);
    for (const bad of [{ ...state, view: { scale: -1, tx: 0, ty: 0 } }, { ...state, display: { ...DEFAULT_DISPLAY, valueMap: 'jet' } }, { ...state, display: { ...DEFAULT_DISPLAY, spotScale: 9 } }, { ...state, request: { section: 'A1' } }, null]) {
      assert.equal(parseViewerSavedState(bad), undefined, JSON.stringify(bad));
    }
  });
});

describe('slide viewer: what the extension sends for a store\'s section', () => {
  let tmp: string;
  let store: string;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-viewer-data-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 2, sectionsPerPatient: 1, gridSize: 4, genes: 12 }, 6);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('spots, spot size from their spacing, the sections to switch to; a grid\'s genes from the truth, unknown ones named', () => {
    const s = openDatasetStore(store);
    const [first, second] = s.manifest.sections;
    const data = sectionData({ store }, second.id);
    const view = sectionView(data);
    assert.deepEqual(view.sections, s.manifest.sections.map((m) => ({ id: m.id, spots: m.spots })));
    assert.equal(view.spots.ids.length, second.spots);
    // The synthetic ST layout: spots a crop (224 px) apart, so 112 px across.
    const spacing = Math.min(...view.spots.x.slice(1).map((x, i) => Math.hypot(x - view.spots.x[0], view.spots.y[i + 1] - view.spots.y[0])));
    assert.equal(spacing, 224);
    assert.equal(view.spotDiameter, 112);
    assert.match(view.spotDiameterFrom ?? '', /the ST array/);
    assert.equal(view.mpp, undefined, 'no scale bar without the section\'s mpp');
    assert.notEqual(first.id, second.id);

    const [g0, g1] = s.genes;
    const m = multiplesFor(data, { purpose: 'grid', genes: [g1, 'NOPE', g0] });
    assert.deepEqual([m.source, m.genes.map((g) => g.gene), m.unknown], ['ground truth', [g1, g0], ['NOPE']]);
    assert.deepEqual(m.genes[0].values, valuesFor(data, g1).truth);
    assert.deepEqual(m.genes[1].values, data.rows.map((r) => s.values()[r * s.genes.length]));
  });
});
