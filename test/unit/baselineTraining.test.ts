import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { findRunResults } from '../../src/runtime/eval/runResults';
import { extractFeatures } from '../../src/runtime/features/extract';
import { crossValidate, readPredictions } from '../../src/runtime/train/cv';
import { loadTrainingData } from '../../src/runtime/train/data';
import { loadTrainedModel, predictSections, readCheckpoint } from '../../src/runtime/train/trainer';
import { relativeError } from './helpers/compare';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { repoRoot } from './helpers/paths';

const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8' });

/**
 * Every baseline through the one trainer and cross-validation on a small synthetic store: patient
 * folds, early stopping on training patients, checkpoints that predict on their own (a retrieval
 * model's reference spots kept with its weights), a resumed run, and the inputs each model needs.
 */

const MODELS = ['stnet', 'histogene', 'hist2st', 'egn', 'bleep'] as const;

describe('the baselines train, cross-validate and predict through the one trainer', () => {
  let tmp = '';
  let store = '';
  before(async () => {
    await initCompute({ backend: 'cpu' });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-baselines-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 4, sectionsPerPatient: 2, gridSize: 5, genes: 30 }, 20);
    await extractFeatures(store, { encoder: 'resnet18' });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const model of MODELS) {
    test(model, async () => {
      const out = path.join(tmp, model);
      const data = loadTrainingData(store, { views: ['global'] });
      const result = await crossValidate({ storeDir: store, outDir: out, variant: model, preset: 'demo', epochs: 2, batchSize: 16, learningRate: 1e-3, data, onlyFolds: [0] });
      assert.equal(result.folds.length, 1);
      const fold = result.folds[0];
      assert.equal(fold.train.epochsRun, 2);
      assert.ok(fold.train.history.every((h) => Number.isFinite(h.loss)), 'finite losses');
      const preds = readPredictions(fold.predictions);
      assert.deepEqual([...preds.sections.keys()], fold.fold.test);
      for (const s of preds.sections.values()) assert.ok(s.values.every(Number.isFinite));
      // The best checkpoint predicts the test sections alone, as the run did.
      const { model: learner, info } = await loadTrainedModel(fold.train.checkpoint, data);
      assert.equal((info.config as { model?: string }).model, model);
      const again = await predictSections(learner, data, fold.fold.test.map((id) => data.sections.get(id)!));
      for (const [id, s] of preds.sections) assert.deepEqual(Array.from(again.get(id)!), Array.from(s.values), `section ${id}`);
      await learner.dispose();
      if (model === 'egn' || model === 'bleep') {
        // The retrieval database is the fold's training spots, and nothing else: no validation or test spot.
        const { weights } = await readCheckpoint(fold.train.checkpoint);
        const rows = Array.from(weights.get('reference.section')!.data);
        const trainSpots = info.train.reduce((n, id) => n + data.sections.get(id)!.n, 0);
        assert.equal(rows.length, trainSpots);
        assert.ok(rows.every((i) => Number.isInteger(i) && i >= 0 && i < info.train.length));
        assert.deepEqual(new Set(info.train.map((id) => data.sections.get(id)!.patient)).has(fold.fold.testPatients[0]), false);
        assert.ok(info.validation.every((v) => !info.train.includes(v)));
      }
      if (model === 'histogene') {
        // A checkpoint trained on onnxruntime predicts on the engine's TF.js interpreter alike.
        const { model: onTfjs } = await loadTrainedModel(fold.train.checkpoint, data, 'tfjs');
        const viaTfjs = await predictSections(onTfjs, data, fold.fold.test.map((id) => data.sections.get(id)!));
        for (const [id, s] of preds.sections) assert.ok(relativeError(viaTfjs.get(id)!, s.values) < 1e-4, `section ${id} on TF.js`);
      }
    });
  }

  test('bad input: a store without images, a mode that is TRIPLEX\'s, an unknown model: clear errors, nothing written', async () => {
    const bare = path.join(tmp, 'bare');
    fs.cpSync(store, bare, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(bare, 'store.json'), 'utf8'));
    delete manifest.sections[1].image;
    fs.writeFileSync(path.join(bare, 'store.json'), JSON.stringify(manifest));
    const out = path.join(tmp, 'bare-run');
    const data = loadTrainingData(bare, { views: ['global'] });
    await assert.rejects(crossValidate({ storeDir: bare, outDir: out, variant: 'histogene', preset: 'demo', epochs: 1, data, onlyFolds: [0] }),
      new RegExp(`section ${manifest.sections[1].id} has no image, and histogene takes the spots' crops \\(re-run preprocess with --with-images\\)`));
    assert.deepEqual(fs.existsSync(out) ? fs.readdirSync(out).filter((f) => !f.startsWith('.')) : [], [], 'no checkpoint or result written');
    const b = cli(['benchmark', bare, '--out', path.join(tmp, 'bare-bench')]);
    assert.equal(b.status, 1);
    assert.match(b.stderr, new RegExp(`sections ${manifest.sections[1].id} have no image, and stnet, egn, bleep, histogene, hist2st learn from the spots' crops; re-run \`triplex preprocess\` with --with-images, or leave those models out with --models`));
    await assert.rejects(crossValidate({ storeDir: store, outDir: out, variant: 'egn', mode: 'full', data }), /--mode full is TRIPLEX's .* egn trains as its paper does/);
    const r = cli(['cv', store, '--model', 'histogen']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /argument 'histogen' is invalid\. Allowed choices are .*stnet, histogene, hist2st, egn, bleep/);
  });

  test('`triplex benchmark` runs all nine models on every fold, writes Table 1, skips done cells and refuses another protocol', () => {
    const out = path.join(tmp, 'benchmark');
    const args = ['benchmark', store, '--preset', 'demo', '--epochs', '1', '--batch', '16', '--lr', '1e-3', '--out', out];
    const r = cli(args);
    assert.equal(r.status, 0, r.stderr);
    const md = fs.readFileSync(path.join(out, 'table1.md'), 'utf8');
    for (const label of ['ST-Net', 'EGN', 'BLEEP', 'TEM', 'NEM', 'HisToGene', 'GEM', 'Hist2ST', 'TRIPLEX']) assert.match(md, new RegExp(`\\| ${label} \\| (\\*\\*)?\\d`), `${label} has a row`);
    for (const group of ['Local', 'Global', 'Local\\+Global', 'Multiple']) assert.match(md, new RegExp(`\\| ${group} \\|`));
    assert.equal((md.match(/\*\*/g) ?? []).length, 8, 'one best cell per metric column');
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.equal(results.rows.length, 9);
    for (const row of results.rows) assert.equal(row.folds, 4, `${row.model}: every patient fold`);
    assert.equal(fs.readFileSync(path.join(out, 'table1.csv'), 'utf8').trim().split('\n').length, 10);
    assert.match(r.stdout, /\| group \| model \| MSE \| MAE \| PCC\(M\) \| PCC\(H\) \| folds \|/);

    // The results table reads the benchmark's runs in Table 1's order and grouping.
    const table = findRunResults(out);
    assert.deepEqual(table.problems, []);
    assert.deepEqual(table.rows.map((row) => [row.variant, row.group]), [
      ['stnet', 'Local'], ['egn', 'Local'], ['bleep', 'Local'], ['tem', 'Local'], ['nem', 'Local'], ['histogene', 'Global'], ['gem', 'Global'], ['hist2st', 'Local+Global'], ['triplex', 'Multiple'],
    ]);

    // Done cells are skipped; the same table comes back (here with --json: progress on stderr, one JSON line on stdout).
    const again = cli([...args, '--json']);
    assert.equal(again.status, 0, again.stderr);
    assert.equal((again.stderr.match(/done in an earlier run/g) ?? []).length, 9);
    const summary = JSON.parse(again.stdout) as { benchmark: string; aborted: boolean; rows: Array<{ model: string; folds: number }> };
    assert.equal(summary.benchmark, out);
    assert.equal(summary.aborted, false);
    assert.deepEqual(summary.rows.map((row) => row.folds), Array(9).fill(4));
    assert.equal(fs.readFileSync(path.join(out, 'table1.md'), 'utf8'), md);

    // Another protocol in the same folder: refused, nothing overwritten.
    const other = cli([...args.slice(0, -2), '--epochs', '2', '--out', out]);
    assert.equal(other.status, 1);
    assert.match(other.stderr, /holds a benchmark of another epochs \(1, now 2\).*choose another --out/);
    assert.equal(fs.readFileSync(path.join(out, 'table1.md'), 'utf8'), md);

    const unknown = cli(['benchmark', store, '--models', 'triplex,stnetx', '--out', path.join(tmp, 'b2')]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown model stnetx; choose from stnet, egn, bleep/);
  });
});
