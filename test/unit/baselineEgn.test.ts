import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { EGN_PRESETS, EgnNet, egnParameterCount, egnParameterShapes, type EgnConfig } from '../../src/runtime/baselines/egn';
import { declareInputs, type InputName } from '../../src/runtime/baselines/model';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { mulberry32 } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';
import { torchReference, torchSkip } from './helpers/torch';
import { readTensor, type FileEntry } from './helpers/torchFixtures';

/**
 * EGN on the engine against the independent PyTorch reference (scripts/fixtures/torch_egn_reference.py):
 * parameter names and shapes, the clamped prediction, the raw output, the loss (MSE + 0.5 (1 - PCC)
 * on the raw output) and the gradient of the loss with respect to every parameter and float input,
 * on onnxruntime and on TF.js, within 1e-4 relative; the paper preset's parameter count against
 * PyTorch's; a batch of one (constant columns) gives finite gradients; Adam steps lower the loss.
 */

interface EgnCase {
  config: EgnConfig;
  meta: { batch: number; genes: number; featureDim: number };
  param: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
  'grad/input': Record<string, FileEntry>;
}
interface EgnIndex { cases: Record<string, EgnCase>; paperParameterCount: number }

const reference = torchReference('torch_egn_reference.py');
const readIndex = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as EgnIndex;
const FLOAT_INPUTS: InputName[] = ['crops', 'own', 'exemplars', 'exemplarTargets'];

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

