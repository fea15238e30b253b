import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { initCompute } from '../../src/runtime/compute/backend';
import { readDataset } from '../../src/runtime/data/read';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { repoRoot } from './helpers/paths';
import { tempDir, truthSection, writeH5ad, writeHer2st, writeVisium, type TruthSection } from './helpers/spatialFixtures';

/**
 * Cohorts: a sample sheet of four Space Ranger folders and two .h5ad files (three patients, one
 * gene missing from one sample) preprocessed into one store and cross-validated by patient; a
 * folder of .h5ad files (HEST); the HER2+ folder names of the Zenodo release; an .h5ad whose X
 * is normalised while its raw counts are kept.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const run = (args: string[], cwd?: string) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', cwd, env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
const FAST = ['--preset', 'demo', '--epochs', '2', '--batch', '32', '--lr', '1e-3'];

/** A JPEG of noise large enough to hold every spot of the truth sections (hex grid, 3 x 4). */
async function slideJpeg(file: string, seed: number): Promise<string> {
  const width = 1700;
  const height = 1500;
  const raw = Buffer.alloc(width * height * 3);
  let v = seed * 7919;
  for (let i = 0; i < raw.length; i++) {
    v = (v * 1103515245 + 12345) & 0x7fffffff;
    raw[i] = 120 + (v >> 16) % 120;
  }
  await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 80 }).toFile(file);
  return file;
}

/** The section without its last gene (GENE7). */
const withoutLastGene = (s: TruthSection): TruthSection => ({ ...s, genes: s.genes.slice(0, -1), counts: s.counts.map((r) => r.slice(0, -1)) });

