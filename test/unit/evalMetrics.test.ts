import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  evaluate, foldSummary, formatMeanStd, formatMetricsTable, highlyPredictiveGenes, metricsTables, slideMetrics, summarise,
  writeMetricsTables, type SlideMetrics,
} from '../../src/runtime/eval/metrics';
import { readArrowFile } from '../../src/runtime/store/arrow';
import { pearson } from '../../src/runtime/eval/pearson';

/** The paper's metrics against values computed by hand. */

const close = (got: number, want: number, tol = 1e-6) => {
  if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `expected NaN, got ${got}`);
  else assert.ok(Math.abs(got - want) < tol, `${got} vs ${want}`);
};

/** [spots, genes] row-major from per-gene columns. */
function fromColumns(columns: number[][]): Float32Array {
  const n = columns[0].length;
  const out = new Float32Array(n * columns.length);
  columns.forEach((col, g) => col.forEach((v, i) => { out[i * columns.length + g] = v; }));
  return out;
}

describe('PCC of one gene across a slide', () => {
  // [name, prediction, truth, PCC]
  const cases: [string, number[], number[], number][] = [
    ['perfect', [1, 2, 3], [2, 4, 6], 1],
    ['anti-correlated', [1, 2, 3, 4], [4, 3, 2, 1], -1],
    ['hand computed: 4 / 5', [1, 2, 3, 4], [1, 3, 2, 4], 0.8],
    // means 2.75 and 2.5; sum of products 6.5, squares 8.75 and 5
    ['hand computed: 6.5 / sqrt(43.75)', [1, 2, 3, 5], [1, 2, 3, 4], 6.5 / Math.sqrt(43.75)],
    ['constant prediction is undefined', [2, 2, 2, 2], [1, 2, 3, 4], NaN],
    ['constant 0.1 prediction (inexact in binary) is undefined', [0.1, 0.1, 0.1], [1, 3, 2], NaN],
    ['constant truth is undefined', [1, 2, 3], [5, 5, 5], NaN],
    ['a single spot is undefined', [1], [2], NaN],
  ];
  for (const [name, pred, truth, want] of cases) {
    test(name, () => {
      const m = slideMetrics(Float32Array.from(pred), Float32Array.from(truth), pred.length, ['g']);
      close(m.pccPerGene[0], want, 1e-12);
    });
  }
});

describe('slide metrics', () => {
  // 4 spots x 4 genes; the last gene's prediction is constant.
  const pred = fromColumns([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 5], [2, 2, 2, 2]]);
  const truth = fromColumns([[1, 3, 2, 4], [4, 3, 2, 1], [1, 2, 3, 4], [1, 2, 3, 4]]);
  const m = slideMetrics(pred, truth, 4, ['G0', 'G1', 'G2', 'G3']);

  test('MSE and MAE over all 16 values, by hand', () => {
    // differences per gene: [0,-1,1,0], [-3,-1,1,3], [0,0,0,1], [1,0,-1,-2]
    close(m.mse, (2 + 20 + 1 + 6) / 16, 1e-12);
    close(m.mae, (2 + 8 + 1 + 4) / 16, 1e-12);
  });
  test('the constant-prediction gene is NaN, left out of PCC(M) and counted', () => {
    assert.ok(Number.isNaN(m.pccPerGene[3]));
    assert.equal(m.undefinedGenes, 1);
    close(m.pccM, (0.8 - 1 + 6.5 / Math.sqrt(43.75)) / 3, 1e-12);
  });
  test('no defined gene gives PCC(M) NaN', () => {
    const c = slideMetrics(Float32Array.from([1, 1]), Float32Array.from([1, 2]), 2, ['g']);
    assert.ok(Number.isNaN(c.pccM));
    assert.equal(c.undefinedGenes, 1);
  });

  const errors: [string, () => unknown, RegExp][] = [
    ['wrong length', () => slideMetrics(new Float32Array(3), new Float32Array(4), 2, ['a', 'b']), /prediction has 3 values, expected 2 spots x 2 genes/],
    ['NaN in the prediction', () => slideMetrics(Float32Array.from([1, NaN]), Float32Array.from([1, 2]), 1, ['a', 'b']), /prediction is NaN at spot 0, gene b/],
    ['infinite truth', () => slideMetrics(Float32Array.from([1, 2]), Float32Array.from([1, Infinity]), 2, ['a']), /truth is Infinity at spot 1, gene a/],
    ['no spots', () => slideMetrics(new Float32Array(0), new Float32Array(0), 0, ['a']), /at least one spot/],
  ];
  for (const [name, run, message] of errors) test(`error: ${name}`, () => assert.throws(run, message));
});

/** A slide's metrics given directly, for the aggregation tests. */
const slide = (mse: number, mae: number, pcc: number[], spots = 10): SlideMetrics => ({
  genes: pcc.map((_, i) => `G${i}`), spots, mse, mae, pccPerGene: Float64Array.from(pcc),
  pccM: NaN, undefinedGenes: pcc.filter(Number.isNaN).length,
});

