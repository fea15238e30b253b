import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { WasmOutOfMemoryError } from '../../src/runtime/compute/wasmOutOfMemory';
import { VARIANTS, activeViews } from '../../src/runtime/models/triplexConfig';
import { Graph, type HostArray } from '../../src/runtime/engine/graph';
import { globalLayout } from '../../src/runtime/models/globalLayout';
import { TriplexNet } from '../../src/runtime/models/triplex';
import { Adam, stepLR } from '../../src/runtime/train/adam';
import { epochBatches, hostBatch, tokenPermutation, type Pick } from '../../src/runtime/train/batches';
import { crossValidate } from '../../src/runtime/train/cv';
import type { Executor } from '../../src/runtime/engine/executor';
import { EngineLearner } from '../../src/runtime/train/engineLearner';
import { loadTrainedModel, predictSections, readCheckpoint, trainFold } from '../../src/runtime/train/trainer';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { relativeError } from './helpers/compare';
import { slideMetrics } from '../../src/runtime/eval/metrics';
import { mulberry32 } from '../../src/runtime/util/random';
import { DIM, GENES, config, syntheticData } from './helpers/trainingData';

/**
 * TRIPLEX on the engine (models/triplex.ts) and its training loop on small in-memory data: every
 * variant's heads and parameters, batching, augmentation, Adam against its formula, learning,
 * repeatable and resumable runs, aborting, leaks, onnxruntime against the engine's TF.js executor
 * (training, checkpoints, a cross-validation), and the errors of mismatched checkpoints.
 */

