import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { test } from 'node:test';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import { initCompute } from '../../src/runtime/compute/backend';
import { Graph } from '../../src/runtime/engine/graph';
import type { Executor } from '../../src/runtime/engine/executor';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { triplexConfig } from '../../src/runtime/models/triplexConfig';
import { globalLayout } from '../../src/runtime/models/globalLayout';
import { TriplexNet } from '../../src/runtime/models/triplex';
import { spotGrid } from '../../src/runtime/models/spotGrid';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { EGN_PRESETS, EgnNet } from '../../src/runtime/baselines/egn';
import { HISTOGENE_PRESETS, HisToGeneNet } from '../../src/runtime/baselines/histogene';
import { BaselineLearner } from '../../src/runtime/train/baselineLearner';
import type { SectionInputs } from '../../src/runtime/train/data';

/** A small TRIPLEX's training step on `executor`: one batch of 8 spots from a 20-spot slide, its feeds and a fresh state. */
async function smallTriplexStep(executor: Executor, seed: number) {
  const dim = 16;
  const genes = 5;
  const B = 8;
  const net = new TriplexNet(triplexConfig({ preset: 'demo', genes, dim }), 1);
  const rows = Array.from({ length: 20 }, (_, i) => Math.floor(i / 5));
  const cols = Array.from({ length: 20 }, (_, i) => i % 5);
  const layout = globalLayout([{ n: 20, grid: spotGrid(rows, cols) }], 'apeg');
  const step = await compileTrainStep(executor, (g) => {
    const inputs = net.declareInputs(g, B, layout);
    return net.loss(g, net.forward(g, inputs, 'train'), g.input('truth', [B, genes]));
  });
  const random = mulberry32(seed);
  const features = new Float32Array(layout.tokens * dim);
  features.set(normal(random, 20 * dim));
  const feeds = {
    target: normal(random, B * 49 * dim), neighbors: normal(random, B * 25 * dim), mask: new Float32Array(B * 25).fill(1),
    truth: normal(random, B * genes), 'global:features': features, 'global:valid': layout.valid, 'global:keep': layout.keep, 'global:cells': layout.cells,
    'global:rows': BigInt64Array.from({ length: B }, (_, i) => BigInt(i)),
  };
  return { net, layout, step, feeds, B, genes, state: initialState(net.table.initialValues()), streams: new DropoutStreams() };
}

/**
 * 1,000 training steps of a small TRIPLEX on onnxruntime: resident memory must not grow. RSS is
 * sampled (not timed): the median of steps 200-300 against that of steps 900-1000, which lets
 * the garbage collector's swings in and still fails a leak of a few tensors per step (each step
 * moves every parameter, moment and activation, about 1.5 MB here, through onnxruntime).
 */
test('no growth of resident memory over 1,000 training steps on onnxruntime', async () => {
  const ort = await createOrtExecutor({ threads: 1 });
  if ('unavailable' in ort) throw new Error(`onnxruntime-node is needed: ${ort.unavailable}`);
  const { net, step, feeds, state, streams } = await smallTriplexStep(ort, 2);
  const rss: number[] = [];
  for (let i = 0; i < 1000; i++) {
    streams.reseed(i, net.table.dropoutLayers);
    const loss = await step.run(state, feeds, 1e-3, streams);
    assert.ok(Number.isFinite(loss), `step ${i}: loss ${loss}`);
    rss.push(process.memoryUsage().rss);
  }
  await step.program.dispose();
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const early = median(rss.slice(200, 300));
  const late = median(rss.slice(900, 1000));
  const growthMiB = (late - early) / 2 ** 20;
  assert.ok(growthMiB < 40, `resident memory grew by ${growthMiB.toFixed(1)} MiB from steps 200-300 to 900-1000`);
});

/**
 * The baselines' learner, which assembles every step's inputs on the host (crops downsampled and
 * flipped, positions, exemplars from the reference pool): 600 steps of a small HisToGene (a
 * whole section per step) and of a small EGN (spots with exemplars), resident memory sampled.
 */