describe('EGN on the engine matches PyTorch, forward and backward', { skip: torchSkip }, () => {
  for (const name of ['tiny', 'grid3']) {
    test(name, async (t) => {
      const dir = reference.dir();
      const c = readIndex(dir).cases[name];
      const read = (e: FileEntry) => readTensor(dir, e);
      const net = new EgnNet(c.config, { genes: c.meta.genes, featureDim: c.meta.featureDim }, 3);
      assert.deepEqual([...net.table.specs.keys()].sort(), Object.keys(c.param).sort(), 'parameter names');
      for (const [k, e] of Object.entries(c.param)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: PyTorch's layout`);

      const g = new Graph('float32');
      const inputs = declareInputs(g, net, c.meta.batch);
      const outputs: Record<string, Sym> = { prediction: net.predict(g, inputs), output: net.forward(g, inputs) };
      const loss = net.loss(g, inputs);
      outputs.loss = loss;
      const params = g.params();
      const paramNames = Object.keys(c['grad/param']);
      const grads = gradients(loss, [...paramNames.map((n) => params.get(n)!), ...FLOAT_INPUTS.map((k) => inputs[k]!)]);
      paramNames.forEach((n, i) => { outputs[`d:${n}`] = grads[i]; });
      FLOAT_INPUTS.forEach((k, i) => { outputs[`dx:${k}`] = grads[paramNames.length + i]; });

      const feeds: Record<string, HostArray> = {};
      for (const k of net.needs) feeds[k] = read(c.input[k]);
      for (const [k, e] of Object.entries(c.param)) feeds[`param:${k}`] = read(e);
      for (const engine of engines) {
        const program = await engine.compile(outputs, `egn_${name}`);
        const r = await program.run(feeds);
        await program.dispose();
        const errors: [string, number][] = Object.entries(c.output).map(([k, e]) => [k, relativeError(r[k] as Float32Array, read(e))]);
        for (const n of paramNames) errors.push([`d ${n}`, relativeError(r[`d:${n}`] as Float32Array, read(c['grad/param'][n]))]);
        for (const k of FLOAT_INPUTS) errors.push([`d input ${k}`, relativeError(r[`dx:${k}`] as Float32Array, read(c['grad/input'][k]))]);
        const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
        t.diagnostic(`${engine.kind}: ${errors.length} tensors, worst ${worst[1].toExponential(2)} (${worst[0]})`);
        for (const [k, e] of errors) assert.ok(e < 1e-4, `${engine.kind} ${name}: ${k} differs from PyTorch by ${e}`);
      }
    });
  }

  test('the paper preset has PyTorch\'s parameter count (D = 512, G = 250), counted without weights', () => {
    const dims = { genes: 250, featureDim: 512 };
    const count = egnParameterCount(EGN_PRESETS.paper, dims);
    assert.equal(count, readIndex(reference.dir()).paperParameterCount);
    // The spec's §8 says 224,783,738: 2,099,200 fewer, one Linear(1024, 1024) per projector block
    // (T's FeedForward(dim, dim) has two); 16 ViT layers 134.3 M and 8 bridges 82.0 M agree.
    assert.equal(count, 226_882_938);
    const shapes = egnParameterShapes(EGN_PRESETS.paper, dims);
    assert.deepEqual(shapes.get('transformer.layers.1.1.to_k.1.weight'), [7 * 7 * 16, 1024]);
    assert.deepEqual(shapes.get('pos_embedding'), [1, 50, 1024]);
  });
});

/** A fixed random batch of n spots for a config: feeds of every input the model needs. */
function batch(net: EgnNet, n: number, seed: number): Record<string, Float32Array> {
  const rand = mulberry32(seed);
  const { genes: G, featureDim: D } = net.dims;
  const K = net.exemplarCount;
  const S = net.cropSize;
  const fill = (size: number, scale: number) => Float32Array.from({ length: size }, () => rand() * scale);
  return { crops: fill(n * S * S * 3, 255), own: fill(n * D, 1), exemplars: fill(n * K * D, 1), exemplarTargets: fill(n * K * G, 3), truth: fill(n * G, 3) };
}

const SMALL: EgnConfig = { cropSize: 28, patchSize: 4, dim: 16, depth: 2, heads: 2, headDim: 8, mlpDim: 32, bridgeHeads: 2, bridgeHeadDim: 8, bridgeEvery: 2, projectorDepth: 1, exemplars: 3 };

describe('EGN trains', () => {
  test('a batch of one (every column constant) gives a finite loss and finite gradients', async () => {
    const net = new EgnNet(SMALL, { genes: 5, featureDim: 6 }, 1);
    const g = new Graph('float32');
    const loss = net.loss(g, declareInputs(g, net, 1));
    const params = g.params();
    const grads = gradients(loss, [...params.values()]);
    const outputs: Record<string, Sym> = { loss };
    [...params.keys()].forEach((n, i) => { outputs[n] = grads[i]; });
    const program = await engines[0].compile(outputs, 'egn_single');
    const feeds: Record<string, HostArray> = { ...batch(net, 1, 5) };
    for (const [n, v] of net.table.initialValues()) feeds[`param:${n}`] = v;
    const r = await program.run(feeds);
    await program.dispose();
    for (const [k, v] of Object.entries(r)) assert.ok((v as Float32Array).every(Number.isFinite), `${k} is finite`);
    // r = 0 for every gene, so the loss is MSE + 0.5.
    assert.ok(Number(r.loss[0]) > 0.5);
  });

  test('Adam steps on onnxruntime lower the loss on a fixed batch', async () => {
    const net = new EgnNet(SMALL, { genes: 5, featureDim: 6 }, 2);
    const n = 8;
    const step = await compileTrainStep(engines[0], (g) => net.loss(g, declareInputs(g, net, n)), undefined, 'egn_step');
    const state = initialState(net.table.initialValues());
    const feeds = batch(net, n, 9);
    const losses: number[] = [];
    for (let i = 0; i < 15; i++) losses.push(await step.run(state, feeds, 3e-3, new DropoutStreams()));
    await step.program.dispose();
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses[0].toFixed(3)} -> ${losses[losses.length - 1].toFixed(3)}`);
  });

  test('the demo preset builds, and its settings are checked', () => {
    const dims = { genes: 250, featureDim: 512 };
    const net = new EgnNet(EGN_PRESETS.demo, dims);
    assert.equal(net.grid, 7);
    assert.equal(egnParameterCount(EGN_PRESETS.demo, dims), [...net.table.specs.values()].reduce((s, p) => s + p.init.length, 0));
    assert.throws(() => new EgnNet({ ...EGN_PRESETS.demo, patchSize: 15 }, dims), /whole patches/);
    assert.throws(() => new EgnNet(EGN_PRESETS.demo, { genes: 250, featureDim: 0 }), /no frozen global features/);
  });
});
