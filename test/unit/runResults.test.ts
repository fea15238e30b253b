import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bestRowPerMetric, findRunResults, resultsCsv, resultsMarkdown } from '../../src/runtime/eval/runResults';

/** Gathering runs for the results table, and its CSV and Markdown exports (results.json as cv writes it). */

function writeRun(dir: string, variant: string, means: (number | null)[], folds = 3, mode = 'frozen'): void {
  fs.mkdirSync(dir, { recursive: true });
  const keys = ['mse', 'mae', 'pccM', 'pccH'] as const;
  const summary = Object.fromEntries(keys.map((k, i) => [k, { mean: means[i], std: folds > 1 && means[i] !== null ? 0.01 : null }]));
  const perFold = Array.from({ length: folds }, (_, f) => ({ fold: f, slides: 2, ...Object.fromEntries(keys.map((k, i) => [k, means[i] === null ? null : (means[i] as number) + (f - 1) * 0.01])) }));
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ variant, mode, folds: 'lopo', summary, perFold, aborted: false }));
  fs.mkdirSync(path.join(dir, 'fold-0'), { recursive: true }); // fold folders are not searched
}

describe('run results', () => {
  let root: string;
  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-results-'));
    writeRun(path.join(root, 'fusion-sum'), 'fusion-sum', [0.28, 0.42, 0.25, 0.55]);
    writeRun(path.join(root, 'tem'), 'tem', [0.30, 0.40, 0.20, 0.50]);
    writeRun(path.join(root, 'triplex'), 'triplex', [0.25, 0.41, 0.30, null]);
    writeRun(path.join(root, 'nested', 'deeper', 'gem'), 'gem', [0.35, 0.45, 0.10, 0.40], 1);
    fs.mkdirSync(path.join(root, 'broken'));
    fs.writeFileSync(path.join(root, 'broken', 'results.json'), '{"variant": "tem", "summ');
    fs.mkdirSync(path.join(root, 'other'));
    fs.writeFileSync(path.join(root, 'other', 'results.json'), '{"something": 1}');
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  test('finds runs at any depth, in the order of the paper\'s tables, and lists unreadable files by name', () => {
    const { rows, problems } = findRunResults(root);
    assert.deepEqual(rows.map((r) => r.variant), ['triplex', 'tem', 'gem', 'fusion-sum']);
    assert.deepEqual(rows.map((r) => r.group), ['model', 'views', 'views', 'fusion']);
    assert.equal(rows[2].perFold.length, 1);
    assert.ok(Number.isNaN(rows[2].values[0].std), 'one fold has no std');
    assert.ok(Number.isNaN(rows[0].values[3].mean), 'an undefined PCC(H) stays undefined');
    assert.equal(problems.length, 2);
    assert.match(problems.join('\n'), /broken[\\/]results\.json: not a readable results\.json/);
    assert.match(problems.join('\n'), /other[\\/]results\.json: not the results of a TRIPLEX cross-validation run/);
  });

  test('the best row per metric: lowest errors, highest correlations, NaN never wins', () => {
    const { rows } = findRunResults(root);
    assert.deepEqual(bestRowPerMetric(rows), [0, 1, 0, 3]);
  });

  test('CSV: a header and one line per run, mean and std of each metric', () => {
    const { rows } = findRunResults(root);
    const lines = resultsCsv(rows).trimEnd().split('\n');
    assert.equal(lines[0], 'variant,group,mode,folds,MSE mean,MSE std,MAE mean,MAE std,PCC(M) mean,PCC(M) std,PCC(H) mean,PCC(H) std,n folds,run');
    assert.equal(lines.length, 5);
    assert.match(lines[1], /^triplex,model,frozen,lopo,0\.2500,0\.0100,0\.4100,0\.0100,0\.3000,0\.0100,,,3,/);
    assert.match(lines[3], /^gem,views,frozen,lopo,0\.3500,,/);
  });

  test('Markdown: mean ± std, the best of each column in bold', () => {
    const { rows } = findRunResults(root);
    const md = resultsMarkdown(rows).trimEnd().split('\n');
    assert.equal(md[0], '| model | MSE ↓ | MAE ↓ | PCC(M) ↑ | PCC(H) ↑ |');
    assert.equal(md[2], '| triplex | **0.250 ± 0.010** | 0.410 ± 0.010 | **0.300 ± 0.010** | n/a |');
    assert.equal(md[3], '| tem | 0.300 ± 0.010 | **0.400 ± 0.010** | 0.200 ± 0.010 | 0.500 ± 0.010 |');
    assert.equal(md[4], '| gem | 0.350 ± n/a | 0.450 ± n/a | 0.100 ± n/a | 0.400 ± n/a |');
  });

  test('a folder that does not exist is an error naming it', () => {
    assert.throws(() => findRunResults(path.join(root, 'nope')), /nope does not exist/);
  });
});
