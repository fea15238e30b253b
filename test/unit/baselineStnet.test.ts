import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { declareInputs } from '../../src/runtime/baselines/model';
import { StNet, STNET_PRESETS, stnetParameterCount, stnetPretrainedWeights, type StNetConfig } from '../../src/runtime/baselines/stnet';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { DENSENET121, DenseNetTrunk } from '../../src/runtime/models/densenet121';
import { mulberry32 } from '../../src/runtime/util/random';
import { loadStateDict, WeightFileError } from '../../src/runtime/weights';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type FileEntry } from './helpers/torchFixtures';

/**
 * ST-Net on the engine against the PyTorch reference (scripts/fixtures/torch_stnet_reference.py:
 * torchvision's own DenseNet class plus the spec's head): on two small DenseNets, the eval-mode
 * prediction, the train-mode MSE loss, every parameter's gradient and the running statistics after
 * the step, on onnxruntime and TF.js; torchvision's densenet121 loaded from a torch.save .pth
 * through the weight import, forward on onnxruntime; old-style Lightning checkpoints; the spec's
 * parameter count; and a few Adam steps lowering the loss. Every tensor within 1e-4 relative.
 */

interface StNetCase {
  config: StNetConfig;
  meta: { n: number; genes: number };
  param?: Record<string, FileEntry>;
  buffer?: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param'?: Record<string, FileEntry>;
  train_buffer?: Record<string, FileEntry>;
}

const reference = torchReference('torch_stnet_reference.py');
const cases = () => readIndex<StNetCase>(reference.dir());
const read = (e: FileEntry) => readTensor(reference.dir(), e);
const readAll = (group: Record<string, FileEntry> = {}) => new Map(Object.entries(group).map(([k, e]) => [k, read(e)]));

/** Runs `outputs` on `executor` and returns every output, by name. */
async function run(executor: Executor, outputs: Record<string, Sym>, feeds: Record<string, HostArray>, name: string): Promise<Record<string, Float32Array>> {
  const program = await executor.compile(outputs, name);
  const r = await program.run(feeds);
  await program.dispose();
  return r as Record<string, Float32Array>;
}

/** The worst of named (ours, reference) pairs, reported and held to 1e-4. */
function checkAll(t: { diagnostic(s: string): void }, label: string, pairs: [string, Float32Array, Float32Array][]) {
  const errors = pairs.map(([k, ours, ref]) => [k, relativeError(ours, ref)] as const);
  const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
  t.diagnostic(`${label}: ${errors.length} tensors, worst relative error ${worst[1].toExponential(2)} (${worst[0]})`);
  for (const [k, e] of errors) assert.ok(e < 1e-4, `${label}: ${k} differs from PyTorch by ${e}`);
}

test('parameter counts: the paper preset has the spec\'s 7,210,106 for 250 genes (§8)', (t) => {
  assert.equal(new DenseNetTrunk(DENSENET121).parameterCount(), 6_953_856, 'DenseNet-121 features');
  assert.equal(new DenseNetTrunk(DENSENET121).outFeatures, 1024);
  assert.equal(stnetParameterCount(STNET_PRESETS.paper, 250), 7_210_106);
  const demo = new StNet(STNET_PRESETS.demo, { genes: 250, featureDim: 0 });
  const allocated = [...demo.table.specs.values()].reduce((n, s) => n + s.init.length, 0);
  assert.equal(stnetParameterCount(STNET_PRESETS.demo, 250), allocated, 'the count from shapes is the table\'s');
  t.diagnostic(`demo preset: ${allocated} parameters (trunk ${demo.trunk.parameterCount()}, ${demo.trunk.outFeatures} features)`);
});

