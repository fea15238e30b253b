import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import {
  bySection, groupedKFold, leaveOnePatientOut, makeFolds, parseFolds, validationSplit, type Fold, type SectionRef,
} from '../../src/runtime/eval/folds';

/** Folds grouped by patient, on HER2+-like section names (A1..A6, B1..B6, C1..C3). */

const her2 = (counts: Record<string, number>): SectionRef[] =>
  Object.entries(counts).flatMap(([patient, n]) => Array.from({ length: n }, (_, i) => ({ id: `${patient}${i + 1}`, patient })));
const sections = her2({ A: 6, B: 6, C: 3 });
const patientOf = (id: string) => id[0];

/** Every section is tested exactly once, each fold covers all sections, no patient on both sides. */
function assertGrouped(folds: Fold[], all: SectionRef[]) {
  const tested = folds.flatMap((f) => f.test).sort();
  assert.deepEqual(tested, all.map((s) => s.id).sort());
  for (const f of folds) {
    assert.equal(f.test.length + f.train.length, all.length);
    const testPatients = new Set(f.test.map(patientOf));
    assert.deepEqual([...testPatients].sort(), f.testPatients);
    assert.ok(f.train.every((id) => !testPatients.has(patientOf(id))), `fold ${f.index} splits a patient`);
  }
}

describe('parseFolds', () => {
  const good: [string, ReturnType<typeof parseFolds>][] = [
    ['lopo', { kind: 'lopo' }],
    ['kfold:8', { kind: 'kfold', k: 8 }],
    ['KFold:2', { kind: 'kfold', k: 2 }],
    ['section', { kind: 'section' }],
  ];
  for (const [spec, want] of good) test(spec, () => assert.deepEqual(parseFolds(spec), want));
  const bad: [string, RegExp][] = [
    ['loo', /unknown fold spec 'loo'; pass 'lopo'.*'kfold:<k>'.*'section'/],
    ['kfold:1', /k must be an integer of at least 2/],
    ['kfold:x', /k must be an integer of at least 2/],
    ['kfold:2.5', /k must be an integer of at least 2/],
  ];
  for (const [spec, message] of bad) test(`refuses ${spec}`, () => assert.throws(() => parseFolds(spec), message));
});

describe('grouped schemes never split a patient', () => {
  for (const spec of ['lopo', 'kfold:2', 'kfold:3'] as const) {
    test(spec, () => assertGrouped(makeFolds(sections, spec, 7).folds, sections));
  }
});

describe('leave one patient out', () => {
  test('one fold per patient, in natural order', () => {
    const folds = leaveOnePatientOut(sections);
    assert.equal(folds.length, 3);
    assert.deepEqual(folds.map((f) => f.testPatients), [['A'], ['B'], ['C']]);
    assert.deepEqual(folds[2].test, ['C1', 'C2', 'C3']);
  });
  test('natural patient order puts P2 before P10', () => {
    const s = ['P10', 'P2', 'P9', 'P5'].map((p) => ({ id: `${p}_1`, patient: p }));
    assert.deepEqual(leaveOnePatientOut(s).map((f) => f.testPatients[0]), ['P2', 'P5', 'P9', 'P10']);
  });
  test('one patient leaves nothing to train on', () => {
    assert.throws(() => leaveOnePatientOut(her2({ A: 3 })), /needs at least 2 patients; the dataset has 1 \(A\)/);
  });
});

describe('grouped k-fold', () => {
  test('kfold:2 on 3 patients: heaviest first into the lightest fold (A 6 | B 6, then C 3 joins fold 0)', () => {
    const folds = groupedKFold(sections, 2);
    assert.deepEqual(folds.map((f) => f.testPatients), [['A', 'C'], ['B']]);
    assert.deepEqual(folds.map((f) => f.test.length), [9, 6]);
    assert.deepEqual(groupedKFold(sections, 2), folds, 'deterministic');
  });
  test('a seed reorders equal weights only, repeatably', () => {
    for (const seed of [1, 2, 3, 4]) {
      const folds = groupedKFold(sections, 2, seed);
      assert.deepEqual(folds.map((f) => f.test.length).sort(), [6, 9], `seed ${seed} is balanced`);
      assert.deepEqual(groupedKFold(sections, 2, seed), folds, `seed ${seed} repeats`);
    }
  });
  test('heaviest patients are placed first (C 2 | A 1 + B 1, not A + C | B)', () => {
    assert.deepEqual(groupedKFold(her2({ A: 1, B: 1, C: 2 }), 2).map((f) => f.testPatients), [['C'], ['A', 'B']]);
  });
  test('equal loads go to the fold with fewer patients, so every fold gets one (spots 0)', () => {
    const s = [{ id: 'A1', patient: 'A', spots: 10 }, { id: 'B1', patient: 'B', spots: 0 }, { id: 'C1', patient: 'C', spots: 0 }];
    assert.deepEqual(groupedKFold(s, 3).map((f) => f.testPatients), [['A'], ['B'], ['C']]);
  });
  test('spots, when every section gives them, are what is balanced', () => {
    const s = [
      { id: 'A1', patient: 'A', spots: 100 }, { id: 'B1', patient: 'B', spots: 40 },
      { id: 'B2', patient: 'B', spots: 40 }, { id: 'C1', patient: 'C', spots: 50 },
    ];
    assert.deepEqual(groupedKFold(s, 2).map((f) => f.testPatients), [['A'], ['B', 'C']]);
  });
  // [k, message]
  const errors: [number, RegExp][] = [
    [4, /kfold:4 asks for more folds than there are patients \(3: A, B, C\); pass kfold:3 or fewer/],
    [1, /integer k of at least 2/],
  ];
  for (const [k, message] of errors) test(`k = ${k} is refused`, () => assert.throws(() => groupedKFold(sections, k), message));
  test('k = patients gives one patient per fold', () => {
    assert.deepEqual(groupedKFold(sections, 3).map((f) => f.testPatients.length), [1, 1, 1]);
  });
});

