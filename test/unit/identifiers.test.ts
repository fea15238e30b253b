import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { decodeId, encodeId, isSafeId, MAX_ID_LENGTH, pathInside, unsafeIdReason } from '../../src/runtime/store/identifiers';
import { readDataset } from '../../src/runtime/data/read';
import { readSlide } from '../../src/runtime/data/slide';
import { preprocess } from '../../src/runtime/data/preprocess';
import { DataFileError } from '../../src/runtime/data/types';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { extractFeatures } from '../../src/runtime/features/extract';
import { repoRoot } from './helpers/paths';
import { tempDir, truthSection, writeH5ad, writeHer2st } from './helpers/spatialFixtures';

/**
 * Identifiers that become file names (section ids, patients): one gate, a reversible mapping
 * for formats that allow any text, and a last check that a joined path stays in its folder.
 * An .h5ad sample named `../../../x` once made `extract` write outside the store.
 */

describe('the identifier gate', () => {
  const cases: Array<[string, boolean]> = [
    ['A1', true], ['SPA148_C1', true], ['v1.2-final', true], ['a%2Fb', true], ['x'.repeat(MAX_ID_LENGTH), true],
    ['', false], ['.', false], ['..', false], ['.hidden', false], ['../..', false], ['a/b', false], ['a\\b', false],
    ['Sample 1', false], ['tab\there', false], ['nul\0', false], ['é', false], ['a%2', false], ['a%zz', false], ['%2e', false],
    ['x'.repeat(MAX_ID_LENGTH + 1), false],
  ];
  for (const [id, safe] of cases) {
    test(`${JSON.stringify(id.length > 20 ? `${id.slice(0, 8)}... (${id.length})` : id)} is ${safe ? 'safe' : 'refused'}`, () => {
      assert.equal(isSafeId(id), safe);
      assert.equal(unsafeIdReason(id) === undefined, safe);
    });
  }

  const names: Array<[string, string]> = [
    ['A1', 'A1'], ['../..', '%2E.%2F..'], ['a/b', 'a%2Fb'], ['Sample 1', 'Sample%201'], ['.hidden', '%2Ehidden'],
    ['100%', '100%25'], ['a%2Fb', 'a%252Fb'], ['Göttingen', 'G%C3%B6ttingen'], ['..', '%2E.'], ['a\\b', 'a%5Cb'],
  ];
  for (const [name, id] of names) {
    test(`${JSON.stringify(name)} maps to ${id} and back`, () => {
      assert.equal(encodeId(name), id);
      assert.ok(isSafeId(id), unsafeIdReason(id));
      assert.equal(decodeId(id), name);
    });
  }

  test('pathInside refuses every name that leaves the folder', () => {
    const dir = path.join('store', 'features');
    assert.equal(pathInside(dir, 'A1.arrow'), path.join(dir, 'A1.arrow'));
    assert.equal(pathInside(dir, '/etc/passwd'), path.join(dir, 'etc', 'passwd'), 'joined, not resolved: stays inside');
    for (const bad of ['..', '../x.arrow', '../../x', '.', '', 'a/../../x', 'a/../..']) {
      assert.throws(() => pathInside(dir, bad), /outside/, bad);
    }
  });
});

