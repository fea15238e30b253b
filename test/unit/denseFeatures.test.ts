import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { readArrowFile, readArrowMetadata, stringColumn, vectorColumn } from '../../src/runtime/store/arrow';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openEncoder } from '../../src/runtime/features/encoders';
import { DenseTrunk } from '../../src/runtime/features/dense';
import { openSlideImage } from '../../src/runtime/image/slideImage';
import { cropSpots, toNormalizedFloat } from '../../src/runtime/image/crops';
import { relativeError } from './helpers/compare';

/**
 * Dense features (features/dense.ts) on the synthetic dataset, beside the per-crop path: the
 * fully convolutional trunk computes the per-crop function on a 224 px crop; `--dense` writes the
 * same columns into a features folder of its own, in a fraction of the encoder passes; and its
 * features stay close to the per-crop ones (cosine similarity, measured here as in the README).
 */

const cosine = (a: Float32Array, b: Float32Array): number => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return ab / Math.sqrt(aa * bb);
};

/** Mean cosine similarity of row vectors of `width` between two equally long tables of vectors. */
function meanCosine(a: Float32Array, b: Float32Array, width: number): number {
  let sum = 0;
  const n = a.length / width;
  for (let i = 0; i < n; i++) sum += cosine(a.subarray(i * width, (i + 1) * width), b.subarray(i * width, (i + 1) * width));
  return sum / n;
}

describe('dense features', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-dense-'));
  const store = path.join(tmp, 'store');
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  before(async () => {
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 1, sectionsPerPatient: 1, gridSize: 6, genes: 20 }, 20);
  });

  test('the fully convolutional trunk is the per-crop encoder on a 224 px crop', async () => {
    const perCrop = await openEncoder({ encoder: 'resnet18' });
    const dense = await openEncoder({ encoder: 'resnet18', dense: true });
    assert.ok(dense.encoder instanceof DenseTrunk);
    assert.notEqual(dense.key, perCrop.key, 'dense features have a folder of their own');
    assert.match(dense.key, /^resnet18-dense-/);
    const img = await openSlideImage(openDatasetStore(store).manifest.sections[0].image!.path);
    const crops = await cropSpots(img, [{ x: 500, y: 500 }, { x: 700, y: 640 }], { target: true, neighbor: false });
    img.close();
    const input = toNormalizedFloat(crops.target!, 2, 224);
    const a = await perCrop.encoder.encode(input, 2);
    const b = await dense.encoder.encode(input, 2);
    assert.ok(relativeError(b.pooled, a.pooled) < 1e-4, `pooled: ${relativeError(b.pooled, a.pooled)}`);
    assert.ok(relativeError(b.tokens!, a.tokens!) < 1e-4, `tokens: ${relativeError(b.tokens!, a.tokens!)}`);
    await perCrop.dispose();
    await dense.dispose();
  });

  test('--dense writes the per-crop columns in a folder of its own, with far fewer encoder passes, close to the per-crop features', async () => {
    const perCrop = await extractFeatures(store, { encoder: 'resnet18' });
    const dense = await extractFeatures(store, { encoder: 'resnet18', dense: true, chunkSpots: 10 });
    assert.notEqual(dense.dir, perCrop.dir);
    assert.equal(dense.encoder.encoder, 'resnet18-dense');
    const id = perCrop.sections[0].id;
    const a = readArrowFile(path.join(perCrop.dir, `${id}.arrow`));
    const b = readArrowFile(path.join(dense.dir, `${id}.arrow`));
    assert.deepEqual(stringColumn(b, 'spot_id'), stringColumn(a, 'spot_id'));
    for (const column of ['global', 'neighbors', 'target_tokens']) assert.equal(vectorColumn(b, column).width, vectorColumn(a, column).width, column);
    const masks = (t: typeof a) => Array.from({ length: t.numRows }, (_, i) => Array.from(t.getChild('neighbor_mask')!.get(i) as Iterable<number>));
    assert.deepEqual(masks(b), masks(a));
    assert.match((await readArrowMetadata(path.join(dense.dir, `${id}.arrow`))).get('triplex:crops') ?? '', /"dense"/);
    // 36 spots: the per-crop path encodes hundreds of tiles, the dense one a few map tiles.
    assert.ok(dense.sections[0].tilesEncoded * 10 < perCrop.sections[0].tilesEncoded, `${dense.sections[0].tilesEncoded} map tiles against ${perCrop.sections[0].tilesEncoded} crops`);
    const g = meanCosine(vectorColumn(b, 'global').values, vectorColumn(a, 'global').values, 512);
    const t = meanCosine(vectorColumn(b, 'target_tokens').values, vectorColumn(a, 'target_tokens').values, 512);
    console.log(`# dense vs per-crop cosine similarity: global ${g.toFixed(4)}, target tokens ${t.toFixed(4)}`);
    assert.ok(g > 0.95, `global features: mean cosine ${g}`);
    assert.ok(t > 0.75, `target tokens: mean cosine ${t}`);
    const again = await extractFeatures(store, { encoder: 'resnet18', dense: true });
    assert.deepEqual(again.sections.map((s) => s.status), ['cached'], 'a second dense run finds its own features');
  });

  test('--dense refuses a user encoder, naming the option', async () => {
    await assert.rejects(openEncoder({ encoder: path.join(tmp, 'model.onnx'), dense: true }), /--dense applies to the built-in resnet18/);
  });
});
