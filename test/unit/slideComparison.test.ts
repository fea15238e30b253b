import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { stringColumn } from '../../src/runtime/store/arrow';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { pearson } from '../../src/runtime/eval/pearson';
import { compareOnSlide, comparisonRuns, geneComparison, percentile, sectionsPredicted, sharedScale, storeOfRuns, viewerPanels, viewerValues } from '../../src/runtime/eval/slideComparison';
import { parseViewerInbound } from '../../src/protocol/webviews';
import { writePredictions } from '../../src/runtime/train/cv';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * The data of the slide viewer's comparison mode (Figure 2): a benchmark folder's runs, the fold
 * that tests a section, predictions lined up with the store's spots and genes, PCC per gene, and
 * the shared colour scale. Files written here: a small synthetic store, and predictions.arrow
 * files as cv writes them.
 */

describe('comparing models on a slide', () => {
  let tmp: string;
  let store: string;
  let bench: string;
  let sections: { id: string; n: number; spotIds: string[]; rows: number[] }[];
  let genes: string[];
  let truth: Float32Array;

  /** A model's predictions of the sections of one fold, from a function of (truth, spot, gene). */
  const predict = async (dir: string, fold: number, ids: string[], f: (t: number, k: number, g: number) => number, order = genes) => {
    const tests = sections.filter((s) => ids.includes(s.id));
    const G = genes.length;
    const preds = new Map(tests.map((s) => [s.id, Float32Array.from({ length: s.n * order.length }, (_, i) => {
      const k = Math.floor(i / order.length);
      const g = genes.indexOf(order[i % order.length]);
      return f(truth[s.rows[k] * G + g], k, g);
    })]));
    await writePredictions(path.join(dir, `fold-${fold}`, 'predictions.arrow'), tests, preds, order, { variant: path.basename(dir), fold });
  };

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-compare-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 2, sectionsPerPatient: 1, gridSize: 4, genes: 20 }, 8);
    const s = openDatasetStore(store);
    genes = s.genes;
    truth = s.values();
    const ids = stringColumn(s.spots, 'spot_id');
    sections = s.manifest.sections.map((m) => {
      const rows = s.rowsOf(m.id);
      return { id: m.id, n: rows.length, spotIds: rows.map((r) => ids[r]), rows };
    });
    assert.equal(sections.length, 2);
    const [a, b] = sections.map((x) => x.id);

    // A benchmark folder: TEM finished (results.json records each fold's test sections), TRIPLEX
    // without results.json yet (its folds are read), written in another gene order; ST-Net
    // diverged on one spot; and a folder that is not a run.
    bench = path.join(tmp, 'bench');
    for (const [fold, id] of [[0, a], [1, b]] as const) {
      await predict(path.join(bench, 'tem'), 1 - fold, [id], (t) => 2 * t + 1);
      await predict(path.join(bench, 'triplex'), fold, [id], (t) => -t, [...genes].reverse());
      await predict(path.join(bench, 'stnet'), fold, [id], (t, k) => (k === 0 ? Number.NaN : t));
    }
    fs.writeFileSync(path.join(bench, 'tem', 'results.json'), JSON.stringify({ variant: 'tem', store, training: [{ fold: 0, test: [b] }, { fold: 1, test: [a] }] }));
    fs.writeFileSync(path.join(bench, 'benchmark.json'), JSON.stringify({ store }));
    fs.mkdirSync(path.join(bench, 'notes'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test("a benchmark folder stands for its models' runs in Table 1's order, labelled as Table 1; a run folder for itself", () => {
    const runs = comparisonRuns([bench]);
    assert.deepEqual(runs.map((r) => [r.model, r.label]), [['stnet', 'ST-Net'], ['tem', 'TEM'], ['triplex', 'TRIPLEX']]);
    assert.deepEqual(comparisonRuns([path.join(bench, 'triplex')]).map((r) => r.label), ['TRIPLEX']);
    assert.throws(() => comparisonRuns([path.join(bench, 'notes')]), /notes is neither a run folder .* nor a benchmark folder/);
    const twice = comparisonRuns([path.join(bench, 'tem'), path.join(bench, 'tem')]);
    assert.deepEqual(twice.map((r) => r.label), ['TEM (bench/tem)', 'TEM (bench/tem)']);
    assert.equal(storeOfRuns(runs), store);
    assert.deepEqual([...sectionsPredicted(runs[1])].sort(), sections.map((s) => s.id).sort());
  });

  test('each model from the fold that tests the section (recorded or read), lined up with the store; PCC as metrics.ts computes it', () => {
    const [a] = sections;
    const c = compareOnSlide(store, comparisonRuns([bench]), a.id);
    assert.deepEqual(c.spotIds, a.spotIds);
    assert.deepEqual(c.genes, genes);
    assert.deepEqual(c.models.map((m) => [m.run.label, m.fold]), [['ST-Net', 0], ['TEM', 1], ['TRIPLEX', 0]]);
    const gene = genes[2];
    const view = geneComparison(c, gene);
    const G = genes.length;
    assert.deepEqual([...view.truth], a.rows.map((r) => truth[r * G + 2]));
    const [stnet, tem, triplex] = view.models;
    assert.deepEqual([...triplex.prediction], a.rows.map((r) => Math.fround(-truth[r * G + 2])), 'the reversed gene order is undone');
    assert.ok(Math.abs(tem.pcc - 1) < 1e-6 && Math.abs(triplex.pcc + 1) < 1e-6, `${tem.pcc}, ${triplex.pcc}`);
    assert.ok(Math.abs(tem.pcc - pearson(view.truth, tem.prediction)) < 1e-9);
    // A diverged model keeps its panel; its PCC is undefined, and why is said.
    assert.ok(Number.isNaN(stnet.pcc));
    assert.match(stnet.problem ?? '', /^ST-Net: prediction is NaN at spot 0/);
    assert.throws(() => geneComparison(c, 'NOT_A_GENE'), /gene NOT_A_GENE is not compared/);

    // As the viewer receives them (through JSON, as webview messages travel): accepted by its validator.
    const values = JSON.parse(JSON.stringify(viewerValues(c, gene))) as unknown;
    const parsed = parseViewerInbound({ type: 'values', payload: values });
    assert.equal(parsed?.type, 'values');
    const compare = parsed?.type === 'values' ? parsed.payload.compare : undefined;
    assert.deepEqual(compare?.panels.map((p) => p.pcc === null ? null : Math.round(p.pcc)), [null, 1, -1]);
    assert.match(compare?.panels[0].problem ?? '', /ST-Net: prediction is NaN/);
    assert.deepEqual([compare?.scale.lo, compare?.scale.hi], [view.scale.lo, view.scale.hi]);
    assert.deepEqual(viewerPanels(c), { panels: [{ label: 'ST-Net', fold: 0 }, { label: 'TEM', fold: 1 }, { label: 'TRIPLEX', fold: 0 }], left: [] });
  });

  test('a run without a fold testing the section is left out and named; no run at all is an error', async () => {
    const only = path.join(tmp, 'partial');
    await predict(path.join(only, 'gem'), 0, [sections[1].id], (t) => t);
    const runs = comparisonRuns([path.join(bench, 'tem'), path.join(only, 'gem')]);
    const c = compareOnSlide(store, runs, sections[0].id);
    assert.deepEqual(c.models.map((m) => m.run.label), ['TEM']);
    assert.match(c.missing[0].reason, /no fold of .*gem tests /);
    assert.throws(() => compareOnSlide(store, [runs[1]], sections[0].id), /no run predicts section/);
    assert.throws(() => compareOnSlide(store, runs, 'Z9'), /no section 'Z9'/);
  });

  test('the shared scale: the truth\'s 1st to 99th percentile, numpy\'s interpolation; a constant truth falls back to every panel\'s range', () => {
    const hundred = Array.from({ length: 101 }, (_, i) => i);
    assert.equal(percentile(hundred, 1), 1);
    assert.equal(percentile(hundred, 99), 99);
    assert.equal(percentile([0, 10], 25), 2.5);
    assert.equal(percentile([3, Number.NaN, 1], 50), 2);
    const s = sharedScale(hundred, [[-50, 500]]);
    assert.deepEqual([s.lo, s.hi], [1, 99]);
    assert.match(s.rule, /1st to 99th percentile/);
    const flat = sharedScale([2, 2, 2], [[1, 3], [0, 2]]);
    assert.deepEqual([flat.lo, flat.hi], [0, 3]);
    assert.match(flat.rule, /constant/);
  });
});
