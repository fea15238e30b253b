import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { readArrowFile, stringColumn, vectorColumn } from '../../src/runtime/store/arrow';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openEncoder } from '../../src/runtime/features/encoders';
import { openSlideImage } from '../../src/runtime/image/slideImage';
import { cropSpots, toNormalizedFloat } from '../../src/runtime/image/crops';
import { relativeError } from './helpers/compare';

/**
 * The whole data path on the embedded synthetic dataset: generate, read back with the HER2+
 * reader, preprocess into a store, extract frozen features; then caching, resuming and the
 * features themselves against a direct encoding of the same crops.
 */
describe('feature extraction', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-extract-'));
  const store = path.join(tmp, 'store');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  before(async () => {
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 1, sectionsPerPatient: 2, gridSize: 5, genes: 40 }, 30);
  });

  test('writes one features file per section with the spec\'s shapes', async () => {
    const summary = await extractFeatures(store, { encoder: 'resnet18', chunkSpots: 8 });
    assert.deepEqual(summary.sections.map((s) => s.status), ['extracted', 'extracted']);
    const s = openDatasetStore(store);
    for (const section of s.manifest.sections) {
      const t = readArrowFile(path.join(summary.dir, `${section.id}.arrow`));
      assert.equal(t.numRows, section.spots);
      assert.deepEqual(stringColumn(t, 'spot_id'), s.rowsOf(section.id).map((r) => stringColumn(s.spots, 'spot_id')[r]));
      assert.equal(vectorColumn(t, 'global').width, 512);
      assert.equal(vectorColumn(t, 'neighbors').width, 25 * 512);
      assert.equal(vectorColumn(t, 'target_tokens').width, 49 * 512);
      const mask = t.getChild('neighbor_mask');
      assert.ok(mask);
      // The synthetic image has a 336 px margin around the array: edge spots lose tiles, centre ones do not.
      const masks = Array.from({ length: t.numRows }, (_, i) => Array.from(mask.get(i) as Iterable<number>));
      assert.ok(masks.every((m) => m[12] === 1), 'the centre tile is never masked');
      assert.ok(masks.some((m) => m.includes(0)) && masks.some((m) => m.every((v) => v === 1)));
    }
    assert.deepEqual(fs.readdirSync(summary.dir).sort(), ['A1.arrow', 'A2.arrow'], 'no chunks or partial files are left');
  });

  test('global features equal the encoder on directly cut crops, and equal the mean of the tokens', async () => {
    const s = openDatasetStore(store);
    const section = s.manifest.sections[0];
    const rows = s.rowsOf(section.id).slice(0, 3);
    const xs = s.spots.getChild('pixel_x')?.toArray() as Float64Array;
    const ys = s.spots.getChild('pixel_y')?.toArray() as Float64Array;
    const img = await openSlideImage(section.image?.path as string);
    const crops = await cropSpots(img, rows.map((r) => ({ x: xs[r], y: ys[r] })), { target: true, neighbor: false });
    img.close();
    const opened = await openEncoder({ encoder: 'resnet18' });
    const direct = await opened.encoder.encode(toNormalizedFloat(crops.target as Uint8Array, rows.length, 224), rows.length);
    await opened.dispose();
    const t = readArrowFile(path.join(s.dir, 'features', opened.key, `${section.id}.arrow`));
    const stored = vectorColumn(t, 'global').values.subarray(0, rows.length * 512);
    assert.ok(relativeError(stored, direct.pooled) < 1e-5);
    const tokens = vectorColumn(t, 'target_tokens').values;
    const mean = new Float32Array(512);
    for (let k = 0; k < 49; k++) for (let c = 0; c < 512; c++) mean[c] += tokens[k * 512 + c] / 49;
    assert.ok(relativeError(mean, stored.subarray(0, 512)) < 1e-4);
  });

  test('a second run does no work', async () => {
    const summary = await extractFeatures(store, { encoder: 'resnet18', chunkSpots: 8 });
    assert.deepEqual(summary.sections.map((s) => [s.status, s.tilesEncoded]), [['cached', 0], ['cached', 0]]);
  });

  test('an interrupted run resumes where it stopped and gives the same features', async () => {
    const s = openDatasetStore(store);
    const encoderDir = fs.readdirSync(path.join(store, 'features'))[0];
    const file = path.join(store, 'features', encoderDir, 'A2.arrow');
    const before = vectorColumn(readArrowFile(file), 'neighbors').values;
    fs.rmSync(file);
    const controller = new AbortController();
    await assert.rejects(extractFeatures(store, {
      encoder: 'resnet18', chunkSpots: 8, sections: ['A2'], signal: controller.signal,
      onProgress: (p) => { if (p.done >= 8) controller.abort(); },
    }), /cancelled.*resume/);
    assert.ok(!fs.existsSync(file), 'no section file after an interruption');
    assert.ok(fs.readdirSync(`${file}.chunks`).length >= 1, 'finished chunks are kept');
    const resumed = await extractFeatures(store, { encoder: 'resnet18', chunkSpots: 8, sections: ['A2'] });
    assert.equal(resumed.sections[0].status, 'resumed');
    assert.ok(resumed.sections[0].tilesEncoded > 0);
    assert.ok(relativeError(vectorColumn(readArrowFile(file), 'neighbors').values, before) < 1e-6);
    assert.equal(s.manifest.sections.length, 2);
  });
});
