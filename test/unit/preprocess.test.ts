import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { normalise, preprocess, selectGenes, smooth3x3 } from '../../src/runtime/data/preprocess';
import type { Section, SpatialDataset } from '../../src/runtime/data/types';
import { sectionFrom } from './helpers/sections';

const dataset = (sections: Section[]): SpatialDataset => ({ format: 'her2st', source: 'memory', sections, problems: [] });

describe('gene selection', () => {
  // 10 spots over two sections. Totals: A 40, B 30 (1 spot only: 10%), C 30 (ties B by total),
  // D 100 but absent from section 2, E 0.
  const s1 = sectionFrom('X1', ['A', 'B', 'C', 'D', 'E'], [
    [10, 30, 5, 50, 0], [10, 0, 5, 50, 0], [0, 0, 5, 0, 0], [0, 0, 5, 0, 0], [0, 0, 0, 0, 0],
  ], [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]);
  const s2 = sectionFrom('Y1', ['C', 'A', 'B', 'E'], [
    [5, 10, 0, 0], [5, 10, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0],
  ], [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1]]);

  const cases: [string, number, number, string[]][] = [
    ['ranked by total, genes absent from a section dropped', 10, 0.1, ['A', 'B', 'C']],
    ['ties broken by name', 10, 0.1, ['A', 'B', 'C']],
    ['the 10% rule (B is in 1 of 10 spots)', 10, 0.2, ['A', 'C']],
    ['first n', 2, 0.1, ['A', 'B']],
  ];
  for (const [name, n, fraction, want] of cases) {
    test(name, () => {
      assert.deepEqual(selectGenes(dataset([s1, s2]), n, fraction).genes, want);
    });
  }
});

describe('normalisation', () => {
  test('log1p(1e4 x / total) per spot over the selected genes, zero totals stay zero', () => {
    const { values, zeroTotal } = normalise(Float32Array.from([1, 3, 0, 0]), 2, 1e4, 'log1p');
    assert.equal(zeroTotal, 1);
    const want = [Math.log1p(2500), Math.log1p(7500), 0, 0];
    values.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `${i}: ${v} vs ${want[i]}`));
  });
  test('the CVPR variant log10(1 + 1e4 x / total)', () => {
    const { values } = normalise(Float32Array.from([1, 3]), 2, 1e4, 'log10');
    assert.ok(Math.abs(values[0] - Math.log10(2501)) < 1e-6);
    assert.ok(Math.abs(values[1] - Math.log10(7501)) < 1e-6);
  });
});

describe('3x3 smoothing on the array grid', () => {
  test('each spot becomes the mean of itself and its existing neighbours (holes and far spots ignored)', () => {
    // grid: (0,0)=1 (0,1)=2 (1,1)=4, (5,5)=8 alone
    const s = sectionFrom('Z1', ['g'], [[1], [2], [4], [8]], [[0, 0], [0, 1], [1, 1], [5, 5]]);
    const out = smooth3x3(s, Float32Array.from([1, 2, 4, 8]), 1);
    assert.deepEqual(Array.from(out), [7 / 3, 7 / 3, 7 / 3, 8].map((v) => Math.fround(v)));
  });
});

describe('preprocess', () => {
  test('records its choices and keeps raw counts of the selected genes', () => {
    const s = sectionFrom('X1', ['A', 'B'], [[1, 3], [2, 2]], [[0, 0], [3, 3]]);
    const pre = preprocess(dataset([s]), { genes: 5, transform: 'log10', smooth: false });
    assert.deepEqual(pre.record.genes, ['B', 'A']);
    assert.equal(pre.record.normalisation.transform, 'log10');
    assert.equal(pre.record.smoothing.enabled, false);
    assert.deepEqual(Array.from(pre.sections[0].counts), [3, 1, 2, 2]);
    assert.ok(Math.abs(pre.sections[0].values[0] - Math.log10(1 + 7500)) < 1e-6);
  });
  test('given genes (a model\'s): those missing from a section are left out and recorded, never zero-filled; fewer than half is refused', () => {
    const a = sectionFrom('X1', ['A', 'B', 'C'], [[1, 2, 3]], [[0, 0]]);
    const b = sectionFrom('X2', ['C', 'A'], [[4, 5]], [[0, 0]]);
    const pre = preprocess(dataset([a, b]), { useGenes: ['C', 'B', 'A', 'D'], smooth: false });
    assert.deepEqual(pre.record.genes, ['C', 'A'], 'in the given order, B (not in X2) and D (in none) left out');
    assert.deepEqual(pre.record.selection, { rule: 'given', requested: 4, missingGenes: ['B', 'D'] });
    assert.deepEqual(Array.from(pre.sections[1].counts), [4, 5]);
    assert.throws(() => preprocess(dataset([a]), { useGenes: ['A', 'M1', 'M2'] }), /has only 1 of the 3 genes asked for \(fewer than half; missing e\.g\. M1, M2\)/);
  });
});