describe('cohort from a sample sheet', () => {
  const tmp = tempDir('cohort');
  const data = path.join(tmp, 'data');
  const sheet = path.join(data, 'samples.csv');
  const store = path.join(tmp, 'store');
  const truth = new Map<string, TruthSection>();
  const patientOf: Record<string, string> = { V1: 'P1', V2: 'P1', V3: 'P2', H1: 'P2', V4: 'P3', H2: 'P3' };

  before(async () => {
    await initCompute({});
    fs.mkdirSync(path.join(data, 'images'), { recursive: true });
    const rows = ['Path,Patient,section,IMAGE,mpp'];
    for (const [i, id] of ['V1', 'V2', 'V3', 'V4'].entries()) {
      let s = truthSection({ id, rows: 3, cols: 4, grid: 'hex', seed: 10 + i });
      if (id === 'V3') s = withoutLastGene(s);
      truth.set(id, s);
      // The folder is named like a Space Ranger run; the sheet names the section.
      await writeVisium(path.join(data, `run_${id}`), s, { positions: 'tissue_positions.csv' });
      await slideJpeg(path.join(data, 'images', `${id}.jpg`), i + 1);
      rows.push(`run_${id},${patientOf[id]},${id},images/${id}.jpg,${id === 'V1' ? '0.6152' : ''}`);
    }
    for (const [i, id] of ['H1', 'H2'].entries()) {
      const s = truthSection({ id, rows: 3, cols: 4, grid: 'hex', seed: 20 + i });
      truth.set(id, s);
      await writeH5ad(path.join(data, `${id}.h5ad`), [s], { x: 'csr' });
      await slideJpeg(path.join(data, 'images', `${id}.jpg`), i + 5);
      // No section column value: the file's own name is the section id.
      rows.push(`${id}.h5ad,${patientOf[id]},,${path.join(data, 'images', `${id}.jpg`)},`);
    }
    fs.writeFileSync(sheet, `${rows.join('\n')}\n`);
  });

  test('dataset inspect reports the cohort: patients, sections, genes in common', () => {
    const r = run(['dataset', 'inspect', sheet, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1));
    assert.equal(report.format, 'cohort');
    assert.deepEqual(report.patients.map((p: { id: string; sections: string[] }) => [p.id, [...p.sections].sort()]),
      [['P1', ['V1', 'V2']], ['P2', ['H1', 'V3']], ['P3', ['H2', 'V4']]]);
    assert.deepEqual([report.totals.sections, report.totals.genesInAny, report.totals.genesInAll], [6, 7, 6]);
    const text = run(['dataset', 'inspect', sheet]);
    assert.match(text.stdout, /3 patients, 6 sections, 72 spots; genes: 7 in any section, 6 in all/);
  });

  test('preprocess --samples writes one store with patients, the genes every sample has, and mpp', () => {
    const r = run(['preprocess', '--samples', sheet, '--out', store, '--genes', '10', '--no-smooth']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /6 sections, 72 spots, 6 genes/);
    assert.match(r.stdout, /3 patients; 1 genes dropped for not being in every section/);
    const s = openDatasetStore(store);
    assert.equal(s.manifest.source.format, 'cohort');
    assert.deepEqual(Object.fromEntries(s.manifest.sections.map((x) => [x.id, x.patient])), patientOf);
    assert.ok(!s.genes.includes('GENE7'));
    assert.deepEqual([...s.genes].sort(), ['GENE1', 'GENE2', 'GENE3', 'GENE4', 'GENE5', 'GENE6']);
    // V1: the sheet's mpp, which agrees with Space Ranger's (its spot_diameter_fullres of 89.4 px
    // is 55 um); V2: Space Ranger's alone; H5: neither (an .h5ad without scale factors).
    const V1 = s.manifest.sections.find((x) => x.id === 'V1')!;
    assert.deepEqual([V1.mpp, V1.mppSource], [0.6152, `the mpp of ${sheet} line 2`]);
    const V2 = s.manifest.sections.find((x) => x.id === 'V2')!;
    assert.equal(V2.mpp, 55 / 89.4);
    assert.match(V2.mppSource!, /the spot_diameter_fullres of .*run_V2\/spatial\/scalefactors_json\.json \(a spot is 55 um\)/);
    // A sheet contradicting Space Ranger is refused, naming both.
    const wrong = path.join(path.dirname(sheet), 'wrong.csv');
    fs.writeFileSync(wrong, fs.readFileSync(sheet, 'utf8').replace('0.6152', '0.2738'));
    const refused = run(['preprocess', '--samples', wrong, '--out', path.join(path.dirname(store), 'never'), '--genes', '10']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /section V1\): the spot_diameter_fullres of .*scalefactors_json\.json \(a spot is 55 um\) says 0\.615\d* um\/px but the mpp of .*wrong\.csv line 2 says 0\.2738 um\/px/);
    assert.ok(s.manifest.sections.every((x) => x.image?.width === 1700));
    // The raw counts in the store are the truth's, for every section, whichever reader read it.
    const counts = s.counts();
    const G = s.genes.length;
    const spotIds = s.spots.getChild('spot_id')!.toArray() as string[];
    for (const x of s.manifest.sections) {
      const t = truth.get(x.id)!;
      for (const row of s.rowsOf(x.id)) {
        const i = t.spots.findIndex((p) => p.barcode === spotIds[row]);
        assert.ok(i >= 0, `${x.id} spot ${spotIds[row]}`);
        s.genes.forEach((g, j) => assert.equal(counts[row * G + j], t.counts[i][t.genes.indexOf(g)]));
      }
    }
  });

  test('cv folds hold out whole patients', async () => {
    await extractFeatures(store, { encoder: 'resnet18' });
    const out = path.join(tmp, 'run');
    const r = run(['cv', store, '--model', 'triplex', ...FAST, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    assert.equal(results.training.length, 3);
    const heldOut = new Set<string>();
    for (const f of results.training as Array<{ test: string[]; validation: string[] }>) {
      const patients = new Set(f.test.map((s) => patientOf[s]));
      assert.equal(patients.size, 1, `fold tests one patient: ${f.test}`);
      const [patient] = patients;
      // Every section of the held-out patient, and none of it in validation (or training).
      assert.deepEqual([...f.test].sort(), Object.keys(patientOf).filter((s) => patientOf[s] === patient).sort());
      assert.ok(f.validation.every((s) => patientOf[s] !== patient));
      heldOut.add(patient);
    }
    assert.deepEqual([...heldOut].sort(), ['P1', 'P2', 'P3']);
  });

  test('a sheet error names the sheet and the line, and writes nothing', () => {
    const bad = path.join(data, 'bad.csv');
    fs.writeFileSync(bad, `path,patient,section\nrun_V1,P1,V1\nrun_V2,,V2\n`);
    const out = path.join(tmp, 'bad-store');
    const r = run(['preprocess', '--samples', bad, '--out', out]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`${bad.replace(/[.]/g, '\\.')} \\(line 3, column patient\\): section V2 has no patient`));
    assert.equal(fs.existsSync(out), false);
    const both = run(['preprocess', path.join(data, 'run_V1'), '--samples', sheet, '--out', out]);
    assert.equal(both.status, 2);
    assert.match(both.stderr, /either a <dataset> or --samples/);
  });
});

