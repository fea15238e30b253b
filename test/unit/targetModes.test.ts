import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { resnet18TensorsFrom, seededResNet18StateDict } from '../../src/runtime/models/resnet18Weights';
import { triplexConfig } from '../../src/runtime/models/triplexConfig';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { moveMap, tokenPermutation, type Dihedral } from '../../src/runtime/train/batches';
import { loadTrainingData, type TrainingData } from '../../src/runtime/train/data';
import { cacheLayer3 } from '../../src/runtime/train/targetCrops';
import { loadTrainedModel, predictSections, prepareTargetInputs, readCheckpoint, trainFold, type TrainOptions } from '../../src/runtime/train/trainer';
import { encodeSafetensors } from '../../src/runtime/weights/safetensors';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './helpers/paths';

/**
 * Training the target encoder itself: mode `layer4` (the last ResNet18 stage fine-tuned on cached
 * conv1..layer3 maps of the crops) and mode `full` (the whole trunk fine-tuned on the crops), on a
 * small synthetic store with real images and features.
 */

const TRANSFORMS: Dihedral[] = [false, true].flatMap((hflip) => [false, true].flatMap((vflip) => [0, 1, 2, 3].map((quarterTurns) => ({ hflip, vflip, quarterTurns }))));

describe('augmentation of crops and cached maps', () => {
  test('a crop\'s pixels move as its 7x7 token map does, and a flip is a mirror of the pixels', () => {
    for (const side of [224, 14]) {
      const cell = side / 7;
      const channels = side === 224 ? 3 : 4;
      // Every pixel holds its 7x7 block's index, plus its channel.
      const src = new Float32Array(side * side * channels);
      for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) for (let k = 0; k < channels; k++) src[(r * side + c) * channels + k] = Math.floor(r / cell) * 7 + Math.floor(c / cell) + 100 * k;
      for (const t of TRANSFORMS) {
        const out = new Float32Array(src.length);
        moveMap(src, t, side, channels, out, 0);
        const perm = tokenPermutation(t.hflip, t.vflip, t.quarterTurns);
        for (let r = 0; r < side; r += cell) {
          for (let c = 0; c < side; c += cell) {
            const block = Math.floor(r / cell) * 7 + Math.floor(c / cell);
            for (let k = 0; k < channels; k++) assert.equal(out[(r * side + c) * channels + k], perm[block] + 100 * k, `side ${side}, ${JSON.stringify(t)}, block ${block}`);
          }
        }
      }
    }
    // A horizontal flip alone, against the direct formula out[r][c] = in[r][side - 1 - c], on distinct values.
    const side = 224;
    const src = Uint8Array.from({ length: side * side * 3 }, (_, i) => (i * 7919) % 251);
    const out = new Uint8Array(src.length);
    moveMap(src, { hflip: true, vflip: false, quarterTurns: 0 }, side, 3, out, 0);
    for (const [r, c] of [[0, 0], [5, 17], [223, 100], [111, 223]]) {
      for (let k = 0; k < 3; k++) assert.equal(out[(r * side + c) * 3 + k], src[(r * side + (side - 1 - c)) * 3 + k]);
    }
  });
});