describe('fold summary: per slide, then the mean over slides', () => {
  test('MSE and MAE are means of slide values, not pooled over spots', () => {
    // pooled over spots these would be (2*1 + 8*0)/10 = 0.2
    const f = foldSummary([slide(1, 2, [0.1], 2), slide(0, 0, [0.1], 8)]);
    close(f.mse, 0.5);
    close(f.mae, 1);
    assert.equal(f.slides, 2);
  });
  test('per-gene PCC is the mean over slides where it is defined', () => {
    const f = foldSummary([slide(0, 0, [0.5, NaN, 0.2, NaN]), slide(0, 0, [0.3, 0.6, NaN, NaN])]);
    assert.deepEqual(Array.from(f.pccPerGene).slice(0, 3).map((v) => Math.round(v * 1e9) / 1e9), [0.4, 0.6, 0.2]);
    assert.ok(Number.isNaN(f.pccPerGene[3]));
    assert.equal(f.undefinedGenes, 1);
    close(f.pccM, 0.4);
  });
  test('slides on different genes are refused', () => {
    const other = { ...slide(0, 0, [0.1]), genes: ['X'] };
    assert.throws(() => foldSummary([slide(0, 0, [0.1]), other]), /different gene lists/);
  });
});

describe('highly predictive genes and PCC(H)', () => {
  // 3 folds x 6 genes. G6 is undefined everywhere and must never be chosen, although G5 is bad.
  // Ranks (1 = best; ties share the mean place; NaN last):
  //   fold 0: G1 1, G2 2, G3 3, G4 4, G5 5, G6 6
  //   fold 1: G2 1, G1 2, G4 3, G3 4, G5 5.5, G6 5.5
  //   fold 2: G1 1.5, G3 1.5, G2 3, G4 4, G5 5, G6 6
  //   mean:   G1 1.5, G2 2, G3 17/6, G4 11/3, G5 31/6, G6 35/6
  const genes = ['G1', 'G2', 'G3', 'G4', 'G5', 'G6'];
  const foldPcc = [
    [0.5, 0.4, -0.1, -0.2, -0.3, NaN],
    [0.2, 0.6, -0.5, -0.4, NaN, NaN],
    [0.3, 0.1, 0.3, -0.6, -0.9, NaN],
  ].map((r) => Float64Array.from(r));

  test('ranks within folds and their mean, by hand', () => {
    const h = highlyPredictiveGenes(foldPcc, genes, 6);
    assert.deepEqual(Array.from(h.ranks[1]), [2, 1, 4, 3, 5.5, 5.5]);
    assert.deepEqual(Array.from(h.ranks[2]), [1.5, 3, 1.5, 4, 5, 6]);
    [1.5, 2, 17 / 6, 11 / 3, 31 / 6, 35 / 6].forEach((want, g) => close(h.meanRank[g], want, 1e-12));
  });

  // [n, chosen genes, PCC(H) per fold]
  const cases: [number, string[], number[]][] = [
    [2, ['G1', 'G2'], [0.45, 0.4, 0.2]],
    [3, ['G1', 'G2', 'G3'], [0.8 / 3, 0.1, 0.7 / 3]],
    // G5 is undefined in fold 1: left out of that fold's mean
    [5, ['G1', 'G2', 'G3', 'G4', 'G5'], [0.06, -0.025, -0.16]],
    // the gene undefined in every fold is never chosen, even when n asks for all
    [6, ['G1', 'G2', 'G3', 'G4', 'G5'], [0.06, -0.025, -0.16]],
  ];
  for (const [n, want, pccH] of cases) {
    test(`best ${n}`, () => {
      const h = highlyPredictiveGenes(foldPcc, genes, n);
      assert.deepEqual(h.genes, want);
      pccH.forEach((v, f) => close(h.pccH[f], v, 1e-12));
    });
  }

  test('equal mean ranks go by gene name', () => {
    const h = highlyPredictiveGenes([Float64Array.from([0.9, 0.1]), Float64Array.from([0.1, 0.9])], ['B', 'A'], 1);
    assert.deepEqual(h.genes, ['A']);
  });
  test('a gene per fold count that does not match is refused', () => {
    assert.throws(() => highlyPredictiveGenes([new Float64Array(2)], ['a'], 1), /fold 0 has 2 gene PCCs for 1 genes/);
  });
});