describe('TRIPLEX model and training', () => {
  let tmp: string;
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-train-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('every variant builds, names its parameters as the PyTorch reference, and gives [B, genes] per head', () => {
    for (const v of VARIANTS) {
      const c = config(v.name);
      const net = new TriplexNet(c, 0);
      const g = new Graph('float32');
      const B = 7;
      const layout = c.views.global ? { tokens: 40, height: 8, width: 8 } : undefined;
      const out = net.forward(g, net.declareInputs(g, B, layout), 'inference');
      const views = activeViews(c);
      for (const head of ['fusion', ...views] as const) assert.deepEqual(out[head]?.shape, [B, GENES], `${v.name}: ${head}`);
      const names = [...net.table.specs.keys()];
      const has = (prefix: string) => names.some((n) => n.startsWith(prefix));
      assert.equal(has('neighbor_encoder.'), c.views.neighbor, `${v.name}: neighbor encoder`);
      assert.equal(has('global_encoder.'), c.views.global, `${v.name}: global encoder`);
      assert.equal(has('global_encoder.peg.'), c.views.global && c.global.positionEncoding !== 'none', `${v.name}: position encoding`);
      assert.equal(names.includes('fc.weight'), views.length > 1, `${v.name}: prediction head`);
      assert.equal(has('fusion_encoder.blocks.'), views.length > 1 && c.fusion.method === 'layer', `${v.name}: fusion layer`);
      for (const view of views) assert.ok(names.includes(`fc_${view}.weight`), `${v.name}: fc_${view}`);
      if (views.length === 1) assert.equal(out.fusion, out[views[0]], `${v.name}: a single-view model predicts with its own head`);
    }
  });

  test('the global token of a spot does not depend on which batch asks for it (both executors)', async () => {
    const data = syntheticData(2);
    const [a, b] = [...data.sections.values()];
    const c = config('gem');
    const net = new TriplexNet(c, 0);
    const params = Object.fromEntries([...net.table.initialValues()].map(([k, v]) => [`param:${k}`, v]));
    /** The fusion head's predictions of `picks` in inference, the batch's slides laid out as training lays them out. */
    const predict = async (executor: Executor, picks: Pick[]) => {
      const h = hostBatch(picks, { views: ['global'], dim: DIM, genes: GENES });
      const layout = globalLayout(h.slides, c.global.positionEncoding, c.global.kernelSize);
      const g = new Graph('float32');
      const fusion = net.forward(g, net.declareInputs(g, picks.length, layout), 'inference').fusion;
      const features = new Float32Array(layout.tokens * DIM);
      h.slides.forEach((s, k) => features.set(s.global!, layout.offsets[k] * DIM));
      const feeds: Record<string, HostArray> = {
        ...params, 'global:features': features, 'global:valid': layout.valid, 'global:keep': layout.keep, 'global:cells': layout.cells,
        'global:rows': BigInt64Array.from(h.globalRows!, BigInt), ...(layout.bias ? { 'global:bias': layout.bias } : {}),
      };
      const program = await executor.compile({ fusion });
      const r = (await program.run(feeds)).fusion as Float32Array;
      await program.dispose();
      return r;
    };
    const ort = await createOrtExecutor({ threads: 1 });
    if ('unavailable' in ort) throw new Error(`onnxruntime-node is needed: ${ort.unavailable}`);
    for (const executor of [ort, createTfjsExecutor()]) {
      // Spot 3 of section b, alone and in a batch drawing from both sections in another order.
      const alone = await predict(executor, [{ section: b, spot: 3 }]);
      const mixed = await predict(executor, [{ section: a, spot: 5 }, { section: b, spot: 3 }, { section: a, spot: 0 }]);
      assert.ok(relativeError(mixed.subarray(GENES, 2 * GENES), alone) < 1e-5, executor.kind);
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

  for (const engine of ['ort', 'tfjs'] as const) {
  test(`${engine}: training learns, leaks no tensors, repeats exactly with the same seed, and resumes where it stopped`, async () => {
    const data = syntheticData(4);
    const base = { config: config(), mode: 'frozen' as const, train: ['S0', 'S1'], validation: ['S2'], batchSize: 16, learningRate: 1e-2, seed: 7, engine };
    const a = await trainFold(data, { ...base, outDir: path.join(tmp, engine, 'a'), epochs: 4 });
    assert.equal(a.epochsRun, 4);
    assert.ok(a.history[3].loss < a.history[0].loss * 0.8, `loss ${a.history.map((h) => h.loss.toFixed(3)).join(' -> ')}`);

    // The same run again: every graph it needs is compiled and cached (the TF.js executor keeps each
    // program's constants as tensors), so any tensor more after an epoch is one leaked.
    const afterA = tf.memory().numTensors;
    const counts: number[] = [];
    const b = await trainFold(data, { ...base, outDir: path.join(tmp, engine, 'b'), epochs: 4, onProgress: (e) => { if (e.kind === 'epoch') counts.push(tf.memory().numTensors); } });
    assert.deepEqual(counts, [afterA, afterA, afterA, afterA], `tensors after each epoch: ${counts.join(', ')}, ${afterA} before`);
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

  test('onnxruntime and the engine\'s TF.js executor train alike: same start, same batches, same dropout masks; a checkpoint of one predicts on the other', async () => {
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

  test('a cross-validation gives the same PCC(M) on onnxruntime and on the engine\'s TF.js executor (within 0.01)', async (t) => {
    const data = syntheticData(4);
    const pcc: Record<string, number> = {};
    const lines: string[] = [];
    const saved = process.env.TRIPLEX_ENGINE;
    try {
      for (const engine of ['ort', 'tfjs']) {
        process.env.TRIPLEX_ENGINE = engine; // cv trains and predicts on the engine the environment names
        const r = await crossValidate({
          storeDir: path.join(tmp, 'cv-store'), outDir: path.join(tmp, `cv-${engine}`), data, preset: 'demo', epochs: 4, batchSize: 16, learningRate: 1e-2, seed: 2, onlyFolds: [0, 1],
          log: (l) => { if (l.startsWith('engine:')) lines.push(l); },
        });
        assert.equal(r.folds.length, 2);
        pcc[engine] = r.evaluation.summary.pccM.mean;
      }
    } finally {
      if (saved === undefined) delete process.env.TRIPLEX_ENGINE;
      else process.env.TRIPLEX_ENGINE = saved;
    }
    assert.match(lines[0], /engine: onnxruntime-node/);
    assert.match(lines[1], /engine: TF\.js \(tfjs asked for by TRIPLEX_ENGINE\); TRIPLEX runs its engine graphs on the TF\.js interpreter/);
    t.diagnostic(`PCC(M) ${pcc.ort} on onnxruntime, ${pcc.tfjs} on TF.js`);
    assert.ok(pcc.ort > 0.2, `the model learns: PCC(M) ${pcc.ort}`);
    assert.ok(Math.abs(pcc.ort - pcc.tfjs) < 0.01, `PCC(M) ${pcc.ort} on onnxruntime, ${pcc.tfjs} on TF.js`);
  });

  test('a step that does not fit in memory says which batch and what to lower, on either executor', async () => {
    const data = syntheticData(2);
    // What each executor reports when a shape bucket is too large: onnxruntime's allocation failure; the
    // wasm heap (4 GB) exhausted under the TF.js executor, as a kernel's access out of bounds or XNNPACK's status.
    const failures: [Executor['kind'], Error][] = [
      ['ort', new Error('Non-zero status code returned while running MatMul node. Status Message: std::bad_alloc')],
      ['tfjs', new WebAssembly.RuntimeError('memory access out of bounds')],
      ['tfjs', new WebAssembly.RuntimeError('Aborted(). Build with -sASSERTIONS for more info.')],
      ['tfjs', new WasmOutOfMemoryError('XNN status for xnn_create_fully_connected_nc_f32 is not successful. Got status 6.')],
    ];
    for (const [i, [kind, error]] of failures.entries()) {
      const failing: Executor = {
        kind,
        describe: () => `failing executor ${i}`, // compiled programs are cached by executor: one each
        compile: () => Promise.resolve({ buildMs: 0, nodeCount: 0, dispose: () => Promise.resolve(), run: () => Promise.reject(error) }),
      };
      const learner = new EngineLearner(config(), failing, 0);
      const picks = [...data.sections.values()][0].spotIds.slice(0, 12).map((_, spot) => ({ section: [...data.sections.values()][0], spot }));
      await assert.rejects(learner.trainBatch(picks, { learningRate: 1e-3, dropoutSeed: 1, augment: mulberry32(1) }),
        (e: Error) => /^a training step over a batch of 12 spots did not fit in memory \(.+\); lower --batch$/.test(e.message) && e.message.includes(error.message.split('\n')[0]), `${kind}: ${error.message}`);
      await learner.dispose();
    }
    // Other failures pass unchanged.
    const other = new Error('TF.js engine: no lowering for op frobnicate');
    const broken: Executor = { kind: 'tfjs', describe: () => 'broken', compile: () => Promise.resolve({ buildMs: 0, nodeCount: 0, dispose: () => Promise.resolve(), run: () => Promise.reject(other) }) };
    const picks = [...data.sections.values()][0].spotIds.slice(0, 4).map((_, spot) => ({ section: [...data.sections.values()][0], spot }));
    await assert.rejects(new EngineLearner(config(), broken, 0).trainBatch(picks, { learningRate: 1e-3, dropoutSeed: 1, augment: mulberry32(1) }), (e) => e === other);
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
