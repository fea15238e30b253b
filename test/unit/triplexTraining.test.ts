import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { VARIANTS, activeViews } from '../../src/runtime/model/triplex/config';
import { TriplexModel } from '../../src/runtime/model/triplex/model';
import { Adam, stepLR } from '../../src/runtime/train/adam';
import { epochBatches, makeBatch, tokenPermutation } from '../../src/runtime/train/batches';
import type { Executor } from '../../src/runtime/engine/executor';
import { EngineLearner } from '../../src/runtime/train/engineLearner';
import { batchGradients, loadTrainedModel, predictSections, readCheckpoint, trainFold } from '../../src/runtime/train/trainer';
import { relativeError } from './helpers/compare';
import { slideMetrics } from '../../src/runtime/eval/metrics';
import { mulberry32 } from '../../src/runtime/util/random';
import { DIM, GENES, config, syntheticData } from './helpers/trainingData';

/**
 * The assembled TRIPLEX model and its training loop on small in-memory data: every variant's
 * heads and parameters, batching, augmentation, Adam against its formula, learning, repeatable
 * and resumable runs, aborting, leaks, and the errors of mismatched checkpoints.
 */

describe('TRIPLEX model and training', () => {
  let tmp: string;
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-train-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('every variant builds, names its parameters as the PyTorch reference, and gives [B, genes] per head', () => {
    const data = syntheticData(2);
    const sections = [...data.sections.values()];
    const picks = epochBatches(sections, 7, 3)[0];
    for (const v of VARIANTS) {
      const c = config(v.name);
      const model = new TriplexModel(c);
      const batch = makeBatch(picks, { views: activeViews(c), dim: DIM, genes: GENES });
      try {
        const out = model.forward(batch.inputs, 'inference');
        const views = activeViews(c);
        for (const head of ['fusion', ...views] as const) assert.deepEqual(out[head]?.shape, [picks.length, GENES], `${v.name}: ${head}`);
        const names = model.params.names();
        const has = (prefix: string) => names.some((n) => n.startsWith(prefix));
        assert.equal(has('neighbor_encoder.'), c.views.neighbor, `${v.name}: neighbor encoder`);
        assert.equal(has('global_encoder.'), c.views.global, `${v.name}: global encoder`);
        assert.equal(has('global_encoder.peg.'), c.views.global && c.global.positionEncoding !== 'none', `${v.name}: position encoding`);
        assert.equal(names.includes('fc.weight'), views.length > 1, `${v.name}: prediction head`);
        assert.equal(has('fusion_encoder.blocks.'), views.length > 1 && c.fusion.method === 'layer', `${v.name}: fusion layer`);
        for (const view of views) assert.ok(names.includes(`fc_${view}.weight`), `${v.name}: fc_${view}`);
        if (views.length === 1) assert.equal(out.fusion, out[views[0]], `${v.name}: a single-view model predicts with its own head`);
        tf.dispose(Object.values(out));
      } finally {
        batch.dispose();
        model.dispose();
      }
    }
  });

  test('the global token of a spot does not depend on which batch asks for it', async () => {
    const data = syntheticData(2);
    const [a, b] = [...data.sections.values()];
    const model = new TriplexModel(config('gem'));
    try {
      // Spot 3 of section b, alone and in a batch drawing from both sections in another order.
      const alone = makeBatch([{ section: b, spot: 3 }], { views: ['global'], dim: DIM, genes: GENES });
      const mixed = makeBatch([{ section: a, spot: 5 }, { section: b, spot: 3 }, { section: a, spot: 0 }], { views: ['global'], dim: DIM, genes: GENES });
      const x = model.forward(alone.inputs, 'inference').fusion;
      const y = model.forward(mixed.inputs, 'inference').fusion;
      const row = tf.slice(y, [1, 0], [1, GENES]);
      assert.ok(tf.max(tf.abs(tf.sub(x, row))).dataSync()[0] < 1e-5);
      tf.dispose([x, y, row]);
      alone.dispose();
      mixed.dispose();
    } finally {
      model.dispose();
    }
  });

  test('token-map augmentation: permutations that compose like flips and quarter turns', () => {
    const isPermutation = (p: Int32Array) => [...p].sort((a, b) => a - b).every((v, i) => v === i);
    const identity = tokenPermutation(false, false, 0);
    assert.deepEqual([...identity], Array.from({ length: 49 }, (_, i) => i));
    assert.deepEqual([...tokenPermutation(true, false, 0)].slice(0, 7), [6, 5, 4, 3, 2, 1, 0]);
    assert.deepEqual([...tokenPermutation(false, true, 0)].slice(0, 7), [42, 43, 44, 45, 46, 47, 48]);
    // Four quarter turns are the identity; two are a flip both ways.
    const compose = (p: Int32Array, q: Int32Array) => Int32Array.from(p, (src) => q[src]);
    const quarter = tokenPermutation(false, false, 1);
    assert.deepEqual([...compose(compose(compose(quarter, quarter), quarter), quarter)], [...identity]);
    assert.deepEqual([...compose(quarter, quarter)], [...tokenPermutation(true, true, 0)]);
    for (const h of [false, true]) for (const v of [false, true]) for (const k of [0, 1, 2, 3]) assert.ok(isPermutation(tokenPermutation(h, v, k)));
  });

  test('an epoch visits every spot once, in batches spanning at most two slides, the same for the same seed', () => {
    const data = syntheticData(4, 8);
    const sections = [...data.sections.values()];
    const batches = epochBatches(sections, 16, 9);
    const seen = batches.flat().map((p) => `${p.section.id}/${p.spot}`);
    assert.equal(new Set(seen).size, seen.length);
    assert.equal(seen.length, sections.reduce((n, s) => n + s.n, 0));
    for (const b of batches) assert.ok(new Set(b.map((p) => p.section.id)).size <= 2);
    assert.deepEqual(epochBatches(sections, 16, 9).flat().map((p) => `${p.section.id}/${p.spot}`), seen);
    assert.notDeepEqual(epochBatches(sections, 16, 10).flat().map((p) => `${p.section.id}/${p.spot}`), seen);
  });

  test('Adam follows PyTorch\'s update formula; StepLR steps every 50 epochs', () => {
    const x = tf.variable(tf.tensor1d([1, -2]));
    const adam = new Adam([x], ['x'], 0.1);
    const grads = [[0.5, -1], [0.25, 2]];
    const expected = [1, -2];
    const m = [0, 0];
    const v = [0, 0];
    grads.forEach((g, t) => {
      adam.apply([tf.tensor1d(g)]);
      for (let i = 0; i < 2; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i];
        v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i];
        const mHat = m[i] / (1 - 0.9 ** (t + 1));
        const vHat = v[i] / (1 - 0.999 ** (t + 1));
        expected[i] -= (0.1 * mHat) / (Math.sqrt(vHat) + 1e-8);
      }
    });
    const got = x.dataSync();
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(got[i] - expected[i]) < 1e-6, `${got[i]} vs ${expected[i]}`);
    adam.dispose();
    x.dispose();
    assert.equal(stepLR(1e-4, 49), 1e-4);
    assert.ok(Math.abs(stepLR(1e-4, 50) - 0.9e-4) < 1e-12);
    assert.ok(Math.abs(stepLR(1e-4, 120) - 0.81e-4) < 1e-12);
  });

  test('micro-batches with the global encoder run once give the gradient of one pass over the batch', () => {
    const data = syntheticData(3);
    const c = config();
    const noDropout = { ...c, neighbor: { ...c.neighbor, dropout: 0 }, global: { ...c.global, dropout: 0 }, fusion: { ...c.fusion, dropout: 0 } };
    const model = new TriplexModel(noDropout, { seed: 5 });
    const vars = model.trainableVariables();
    const picks = epochBatches([...data.sections.values()], 40, 2)[0];
    try {
      const whole = makeBatch(picks, { views: model.views, dim: DIM, genes: GENES });
      const direct = tf.variableGrads(() => model.loss(model.forward(whole.inputs, 'training'), whole.truth), vars);
      const split = batchGradients(model, vars, picks, 7, { dim: DIM, genes: GENES, dropoutSeed: 1 });
      assert.ok(Math.abs(split.loss - direct.value.dataSync()[0]) < 1e-4 * Math.abs(split.loss));
      vars.forEach((v, i) => {
        const err = relativeError(split.grads[i].dataSync(), direct.grads[v.name].dataSync());
        assert.ok(err < 1e-4, `${model.params.names()[i] ?? v.name}: ${err}`);
      });
      assert.ok(model.params.names().some((n) => n.startsWith('global_encoder.')));
      tf.dispose([direct.value, ...Object.values(direct.grads), ...split.grads]);
      whole.dispose();
    } finally {
      model.dispose();
    }
  });

  for (const engine of ['ort', 'tfjs'] as const) {
  test(`${engine}: training learns, leaks no tensors, repeats exactly with the same seed, and resumes where it stopped`, async () => {
    const data = syntheticData(4);
    const base = { config: config(), mode: 'frozen' as const, train: ['S0', 'S1'], validation: ['S2'], batchSize: 16, learningRate: 1e-2, seed: 7, engine };
    const counts: number[] = [];
    const a = await trainFold(data, { ...base, outDir: path.join(tmp, engine, 'a'), epochs: 4, onProgress: (e) => { if (e.kind === 'epoch') counts.push(tf.memory().numTensors); } });
    assert.equal(a.epochsRun, 4);
    assert.ok(a.history[3].loss < a.history[0].loss * 0.8, `loss ${a.history.map((h) => h.loss.toFixed(3)).join(' -> ')}`);
    assert.equal(new Set(counts).size, 1, `tensors after each epoch: ${counts.join(', ')}`);

    const b = await trainFold(data, { ...base, outDir: path.join(tmp, engine, 'b'), epochs: 4 });
    assert.deepEqual(b.history.map((h) => [h.loss, h.validationPcc]), a.history.map((h) => [h.loss, h.validationPcc]));

    // Stopped during epoch 3 (index 2): the checkpoint of epoch 2 stays, and a rerun finishes like a.
    const controller = new AbortController();
    const c1 = await trainFold(data, {
      ...base, outDir: path.join(tmp, engine, 'c'), epochs: 4, signal: controller.signal,
      onProgress: (e) => { if (e.kind === 'batch' && e.epoch === 2 && e.batch === 2) controller.abort(); },
    });
    assert.equal(c1.aborted, true);
    assert.equal(c1.epochsRun, 2);
    assert.equal((await readCheckpoint(path.join(tmp, engine, 'c', 'last.safetensors'))).info.epoch, 2);
    assert.deepEqual(fs.readdirSync(path.join(tmp, engine, 'c')).filter((f) => f.includes('partial')), []);
    const c2 = await trainFold(data, { ...base, outDir: path.join(tmp, engine, 'c'), epochs: 4 });
    assert.equal(c2.resumedFrom, 2);
    assert.deepEqual(c2.history.map((h) => [h.loss, h.validationPcc]), a.history.map((h) => [h.loss, h.validationPcc]));
    const wa = (await readCheckpoint(path.join(tmp, engine, 'a', 'last.safetensors'))).weights;
    const wc = (await readCheckpoint(path.join(tmp, engine, 'c', 'last.safetensors'))).weights;
    for (const [k, t] of wa) assert.deepEqual(wc.get(k)?.data, t.data, k);
  });
  }

  test('both engines train alike: same start, same batches, same dropout masks; a checkpoint of one predicts on the other', async () => {
    const data = syntheticData(4);
    const base = { config: config(), mode: 'frozen' as const, train: ['S0', 'S1'], validation: ['S2'], batchSize: 16, learningRate: 1e-2, seed: 3, epochs: 3 };
    const lines: string[] = [];
    const ort = await trainFold(data, { ...base, outDir: path.join(tmp, 'alike-ort'), engine: 'ort', onEngine: (l) => lines.push(l) });
    const tfjs = await trainFold(data, { ...base, outDir: path.join(tmp, 'alike-tfjs'), engine: 'tfjs', onEngine: (l) => lines.push(l) });
    assert.match(lines[0], /engine: onnxruntime-node/);
    assert.match(lines[1], /engine: TF\.js/);
    ort.history.forEach((h, i) => {
      const other = tfjs.history[i];
      assert.ok(Math.abs(h.loss - other.loss) < 1e-3 * Math.abs(other.loss), `epoch ${i}: loss ${h.loss} (ort) against ${other.loss} (tfjs)`);
      assert.ok(Math.abs(h.validationPcc! - other.validationPcc!) < 1e-3, `epoch ${i}: validation PCC ${h.validationPcc} against ${other.validationPcc}`);
    });
    const s2 = data.sections.get('S2')!;
    const onOrt = await loadTrainedModel(ort.checkpoint, data, 'ort');
    const onTfjs = await loadTrainedModel(ort.checkpoint, data, 'tfjs');
    try {
      assert.equal(onOrt.model.engine, 'ort');
      assert.equal(onTfjs.model.engine, 'tfjs');
      const a = (await predictSections(onOrt.model, data, [s2])).get('S2')!;
      const b = (await predictSections(onTfjs.model, data, [s2])).get('S2')!;
      assert.ok(relativeError(a, b) < 1e-4, `predictions differ by ${relativeError(a, b)}`);
    } finally {
      await onOrt.model.dispose();
      await onTfjs.model.dispose();
    }
  });

  test('a step that does not fit in memory says which batch and what to lower', async () => {
    const data = syntheticData(2);
    // onnxruntime's allocation failure, as a session reports it when a shape bucket is too large.
    const failing: Executor = {
      kind: 'ort',
      describe: () => 'failing executor',
      compile: () => Promise.resolve({
        buildMs: 0, nodeCount: 0, dispose: () => Promise.resolve(),
        run: () => Promise.reject(new Error('Non-zero status code returned while running MatMul node. Status Message: std::bad_alloc')),
      }),
    };
    const learner = new EngineLearner(config(), failing, 0);
    const picks = [...data.sections.values()][0].spotIds.slice(0, 12).map((_, spot) => ({ section: [...data.sections.values()][0], spot }));
    await assert.rejects(learner.trainBatch(picks, { learningRate: 1e-3, dropoutSeed: 1, augment: mulberry32(1), microBatch: 12 }),
      /a training step over a batch of 12 spots did not fit in memory \(.*bad_alloc\); lower --batch/);
    await learner.dispose();
  });

  test('early stopping keeps the best validation epoch; predictions come from its checkpoint', async () => {
    const data = syntheticData(4);
    const r = await trainFold(data, {
      config: config(), mode: 'frozen', train: ['S0', 'S1'], validation: ['S2'], outDir: path.join(tmp, 'early'), epochs: 30, patience: 2,
      batchSize: 16, learningRate: 3e-2, seed: 1,
    });
    const best = Math.max(...r.history.map((h) => h.validationPcc!));
    assert.equal(r.history[r.bestEpoch].validationPcc, best);
    assert.ok(r.epochsRun <= r.bestEpoch + 3);
    const { model, info } = await loadTrainedModel(r.checkpoint, data);
    try {
      assert.equal(info.epoch, r.bestEpoch + 1);
      const s2 = data.sections.get('S2')!;
      const pred = (await predictSections(model, data, [s2])).get('S2')!;
      assert.ok(Math.abs(slideMetrics(pred, s2.values, s2.n, data.genes).pccM - best) < 1e-4);
    } finally {
      await model.dispose();
    }
  });

  test('mismatches are clear errors: another run in the folder, other genes, another width', async () => {
    const data = syntheticData(3);
    const dir = path.join(tmp, 'mismatch');
    await trainFold(data, { config: config(), mode: 'frozen', train: ['S0'], validation: ['S1'], outDir: dir, epochs: 1, batchSize: 32 });
    await assert.rejects(trainFold(data, { config: config('peg'), mode: 'frozen', train: ['S0'], validation: ['S1'], outDir: dir, epochs: 2, batchSize: 32 }),
      /last\.safetensors is from another run .*another output folder/);
    await assert.rejects(loadTrainedModel(path.join(dir, 'best.safetensors'), { genes: ['G0', 'G1', 'X'], dim: DIM }), /predicts 5 genes, the store has 3 .*same genes/);
    await assert.rejects(loadTrainedModel(path.join(dir, 'best.safetensors'), { genes: data.genes, dim: 32 }), /takes 16-wide features/);
    await assert.rejects(trainFold(data, { config: config(), mode: 'frozen', train: ['S0'], validation: ['S0'], outDir: path.join(tmp, 'x'), epochs: 1 }), /both in training and in validation/);
  });
});