describe('folds by section', () => {
  test('one fold per section, with the near-duplicate warning', () => {
    const { folds, warning } = bySection(sections);
    assert.equal(folds.length, 15);
    assert.match(warning ?? '', /3 of 3 patients have several sections.*near-duplicates.*optimistic/);
    assert.deepEqual(makeFolds(sections, 'section').warnings, [warning]);
  });
  test('no warning when every patient has one section', () => {
    assert.equal(bySection(her2({ A: 1, B: 1 })).warning, undefined);
  });
});

describe('input errors', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['empty dataset', () => leaveOnePatientOut([]), /no sections; preprocess a dataset first/],
    ['a section listed twice', () => groupedKFold([...sections, sections[0]], 2), /section A1 is listed twice/],
    ['a section without patient', () => makeFolds([{ id: 'X1', patient: '' }, ...sections], 'lopo'), /section X1 has no patient/],
  ];
  for (const [name, run, message] of cases) test(name, () => assert.throws(run, message));
});

describe('validation split', () => {
  const five = her2({ A: 6, B: 6, C: 3, D: 3, E: 3 });
  const byId = new Map(five.map((s) => [s.id, s]));
  const train = (f: Fold) => f.train.map((id) => byId.get(id)!);

  for (const fold of leaveOnePatientOut(five)) {
    test(`fold ${fold.index} (test ${fold.testPatients.join()}): whole training patients only`, () => {
      for (const seed of [0, 1, 2, 3, 4, 5]) {
        const v = validationSplit(train(fold), { seed });
        assert.ok(v.validation.length > 0 && v.train.length > 0);
        assert.ok(v.validationPatients.every((p) => !fold.testPatients.includes(p)), 'no test patient');
        assert.ok(v.validation.every((id) => !fold.test.includes(id)), 'no test section');
        assert.ok(v.validation.every((id) => !v.train.includes(id)), 'no overlap with train');
        assert.deepEqual([...v.validation, ...v.train].sort(), [...fold.train].sort());
        const valPatients = new Set(v.validation.map(patientOf));
        assert.ok(v.train.every((id) => !valPatients.has(patientOf(id))), 'no patient split');
        assert.equal(v.warning, undefined);
        assert.deepEqual(validationSplit(train(fold), { seed }), v, 'repeatable');
      }
    });
  }
  test('the share of sections closest to the fraction, at least one patient', () => {
    // 4 patients x 3 sections: 0.15 x 12 = 1.8 -> one patient; 0.4 x 12 = 4.8 -> two
    const s = her2({ A: 3, B: 3, C: 3, D: 3 });
    assert.equal(validationSplit(s, { seed: 1 }).validationPatients.length, 1);
    assert.equal(validationSplit(s, { seed: 1, fraction: 0.4 }).validationPatients.length, 2);
    assert.equal(validationSplit(s, { seed: 1, fraction: 0.99 }).validationPatients.length, 3, 'never all patients');
  });
  test('one training patient falls back to its sections, with a warning', () => {
    const v = validationSplit(her2({ A: 6 }), { seed: 3 });
    assert.equal(v.validation.length, 1);
    assert.equal(v.train.length, 5);
    assert.match(v.warning ?? '', /only one training patient \(A\).*near-duplicates/);
  });
  const errors: [string, () => unknown, RegExp][] = [
    ['one training section', () => validationSplit(her2({ A: 1 }), { seed: 0 }), /training has one section \(A1\)/],
    ['fraction out of range', () => validationSplit(sections, { seed: 0, fraction: 1 }), /strictly between 0 and 1/],
    ['no sections', () => validationSplit([], { seed: 0 }), /no sections/],
  ];
  for (const [name, run, message] of errors) test(`error: ${name}`, () => assert.throws(run, message));
});