test('initialisation is torchvision\'s: Kaiming-normal fan-in convolutions, batch norm 1 and 0, classifier U(+-1/sqrt(C))', () => {
  const net = new StNet(STNET_PRESETS.demo, { genes: 7, featureDim: 0 }, 3);
  const init = net.table.initialValues();
  const w = init.get('features.denseblock3.denselayer2.conv1.weight')!; // [48, 32 + 12, 1, 1]
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length);
  assert.ok(Math.abs(std - Math.sqrt(2 / 44)) < 0.1 * Math.sqrt(2 / 44), `std ${std}`);
  assert.ok(init.get('features.norm5.weight')!.every((v) => v === 1));
  assert.ok(init.get('features.transition2.norm.bias')!.every((v) => v === 0));
  const bound = 1 / Math.sqrt(net.trunk.outFeatures);
  const b = init.get('classifier.bias')!;
  assert.ok(b.every((v) => Math.abs(v) <= bound) && b.some((v) => v !== 0), 'PyTorch\'s default Linear bias');
  const buffers = net.initialBuffers();
  assert.equal(buffers.size, 2 * [...net.table.specs.keys()].filter((k) => k.endsWith('.bias') && k.startsWith('features.')).length);
  assert.ok(buffers.get('features.norm0.running_var')!.every((v) => v === 1));
  assert.deepEqual(new StNet(STNET_PRESETS.demo, { genes: 7, featureDim: 0 }, 3).table.initialValues(), init, 'a seed gives the same start');
});

describe('ST-Net on the engine matches PyTorch', { skip: torchSkip }, () => {
  let ort: Executor;
  let tfjs: Executor;
  before(async () => ({ ort, tfjs } = await testExecutors()));

  for (const name of ['small72', 'small64']) {
    test(`${name}: names, eval prediction, train loss, every gradient and the running statistics, on both executors`, async (t) => {
      const c = cases()[name];
      const net = new StNet(c.config, { genes: c.meta.genes, featureDim: 0 }, 1);
      assert.deepEqual([...net.table.specs.keys()].sort(), Object.keys(c.param!).sort(), 'parameter names');
      for (const [k, e] of Object.entries(c.param!)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: torchvision's layout`);
      assert.deepEqual([...net.initialBuffers().keys()].sort(), Object.keys(c.buffer!).sort(), 'buffer names');

      const params = readAll(c.param);
      const feeds: Record<string, HostArray> = { crops: read(c.input.crops), truth: read(c.input.truth) };
      for (const [k, v] of params) feeds[`param:${k}`] = v;
      for (const [k, v] of readAll(c.buffer)) feeds[`buffer:${k}`] = v;

      const inference = new Graph('float32');
      const pred = net.predict(inference, declareInputs(inference, net, c.meta.n));
      const training = new Graph('float32');
      const loss = net.loss(training, declareInputs(training, net, c.meta.n));
      const trained = training.params();
      const grads = gradients(loss, [...trained.values()]);
      const outputs: Record<string, Sym> = { loss };
      [...trained.keys()].forEach((k, i) => { outputs[`d:${k}`] = grads[i]; });
      for (const [k, s] of training.bufferUpdates) outputs[`buf:${k}`] = s;
      assert.equal(trained.size, params.size, 'the loss reads every parameter');
      assert.equal(training.bufferUpdates.size, Object.keys(c.buffer!).length, 'every running statistic is updated');

      for (const executor of [ort, tfjs]) {
        const started = Date.now();
        const p = await run(executor, { pred }, feeds, `stnet_${name}_predict`);
        const r = await run(executor, outputs, feeds, `stnet_${name}_loss`);
        checkAll(t, `${executor.kind} ${name} (${Date.now() - started} ms)`, [
          ['pred', p.pred, read(c.output.pred)],
          ['loss', r.loss, read(c.output.loss)],
          ...Object.entries(c['grad/param']!).map(([k, e]) => [`d ${k}`, r[`d:${k}`], read(e)] as [string, Float32Array, Float32Array]),
          ...Object.entries(c.train_buffer!).map(([k, e]) => [`new ${k}`, r[`buf:${k}`], read(e)] as [string, Float32Array, Float32Array]),
        ]);
      }
    });
  }

  test('torchvision densenet121 from a torch.save .pth: names load one to one, forward at 64 px on onnxruntime', async (t) => {
    const c = cases().full;
    const file = path.join(reference.dir(), 'full.pth');
    const sd = await loadStateDict(file);
    const trunk = stnetPretrainedWeights(sd, file);
    const net = new StNet({ ...STNET_PRESETS.paper, cropSize: 64 }, { genes: 250, featureDim: 0 }, 2);
    const ours = [...net.table.specs.keys(), ...net.initialBuffers().keys()].sort();
    assert.deepEqual(ours, [...sd.keys()].filter((k) => !k.endsWith('num_batches_tracked')).sort(), 'every tensor of the state dict, by name');
    assert.equal(trunk.size, ours.length - 2, 'the import takes the trunk, not the ImageNet classifier');

    const feeds: Record<string, HostArray> = { crops: read(c.input.crops), truth: read(c.input.truth) };
    for (const [k, v] of trunk) feeds[`${k.includes('running') ? 'buffer' : 'param'}:${k}`] = v;
    for (const k of ['classifier.weight', 'classifier.bias']) feeds[`param:${k}`] = sd.get(k)!.data;
    const inference = new Graph('float32');
    const pred = net.predict(inference, declareInputs(inference, net, c.meta.n));
    const training = new Graph('float32');
    const loss = net.loss(training, declareInputs(training, net, c.meta.n));
    const started = Date.now();
    const p = await run(ort, { pred }, feeds, 'stnet_full_predict');
    const r = await run(ort, { loss }, feeds, 'stnet_full_loss');
    t.diagnostic(`compile and run of both graphs: ${Date.now() - started} ms`);
    checkAll(t, 'onnxruntime densenet121', [['pred', p.pred, read(c.output.pred)], ['loss', r.loss, read(c.output.loss)]]);
  });

  test('an old-style Lightning checkpoint (model.model. prefix, dense layers named norm.1, conv.2) imports under torchvision\'s names', async () => {
    const c = cases().small72;
    const file = path.join(reference.dir(), 'small72_lightning.ckpt');
    const sd = await loadStateDict(file);
    assert.ok([...sd.keys()].some((k) => k.includes('denselayer1.norm.1.')), 'the fixture holds old names');
    const got = stnetPretrainedWeights(sd, file, c.config);
    const want = new Map([...readAll(c.param), ...readAll(c.buffer)].filter(([k]) => k.startsWith('features.')));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, v] of want) assert.deepEqual(got.get(k), v, k);

    const lacking = new Map(sd);
    lacking.delete('model.model.features.denseblock2.denselayer1.conv.2.weight');
    assert.throws(() => stnetPretrainedWeights(lacking, file, c.config), (e: unknown) =>
      e instanceof WeightFileError && e.message.includes(file) && e.message.includes('features.denseblock2.denselayer1.conv2.weight'));
    assert.throws(() => stnetPretrainedWeights(sd, file), (e: unknown) => e instanceof WeightFileError && /has shape/.test(e.message), 'a DenseNet of other widths is refused');
  });
});

