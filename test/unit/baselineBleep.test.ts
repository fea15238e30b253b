import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { BLEEP_PRESETS, BleepNet, bleepParameterCount, bleepPredictFromRetrieval, bleepPretrainedWeights, type BleepConfig } from '../../src/runtime/baselines/bleep';
import { declareInputs } from '../../src/runtime/baselines/model';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, sizeOf, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { loadStateDict, WeightFileError } from '../../src/runtime/weights/index';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type FileEntry } from './helpers/torchFixtures';

/**
 * BLEEP on the engine against the independent PyTorch reference
 * (scripts/fixtures/torch_bleep_reference.py, float64 from float32-exact weights): parameter names
 * and shapes, the projected image embeddings (inference batch norm), the spot embeddings, the
 * training loss (batch statistics) with the running statistics it leaves, and the gradient of the
 * loss with respect to every parameter and both inputs, within 1e-4 relative (max |diff| /
 * max |ref|): at 32 px on onnxruntime and TF.js, at the demo's 56 px on onnxruntime. Then
 * training steps, the retrieval average and the Ciga checkpoint import.
 */

interface BleepCase {
  config: BleepConfig;
  meta: { batch: number; genes: number };
  param: Record<string, FileEntry>;
  buffer: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
  'grad/input': Record<string, FileEntry>;
  mask: Record<string, FileEntry>;
}

const reference = torchReference('torch_bleep_reference.py');
/** tau1: 32-px crops, τ = 1, on both executors; tau2: the demo's 56-px crops (odd maps: 7 -> 4 -> 2), τ = 2, on onnxruntime (TF.js's cpu convolutions are plain loops). */
const CASES: { name: string; tfjs: boolean }[] = [{ name: 'tau1', tfjs: true }, { name: 'tau2', tfjs: false }];

/**
 * A graph whose ReLUs multiply by masks fed as `mask:<k>` (the k-th call): gradients on the
 * reference's own activation pattern, as in engineResnet18.test.ts (a float32 forward can flip a
 * ReLU whose float64 input is within rounding of 0; the forward outputs use real ReLUs).
 */
class MaskedReluGraph extends Graph {
  private calls = 0;
  override relu(x: Sym): Sym {
    return this.mul(x, this.input(`mask:${this.calls++}`, x.shape));
  }
}

function loadCase(name: string) {
  const dir = reference.dir();
  const c = readIndex<BleepCase>(dir)[name];
  return { c, read: (e: FileEntry) => readTensor(dir, e) };
}