describe('hostile sample names in an .h5ad', () => {
  const tmp = tempDir('identifiers');
  const input = path.join(tmp, 'in');
  const store = path.join(tmp, 'work', 'store');
  const samples = ['../..', 'a/b', 'Sample 1', '.hidden', '../../../x'];
  const ids = ['%2E.%2F..', 'a%2Fb', 'Sample%201', '%2Ehidden', '%2E.%2F..%2F..%2Fx'];
  const listFiles = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => path.join(dir, f)).sort();

  before(async () => {
    fs.mkdirSync(input, { recursive: true });
    const file = await writeH5ad(path.join(input, 'hostile.h5ad'), samples.map((id, i) => truthSection({ id, rows: 3, cols: 3, genes: 6, seed: i + 1 })), { x: 'csr', samples: true });
    // Spots lie within 400..1000 x 700..1300 px.
    const image = path.join(input, 'he.jpg');
    await sharp({ create: { width: 1500, height: 1600, channels: 3, background: { r: 200, g: 120, b: 170 } } }).jpeg().toFile(image);
    const ds = await readDataset(file);
    for (const s of ds.sections) s.image = { path: image, width: 1500, height: 1600 };
    await writeDatasetStore(store, { format: ds.format, path: file }, preprocess(ds, { genes: 4, minSpotFraction: 0 }));
  });

  test('are read as safe ids, and the renaming is reported', async () => {
    const ds = await readDataset(path.join(input, 'hostile.h5ad'));
    assert.deepEqual(ds.sections.map((s) => s.id).sort(), [...ids].sort());
    assert.deepEqual(ds.sections.map((s) => decodeId(s.id)).sort(), [...samples].sort());
    const renamed = ds.problems.find((p) => /renamed/.test(p.message));
    assert.ok(renamed, 'a problem reports the mapping');
    assert.match(renamed.message, /obs\/sample/);
    assert.ok(renamed.message.includes('"../.." -> %2E.%2F..'), renamed.message);
  });

  test('preprocess and extract write nothing outside the store', async () => {
    const before = new Set(listFiles(tmp));
    const summary = await extractFeatures(store, { encoder: 'resnet18', chunkSpots: 16 });
    const added = listFiles(tmp).filter((f) => !before.has(f));
    assert.ok(added.length > 0);
    assert.deepEqual(added.filter((f) => !f.startsWith(store + path.sep)), [], 'files written outside the store');
    assert.deepEqual(fs.readdirSync(summary.dir).sort(), ids.map((id) => `${id}.arrow`).sort());
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'work')), ['store']);
  });

  test('a hand-edited store.json with the section id "../../x" is refused by the loader and by extract', async () => {
    const edited = path.join(tmp, 'edited');
    fs.cpSync(store, edited, { recursive: true });
    const manifestFile = path.join(edited, 'store.json');
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as { sections: { id: string }[] };
    manifest.sections[0].id = '../../x';
    fs.writeFileSync(manifestFile, JSON.stringify(manifest));
    const named = (e: unknown) => e instanceof Error && e.message.includes(manifestFile) && e.message.includes('"../../x"');
    assert.throws(() => openDatasetStore(edited), named);
    await assert.rejects(extractFeatures(edited, { encoder: 'resnet18' }), named);

    const before = listFiles(tmp);
    const r = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), 'extract', edited], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes(manifestFile) && r.stderr.includes('../../x'), r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.deepEqual(listFiles(tmp), before, 'nothing written');
  });
});

describe('readers that refuse unsafe ids', () => {
  const tmp = tempDir('identifiers-refuse');

  test('a HER2+ count file named ".x.tsv.gz" is refused, naming the file', async () => {
    const root = writeHer2st(path.join(tmp, 'her2st'), [truthSection({ id: '.x' })]);
    await assert.rejects(readDataset(root), (e) => e instanceof DataFileError && e.file === path.join(root, 'ST-cnts', '.x.tsv.gz') && /starts with '\.'/.test(e.message));
  });

  test('triplex slide refuses --section and --patient that cannot name files', async () => {
    const image = path.join(tmp, 'slide.png');
    await sharp({ create: { width: 64, height: 64, channels: 3, background: '#ffffff' } }).png().toFile(image);
    for (const o of [{ section: '../x' }, { section: '.x' }, { section: 'a b' }, { section: 'ok', patient: '../p' }]) {
      await assert.rejects(readSlide(image, o), (e) => e instanceof DataFileError && e.file === image && /cannot name/.test(e.message), JSON.stringify(o));
    }
  });

  test('an .h5ad with --patient "../p" is refused, naming the option', async () => {
    const file = await writeH5ad(path.join(tmp, 'one.h5ad'), [truthSection()], { x: 'dense' });
    await assert.rejects(readDataset(file, { patient: '../p' }), (e) => e instanceof DataFileError && e.file === file && /--patient/.test(e.message));
  });
});