test('no growth of resident memory over 600 baseline training steps (section and spot models)', async () => {
  const ort = await createOrtExecutor({ threads: 1 });
  if ('unavailable' in ort) throw new Error(`onnxruntime-node is needed: ${ort.unavailable}`);
  const genes = 5;
  const dims = { genes, featureDim: 6 };
  const random = mulberry32(3);
  const section = (id: string, patient: string): SectionInputs => {
    const n = 12;
    const rows = Array.from({ length: n }, (_, i) => Math.floor(i / 4));
    const cols = Array.from({ length: n }, (_, i) => i % 4);
    return {
      id, patient, n, spotIds: rows.map((_, i) => `${id}-${i}`), storeRows: [], grid: spotGrid(rows, cols),
      values: normal(random, n * genes), global: normal(random, n * dims.featureDim),
      crops: Uint8Array.from({ length: n * 224 * 224 * 3 }, () => Math.floor(random() * 256)),
    };
  };
  const sections = [section('a', 'A'), section('b', 'B'), section('c', 'C')];
  const data = { storeDir: '', featuresDir: '', genes: Array.from({ length: genes }, (_, i) => `g${i}`), hasCounts: true, dim: dims.featureDim, sections: new Map(sections.map((s) => [s.id, s])) };
  const nets = {
    histogene: new HisToGeneNet({ ...HISTOGENE_PRESETS.demo, cropSize: 16, dim: 16, depth: 1, heads: 2, dimHead: 8, mlpDim: 32 }, dims, 1),
    egn: new EgnNet({ ...EGN_PRESETS.demo, cropSize: 28, patchSize: 4, dim: 16, depth: 2, heads: 2, headDim: 8, mlpDim: 32, bridgeHeads: 2, bridgeHeadDim: 8, exemplars: 3 }, dims, 1),
  };
  for (const [name, net] of Object.entries(nets)) {
    const learner = new BaselineLearner(net, ort);
    await learner.prepare(data, sections, []);
    const augment = mulberry32(4);
    const rss: number[] = [];
    for (let i = 0; i < 600; i++) {
      const s = sections[i % 3];
      const picks = net.unit === 'section'
        ? Array.from({ length: s.n }, (_, spot) => ({ section: s, spot }))
        : Array.from({ length: 8 }, (_, k) => ({ section: sections[(i + k) % 3], spot: (i * 5 + k) % 12 })).sort((x, y) => x.section.id.localeCompare(y.section.id));
      const loss = await learner.trainBatch(picks, { learningRate: 1e-3, dropoutSeed: i, augment });
      assert.ok(Number.isFinite(loss), `${name} step ${i}: loss ${loss}`);
      rss.push(process.memoryUsage().rss);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const growthMiB = (median(rss.slice(500, 600)) - median(rss.slice(100, 200))) / 2 ** 20;
    assert.ok(growthMiB < 40, `${name}: resident memory grew by ${growthMiB.toFixed(1)} MiB from steps 100-200 to 500-600`);
  }
});

/**
 * The TF.js executor frees every intermediate at its last use and hands back host arrays: after
 * each of 30 training steps of a small TRIPLEX (and after predictions), TF.js holds exactly the
 * tensors it held before the first (the program's constants), so nothing accumulates per step.
 */
test('the TF.js executor leaves no tensor behind over training steps and predictions', async () => {
  await initCompute({ backend: 'cpu' });
  const tfjs = createTfjsExecutor();
  const before = tf.memory().numTensors;
  const { net, layout, step, feeds, B, genes, state, streams } = await smallTriplexStep(tfjs, 5);
  const held = tf.memory().numTensors;
  const losses: number[] = [];
  for (let i = 0; i < 30; i++) {
    streams.reseed(i, net.table.dropoutLayers);
    losses.push(await step.run(state, feeds, 1e-3, streams));
    assert.equal(tf.memory().numTensors, held, `step ${i}: TF.js holds ${tf.memory().numTensors} tensors, ${held} before the first step`);
  }
  assert.ok(losses.every(Number.isFinite) && losses[29] < losses[0], `the loss should fall on one repeated batch: ${losses[0]} -> ${losses[29]}`);
  const predict = await tfjs.compile((() => {
    const g = new Graph('float32');
    return { fusion: net.forward(g, net.declareInputs(g, B, layout), 'inference').fusion };
  })());
  const heldWithPredict = tf.memory().numTensors;
  const params = Object.fromEntries([...state.params].map(([n, p]) => [`param:${n}`, p]));
  for (let i = 0; i < 3; i++) {
    const { fusion } = await predict.run({ ...feeds, ...params });
    assert.equal(fusion.length, B * genes);
    assert.equal(tf.memory().numTensors, heldWithPredict, `prediction ${i} left tensors behind`);
  }
  await step.program.dispose();
  await predict.dispose();
  assert.equal(tf.memory().numTensors, before, 'disposing the programs frees their constants');
});