describe('modes layer4 and full', () => {
  let tmp = '';
  let store = '';
  let data: TrainingData;
  const options = (mode: 'layer4' | 'full', out: string, extra: Partial<TrainOptions> = {}): TrainOptions => ({
    config: triplexConfig({ preset: 'demo', variant: 'triplex', genes: data.genes.length, dim: data.dim }),
    mode, train: ['B1', 'B2'], validation: ['C1'], outDir: path.join(tmp, out), epochs: 1, batchSize: 16, learningRate: 1e-3, ...extra,
  });

  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-modes-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 2, gridSize: 4, genes: 60 }, 30);
    await extractFeatures(store, { encoder: 'resnet18' });
    data = loadTrainingData(store, { views: ['neighbor', 'global'] });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  const changed = (a: Float32Array, b: Float32Array) => a.some((v, i) => v !== b[i]);
  /** Tensors alive after the first run (TF.js keeps a one-time constant or two); later runs must not add any. */
  let baseline = -1;

  test('layer4 fine-tunes only the last stage, and predicts alike from crops and from the cache', async () => {
    const result = await trainFold(data, options('layer4', 'layer4'));
    baseline = tf.memory().numTensors;
    const { info, weights } = await readCheckpoint(result.checkpoint);
    assert.equal(info.mode, 'layer4');
    assert.equal(info.trunkWeights, 'seeded-initialisation:0');
    const initial = seededResNet18StateDict(0);
    for (const [key, t] of initial) {
      const trained = weights.get(`target_encoder.${key}`);
      assert.ok(trained, `checkpoint lacks target_encoder.${key}`);
      if (key.startsWith('layer4.') && (key.endsWith('conv1.weight') || key.endsWith('running_mean'))) assert.ok(changed(trained.data, t.data), `${key} was not trained`);
      if (!key.startsWith('layer4.')) assert.ok(!changed(trained.data, t.data), `${key} changed, but only layer4 is fine-tuned`);
    }
    const { model } = await loadTrainedModel(result.checkpoint, data);
    try {
      const sections = [data.sections.get('A1')!];
      await prepareTargetInputs(model, data, sections);
      const fromCrops = (await predictSections(model, data, sections)).get('A1')!;
      // The layer3 maps through the frozen encoder's graph holding the checkpoint's weights (weights as constants, a graph of its own).
      const trunk = resnet18TensorsFrom(new Map([...(await readCheckpoint(result.checkpoint)).weights].filter(([k]) => k.startsWith('target_encoder.')).map(([k, v]) => [k.slice('target_encoder.'.length), v])), 'checkpoint');
      await cacheLayer3({ weights: trunk, identity: 'checkpoint', source: 'checkpoint' }, sections);
      const fromCache = (await predictSections(model, data, sections, 8, 'layer3')).get('A1')!;
      const worst = fromCrops.reduce((m, v, i) => Math.max(m, Math.abs(v - fromCache[i])), 0);
      assert.ok(worst < 1e-4, `crops and cached layer3 maps differ by ${worst}`);
      assert.ok(fromCrops.every(Number.isFinite));
    } finally {
      await model.dispose();
    }
  });

  test('a layer4 run stopped after its first epoch resumes and ends as an uninterrupted one', async () => {
    const whole = await trainFold(data, options('layer4', 'whole', { epochs: 2 }));
    const controller = new AbortController();
    const first = await trainFold(data, options('layer4', 'resumed', { epochs: 2, signal: controller.signal, onProgress: (e) => { if (e.kind === 'epoch') controller.abort(); } }));
    assert.ok(first.aborted);
    const resumed = await trainFold(data, options('layer4', 'resumed', { epochs: 2 }));
    assert.equal(resumed.resumedFrom, 1);
    const a = (await readCheckpoint(path.join(tmp, 'whole', 'last.safetensors'))).weights;
    const b = (await readCheckpoint(path.join(tmp, 'resumed', 'last.safetensors'))).weights;
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [k, t] of a) assert.ok(!changed(t.data, b.get(k)!.data), `${k} differs after resuming`);
    assert.deepEqual(resumed.history.map((h) => h.loss), whole.history.map((h) => h.loss));
    assert.equal(tf.memory().numTensors, baseline, 'three more layer4 runs left tensors behind');
  });

  test('full fine-tunes the whole trunk, batch-norm statistics included', async () => {
    const before = tf.memory().numTensors;
    const result = await trainFold(data, options('full', 'full'));
    assert.equal(tf.memory().numTensors, before, 'tensors left after training');
    const { info, weights } = await readCheckpoint(result.checkpoint);
    assert.equal(info.mode, 'full');
    const initial = seededResNet18StateDict(0);
    for (const key of ['conv1.weight', 'bn1.running_mean', 'layer2.0.conv1.weight', 'layer4.1.bn2.weight']) {
      assert.ok(changed(weights.get(`target_encoder.${key}`)!.data, initial.get(key)!.data), `${key} was not trained`);
    }
    const { model } = await loadTrainedModel(result.checkpoint, data);
    try {
      const sections = [data.sections.get('A2')!];
      await prepareTargetInputs(model, data, sections);
      const preds = (await predictSections(model, data, sections)).get('A2')!;
      assert.equal(preds.length, sections[0].n * data.genes.length);
      assert.ok(preds.every(Number.isFinite));
      // A section too large to hold its crops (here: any) has them cut window by window, to the same predictions.
      const large = { ...sections[0], crops: undefined };
      await prepareTargetInputs(model, data, [large], undefined, { streamCropsAbove: 0 });
      assert.ok(large.cropSource && !large.crops, 'the crops are cut by spot range, not held');
      const windowed = (await predictSections(model, data, [large], 5)).get('A2')!;
      const whole = (await predictSections(model, data, sections, 5)).get('A2')!;
      assert.deepEqual(windowed, whole);
    } finally {
      await model.dispose();
    }
  });

  test('on TF.js, mode layer4 trains the engine\'s trunk on its TF.js interpreter, and says so', async () => {
    const lines: string[] = [];
    const result = await trainFold(data, options('layer4', 'tfjs-layer4', { engine: 'tfjs', onEngine: (l) => lines.push(l) }));
    assert.ok(lines.some((l) => /TF\.js/.test(l)), lines.join('\n'));
    const { info, weights } = await readCheckpoint(result.checkpoint);
    assert.equal(info.mode, 'layer4');
    const start = seededResNet18StateDict(0);
    assert.ok(changed(weights.get('target_encoder.layer4.0.conv1.weight')!.data, start.get('layer4.0.conv1.weight')!.data), 'layer4 was not trained');
    assert.ok(!changed(weights.get('target_encoder.layer3.0.conv1.weight')!.data, start.get('layer3.0.conv1.weight')!.data), 'layer3 changed');
  });

  test('clear errors: other weights than the features\', a model without the target view, a store without images', async () => {
    const other = path.join(tmp, 'other.safetensors');
    fs.writeFileSync(other, encodeSafetensors(seededResNet18StateDict(1)));
    await assert.rejects(trainFold(data, options('full', 'e1', { weights: other })), /features \(resnet18-[0-9a-f]+\) were not extracted with .*other\.safetensors.*--weights/);
    await assert.rejects(trainFold(data, { ...options('layer4', 'e2'), config: triplexConfig({ preset: 'demo', variant: 'nem', genes: data.genes.length, dim: data.dim }) }), /mode layer4 fine-tunes the target encoder, but this configuration has no target view/);
    // The same store with its images gone from the manifest.
    const bare = path.join(tmp, 'bare');
    fs.cpSync(store, bare, { recursive: true });
    const manifest = JSON.parse(fs.readFileSync(path.join(bare, 'store.json'), 'utf8'));
    for (const s of manifest.sections) delete s.image;
    fs.writeFileSync(path.join(bare, 'store.json'), JSON.stringify(manifest));
    const bareData = loadTrainingData(bare, { views: ['neighbor', 'global'] });
    await assert.rejects(trainFold(bareData, options('full', 'e3')), /section B1 has no image, and modes layer4 and full train the target encoder on the spots' crops/);
    assert.ok(!fs.existsSync(path.join(tmp, 'e3', 'last.safetensors')), 'nothing written for a refused run');
  });

  test('from the command line: predict reads a full-mode checkpoint, and the ablation grid trains view-less-target variants as frozen', async () => {
    const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
    const out = path.join(tmp, 'predicted.arrow');
    const p = cli(['predict', store, '--checkpoint', path.join(tmp, 'full', 'best.safetensors'), '--sections', 'A1', '--out', out]);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /predicted 30 genes for \d+ spots of 1 sections/);
    const root = path.join(tmp, 'grid');
    const r = cli(['ablation', store, '--variants', 'tem,nem', '--mode', 'layer4', '--preset', 'demo', '--epochs', '1', '--batch', '16', '--out', root]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /nem: no target view, so mode layer4 trains nothing more than mode frozen; trained in mode frozen/);
    const mode = (v: string) => JSON.parse(fs.readFileSync(path.join(root, v, 'results.json'), 'utf8')).mode;
    assert.equal(mode('tem'), 'layer4');
    assert.equal(mode('nem'), 'frozen');
    assert.match(r.stdout, /views: nem \(frozen\)/);
  });
});
