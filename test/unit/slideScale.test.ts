import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { stringColumn } from '../../src/runtime/store/arrow';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { readCheckpoint } from '../../src/runtime/train/checkpoints';
import { readPredictions } from '../../src/runtime/train/cv';
import { repoRoot } from './helpers/paths';
import { writeSlide } from './helpers/slideFixtures';

/**
 * Microns per pixel end to end: a model trained on synthetic images recorded at 0.5 um/px
 * predicts on the same tissue scanned at 0.25 um/px (an Aperio SVS the test makes, MPP in its
 * description): features cut at the slide's own pixels are refused, naming both scales; cut
 * with the checkpoint's scale they are resampled (and say so), and the predictions match the
 * ones made on the original image.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const run = (args: string[]) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
const FAST = ['--preset', 'demo', '--epochs', '2', '--batch', '32', '--lr', '1e-3'];
const TRAIN_MPP = 0.5;
const SLIDE_MPP = 0.25;

function pearson(a: Float32Array, b: Float32Array): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i] / n; mb += b[i] / n; }
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < n; i++) { ab += (a[i] - ma) * (b[i] - mb); aa += (a[i] - ma) ** 2; bb += (b[i] - mb) ** 2; }
  return ab / Math.sqrt(aa * bb);
}

describe('a model trained at one scale predicts on a slide scanned at another', () => {
  let tmp = '';
  let store = '';
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-scale-'));
    store = path.join(tmp, 'store');
    const data = path.join(tmp, 'synthetic');
    await writeSyntheticStore(data, store, { patients: 3, sectionsPerPatient: 1, gridSize: 5, genes: 40 }, 30, { mpp: TRAIN_MPP });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('the store and the checkpoint record the training scale; the slide is resampled to it', async () => {
    assert.deepEqual(openDatasetStore(store).manifest.sections.map((s) => [s.mpp, s.mppSource]), [[TRAIN_MPP, '--mpp'], [TRAIN_MPP, '--mpp'], [TRAIN_MPP, '--mpp']]);
    await extractFeatures(store, { encoder: 'resnet18' });
    const out = path.join(tmp, 'run');
    const t = run(['train-fold', store, '--fold', '0', '--model', 'triplex', ...FAST, '--out', out]);
    assert.equal(t.status, 0, t.stderr);
    const checkpoint = path.join(out, 'fold-0', 'best.safetensors');
    assert.equal((await readCheckpoint(checkpoint)).info.mpp, TRAIN_MPP);

    // The test section scanned at twice the resolution, as an SVS.
    const labelled = openDatasetStore(store);
    const section = labelled.manifest.sections[0];
    const { data: px, info } = await sharp(section.image!.path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const W = info.width * 2;
    const H = info.height * 2;
    const svs = await writeSlide(path.join(tmp, 'rescanned.svs'), {
      kind: 'svs', width: W, height: H, mpp: SLIDE_MPP, downsamples: [4],
      pixel: (x, y) => {
        const o = ((y >> 1) * info.width + (x >> 1)) * 3;
        return [px[o], px[o + 1], px[o + 2]];
      },
    });
    const rows = labelled.rowsOf(section.id);
    const col = (name: string) => labelled.spots.getChild(name)!.toArray() as ArrayLike<number>;
    const [ids, xs, ys, ar, ac] = [stringColumn(labelled.spots, 'spot_id'), col('pixel_x'), col('pixel_y'), col('array_row'), col('array_col')];
    const table = path.join(tmp, 'spots.csv');
    fs.writeFileSync(table, ['spot_id,pixel_x,pixel_y,array_row,array_col', ...rows.map((r) => `${ids[r]},${xs[r] * 2 + 1},${ys[r] * 2 + 1},${ar[r]},${ac[r]}`)].join('\n') + '\n');

    const slideStore = path.join(tmp, 'slide');
    const s = run(['slide', svs, '--spots', table, '--section', section.id, '--out', slideStore]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /0\.25 um\/px from the Aperio MPP of .*rescanned\.svs/);
    assert.equal(openDatasetStore(slideStore).manifest.sections[0].mpp, SLIDE_MPP);

    // Crops at the slide's own pixels: predict refuses, naming both scales.
    assert.equal(run(['extract', slideStore]).status, 0);
    const refused = run(['predict', slideStore, '--checkpoint', checkpoint, '--out', path.join(tmp, 'no.arrow')]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /was trained on crops at 0\.5 um\/px, but the features of .*slide were cut at 0\.25 um\/px; extract them at the training scale \(triplex extract .* --checkpoint/);

    // Crops at the training scale: resampled, and said.
    const e = run(['extract', slideStore, '--checkpoint', checkpoint]);
    assert.equal(e.status, 0, e.stderr);
    assert.match(e.stdout, /rescanned\.svs is 0\.25 um\/px \(the Aperio MPP of .*\); its crops are resampled to 0\.5 um\/px, the training scale \(2\.000 image px per crop px\)/);
    const predicted = path.join(tmp, 'slide.arrow');
    const p = run(['predict', slideStore, '--checkpoint', checkpoint, '--out', predicted]);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /crops at 0\.5 um\/px, the model's training scale/);

    const reference = path.join(tmp, 'reference.arrow');
    assert.equal(run(['predict', store, '--checkpoint', checkpoint, '--sections', section.id, '--out', reference]).status, 0);
    const mine = readPredictions(predicted).sections.get(section.id)!;
    const theirs = readPredictions(reference).sections.get(section.id)!;
    assert.deepEqual(mine.spotIds, theirs.spotIds);
    const r = pearson(mine.values, theirs.values);
    assert.ok(r > 0.98, `predictions on the rescanned slide follow those on the original (PCC ${r.toFixed(4)})`);
  });

  test('a slide whose file and --mpp disagree is refused, naming both', () => {
    const svs = path.join(tmp, 'rescanned.svs');
    const r = run(['slide', svs, '--mpp', '0.5', '--out', path.join(tmp, 'never')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /rescanned\.svs \(--mpp\): the Aperio MPP of .*rescanned\.svs says 0\.25 um\/px but --mpp says 0\.5 um\/px/);
    assert.equal(fs.existsSync(path.join(tmp, 'never')), false, 'nothing written');
  });
});
