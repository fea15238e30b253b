import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { stringColumn } from '../../src/runtime/store/arrow';
import { readPredictions } from '../../src/runtime/store/predictions';
import { exportH5ad } from '../../src/runtime/store/h5adExport';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { repoRoot } from './helpers/paths';
import { TORCH_PYTHON, torchSkip } from './helpers/torch';

/**
 * `triplex export --h5ad`: a store and a cv run written as AnnData, read back by anndata 0.8
 * and h5py (Debian's python3-anndata, python3-h5py) as a scanpy / squidpy user reads them.
 */

const PYTHON = TORCH_PYTHON;
const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });

/** What anndata and h5py see in the file, as JSON. */
const READ_BACK = `
import sys, json, anndata, h5py, numpy as np, pandas as pd
a = anndata.read_h5ad(sys.argv[1])
def cats(c):
    s = a.obs[c]
    return [str(x) for x in s.cat.categories] if str(s.dtype) == 'category' else None
out = {
  'anndata': anndata.__version__,
  'shape': list(a.shape),
  'obs_names': [str(x) for x in a.obs_names],
  'obs': {c: str(a.obs[c].dtype) for c in a.obs.columns},
  'obs_values': {c: [None if pd.isna(v) else v for v in a.obs[c].astype(object).tolist()] for c in a.obs.columns},
  'obs_categories': {c: cats(c) for c in a.obs.columns},
  'var_names': [str(x) for x in a.var_names],
  'var': {c: str(a.var[c].dtype) for c in a.var.columns},
  'var_values': {c: [None if np.isnan(float(v)) else float(v) for v in a.var[c]] for c in a.var.columns},
  'X_dtype': str(a.X.dtype),
  'X': np.asarray(a.X, dtype=np.float64).tolist(),
  'layers': {k: np.asarray(v, dtype=np.float64).tolist() for k, v in a.layers.items()},
  'spatial': np.asarray(a.obsm['spatial']).tolist(),
  'uns_keys': sorted(a.uns.keys()),
  'sections': {s: {
      'images': {k: [list(v.shape), str(v.dtype)] for k, v in d['images'].items()},
      'scalefactors': {k: float(v) for k, v in d['scalefactors'].items()},
      'metadata': {k: str(v) for k, v in d['metadata'].items()},
  } for s, d in a.uns['spatial'].items()},
  'triplex': {k: (list(v) if not isinstance(v, str) else v) for k, v in a.uns['triplex'].items()},
}
with h5py.File(sys.argv[1], 'r') as f:
  out['h5'] = {p: {k: str(v) for k, v in f[p].attrs.items() if k.startswith('encoding')} for p in ['/', 'X', 'obs', 'var', 'obs/section', 'obsm/spatial', 'uns', 'layers']}
print(json.dumps(out))
`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the JSON printed by READ_BACK
function readBack(file: string): any {
  const r = spawnSync(PYTHON, ['-c', READ_BACK, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `anndata could not read ${file}:\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

// Debian's python3-anndata and python3-h5py are installed by `npm test` (scripts/ensure-test-deps.sh); a
// machine that cannot have Debian's Python packages sets TRIPLEX_SKIP_TORCH, which skips this too.
describe('h5ad export', { skip: torchSkip ? 'needs python3-anndata and python3-h5py, and TRIPLEX_SKIP_TORCH is set' : false }, () => {
  let tmp = '';
  let store = '';
  let runDir = '';
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-h5ad-'));
    store = path.join(tmp, 'store');
    runDir = path.join(tmp, 'run');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 1, gridSize: 5, genes: 30 }, 12);
    await extractFeatures(store, { encoder: 'resnet18' });
    const r = run(['cv', store, '--preset', 'demo', '--epochs', '1', '--batch', '32', '--out', runDir]);
    assert.equal(r.status, 0, r.stderr);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a store: X the normalised expression, counts, obs, obsm spatial and the hires image', async () => {
    const out = path.join(tmp, 'store.h5ad');
    const r = run(['export', store, '--h5ad', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /wrote .*store\.h5ad: \d+ spots x 12 genes/);
    const s = openDatasetStore(store);
    const a = readBack(out);
    const n = s.spots.numRows;
    assert.deepEqual(a.shape, [n, 12]);
    assert.equal(a.X_dtype, 'float32');
    assert.deepEqual(a.var_names, s.genes);
    assert.deepEqual(a.obs_names, stringColumn(s.spots, 'spot_id').every((id, i, all) => all.indexOf(id) === i)
      ? stringColumn(s.spots, 'spot_id') : stringColumn(s.spots, 'spot_id').map((id, i) => `${stringColumn(s.spots, 'section')[i]}_${id}`));
    assert.deepEqual(a.obs, { spot_id: 'object', section: 'category', patient: 'category', array_row: 'int32', array_col: 'int32', in_tissue: 'uint8', ...(a.obs.label ? { label: 'category' } : {}) });
    assert.deepEqual(a.obs_values.section, stringColumn(s.spots, 'section'));
    assert.deepEqual(a.obs_values.patient, stringColumn(s.spots, 'patient'));
    assert.deepEqual(a.obs_values.array_row, Array.from(s.spots.getChild('array_row')!.toArray() as Int32Array));
    assert.deepEqual(Object.keys(a.layers), ['counts']);
    const values = s.values();
    const counts = s.counts();
    a.X.forEach((row: number[], i: number) => row.forEach((v, j) => assert.equal(v, values[i * 12 + j])));
    a.layers.counts.forEach((row: number[], i: number) => row.forEach((v, j) => assert.equal(v, counts[i * 12 + j])));
    const px = s.spots.getChild('pixel_x')!.toArray() as Float64Array;
    const py = s.spots.getChild('pixel_y')!.toArray() as Float64Array;
    assert.deepEqual(a.spatial, Array.from(px, (x, i) => [x, py[i]]));
    // uns['spatial'] as squidpy / scanpy's read_visium lay it out.
    assert.deepEqual(Object.keys(a.sections).sort(), s.manifest.sections.map((m) => m.id).sort());
    for (const m of s.manifest.sections) {
      const sec = a.sections[m.id];
      const { width, height } = m.image as { width: number; height: number };
      const scale = Math.min(1, 2000 / Math.max(width, height));
      assert.deepEqual(sec.images.hires, [[Math.round(height * scale), Math.round(width * scale), 3], 'uint8']);
      assert.ok(Math.abs(sec.scalefactors.tissue_hires_scalef - scale) < 1e-12);
      assert.equal(sec.scalefactors.spot_diameter_fullres, 224);
      assert.equal(sec.metadata.source_image_path, m.image!.path);
    }
    assert.equal(a.triplex.kind, 'expression');
    assert.deepEqual(a.h5['/'], { 'encoding-type': 'anndata', 'encoding-version': '0.1.0' });
    assert.deepEqual(a.h5.X, { 'encoding-type': 'array', 'encoding-version': '0.2.0' });
    // obs in the 0.1.0 dataframe layout (categorical codes + __categories): see annDataWriter.ts.
    assert.deepEqual(a.h5.obs, { 'encoding-type': 'dataframe', 'encoding-version': '0.1.0' });
    assert.deepEqual(a.h5['obs/section'], { 'encoding-type': 'array', 'encoding-version': '0.2.0' });
    assert.deepEqual(a.h5.var, { 'encoding-type': 'dataframe', 'encoding-version': '0.2.0' });
    assert.deepEqual(a.h5.uns, { 'encoding-type': 'dict', 'encoding-version': '0.1.0' });
    // No partial file is left beside it.
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.partial-')), []);
  });

  test('a run: X the held-out predictions, truth, error and counts layers, fold, and per-gene PCC', async () => {
    const out = path.join(tmp, 'run.h5ad');
    fs.writeFileSync(out, 'an older file, replaced whole');
    const summary = await exportH5ad(runDir, { out, sections: ['A1', 'C1'] });
    assert.deepEqual(summary.sections, ['A1', 'C1']);
    const a = readBack(out);
    const s = openDatasetStore(store);
    const rows = [...s.rowsOf('A1'), ...s.rowsOf('C1')];
    assert.deepEqual(a.shape, [rows.length, 12]);
    assert.deepEqual(Object.keys(a.layers).sort(), ['counts', 'error', 'truth']);
    assert.equal(a.obs.fold, 'category');
    assert.deepEqual(a.obs_categories.section, ['A1', 'C1']);
    const results = JSON.parse(fs.readFileSync(path.join(runDir, 'results.json'), 'utf8'));
    const foldOf = new Map<string, number>(results.training.flatMap((t: { fold: number; test: string[] }) => t.test.map((sec) => [sec, t.fold])));
    assert.deepEqual(a.obs_values.fold, rows.map((r) => foldOf.get(stringColumn(s.spots, 'section')[r])));
    // X: each spot predicted by the fold that held its section out.
    const ids = stringColumn(s.spots, 'spot_id');
    let k = 0;
    for (const sec of ['A1', 'C1']) {
      const p = readPredictions(path.join(runDir, `fold-${foldOf.get(sec)}`, 'predictions.arrow')).sections.get(sec)!;
      for (const r of s.rowsOf(sec)) {
        const i = p.spotIds.indexOf(ids[r]);
        for (let j = 0; j < 12; j++) {
          assert.equal(a.X[k][j], p.values[i * 12 + j]);
          const truth = s.values()[r * 12 + j];
          assert.equal(a.layers.truth[k][j], truth);
          assert.equal(a.layers.error[k][j], Math.fround(p.values[i * 12 + j] - truth));
        }
        k++;
      }
    }
    assert.deepEqual(a.var, { pcc: 'float64', mean_rank: 'float64', highly_predictive: 'uint8' });
    assert.deepEqual(a.var_values.highly_predictive, s.genes.map((g) => (results.highlyPredictiveGenes.includes(g) ? 1 : 0)));
    assert.ok(a.var_values.pcc.some((v: number | null) => v !== null && v >= -1 && v <= 1));
    assert.equal(a.triplex.kind, 'predictions');
    assert.deepEqual(a.triplex.highly_predictive_genes, results.highlyPredictiveGenes);
    assert.deepEqual(Object.keys(a.sections), ['A1', 'C1']);
  });

  test('bad input: each a clear error naming the path, and no partial file left', async () => {
    const empty = path.join(tmp, 'not-a-run');
    fs.mkdirSync(empty);
    await assert.rejects(exportH5ad(empty, { out: path.join(tmp, 'x.h5ad') }), new RegExp(`${empty}: no predictions \\(fold-<k>/predictions.arrow\\)`));
    const missingDir = path.join(tmp, 'nowhere', 'x.h5ad');
    await assert.rejects(exportH5ad(store, { out: missingDir }), new RegExp(`the folder ${path.dirname(missingDir)} does not exist`));
    await assert.rejects(exportH5ad(store, { out: path.join(tmp, 'x.h5ad'), sections: ['Z9'] }), /no section Z9; it has A1, B1, C1/);
    const r = run(['export', runDir, '--h5ad', path.join(tmp, 'y.h5ad'), '--store', path.join(tmp, 'synthetic')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the run's store is not there \(no store\.json\)/);
    // A write that fails midway leaves the previous file whole and no partial file.
    const kept = path.join(tmp, 'kept.h5ad');
    fs.writeFileSync(kept, 'previous');
    let partial = '';
    await assert.rejects(exportH5ad(store, { out: kept, onPartial: (p) => { partial = p; throw new Error('disk pulled'); } }),
      new RegExp(`${kept}: cannot write the AnnData file \\(disk pulled\\); nothing was written`));
    assert.ok(partial.startsWith(`${kept}.partial-`));
    assert.equal(fs.existsSync(partial), false);
    assert.equal(fs.readFileSync(kept, 'utf8'), 'previous');
    if (process.getuid?.() !== 0) { // root writes into a read-only folder
      const locked = path.join(tmp, 'locked');
      fs.mkdirSync(locked);
      const target = path.join(locked, 'keep.h5ad');
      fs.writeFileSync(target, 'previous');
      fs.chmodSync(locked, 0o555);
      try {
        await assert.rejects(exportH5ad(store, { out: target }), new RegExp(`cannot write ${target}.*permission denied`));
        assert.deepEqual(fs.readdirSync(locked), ['keep.h5ad']);
        assert.equal(fs.readFileSync(target, 'utf8'), 'previous');
      } finally {
        fs.chmodSync(locked, 0o755);
      }
    }
  });
});