describe('sheet rows of HER2+ sections, with labels', () => {
  test('a HER2+ folder row takes its section and the row\'s patient; a labels file labels a Visium section by array position', async () => {
    const dir = tempDir('sheet-rows');
    writeHer2st(path.join(dir, 'her2st'), [truthSection({ id: 'A1' }), truthSection({ id: 'A2', seed: 2 })]);
    const v = truthSection({ id: 'V9', grid: 'hex', seed: 7 });
    await writeVisium(path.join(dir, 'V9'), v, { positions: 'tissue_positions_list.csv' });
    // HER2+ label columns: x = array column, y = array row; one spot labelled, one row without a place.
    fs.writeFileSync(path.join(dir, 'V9-labels.tsv'), `x\ty\tlabel\n${v.spots[3].col}\t${v.spots[3].row}\ttumour\nNA\tNA\tstroma\n`);
    const sheet = path.join(dir, 'cohort.tsv');
    fs.writeFileSync(sheet, 'section\tpath\tpatient\tlabels\n# the HER2+ section keeps its own labels\nA2\ther2st\tPX\t\n\tV9\tPY\tV9-labels.tsv\n');
    const ds = await readDataset(sheet);
    assert.deepEqual(ds.sections.map((s) => [s.id, s.patient]), [['A2', 'PX'], ['V9', 'PY']]);
    const labelled = ds.sections[1].spots.filter((p) => p.label !== undefined);
    assert.deepEqual(labelled.map((p) => [p.id, p.label]), [[v.spots[3].barcode, 'tumour']]);
    assert.ok(ds.problems.some((p) => p.file.endsWith('V9-labels.tsv') && /label rows without coordinates/.test(p.message)));
    assert.ok(ds.problems.some((p) => p.message === "sections without an image: V9 (give the full-resolution H&E in the sheet's column image)"), JSON.stringify(ds.problems));
  });
});

describe('a folder of .h5ad files (HEST: one per sample)', () => {
  const tmp = tempDir('hest');

  test('each file names its sample and patient in obs or uns', async () => {
    const dir = path.join(tmp, 'hest');
    fs.mkdirSync(dir);
    await writeH5ad(path.join(dir, 'a.h5ad'), [truthSection({ id: 'x', seed: 3 })], { x: 'csr', obs: { sample_id: 'TENX95', patient_id: 'P7' } });
    await writeH5ad(path.join(dir, 'b.h5ad'), [truthSection({ id: 'x', seed: 4 })], { x: 'dense', uns: { sample: 'NCBI7', patient: 'P8' } });
    await writeH5ad(path.join(dir, 'c.h5ad'), [truthSection({ id: 'x', seed: 5 })], { x: 'csr', obs: { patient: 'P7' } });
    const ds = await readDataset(dir);
    assert.equal(ds.format, 'cohort');
    assert.deepEqual(ds.sections.map((s) => [s.id, s.patient]), [['TENX95', 'P7'], ['NCBI7', 'P8'], ['c', 'P7']]);

    const store = path.join(tmp, 'store');
    const r = run(['preprocess', dir, '--out', store, '--genes', '5']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(openDatasetStore(store).manifest.sections.map((s) => s.patient), ['P7', 'P8', 'P7']);
  });

  test('a file without a patient is refused, naming it and suggesting a sheet, unless --patient-per-sample', async () => {
    const dir = path.join(tmp, 'nameless');
    fs.mkdirSync(dir);
    await writeH5ad(path.join(dir, 'a.h5ad'), [truthSection({ id: 'x', seed: 3 })], { x: 'csr', obs: { patient: 'P1' } });
    const nameless = await writeH5ad(path.join(dir, 'S2.h5ad'), [truthSection({ id: 'x', seed: 4 })], { x: 'csr' });
    const out = path.join(tmp, 'nameless-store');
    const r = run(['preprocess', dir, '--out', out]);
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(nameless), r.stderr);
    assert.match(r.stderr, /names no patient.*--samples sheet\.csv.*--patient-per-sample/);
    assert.equal(fs.existsSync(out), false);
    const ok = run(['preprocess', dir, '--out', out, '--patient-per-sample', '--genes', '5']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /samples taken as their own patient \(--patient-per-sample\): S2/);
    assert.deepEqual(openDatasetStore(out).manifest.sections.map((s) => [s.id, s.patient]), [['a', 'P1'], ['S2', 'S2']]);
  });
});

