import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readDataset } from '../../src/runtime/data/read';
import { preprocess } from '../../src/runtime/data/preprocess';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { readArrowFile, vectorColumn } from '../../src/runtime/store/arrow';
import { extractFeatures } from '../../src/runtime/features/extract';
import { sharedData } from './helpers/paths';
import { truthSection, writeH5ad, writeVisium } from './helpers/spatialFixtures';

/**
 * inspect -> preprocess -> extract on every input format: a Visium folder and an .h5ad made here
 * (with a real JPEG), and the real HER2+ sections that have images (a few spots of each, so that
 * the suite stays fast; the CLI runs them whole).
 */
describe('the data path on every format', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-datapath-'));
  const image = path.join(tmp, 'slide.jpg');
  const truth = truthSection({ id: 'V1', rows: 3, cols: 4, genes: 9, seed: 4 });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  before(async () => {
    // A textured 2,000 x 1,800 px image covering the spots (290 px pitch from (400, 700)).
    const [w, h] = [2000, 1800];
    const rgb = Buffer.alloc(w * h * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 2654435761) >>> 24;
    await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).jpeg().toFile(image);
  });

  async function runPath(dataset: string, opts: { image?: string; sections?: string[] }, storeName: string, maxSpots?: number) {
    const ds = await readDataset(dataset, opts);
    if (maxSpots) {
      for (const s of ds.sections) {
        s.spots = s.spots.slice(0, maxSpots);
        s.counts = { ...s.counts, nSpots: s.spots.length, indptr: s.counts.indptr.slice(0, s.spots.length + 1) };
      }
    }
    const store = path.join(tmp, storeName);
    await writeDatasetStore(store, { format: ds.format, path: dataset }, preprocess(ds, { genes: 9, minSpotFraction: 0 }));
    const summary = await extractFeatures(store, { encoder: 'resnet18' });
    const opened = openDatasetStore(store);
    for (const s of opened.manifest.sections) {
      const t = readArrowFile(path.join(summary.dir, `${s.id}.arrow`));
      assert.equal(t.numRows, s.spots);
      assert.equal(vectorColumn(t, 'global').values.length, s.spots * 512);
      assert.ok(vectorColumn(t, 'global').values.every(Number.isFinite));
    }
    return { ds, opened };
  }

  test('a Visium folder with a full-resolution image', async () => {
    const dir = await writeVisium(path.join(tmp, 'visium'), truth, { positions: 'tissue_positions.csv' });
    const { ds } = await runPath(dir, { image }, 'visium-store');
    assert.equal(ds.format, 'visium');
    assert.equal(ds.sections[0].spots.length, 12);
  });

  test('an .h5ad file with an image', async () => {
    const file = await writeH5ad(path.join(tmp, 'slide.h5ad'), [truth], { x: 'csr' });
    const { ds } = await runPath(file, { image }, 'h5ad-store');
    assert.equal(ds.format, 'h5ad');
  });

  test('the real HER2+ sections with images (6 spots each)', async () => {
    const { opened } = await runPath(sharedData('her2st'), { sections: ['C2', 'C3', 'C4', 'C5', 'C6'] }, 'her2-store', 6);
    assert.deepEqual(opened.manifest.sections.map((s) => s.id), ['C2', 'C3', 'C4', 'C5', 'C6']);
    assert.ok(opened.manifest.sections.every((s) => s.image?.width && s.image.width > 9000));
  });
});
