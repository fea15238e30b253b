import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { isCurrentSyntheticDataset, writeSyntheticDataset } from '../../src/runtime/synthetic/generator';

/** The embedded synthetic dataset: seeded, in the HER2+ layout, nothing half-written. */

describe('synthetic dataset', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-synth-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const small = { patients: 2, sectionsPerPatient: 2, gridSize: 6, genes: 60 };

  test('writes the HER2+ layout with one image, spot file, label file and count file per section', async () => {
    const s = await writeSyntheticDataset(path.join(tmp, 'a'), { ...small, seed: 1 });
    assert.deepEqual(s.sections.map((x) => x.id), ['A1', 'A2', 'B1', 'B2']);
    for (const { id, patient, spots, image } of s.sections) {
      assert.ok(fs.existsSync(image), image);
      assert.ok(image.includes(path.join('ST-imgs', patient, id)));
      const spotFile = fs.readFileSync(path.join(tmp, 'a', 'ST-spotfiles', `${id}_selection.tsv`), 'utf8').trim().split('\n');
      assert.equal(spotFile[0], 'x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected');
      assert.equal(spotFile.length - 1, spots);
      const counts = zlib.gunzipSync(fs.readFileSync(path.join(tmp, 'a', 'ST-cnts', `${id}.tsv.gz`))).toString().trimEnd().split('\n');
      assert.equal(counts.length - 1, spots);
      assert.equal(counts[0].split('\t').length, 61, 'an empty corner cell, then 60 genes');
      assert.match(counts[1], /^\d+x\d+\t\d+/);
      assert.ok(fs.existsSync(path.join(tmp, 'a', 'ST-pat', 'lbl', `${id}_labeled_coordinates.tsv`)));
    }
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('partial')), [], 'no partial folder left');
  });

  test('is deterministic for a seed and differs between seeds', async () => {
    await writeSyntheticDataset(path.join(tmp, 'b'), { ...small, seed: 1 });
    await writeSyntheticDataset(path.join(tmp, 'c'), { ...small, seed: 2 });
    const read = (root: string) => zlib.gunzipSync(fs.readFileSync(path.join(tmp, root, 'ST-cnts', 'A1.tsv.gz'))).toString();
    assert.equal(read('a'), read('b'));
    assert.notEqual(read('a'), read('c'));
    const image = (root: string) => fs.readFileSync(path.join(tmp, root, 'ST-imgs', 'A', 'A1', 'synthetic_HE_A1.jpg'));
    assert.ok(image('a').equals(image('b')));
  });

  test('refuses to overwrite a folder that is not a synthetic dataset', async () => {
    const other = path.join(tmp, 'mine');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'notes.txt'), 'keep me');
    await assert.rejects(writeSyntheticDataset(other, small), /holds something else/);
    assert.equal(fs.readFileSync(path.join(other, 'notes.txt'), 'utf8'), 'keep me');
  });

  test('a dataset from an older generator is told apart, so that the demo regenerates it', () => {
    assert.ok(isCurrentSyntheticDataset(path.join(tmp, 'a')));
    const old = path.join(tmp, 'old');
    fs.cpSync(path.join(tmp, 'a'), old, { recursive: true });
    const readme = path.join(old, 'README.md');
    fs.writeFileSync(readme, fs.readFileSync(readme, 'utf8').replace(/^Generator version \d+\.$/m, ''));
    assert.ok(!isCurrentSyntheticDataset(old));
    assert.ok(!isCurrentSyntheticDataset(path.join(tmp, 'missing')));
  });
});
