import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { inPolygon, spotsInPolygon, spotsInRect, type Point } from '../../webview/viewer/hitTest';
import { summarise, summaryText } from '../../webview/viewer/selectionSummary';
import { parseViewerInbound, parseViewerOutbound } from '../../src/protocol/webviews';

/** The viewer's selection geometry and summary, against hand-computed cases. */

// A "U" (image y down): the base is 0..10 x 0..4, the arms 0..4 and 6..10 reach y = 10; the notch
// between the arms (4 < x < 6, 4 < y <= 10) is outside, and so is the gap that closes the U at y = 10.
const U: Point[] = [{ x: 0, y: 0 }, { x: 10, y: 0 }, { x: 10, y: 10 }, { x: 6, y: 10 }, { x: 6, y: 4 }, { x: 4, y: 4 }, { x: 4, y: 10 }, { x: 0, y: 10 }];
// Two triangles meeting at (5, 5): self-crossing, the even-odd rule keeps both lobes.
const BOW_TIE: Point[] = [{ x: 0, y: 0 }, { x: 10, y: 10 }, { x: 10, y: 0 }, { x: 0, y: 10 }];

describe('selection geometry', () => {
  const cases: [string, Point[], number, number, boolean][] = [
    ['left arm', U, 2, 5, true],
    ['right arm', U, 8, 7, true],
    ['base, under the notch', U, 5, 2, true],
    ['in the notch (concave part)', U, 5, 7, false],
    ['in the gap that closes the U', U, 5, 10, false],
    ['on the notch floor (edge)', U, 5, 4, true],
    ['on the notch side (edge)', U, 4, 7, true],
    ['on the outer right edge', U, 10, 5, true],
    ['on the closing edge (last vertex to first)', U, 0, 5, true],
    ['on an arm top', U, 3, 10, true],
    ['a vertex', U, 0, 0, true],
    ['an inner vertex', U, 6, 4, true],
    ['level with the notch floor, left arm (ray along an edge)', U, 2, 4, true],
    ['level with the notch floor, right arm', U, 8, 4, true],
    ['level with the notch floor, outside', U, -1, 4, false],
    ['right of it all', U, 11, 5, false],
    ['below it all', U, 5, 10.5, false],
    ['bow tie, left lobe', BOW_TIE, 2, 5, true],
    ['bow tie, right lobe', BOW_TIE, 8, 5, true],
    ['bow tie, between the lobes', BOW_TIE, 5, 2, false],
    ['bow tie, the crossing', BOW_TIE, 5, 5, true],
  ];
  for (const [name, polygon, x, y, want] of cases) {
    test(`${name}: (${x}, ${y}) ${want ? 'in' : 'out'}`, () => assert.equal(inPolygon(x, y, polygon), want));
  }

  test('spots of a grid in the U: the hand-counted set', () => {
    // Spots at every integer point of -1..11 x -1..11: the U holds the base (0..10 x 0..4: 55),
    // the left arm (0..4 x 5..10: 30) and the right arm (6..10 x 5..10: 30).
    const xs: number[] = [], ys: number[] = [];
    for (let y = -1; y <= 11; y++) for (let x = -1; x <= 11; x++) { xs.push(x); ys.push(y); }
    const picked = spotsInPolygon(xs, ys, U);
    assert.equal(picked.length, 55 + 30 + 30);
    assert.ok(picked.every((i) => !(xs[i] === 5 && ys[i] > 4)), 'a notch spot was selected');
    assert.deepEqual(spotsInPolygon(xs, ys, U.slice(0, 2)), [], 'two points enclose nothing');
  });

  test('a rectangle holds its edges, whichever corner it was drawn from', () => {
    const xs = [0, 5, 10, 10.5, 5], ys = [0, 5, 10, 5, -0.1];
    assert.deepEqual(spotsInRect(xs, ys, { x0: 0, y0: 0, x1: 10, y1: 10 }), [0, 1, 2]);
    assert.deepEqual(spotsInRect(xs, ys, { x0: 10, y0: 10, x1: 0, y1: 0 }), [0, 1, 2]);
  });

  test('a 400-point concave lasso over 5,000 spots takes under 50 ms', () => {
    const xs: number[] = [], ys: number[] = [];
    for (let i = 0; i < 5000; i++) { xs.push((i % 71) * 140); ys.push(Math.floor(i / 71) * 140); }
    // A star: radius alternating 4,500 and 2,000 px around (5,000, 5,000).
    const lasso = Array.from({ length: 400 }, (_, k) => {
      const a = (k / 400) * 2 * Math.PI;
      const r = k % 2 ? 2000 : 4500;
      return { x: 5000 + r * Math.cos(a), y: 5000 + r * Math.sin(a) };
    });
    spotsInPolygon(xs, ys, lasso); // warm up
    const t0 = performance.now();
    const picked = spotsInPolygon(xs, ys, lasso);
    const ms = performance.now() - t0;
    assert.ok(ms < 50, `${ms.toFixed(1)} ms`);
    assert.deepEqual(picked, xs.flatMap((x, i) => (inPolygon(x, ys[i], lasso) ? [i] : [])), 'the banded test differs from the plain one');
    // Inside the inner radius everything is selected, beyond the outer nothing.
    const d = (i: number) => Math.hypot(xs[i] - 5000, ys[i] - 5000);
    const set = new Set(picked);
    for (let i = 0; i < xs.length; i++) {
      if (d(i) < 1990) assert.ok(set.has(i), `spot ${i} at ${d(i).toFixed(0)} px`);
      if (d(i) > 4510) assert.ok(!set.has(i), `spot ${i} at ${d(i).toFixed(0)} px`);
    }
  });
});