describe('HER2+ folder names of the Zenodo release', () => {
  const tmp = tempDir('zenodo');

  test('count-matrices/, spot-selections/ (gzipped too), images/HE/, meta/ read as ST-cnts/ etc.', async () => {
    const sections = [truthSection({ id: 'A1', labels: true }), truthSection({ id: 'B1', seed: 2 })];
    const github = writeHer2st(path.join(tmp, 'github'), sections, { image: { width: 3000, height: 3000 } });
    const zenodo = path.join(tmp, 'zenodo');
    fs.mkdirSync(path.join(zenodo, 'images', 'HE'), { recursive: true });
    fs.cpSync(path.join(github, 'ST-cnts'), path.join(zenodo, 'count-matrices'), { recursive: true });
    fs.cpSync(path.join(github, 'ST-spotfiles'), path.join(zenodo, 'spot-selections'), { recursive: true });
    fs.cpSync(path.join(github, 'ST-pat', 'lbl'), path.join(zenodo, 'meta'), { recursive: true });
    const b1 = path.join(zenodo, 'spot-selections', 'B1_selection.tsv');
    fs.writeFileSync(`${b1}.gz`, zlib.gzipSync(fs.readFileSync(b1)));
    fs.rmSync(b1);
    fs.copyFileSync(path.join(github, 'ST-imgs', 'A', 'A1', 'A1.jpg'), path.join(zenodo, 'images', 'HE', 'A1.jpg'));
    fs.copyFileSync(path.join(github, 'ST-imgs', 'B', 'B1', 'B1.jpg'), path.join(zenodo, 'images', 'HE', 'B1_HE.jpg'));

    const want = await readDataset(github);
    const got = await readDataset(zenodo);
    assert.equal(got.format, 'her2st');
    assert.deepEqual(got.sections.map((s) => ({ ...s, image: { ...s.image, path: path.basename(s.image!.path) } })),
      want.sections.map((s) => ({ ...s, image: { ...s.image, path: s.id === 'B1' ? 'B1_HE.jpg' : path.basename(s.image!.path) } })));
    assert.ok(got.sections[0].spots.some((p) => p.label === 'invasive cancer' || p.label === 'connective tissue'));
  });
});

describe('an .h5ad whose X is normalised', () => {
  const tmp = tempDir('h5ad-raw');

  for (const where of ['layers', 'raw'] as const) {
    test(`reads the raw counts of ${where === 'layers' ? "layers['counts']" : 'raw.X'} and says so`, async () => {
      const s = truthSection({ id: 'N1', seed: 9 });
      const file = await writeH5ad(path.join(tmp, `${where}.h5ad`), [s], { x: 'dense', countsIn: where });
      const ds = await readDataset(file);
      const c = ds.sections[0].counts;
      const dense = Array.from({ length: c.nSpots }, (_, r) => {
        const row = new Array<number>(c.nGenes).fill(0);
        for (let k = c.indptr[r]; k < c.indptr[r + 1]; k++) row[c.indices[k]] = c.data[k];
        return row;
      });
      assert.deepEqual(dense, s.counts);
      assert.ok(ds.problems.some((p) => p.message.startsWith(`X holds normalised values`) && p.message.includes(where === 'layers' ? "layers['counts']" : 'raw.X')), JSON.stringify(ds.problems));
    });
  }
});