describe('BLEEP on the engine matches PyTorch, forward and backward', { skip: torchSkip }, () => {
  let ort: Executor;
  let tfjs: Executor;
  before(async () => {
    ({ ort, tfjs } = await testExecutors());
  });

  for (const { name, tfjs: onTfjs } of CASES) {
    test(name, async (t) => {
      const { c, read } = loadCase(name);
      const B = c.meta.batch;
      const net = new BleepNet(c.config, { genes: c.meta.genes, featureDim: 0 }, 3);
      assert.deepEqual([...net.table.specs.keys()].sort(), Object.keys(c.param).sort(), 'parameter names');
      for (const [k, e] of Object.entries(c.param)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: PyTorch's layout`);
      assert.deepEqual([...net.initialBuffers().keys()].sort(), Object.keys(c.buffer).sort(), 'buffer names');

      // Forward with real ReLUs: the prediction and retrieval keys (inference), the loss and running statistics (train).
      const g = new Graph('float32');
      const inputs = declareInputs(g, net, B);
      const forward: Record<string, Sym> = {
        image_embedding: net.predict(g, inputs),
        spot_embedding: net.retrieval.embedSpots(g, inputs.truth!),
        loss: net.loss(g, inputs),
      };
      for (const [n, s] of g.bufferUpdates) forward[`buffer/${n}`] = s;
      assert.equal(g.bufferUpdates.size, Object.keys(c.buffer).length, 'every running statistic is updated');

      // Backward on the reference's ReLU pattern: every parameter, the crops and the labels.
      const m = new MaskedReluGraph('float32');
      const mInputs = declareInputs(m, net, B);
      const mLoss = net.loss(m, mInputs);
      const params = m.params();
      const grads = gradients(mLoss, [...params.values(), mInputs.crops!, mInputs.truth!]);
      const backward: Record<string, Sym> = {};
      [...params.keys()].forEach((n, i) => { backward[`grad/param/${n}`] = grads[i]; });
      backward['grad/input/crops'] = grads[params.size];
      backward['grad/input/truth'] = grads[params.size + 1];
      assert.equal(params.size, Object.keys(c['grad/param']).length, 'the loss reaches every parameter');

      const feeds: Record<string, HostArray> = { crops: read(c.input.crops), truth: read(c.input.truth) };
      for (const [k, e] of Object.entries(c.param)) feeds[`param:${k}`] = read(e);
      for (const [k, e] of Object.entries(c.buffer)) feeds[`buffer:${k}`] = read(e);
      const masks: Record<string, HostArray> = {};
      for (const [k, e] of Object.entries(c.mask)) masks[`mask:${k}`] = read(e);

      for (const engine of onTfjs ? [ort, tfjs] : [ort]) {
        const got: Record<string, HostArray> = {};
        for (const [outputs, extra] of [[forward, {}], [backward, masks]] as const) {
          const program = await engine.compile(outputs, `bleep_${name}`);
          Object.assign(got, await program.run({ ...feeds, ...extra }));
          await program.dispose();
        }
        const errors: [string, number][] = [];
        for (const [k, e] of Object.entries(c.output)) errors.push([k, relativeError(got[k] as Float32Array, read(e))]);
        for (const [k, e] of Object.entries(c['grad/param'])) errors.push([`d ${k}`, relativeError(got[`grad/param/${k}`] as Float32Array, read(e))]);
        for (const [k, e] of Object.entries(c['grad/input'])) errors.push([`d input ${k}`, relativeError(got[`grad/input/${k}`] as Float32Array, read(e))]);
        const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
        t.diagnostic(`${engine.kind}: ${errors.length} tensors, worst relative error ${worst[1].toExponential(2)} (${worst[0]})`);
        for (const [k, e] of errors) assert.ok(e < 1e-4, `${engine.kind} ${name}: ${k} differs from PyTorch by ${e}`);
      }
    });
  }

  test('training steps with dropout lower the loss on a fixed batch', async () => {
    const { c, read } = loadCase('tau1');
    const net = new BleepNet({ ...c.config, dropout: 0.1 }, { genes: c.meta.genes, featureDim: 0 }, 1);
    const step = await compileTrainStep(ort, (g) => net.loss(g, declareInputs(g, net, c.meta.batch)), undefined, 'bleep_train');
    const state = { ...initialState(net.table.initialValues()), buffers: net.initialBuffers() };
    const feeds = { crops: read(c.input.crops), truth: read(c.input.truth) };
    const streams = new DropoutStreams();
    const losses: number[] = [];
    for (let i = 0; i < 6; i++) {
      streams.reseed(7, net.table.dropoutLayers); // the same masks every step: one fixed objective
      losses.push(await step.run(state, feeds, 1e-3, streams));
    }
    await step.program.dispose();
    assert.ok(step.graph.dropouts.size === 2, 'one dropout mask per projection head');
    assert.ok(losses.every(Number.isFinite), `losses ${losses.join(', ')}`);
    assert.ok(losses[losses.length - 1] < losses[0] - 0.05, `losses ${losses.map((l) => l.toFixed(4)).join(', ')}`);
  });
});

describe('BLEEP weights from the files users have', { skip: torchSkip }, () => {
  const trunkOf = (c: BleepCase) => [...Object.entries(c.param), ...Object.entries(c.buffer)].filter(([k]) => k.startsWith('image_encoder.'));

  for (const file of ['ciga.ckpt', 'torchvision.pt']) {
    test(`${file}: the trunk under BLEEP's names, fc and other heads ignored`, async () => {
      const { c, read } = loadCase('tau1');
      const sd = await loadStateDict(path.join(reference.dir(), file));
      const weights = bleepPretrainedWeights(sd, file);
      const trunk = trunkOf(c);
      assert.equal(weights.size, trunk.length, '60 parameters and 40 running statistics');
      for (const [k, e] of trunk) assert.deepEqual(weights.get(k), read(e), k);
      // They feed the model as they are: every name is one of its parameters or buffers.
      const net = new BleepNet(c.config, { genes: c.meta.genes, featureDim: 0 });
      const buffers = net.initialBuffers();
      for (const k of weights.keys()) assert.ok(net.table.specs.has(k) || buffers.has(k), k);
    });
  }

  test('a missing or misshapen tensor is an error naming the file and the tensor', async () => {
    const sd = await loadStateDict(path.join(reference.dir(), 'ciga.ckpt'));
    const lacking = new Map(sd);
    lacking.delete('model.resnet.layer2.0.downsample.1.running_var');
    assert.throws(() => bleepPretrainedWeights(lacking, 'tenpercent_resnet18.ckpt'), (e: Error) =>
      e instanceof WeightFileError && e.message.includes('tenpercent_resnet18.ckpt') && e.message.includes('layer2.0.downsample.1.running_var'));
    const misshapen = new Map(sd);
    misshapen.set('model.resnet.conv1.weight', { shape: [64, 3, 3, 3], data: new Float32Array(64 * 27), sourceDtype: 'float32' });
    assert.throws(() => bleepPretrainedWeights(misshapen, 'x.ckpt'), /x\.ckpt: tensor 'conv1\.weight': has shape \[64, 3, 3, 3\]/);
  });
});

describe('BLEEP sizes and retrieval', () => {
  test('the paper preset has the spec §8 count, 12,095,040 for G = 250, and the table agrees', () => {
    assert.equal(bleepParameterCount(BLEEP_PRESETS.paper, 250), 12_095_040);
    const net = new BleepNet(BLEEP_PRESETS.demo, { genes: 250, featureDim: 0 });
    const total = [...net.table.specs.values()].reduce((s, p) => s + sizeOf(p.shape), 0);
    assert.equal(total, bleepParameterCount(BLEEP_PRESETS.demo, 250));
    assert.equal(net.cropSize, 56);
  });

  test('the prediction is the unweighted mean of the k retrieved labels', () => {
    const labels = Float32Array.of(1, 10, 2, 20, 3, 30, 4, 40); // 4 reference spots, G = 2
    const neighbours = Int32Array.of(0, 1, 3, 2, 2, 2); // 2 queries, k = 3
    assert.deepEqual([...bleepPredictFromRetrieval(neighbours, labels, 2, 3)], [7 / 3, 70 / 3, 3, 30].map(Math.fround));
    assert.throws(() => bleepPredictFromRetrieval(Int32Array.of(0, 4), labels, 2, 2), /outside the 4 reference spots/);
    assert.throws(() => bleepPredictFromRetrieval(Int32Array.of(0, 1, 2), labels, 2, 2), /not rows of k = 2/);
  });
});
