import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { preprocess } from '../../src/runtime/data/preprocess';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { removePartials, writeFileAtomic } from '../../src/runtime/store/atomic';
import { sectionFrom } from './helpers/sections';

/** The dataset store: written atomically, read back exactly, and readable by another Arrow implementation (Polars). */

describe('dataset store', () => {
  let dir = '';
  const s1 = sectionFrom('A1', ['G1', 'G2', 'G3'], [[1, 2, 3], [4, 0, 6]], [[0, 0], [0, 1]]);
  const s2 = sectionFrom('B1', ['G3', 'G2', 'G1'], [[7, 8, 9]], [[2, 2]]);
  s2.spots[0].label = 'invasive cancer';
  const ds = { format: 'her2st' as const, source: '/data/x', sections: [s1, s2], problems: [] };
  const pre = preprocess(ds, { genes: 3, minSpotFraction: 0, smooth: false });

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-store-'));
    await writeDatasetStore(dir, { format: 'her2st', path: '/data/x' }, pre);
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('round-trips spots, genes, counts and values', () => {
    const store = openDatasetStore(dir);
    assert.deepEqual(store.genes, pre.record.genes);
    assert.equal(store.spots.numRows, 3);
    assert.deepEqual(store.rowsOf('B1'), [2]);
    const G = store.genes.length;
    const counts = store.counts();
    // B1 stores its genes in another order: the store follows the selected order.
    const g1 = store.genes.indexOf('G1');
    assert.equal(counts[2 * G + g1], 9);
    assert.deepEqual(Array.from(store.values()), [...pre.sections[0].values, ...pre.sections[1].values]);
    assert.deepEqual(store.spots.getChild('label')?.toArray(), [null, null, 'invasive cancer']);
    assert.equal(store.manifest.preprocessing?.normalisation.transform, 'log1p');
  });

  test('opens in Polars (a Rust Arrow implementation) unchanged', async () => {
    const pl = await import('nodejs-polars');
    // nodejs-polars 0.26 misreads IPC files given by path (even its own); bytes work.
    const spots = pl.readIPC(fs.readFileSync(path.join(dir, 'spots.arrow')));
    assert.deepEqual(spots.columns, ['section', 'patient', 'spot_id', 'array_row', 'array_col', 'pixel_x', 'pixel_y', 'label']);
    assert.deepEqual(spots.getColumn('section').toArray(), ['A1', 'A1', 'B1']);
    const expr = pl.readIPC(fs.readFileSync(path.join(dir, 'expressions.arrow')));
    const values = expr.getColumn('values').toArray() as unknown as ArrayLike<number>[];
    assert.equal(values.length, 3);
    assert.ok(Math.abs(Number(values[2][0]) - pre.sections[1].values[0]) < 1e-6);
  });

  test('a store with a broken file names it and says what to run', () => {
    const broken = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-store-broken-'));
    try {
      fs.cpSync(dir, broken, { recursive: true });
      const file = path.join(broken, 'expressions.arrow');
      fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
      assert.throws(() => openDatasetStore(broken), /expressions\.arrow.*re-run/s);
      assert.throws(() => openDatasetStore(path.join(broken, 'nothing')), /not a TRIPLEX dataset store.*triplex preprocess/);
    } finally {
      fs.rmSync(broken, { recursive: true, force: true });
    }
  });

  test('atomic writes leave the old file when interrupted, and partials are cleaned', async () => {
    const file = path.join(dir, 'atomic.txt');
    await writeFileAtomic(file, 'old');
    const dead = spawnSync(process.execPath, ['-e', '']).pid; // a writer that has ended
    fs.writeFileSync(`${file}.partial-${dead}-2`, 'half');
    assert.equal(fs.readFileSync(file, 'utf8'), 'old');
    assert.deepEqual(await removePartials(dir), [`atomic.txt.partial-${dead}-2`]);
    await writeFileAtomic(file, 'new');
    assert.equal(fs.readFileSync(file, 'utf8'), 'new');
  });
});