test('a few Adam steps on a fixed batch lower the loss and move the running statistics', async (t) => {
  const { ort } = await testExecutors();
  const config: StNetConfig = { growthRate: 8, blockConfig: [2, 2, 2, 2], initFeatures: 16, bnSize: 4, cropSize: 32 };
  const net = new StNet(config, { genes: 6, featureDim: 0 }, 4);
  const n = 4;
  const random = mulberry32(9);
  const crops = Float32Array.from({ length: n * 32 * 32 * 3 }, () => 255 * random());
  const truth = Float32Array.from({ length: n * 6 }, () => 2 * random());
  const step = await compileTrainStep(ort, (g) => net.loss(g, declareInputs(g, net, n)), undefined, 'stnet_train_step');
  const state = { ...initialState(net.table.initialValues()), buffers: net.initialBuffers() };
  const losses: number[] = [];
  for (let i = 0; i < 8; i++) losses.push(await step.run(state, { crops, truth }, 1e-2, new DropoutStreams()));
  await step.program.dispose();
  t.diagnostic(`losses ${losses.map((l) => l.toFixed(4)).join(' ')}`);
  assert.ok(losses.every(Number.isFinite));
  assert.ok(losses[losses.length - 1] < 0.5 * losses[0], 'the loss falls');
  assert.ok(state.buffers.get('features.norm5.running_mean')!.some((v) => v !== 0), 'running statistics updated');
});
