import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { readDataset } from '../../src/runtime/data/read';
import { readGeneListFile } from '../../src/runtime/data/geneList';
import { table2Csv, table2Markdown, table2Text, type Table2Row } from '../../src/runtime/eval/table2';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { crossValidate, readPredictions } from '../../src/runtime/train/cv';
import { writeSyntheticDataset } from '../../src/runtime/synthetic/generator';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { writeVisium, type TruthSection } from './helpers/spatialFixtures';
import { repoRoot } from './helpers/paths';

/**
 * External validation end to end: a tiny cv run on a synthetic HER2+ store, a synthetic Visium
 * section measuring other genes in another order (some of the run's missing, some extra),
 * preprocessed with `--genes-from <run>`, extracted, and scored with `triplex evaluate`. The
 * metrics are recomputed here from the written predictions and the store's truth.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });

/** Pearson correlation of two columns, plainly (NaN when either is constant). */
function pearson(a: number[], b: number[]): number {
  const ma = a.reduce((s, v) => s + v, 0) / a.length;
  const mb = b.reduce((s, v) => s + v, 0) / b.length;
  let ab = 0;
  let aa = 0;
  let bb = 0;
  a.forEach((x, i) => {
    ab += (x - ma) * (b[i] - mb);
    aa += (x - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  });
  return aa === 0 || bb === 0 ? Number.NaN : ab / Math.sqrt(aa * bb);
}

const definedMean = (xs: number[]) => {
  const d = xs.filter((x) => !Number.isNaN(x));
  return d.length ? d.reduce((s, v) => s + v, 0) / d.length : Number.NaN;
};

/** MSE, MAE, PCC(M), PCC(H) of one section, computed from the files by name, independently of the runtime. */
function expectedScores(pred: { genes: string[]; values: Float32Array }, truth: { genes: string[]; values: Float32Array }, hpg: string[]) {
  const shared = pred.genes.filter((g) => truth.genes.includes(g));
  const n = truth.values.length / truth.genes.length;
  const col = (x: { genes: string[]; values: Float32Array }, g: string) => Array.from({ length: n }, (_, r) => x.values[r * x.genes.length + x.genes.indexOf(g)]);
  let se = 0;
  let ae = 0;
  const pcc = new Map<string, number>();
  for (const g of shared) {
    const p = col(pred, g);
    const t = col(truth, g);
    p.forEach((v, i) => { se += (v - t[i]) ** 2; ae += Math.abs(v - t[i]); });
    pcc.set(g, pearson(p, t));
  }
  const count = n * shared.length;
  return { mse: se / count, mae: ae / count, pccM: definedMean([...pcc.values()]), pccH: definedMean(hpg.filter((g) => pcc.has(g)).map((g) => pcc.get(g)!)) };
}

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

describe('triplex evaluate (external validation, Table 2)', () => {
  let tmp = '';
  let runDir = '';
  let visium = '';
  let image = '';
  let runGenes: string[] = [];
  let missing: string[] = [];
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-evaluate-'));
    const train = path.join(tmp, 'train');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), train, { patients: 4, sectionsPerPatient: 1, gridSize: 5, genes: 100 }, 60);
    await extractFeatures(train, { encoder: 'resnet18' });
    runDir = path.join(tmp, 'run');
    await crossValidate({ storeDir: train, outDir: runDir, preset: 'demo', epochs: 1, batchSize: 32, learningRate: 1e-3, seed: 0, init: 'mean-bias' });
    runGenes = openDatasetStore(train).genes;

    // Another "cohort": one section from another seed, written as a Space Ranger folder whose
    // genes are the run's in reverse order without four of them, plus genes the run never saw.
    const other = await readDataset((await writeSyntheticDataset(path.join(tmp, 'cohort'), { seed: 11, patients: 1, sectionsPerPatient: 1, gridSize: 5, genes: 100 })).root);
    const s = other.sections[0];
    missing = runGenes.slice(2, 6);
    const extra = s.genes.filter((g) => !runGenes.includes(g)).slice(0, 5);
    const genes = [...runGenes.filter((g) => !missing.includes(g)).reverse(), ...extra];
    const column = new Map(s.genes.map((g, j) => [g, j]));
    const counts = s.spots.map((_, r) => {
      const row = new Array<number>(s.genes.length).fill(0);
      for (let k = s.counts.indptr[r]; k < s.counts.indptr[r + 1]; k++) row[s.counts.indices[k]] += s.counts.data[k];
      return genes.map((g) => row[column.get(g)!]);
    });
    const truth: TruthSection = { id: 'V1', genes, counts, spots: s.spots.map((p, i) => ({ barcode: `AAAC${String(i).padStart(12, '0')}-1`, row: p.row, col: p.col, x: p.x, y: p.y })) };
    visium = await writeVisium(path.join(tmp, 'V1'), truth, { positions: 'tissue_positions.csv' });
    image = s.image!.path;
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('preprocess --genes-from <run> keeps the run\'s genes in its order and records the missing ones', () => {
    const store = path.join(tmp, 'vstore');
    const r = run(['preprocess', visium, '--image', image, '--genes-from', runDir, '--out', store]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`4 of the ${runGenes.length} listed genes are not in every section.*${missing.join(', ')}`));
    const opened = openDatasetStore(store);
    assert.deepEqual(opened.genes, runGenes.filter((g) => !missing.includes(g)));
    assert.deepEqual(opened.manifest.missingGenes, missing);
    assert.ok(opened.values().every(Number.isFinite), 'no NaN or zero-filled columns stand in for missing genes');
  });

  test('evaluate scores every fold model on the shared genes, as recomputed from its files', async () => {
    const store = path.join(tmp, 'vstore');
    const before = run(['evaluate', runDir, store]);
    assert.equal(before.status, 1);
    assert.match(before.stderr, /has no features from the encoder .* run `triplex extract .* --encoder resnet18`/);
    await extractFeatures(store, { encoder: 'resnet18' });

    const out = path.join(tmp, 'eval');
    const r = run(['evaluate', runDir, store, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n');
    const header = lines.findIndex((l) => /^model\s+\|\s+MSE\s+MAE\s+PCC\(M\)\s+PCC\(H\)$/.test(l));
    assert.ok(header > 0, r.stdout);
    assert.match(lines[header - 1], /^\s+\| V1\s*$/);
    assert.match(lines[header + 1], /^run \(4 folds\)\s+\|\s+\d+\.\d+ ± \d\.\d+\s+\d+\.\d+ ± \d\.\d+\s+-?\d\.\d+ ± \d\.\d+\s+-?\d\.\d+ ± \d\.\d+$/);
    assert.match(r.stdout, new RegExp(`${runGenes.length - 4} of ${runGenes.length} model genes scored; 4 missing from the store, left out: ${missing.join(', ')}`));

    const report = JSON.parse(fs.readFileSync(path.join(out, 'evaluation.json'), 'utf8'));
    assert.deepEqual(report.genes.missing, missing);
    const hpgRun: string[] = JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8')).highlyPredictiveGenes;
    assert.deepEqual(report.genes.highlyPredictive, hpgRun.filter((g) => !missing.includes(g)));
    const opened = openDatasetStore(store);
    const truth = { genes: opened.genes, values: opened.values() };
    const perFold = report.scores.map((f: { fold: number; predictions: string; sections: { mse: number; mae: number; pccM: number; pccH: number }[] }) => {
      const p = readPredictions(f.predictions);
      assert.deepEqual(p.genes, runGenes, 'predictions carry every model gene, in the model\'s order');
      const want = expectedScores({ genes: p.genes, values: p.sections.get('V1')!.values }, truth, hpgRun);
      for (const k of ['mse', 'mae', 'pccM', 'pccH'] as const) close(f.sections[0][k], want[k], `fold ${f.fold} ${k}`);
      return want;
    });
    assert.equal(perFold.length, 4);
    const csv = fs.readFileSync(path.join(out, 'table2.csv'), 'utf8').trim().split('\n');
    assert.equal(csv[0], 'model,folds,ensemble,V1 MSE mean,V1 MSE std,V1 MAE mean,V1 MAE std,V1 PCC(M) mean,V1 PCC(M) std,V1 PCC(H) mean,V1 PCC(H) std');
    const cells = csv[1].split(',');
    const mean = (k: 'mse' | 'mae' | 'pccM' | 'pccH') => perFold.reduce((a: number, f: Record<string, number>) => a + f[k], 0) / perFold.length;
    (['mse', 'mae', 'pccM', 'pccH'] as const).forEach((k, i) => close(Number(cells[3 + 2 * i]), mean(k), `mean ${k}`));
    assert.match(fs.readFileSync(path.join(out, 'table2.md'), 'utf8'), /\| model \| V1 MSE \| V1 MAE \| V1 PCC\(M\) \| V1 PCC\(H\) \|/);

    // --ensemble: one row, from the mean of the fold models' predictions.
    const ens = path.join(tmp, 'eval-ensemble');
    const e = run(['evaluate', runDir, store, '--out', ens, '--ensemble']);
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /run \(ensemble of 4 folds\)\s+\|\s+\d+\.\d+ ± n\/a/);
    const folds = report.scores.map((f: { predictions: string }) => readPredictions(f.predictions).sections.get('V1')!.values);
    const ensemble = readPredictions(path.join(ens, 'predictions', 'ensemble.arrow'));
    ensemble.sections.get('V1')!.values.forEach((v, i) => close(v, folds.reduce((a: number, f: Float32Array) => a + f[i], 0) / folds.length, `ensemble value ${i}`));
    const want = expectedScores({ genes: ensemble.genes, values: ensemble.sections.get('V1')!.values }, truth, hpgRun);
    const got = JSON.parse(fs.readFileSync(path.join(ens, 'evaluation.json'), 'utf8')).scores[0].sections[0];
    for (const k of ['mse', 'mae', 'pccM', 'pccH'] as const) close(got[k], want[k], `ensemble ${k}`);
  });

  test('bad input is refused by name: no counts, too few genes, not a checkpoint, conflicting gene options', () => {
    const slide = path.join(tmp, 'slide');
    assert.equal(run(['slide', image, '--spots', path.join(visium, 'spatial', 'tissue_positions.csv'), '--out', slide]).status, 0);
    const noCounts = run(['evaluate', runDir, slide]);
    assert.equal(noCounts.status, 1);
    assert.match(noCounts.stderr, /has no counts .*use `triplex predict/);

    // A list of 8 of the run's genes: a store of those 8, then evaluate refuses (8 of 60 shared).
    const list = path.join(tmp, 'few.txt');
    fs.writeFileSync(list, `# a few genes\n${runGenes.filter((g) => !missing.includes(g)).slice(0, 8).join('\n')}\n`);
    const few = path.join(tmp, 'fewstore');
    assert.equal(run(['preprocess', visium, '--image', image, '--genes', list, '--out', few]).status, 0);
    const tooFew = run(['evaluate', runDir, few]);
    assert.equal(tooFew.status, 1);
    assert.match(tooFew.stderr, new RegExp(`has only 8 of the ${runGenes.length} genes asked for \\(fewer than half`));
    // A list of which the data has fewer than half is refused by preprocess, naming both counts.
    fs.writeFileSync(list, `${runGenes[0]}\nNOPE1\nNOPE2\n`);
    const refused = run(['preprocess', visium, '--image', image, '--genes', list, '--out', path.join(tmp, 'nope')]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /has only 1 of the 3 genes asked for/);

    // Features of another encoder (or weights): a features folder under another key.
    const features = path.join(tmp, 'vstore', 'features');
    fs.cpSync(path.join(features, fs.readdirSync(features)[0]), path.join(features, 'resnet18-0123456789ab'), { recursive: true });
    const otherEncoder = run(['evaluate', runDir, path.join(tmp, 'vstore'), '--features', 'resnet18-0123456789ab']);
    assert.equal(otherEncoder.status, 1);
    assert.match(otherEncoder.stderr, /was trained on features 'resnet18-[0-9a-f]+', and --features resnet18-0123456789ab are another encoder's .*run `triplex extract .*vstore --encoder resnet18`/);

    const fake = path.join(tmp, 'fake.safetensors');
    fs.writeFileSync(fake, 'not a checkpoint');
    const notOne = run(['evaluate', fake, path.join(tmp, 'vstore')]);
    assert.equal(notOne.status, 1);
    assert.match(notOne.stderr, /fake\.safetensors/);
    const notRun = run(['evaluate', tmp, path.join(tmp, 'vstore')]);
    assert.equal(notRun.status, 1);
    assert.match(notRun.stderr, /is not a cv run folder/);

    assert.equal(run(['preprocess', visium, '--genes', list, '--genes-from', runDir, '--out', path.join(tmp, 'x')]).status, 2);
    assert.equal(run(['preprocess', visium, '--genes', '0', '--out', path.join(tmp, 'x')]).status, 2);
  });
});

describe('gene lists and the Table 2 layout', () => {
  test('a gene list file: one name a line, comments and blank lines ignored, duplicates refused', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-genes-'));
    try {
      const file = path.join(dir, 'genes.txt');
      fs.writeFileSync(file, '# model genes\nERBB2\n\n  GATA3  # luminal\r\nKRT5\n');
      assert.deepEqual(readGeneListFile(file), ['ERBB2', 'GATA3', 'KRT5']);
      fs.writeFileSync(file, 'ERBB2\nKRT5\nERBB2\n');
      assert.throws(() => readGeneListFile(file), /genes\.txt, line 3: gene ERBB2 is listed again \(first on line 1\)/);
      fs.writeFileSync(file, '# nothing\n');
      assert.throws(() => readGeneListFile(file), /no gene names/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('one column group per test section, one row per run, the best of each column in bold', () => {
    const v = (mean: number, std = 0.01) => ({ mean, std });
    const rows: Table2Row[] = [
      { model: 'triplex', folds: 8, ensemble: false, sections: [{ section: 'V1', values: [v(0.2), v(0.3), v(0.25), v(0.4)] }, { section: 'V2', values: [v(0.3), v(0.4), v(0.2), v(0.35)] }] },
      { model: 'stnet', folds: 8, ensemble: false, sections: [{ section: 'V1', values: [v(0.25), v(0.35), v(0.15), v(0.3)] }, { section: 'V2', values: [v(0.28), v(0.45), v(0.1), v(0.2)] }] },
    ];
    const text = table2Text(rows).split('\n');
    assert.match(text[0], /^\s+\| V1\s+\| V2$/);
    assert.match(text[1], /^model\s+\|\s+MSE\s+MAE\s+PCC\(M\)\s+PCC\(H\) \|\s+MSE\s+MAE\s+PCC\(M\)\s+PCC\(H\)$/);
    assert.match(text[2], /^triplex \(8 folds\)\s+\|\s+0\.200 ± 0\.010 +0\.300 ± 0\.010 +0\.250 ± 0\.010 +0\.400 ± 0\.010 \| 0\.300 ± 0\.010/);
    assert.equal(text[0].indexOf('| V2'), text[2].lastIndexOf('|'), 'group titles sit over their columns');
    const md = table2Markdown(rows).split('\n');
    assert.equal(md[2], '| triplex (8 folds) | **0.200 ± 0.010** | **0.300 ± 0.010** | **0.250 ± 0.010** | **0.400 ± 0.010** | 0.300 ± 0.010 | **0.400 ± 0.010** | **0.200 ± 0.010** | **0.350 ± 0.010** |');
    assert.equal(table2Csv(rows).split('\n')[2], 'stnet,8,false,0.25,0.01,0.35,0.01,0.15,0.01,0.3,0.01,0.28,0.01,0.45,0.01,0.1,0.01,0.2,0.01');
  });
});