describe('mean ± std over folds', () => {
  test('mean and sample standard deviation (n - 1), by hand', () => {
    const s = summarise([
      { mse: 1, mae: 0.5, pccM: 0.2, pccH: 0.1 },
      { mse: 2, mae: 0.5, pccM: 0.3, pccH: 0.5 },
      { mse: 6, mae: 0.5, pccM: 0.4, pccH: 0.6 },
    ]);
    // mse: deviations -2, -1, 3 -> 14 / 2; pccH: -0.3, 0.1, 0.2 -> 0.14 / 2
    const want: [keyof typeof s, number, number][] = [['mse', 3, Math.sqrt(7)], ['mae', 0.5, 0], ['pccM', 0.3, 0.1], ['pccH', 0.4, Math.sqrt(0.07)]];
    for (const [k, mean, std] of want) {
      const v = s[k] as { mean: number; std: number };
      close(v.mean, mean, 1e-12);
      close(v.std, std, 1e-12);
    }
    assert.equal(s.folds, 3);
  });
  test('one fold has no sample standard deviation', () => {
    assert.ok(Number.isNaN(summarise([{ mse: 1, mae: 1, pccM: 0.1, pccH: 0.2 }]).pccM.std));
  });

  const formats: [number, number, string][] = [
    [0.314, 0.0532, '0.314 ± 0.053'],
    [0.0123, 0.004, '0.0123 ± 0.0040'],
    [12.34, 0.56, '12.3 ± 0.6'],
    [-0.025, 0.1, '-0.0250 ± 0.1000'],
    [0.5, NaN, '0.500 ± n/a'],
    [NaN, NaN, 'n/a'],
  ];
  for (const [mean, std, want] of formats) test(`formats ${want}`, () => assert.equal(formatMeanStd({ mean, std }), want));

  test('the comparison table', () => {
    const s = summarise([{ mse: 1, mae: 0.5, pccM: 0.2, pccH: 0.1 }, { mse: 2, mae: 0.5, pccM: 0.3, pccH: 0.5 }]);
    const lines = formatMetricsTable([{ model: 'TRIPLEX', summary: s }, { model: 'TEM', summary: s }]).split('\n');
    assert.match(lines[0], /^model\s+MSE\s+MAE\s+PCC\(M\)\s+PCC\(H\)\s+folds$/);
    assert.match(lines[1], /^TRIPLEX\s+1\.50 ± 0\.71\s+0\.500 ± 0\.000\s+0\.250 ± 0\.071\s+0\.300 ± 0\.283\s+2$/);
    assert.match(lines[2], /^TEM /);
    assert.match(lines[3], /sample standard deviation/);
  });
});

describe('evaluation tables', () => {
  const genes = ['G0', 'G1'];
  const pred = fromColumns([[1, 2, 3], [3, 1, 2]]);
  const truth = fromColumns([[1, 2, 4], [1, 2, 3]]);
  const m = slideMetrics(pred, truth, 3, genes);
  const ev = evaluate([
    { fold: 1, section: 'B1', metrics: m },
    { fold: 0, section: 'A1', metrics: m },
    { fold: 0, section: 'A2', metrics: m },
  ], genes, 1);
  let dir = '';
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  test('folds in index order, PCC(H) per fold, summary over folds', () => {
    assert.deepEqual(ev.folds.map((f) => [f.index, f.slides]), [[0, 2], [1, 1]]);
    assert.deepEqual(ev.highlyPredictive.genes, ['G0']);
    close(ev.summary.pccM.mean, m.pccM, 1e-12);
    close(ev.summary.pccM.std, 0, 1e-12);
  });
  test('a slide scored on other genes is refused', () => {
    assert.throws(() => evaluate([{ fold: 0, section: 'A1', metrics: m }], ['X', 'Y']), /section A1 \(fold 0\) was scored on other genes/);
  });
  test('tables have the documented rows and survive an Arrow round trip', async () => {
    const t = metricsTables(ev, 'TRIPLEX');
    assert.equal(t.slides.numRows, 3);
    assert.equal(t.folds.numRows, 2);
    assert.equal(t.genes.numRows, 4);
    assert.deepEqual(t.summary.getChild('metric')?.toArray(), ['mse', 'mae', 'pcc_m', 'pcc_h']);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-metrics-'));
    const files = await writeMetricsTables(dir, t);
    assert.deepEqual(files.map((f) => path.basename(f)), ['metrics_slides.arrow', 'metrics_folds.arrow', 'metrics_genes.arrow', 'metrics_summary.arrow']);
    const back = readArrowFile(path.join(dir, 'metrics_slides.arrow'));
    assert.deepEqual(back.getChild('section')?.toArray(), ['B1', 'A1', 'A2']);
    close(Number(back.getChild('mse')?.get(0)), m.mse, 1e-12);
    assert.match(back.schema.metadata.get('triplex:metrics') ?? '', /sample \(n - 1\)/);
  });
});

describe('pearson (gene maps, the slide viewer)', () => {
  test('against a hand computation, and NaN for a constant series', () => {
    // a - mean: -1, 0, 1; b - mean: -7/3, -1/3, 8/3; r = 5 / sqrt(2 * 38/3)
    assert.ok(Math.abs(pearson([1, 2, 3], Float32Array.from([2, 4, 7])) - 5 / Math.sqrt(76 / 3)) < 1e-6);
    assert.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])));
  });
});