describe('selection summary', () => {
  const truth = [1, 2, 3, 4];
  const prediction = [2, 4, 6, 9];
  test('count, means and the PCC inside the selection (hand-computed)', () => {
    assert.deepEqual(summarise([0, 1, 2], truth, prediction), { count: 3, meanTruth: 2, meanPrediction: 4, pcc: 1 });
    // truth 2, 3, 4 and prediction 4, 6, 9: deviations (-1, 0, 1) and (-7/3, -1/3, 8/3): 5 / sqrt(2 * 38/3).
    const s = summarise([1, 2, 3], truth, prediction);
    assert.ok(Math.abs((s.pcc as number) - 5 / Math.sqrt(2 * 38 / 3)) < 1e-12, String(s.pcc));
    assert.equal(summaryText(s, 'ERBB2'), '3 spots · mean truth 3.000 · mean prediction 6.333 · PCC 0.993 (ERBB2, inside the selection)');
  });
  test('one spot has no PCC; no prediction, no mean of it; nothing selected says so', () => {
    assert.equal(summaryText(summarise([2], truth, prediction), 'G'), '1 spot · mean truth 3.000 · mean prediction 6.000 · PCC n/a (G, inside the selection)');
    assert.deepEqual(summarise([0, 3], truth), { count: 2, meanTruth: 2.5 });
    assert.equal(summaryText(summarise([], truth, prediction), 'G'), 'no spots selected');
  });
});

describe('selection messages', () => {
  test('the viewer\'s save and export requests are validated before the extension acts', () => {
    const save = { name: 'region', label: '', spotIds: ['1x1', '2x2'] };
    assert.deepEqual(parseViewerOutbound({ type: 'saveCategory', payload: save }), { type: 'saveCategory', payload: save });
    assert.deepEqual(parseViewerOutbound({ type: 'saveCategory', payload: { ...save, extra: '/etc' } }), { type: 'saveCategory', payload: save }, 'only the known fields go through');
    for (const bad of [{ ...save, spotIds: [] }, { ...save, spotIds: ['x', 3] }, { ...save, spotIds: [''] }, { ...save, name: 7 }, { name: 'a', spotIds: ['x'] }]) {
      assert.equal(parseViewerOutbound({ type: 'saveCategory', payload: bad }), undefined, JSON.stringify(bad));
    }
    assert.deepEqual(parseViewerOutbound({ type: 'exportSelection', payload: { spotIds: ['a'] } }), { type: 'exportSelection', payload: { spotIds: ['a'] } });
    assert.equal(parseViewerOutbound({ type: 'exportSelection', payload: { spotIds: [] } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'selected', payload: { count: 1.5, ms: 2 } }), undefined);
  });

  test('categorical columns must match the section\'s spots', () => {
    const init = { section: 'C1', genes: ['G'], gene: 'G', spots: { ids: ['a', 'b'], x: [0, 1], y: [0, 1], labels: [null, null] }, spotDiameter: 10 };
    const column = { name: 'region', source: 'saved', values: ['t', null] };
    assert.equal(parseViewerInbound({ type: 'init', payload: { ...init, categories: [column] } })?.type, 'init');
    assert.equal(parseViewerInbound({ type: 'init', payload: { ...init, categories: [{ ...column, values: ['t'] }] } }), undefined);
    assert.equal(parseViewerInbound({ type: 'init', payload: { ...init, categories: [{ ...column, source: 'elsewhere' }] } }), undefined);
    assert.equal(parseViewerInbound({ type: 'categories', payload: { columns: [column, { ...column, values: ['t'] }] } }), undefined);
    assert.equal(parseViewerInbound({ type: 'categories', payload: { columns: [column], saved: { name: 'region', label: 't', spots: 1 } } })?.type, 'categories');
  });
});
