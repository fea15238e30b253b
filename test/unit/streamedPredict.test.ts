import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, test } from 'node:test';
import type { Executor } from '../../src/runtime/engine/executor';
import { triplexConfig } from '../../src/runtime/models/triplexConfig';
import { epochBatches, hostBatch } from '../../src/runtime/train/batches';
import { ALL_VIEWS } from '../../src/runtime/train/cv';
import { loadTrainingData } from '../../src/runtime/train/data';
import { EngineLearner } from '../../src/runtime/train/engineLearner';
import { writeFeatureStore } from './helpers/featureFiles';
import { testExecutors } from './helpers/executors';
import { tempDir } from './helpers/spatialFixtures';

/**
 * Prediction over a section whose features are read by spot range (issue 16: a whole-slide
 * grid's features file runs to gigabytes): the same predictions as with the features held whole,
 * on onnxruntime and on the engine's TF.js executor, for full TRIPLEX (three views), on a section
 * of 300 spots written in record batches of 64, predicted in batches of 40 (windows that straddle
 * record batches, a padded last batch) and with the global encoder in blocks of query rows.
 */

const DIM = 16;
const SPOTS = 300;
const GENES = 7;

let engines: Executor[] = [];
let store = '';
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
  store = (await writeFeatureStore(path.join(tempDir('streamed-predict'), 'store'), { spots: SPOTS, dim: DIM, batch: 64 })).storeDir;
});

test('a section read by spot range predicts what the section held whole predicts, on both executors', async () => {
  const whole = loadTrainingData(store, { views: ALL_VIEWS });
  const streamed = loadTrainingData(store, { views: ALL_VIEWS, streamAbove: 0 });
  const [w] = whole.sections.values();
  const [s] = streamed.sections.values();
  assert.ok(w.target && w.neighbors && !w.streamed, 'below the threshold the section is held whole');
  assert.ok(s.streamed && !s.target && !s.neighbors && !s.mask, 'past it, target tokens and neighbours stay in the file');
  assert.deepEqual(s.global, w.global, 'the global features are read whole either way, batch by batch');
  const config = triplexConfig({ preset: 'demo', genes: GENES, dim: DIM });
  for (const executor of engines) {
    for (const globalQueryRows of [undefined, 48]) {
      const learner = new EngineLearner(config, executor, 5);
      const o = { batchSize: 40, ...(globalQueryRows ? { globalQueryRows } : {}) };
      const expected = (await learner.predict(whole, [w], o)).get(w.id)!;
      const actual = (await learner.predict(streamed, [s], o)).get(s.id)!;
      assert.equal(actual.length, SPOTS * GENES);
      assert.ok(expected.every(Number.isFinite));
      let diff = 0;
      for (let i = 0; i < actual.length; i++) diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
      assert.ok(diff <= 1e-6, `${executor.kind}${globalQueryRows ? ', global in blocks' : ''}: largest difference ${diff}`);
      await learner.dispose();
    }
  }
});

test('training refuses a section read by spot range, saying why; stale or damaged features are refused naming the file', async () => {
  const streamed = loadTrainingData(store, { views: ALL_VIEWS, streamAbove: 0 });
  const [s] = streamed.sections.values();
  const [batch] = epochBatches([s], 16, 1);
  assert.throws(() => hostBatch(batch, { views: ALL_VIEWS, dim: DIM, genes: 0 }), /section S1's features \(.*S1\.arrow\) are read by spot range, for prediction; batches of spots drawn at random need them whole/);

  // The store's spots renamed: the file is stale.
  const file = path.join(store, 'features', 'resnet18-test', 'S1.arrow');
  const other = path.join(tempDir('streamed-stale'), 'store');
  await writeFeatureStore(other, { spots: SPOTS, dim: DIM, batch: 64, section: 'S1' });
  const otherFile = path.join(other, 'features', 'resnet18-test', 'S1.arrow');
  fs.copyFileSync(path.join(store, 'spots.arrow'), path.join(other, 'spots.arrow'));
  const short = await writeFeatureStore(path.join(tempDir('streamed-short'), 'store'), { spots: SPOTS - 1, dim: DIM, batch: 64 });
  fs.copyFileSync(short.file, otherFile);
  assert.throws(() => loadTrainingData(other, { views: ALL_VIEWS, streamAbove: 0 }), (e: Error) => e.message === `${otherFile}: ${SPOTS - 1} spots, the store has ${SPOTS} for section S1; the features are stale: re-run \`triplex extract ${other}\``);

  // 2 GiB or more (a sparse file: no disk used) cannot be read whole: training says so, before reading.
  fs.truncateSync(otherFile, 2 ** 31);
  assert.throws(() => loadTrainingData(other, { views: ALL_VIEWS }),
    (e: Error) => e.message === `${otherFile}: 2.0 GiB of features, too large to read whole (training keeps a section's features in memory); \`triplex predict\` and \`triplex evaluate\` read them by spot range`);

  // Cut short: refused with the file and what to run.
  fs.writeFileSync(otherFile, fs.readFileSync(file).subarray(0, 5000));
  assert.throws(() => loadTrainingData(other, { views: ALL_VIEWS, streamAbove: 0 }),
    (e: Error) => e.message.startsWith(`${otherFile}: not a readable Arrow IPC file (no Arrow magic at the end`) && e.message.endsWith(`run \`triplex extract ${other}\`, which moves an unreadable features file aside and computes it again`));
});
