import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { loadTrainingData } from '../../src/runtime/train/data';
import { loadTargetCrops } from '../../src/runtime/train/targetCrops';
import { maxDiff } from './helpers/slideFixtures';

/**
 * Modes layer4 and full train the trunk on crops cut at the run's training scale, as the
 * features were: a section scanned at 0.5 um/px in a run whose features were extracted at
 * 1 um/px gets crops of 448 of its pixels, averaged 2 x 2 to 224, and the run says so.
 */

const SECTION_MPP = 0.5;
const TRAIN_MPP = 1;

describe('target crops at the run\'s training scale', () => {
  let tmp = '';
  let store = '';
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-crop-scale-'));
    store = path.join(tmp, 'store');
    const data = path.join(tmp, 'synthetic');
    await writeSyntheticStore(data, store, { patients: 1, sectionsPerPatient: 1, gridSize: 3, genes: 20 }, 10, { mpp: SECTION_MPP });
    await extractFeatures(store, { encoder: 'resnet18', mpp: TRAIN_MPP });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a section at another scale is resampled to the training scale, and the run says so', async () => {
    const data = loadTrainingData(store, { views: ['global'] });
    assert.equal(data.cropMpp, TRAIN_MPP, 'the features record the scale they were cut at');
    const lines: string[] = [];
    const sections = [...data.sections.values()];
    await loadTargetCrops(data, sections, undefined, (line) => lines.push(line));
    const [section] = sections;
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0], new RegExp(`^section ${section.id}: .* is 0\\.5 um/px \\(--mpp\\); its crops are resampled to 1 um/px, the training scale \\(2\\.000 image px per crop px\\)$`));

    // Each crop, against the image's own pixels: the 448 px square around the spot, each 2 x 2 block averaged (zero outside the image).
    const s = openDatasetStore(store);
    const { data: px, info } = await sharp(s.manifest.sections[0].image!.path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const xs = s.spots.getChild('pixel_x')!.toArray() as Float64Array;
    const ys = s.spots.getChild('pixel_y')!.toArray() as Float64Array;
    const at = (x: number, y: number, c: number) => (x >= 0 && y >= 0 && x < info.width && y < info.height ? px[(y * info.width + x) * 3 + c] : 0);
    section.storeRows.forEach((r, i) => {
      const [cx, cy] = [Math.floor(xs[r] / 2), Math.floor(ys[r] / 2)];
      const want = new Uint8Array(224 * 224 * 3);
      for (let y = 0; y < 224; y++) {
        for (let x = 0; x < 224; x++) {
          const [sx, sy] = [2 * (cx - 112 + x), 2 * (cy - 112 + y)];
          for (let c = 0; c < 3; c++) want[(y * 224 + x) * 3 + c] = Math.round((at(sx, sy, c) + at(sx + 1, sy, c) + at(sx, sy + 1, c) + at(sx + 1, sy + 1, c)) / 4);
        }
      }
      assert.equal(maxDiff(section.crops!.subarray(i * want.length, (i + 1) * want.length), want), 0, `spot ${section.spotIds[i]}`);
    });
  });
});
