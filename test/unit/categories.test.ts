import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { preprocess } from '../../src/runtime/data/preprocess';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { CATEGORIES_FILE, readCategoryColumns, saveCategory, writeSpotIdsCsv } from '../../src/runtime/store/categories';
import { exportH5ad } from '../../src/runtime/store/h5adExport';
import { acquireLock } from '../../src/runtime/store/lock';
import { sectionFrom } from './helpers/sections';
import { TORCH_PYTHON, torchSkip } from './helpers/torch';

/** Categories of a store's spots: the data's own text columns, and selections saved by name (categories.arrow). */

describe('store categories', () => {
  let dir = '';
  const a1 = sectionFrom('A1', ['G1', 'G2'], [[1, 2], [3, 4], [5, 6], [7, 8]], [[0, 0], [0, 1], [1, 0], [1, 1]]);
  const b1 = sectionFrom('B1', ['G1', 'G2'], [[1, 1], [2, 2]], [[0, 0], [0, 1]]);
  a1.spots[1].label = 'invasive cancer';
  const dataset = { format: 'her2st' as const, source: '/data/x', sections: [a1, b1], problems: [] };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-categories-'));
    await writeDatasetStore(dir, { format: 'her2st', path: '/data/x' }, preprocess(dataset, { genes: 2, minSpotFraction: 0, smooth: false }));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const columns = (section: string) => {
    const store = openDatasetStore(dir);
    return Object.fromEntries(readCategoryColumns(store, store.rowsOf(section)).map((c) => [c.name, c.values]));
  };

  test('the data\'s text columns are categories: label and patient, not the keys', () => {
    assert.deepEqual(columns('A1'), { patient: ['A', 'A', 'A', 'A'], label: [null, 'invasive cancer', null, null] });
    assert.deepEqual(columns('B1'), { patient: ['B', 'B'] }, 'a column with no value in the section is left out');
  });

  test('a saved selection reads back by name, keeps the manifest\'s checksums valid, and builds a category label by label', async () => {
    const first = await saveCategory(dir, { name: 'region', label: 'tumour', section: 'A1', spotIds: ['s0', 's1'] });
    assert.deepEqual({ ...first, file: path.basename(first.file) }, { file: CATEGORIES_FILE, name: 'region', label: 'tumour', spots: 2 });
    await saveCategory(dir, { name: 'region', label: 'stroma', section: 'A1', spotIds: ['s3'] });
    // Saving "tumour" again replaces its selection; "stroma" stays.
    await saveCategory(dir, { name: 'region', label: 'tumour', section: 'A1', spotIds: ['s1', 's2'] });
    await saveCategory(dir, { name: 'hotspot', section: 'B1', spotIds: ['s1'] });
    assert.deepEqual(columns('A1').region, [null, 'tumour', 'tumour', 'stroma']);
    assert.deepEqual(columns('B1'), { patient: ['B', 'B'], hotspot: [null, 'hotspot'] });
    const store = openDatasetStore(dir); // checks every recorded file: categories.arrow is one
    const file = path.join(dir, CATEGORIES_FILE);
    assert.equal(store.manifest.files?.[CATEGORIES_FILE]?.bytes, fs.statSync(file).size);
    assert.ok(store.manifest.files?.['spots.arrow'] && store.manifest.files['expressions.arrow'], 'the other files are still recorded');
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.includes('.partial-') || f.includes('.lock')), []);

    // A damaged categories file is refused like any other store file.
    const kept = fs.readFileSync(file);
    try {
      fs.writeFileSync(file, kept.subarray(0, kept.length - 8));
      assert.throws(() => openDatasetStore(dir), new RegExp(`${CATEGORIES_FILE} is not the file that was written`));
    } finally {
      fs.writeFileSync(file, kept);
    }
  });

  test('bad names, labels, sections and spots are refused with the reason; a locked store is not written', async () => {
    const before = fs.readFileSync(path.join(dir, 'store.json'), 'utf8');
    await assert.rejects(saveCategory(dir, { name: '../x', section: 'A1', spotIds: ['s0'] }), /category name "\.\.\/x" starts with '\.'/);
    await assert.rejects(saveCategory(dir, { name: 'my region', section: 'A1', spotIds: ['s0'] }), /holds characters other than letters/);
    await assert.rejects(saveCategory(dir, { name: 'label', section: 'A1', spotIds: ['s0'] }), /"label" names a column of .*spots\.arrow.*choose another name/);
    await assert.rejects(saveCategory(dir, { name: 'fold', section: 'A1', spotIds: ['s0'] }), /"fold" names a column .*AnnData export/);
    await assert.rejects(saveCategory(dir, { name: 'ok', label: 'a\nb', section: 'A1', spotIds: ['s0'] }), /control characters/);
    await assert.rejects(saveCategory(dir, { name: 'ok', section: 'Z9', spotIds: ['s0'] }), /no section 'Z9'; the sections are A1, B1/);
    await assert.rejects(saveCategory(dir, { name: 'ok', section: 'B1', spotIds: ['s0', 's7'] }), /section B1 has no spot s7/);
    const lock = acquireLock(dir, 'triplex extract');
    try {
      await assert.rejects(saveCategory(dir, { name: 'ok', section: 'A1', spotIds: ['s0'] }), /in use by triplex extract/);
    } finally {
      lock.release();
    }
    assert.equal(fs.readFileSync(path.join(dir, 'store.json'), 'utf8'), before, 'the manifest changed');
    assert.equal(columns('A1').ok, undefined);
  });

  test('a selection\'s spot ids as CSV', async () => {
    const file = path.join(dir, 'selection.csv');
    fs.writeFileSync(file, 'an older file, replaced whole');
    await writeSpotIdsCsv(file, 'A1', ['s0', 'odd,"id"']);
    assert.equal(fs.readFileSync(file, 'utf8'), 'section,spot_id\nA1,s0\nA1,"odd,""id"""\n');
  });

  test('an AnnData export carries the saved categories as obs categoricals', { skip: torchSkip ? 'needs python3-anndata, and TRIPLEX_SKIP_TORCH is set' : false }, async () => {
    const out = path.join(dir, 'store.h5ad');
    await exportH5ad(dir, { out });
    const script = 'import sys, json, anndata\na = anndata.read_h5ad(sys.argv[1])\nprint(json.dumps({c: [None if v != v else v for v in a.obs[c].astype(object).tolist()] + [str(a.obs[c].dtype)] for c in ["region", "hotspot"]}))';
    const r = spawnSync(TORCH_PYTHON, ['-c', script, out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      region: [null, 'tumour', 'tumour', 'stroma', null, null, 'category'],
      hotspot: [null, null, null, null, null, 'hotspot', 'category'],
    });
  });
});
