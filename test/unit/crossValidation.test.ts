import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { readArrowFile, stringColumn } from '../../src/runtime/store/arrow';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { findRunResults } from '../../src/runtime/eval/runResults';
import { readPredictions } from '../../src/runtime/train/cv';
import { loadTrainedModel } from '../../src/runtime/train/trainer';
import { repoRoot } from './helpers/paths';

/**
 * `triplex cv`, `train-fold` and `predict` end to end through the built command line, on a small
 * synthetic dataset in the HER2+ layout: files written, the printed table, a run stopped with
 * Ctrl-C that resumes, and the errors users meet first.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
const FAST = ['--preset', 'demo', '--epochs', '2', '--batch', '32', '--lr', '1e-3'];

describe('cross-validation from the command line', () => {
  let tmp = '';
  let store = '';
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-cv-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 2, gridSize: 6, genes: 60 }, 40);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a store without features says what to run', () => {
    const r = run(['cv', store, ...FAST]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /has no frozen features .*run `triplex extract /);
  });

  test('cv trains every patient fold, prints the table, and writes checkpoints, predictions and metrics', async () => {
    await extractFeatures(store, { encoder: 'resnet18' });
    const out = path.join(tmp, 'run');
    const r = run(['cv', store, '--model', 'triplex', ...FAST, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /model\s+MSE\s+MAE\s+PCC\(M\)\s+PCC\(H\)\s+folds/);
    assert.match(r.stdout, /triplex \(frozen\)\s+\d\.\d+ ± \d\.\d+/);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.equal(results.mode, 'frozen');
    assert.equal(results.perFold.length, 3);
    for (const f of results.training) {
      // Early stopping looks at a training patient, never at the fold's own test patient.
      assert.equal(f.validation.some((s: string) => f.test.includes(s)), false);
      assert.ok(fs.existsSync(path.join(out, `fold-${f.fold}`, 'best.safetensors')));
      const p = readPredictions(path.join(out, `fold-${f.fold}`, 'predictions.arrow'));
      assert.deepEqual([...p.sections.keys()], f.test);
      assert.equal(p.genes.length, 40);
    }
    for (const name of ['slides', 'folds', 'genes', 'summary']) assert.ok(readArrowFile(path.join(out, `metrics_${name}.arrow`)).numRows > 0);
    // The results table of the extension reads this run as written.
    const gathered = findRunResults(tmp);
    assert.deepEqual(gathered.problems, []);
    assert.deepEqual(gathered.rows.map((row) => [row.variant, row.group, row.mode, row.perFold.length]), [['triplex', 'model', 'frozen', 3]]);
    assert.equal(gathered.rows[0].values[2].mean, results.summary.pccM.mean);

    // predict: every spot of the chosen sections, from a fold's checkpoint.
    const predicted = path.join(tmp, 'predicted.arrow');
    const p = run(['predict', store, '--checkpoint', path.join(out, 'fold-0', 'best.safetensors'), '--sections', 'A1,B2', '--out', predicted]);
    assert.equal(p.status, 0, p.stderr);
    const table = readPredictions(predicted);
    assert.deepEqual([...table.sections.keys()], ['A1', 'B2']);
    for (const s of table.sections.values()) assert.ok(s.values.every(Number.isFinite) && s.values.length === s.spotIds.length * 40);
  });

  test('a slide without counts, from its image and a spot table, predicts as the same spots in the labelled store', async () => {
    // Depends on the run of the test above (fold 0's checkpoint and predicted.arrow).
    const checkpoint = path.join(tmp, 'run', 'fold-0', 'best.safetensors');
    const labelled = openDatasetStore(store);
    const rows = labelled.rowsOf('A1');
    const col = (name: string) => labelled.spots.getChild(name)!.toArray() as ArrayLike<number>;
    const [ids, xs, ys, ar, ac] = [stringColumn(labelled.spots, 'spot_id'), col('pixel_x'), col('pixel_y'), col('array_row'), col('array_col')];
    const table = path.join(tmp, 'A1_spots.csv');
    fs.writeFileSync(table, ['spot_id,pixel_x,pixel_y,array_row,array_col', ...rows.map((r) => `${ids[r]},${xs[r]},${ys[r]},${ar[r]},${ac[r]}`)].join('\n') + '\n');
    const slideStore = path.join(tmp, 'slide-A1');
    const s = run(['slide', labelled.manifest.sections.find((x) => x.id === 'A1')!.image!.path, '--spots', table, '--section', 'A1', '--out', slideStore]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, new RegExp(`${rows.length} spots from .*A1_spots\\.csv`));

    const refused = run(['cv', slideStore, ...FAST]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /has no frozen features/);
    await extractFeatures(slideStore, { encoder: 'resnet18' });
    const cv = run(['cv', slideStore, ...FAST]);
    assert.equal(cv.status, 1);
    assert.match(cv.stderr, /slide-A1 has no counts \(made by `triplex slide`\): it cannot be cross-validated; use it with `triplex predict`/);

    const out = path.join(tmp, 'slide-A1.arrow');
    const p = run(['predict', slideStore, '--checkpoint', checkpoint, '--out', out]);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`predicted 40 genes for ${rows.length} spots of 1 sections`));
    const mine = readPredictions(out).sections.get('A1')!;
    const reference = readPredictions(path.join(tmp, 'predicted.arrow')).sections.get('A1')!;
    assert.deepEqual(mine.spotIds, reference.spotIds);
    let worst = 0;
    for (let i = 0; i < mine.values.length; i++) worst = Math.max(worst, Math.abs(mine.values[i] - reference.values[i]));
    assert.ok(worst < 1e-5, `largest difference ${worst}`);
    assert.ok(reference.values.some((v) => Math.abs(v - reference.values[0]) > 1e-3), 'predictions vary across spots and genes');
    // Features of another encoder or weights are refused, whatever the store.
    await assert.rejects(loadTrainedModel(checkpoint, { genes: [], dim: 512, hasCounts: false, featuresDir: path.join(slideStore, 'features', 'resnet18-0123456789ab') }),
      /was trained on features 'resnet18-[0-9a-f]+', the store's are 'resnet18-0123456789ab' \(another encoder or weights\)/);
  });

  test('folds by section need asking for and warn; an unknown fold is refused', () => {
    const r = run(['train-fold', store, '--fold', '9', ...FAST, '--out', path.join(tmp, 'x')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no fold 9: the scheme 'lopo' gives folds 0 to 2/);
    const s = run(['train-fold', store, '--fold', '0', '--folds', 'section', '--model', 'tem', ...FAST, '--out', path.join(tmp, 'by-section')]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /warning: folds by section: .*near-duplicates/);
  });

  test('Ctrl-C stops after the current batch, keeps the last checkpoint, and the rerun resumes', async () => {
    const out = path.join(tmp, 'interrupted');
    const args = [cli(), 'train-fold', store, '--fold', '1', '--model', 'nem', '--preset', 'demo', '--epochs', '6', '--batch', '8', '--out', out];
    const child = spawn(process.execPath, args, { env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
    let stdout = '';
    const code = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (b: Buffer) => {
        stdout += b.toString();
        if (/epoch 2\/6/.test(stdout) && !child.killed) child.kill('SIGINT');
      });
      child.on('close', resolve);
    });
    assert.equal(code, 130, stdout);
    assert.match(stdout, /stopped on request after [23] epoch/);
    const files = fs.readdirSync(path.join(out, 'fold-1'));
    assert.ok(files.includes('last.safetensors'));
    assert.deepEqual(files.filter((f) => f.includes('partial')), []);
    const again = run(args.slice(1));
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /resuming after epoch [23] from the last checkpoint/);
    assert.match(again.stdout, /epoch 6\/6/);
    assert.doesNotMatch(again.stdout, /epoch 1\/6/);
  });
});
