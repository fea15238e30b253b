import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { HISTOGENE_PRESETS, HisToGeneNet, histogeneParameterCount, histogenePositionsFit, type HistogeneConfig } from '../../src/runtime/baselines/histogene';
import { declareInputs } from '../../src/runtime/baselines/model';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { mulberry32 } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type FileEntry } from './helpers/torchFixtures';

/**
 * HisToGene on the engine against an independent PyTorch reference of the original pixel model
 * (scripts/fixtures/torch_histogene_reference.py, which cuts its patches the way the original's
 * dataset does): parameter names and shapes, prediction, loss, the gradient of the loss with
 * respect to every parameter and to the crops, on onnxruntime and TF.js, within 1e-4 relative;
 * parameter counts against the spec's §8; a few Adam steps lowering the loss.
 */

interface HistogeneCase {
  config: HistogeneConfig;
  meta: { spots: number; genes: number };
  param: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
  'grad/input': Record<string, FileEntry>;
}

const reference = torchReference('torch_histogene_reference.py');
const toInt64 = (v: Float32Array) => BigInt64Array.from(v, (x) => BigInt(x));

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

describe('HisToGene on the engine matches PyTorch, forward and backward', { skip: torchSkip }, () => {
  for (const name of ['base', 'inner_width', 'one_head']) {
    test(name, async (t) => {
      const dir = reference.dir();
      const c = readIndex<HistogeneCase>(dir)[name];
      const read = (e: FileEntry) => readTensor(dir, e);
      const net = new HisToGeneNet(c.config, { genes: c.meta.genes, featureDim: 0 }, 7);
      assert.deepEqual([...net.table.specs.keys()], Object.keys(c.param), 'parameter names, in PyTorch\'s order');
      for (const [k, e] of Object.entries(c.param)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: PyTorch's layout`);

      // The prediction from an inference graph, the loss and its gradients from a training graph
      // (dropout 0 here, so the two modes compute the same function).
      const g = new Graph('float32');
      const inputs = declareInputs(g, net, c.meta.spots);
      const pred = net.predict(g, inputs);
      const lossGraph = new Graph('float32');
      const lossInputs = declareInputs(lossGraph, net, c.meta.spots);
      const loss = net.loss(lossGraph, lossInputs);
      assert.equal(lossGraph.dropouts.size, 0, 'no masks at rate 0');
      const names = [...lossGraph.params().keys()];
      const grads = gradients(loss, [...names.map((n) => lossGraph.params().get(n) as Sym), lossInputs.crops as Sym]);
      const gradOutputs: Record<string, Sym> = { loss, 'dx:crops': grads[names.length] };
      names.forEach((n, i) => { gradOutputs[`d:${n}`] = grads[i]; });

      const feeds: Record<string, HostArray> = {
        crops: read(c.input.crops), rows: toInt64(read(c.input.rows)), cols: toInt64(read(c.input.cols)), truth: read(c.input.truth),
      };
      for (const [k, e] of Object.entries(c.param)) feeds[`param:${k}`] = read(e);
      for (const engine of engines) {
        const got: Record<string, HostArray> = {};
        for (const [outputs, id] of [[{ pred }, 'histogene_predict'], [gradOutputs, 'histogene_grad']] as const) {
          const program = await engine.compile(outputs, id);
          const graphFeeds = Object.fromEntries(Object.entries(feeds).filter(([k]) => (outputs === gradOutputs ? lossGraph : g).inputs.has(k)));
          Object.assign(got, await program.run(graphFeeds));
          await program.dispose();
        }
        const errors: [string, number][] = [
          ['pred', relativeError(got.pred as Float32Array, read(c.output.pred))],
          ['loss', relativeError(got.loss as Float32Array, read(c.output.loss))],
          ['d crops', relativeError(got['dx:crops'] as Float32Array, read(c['grad/input'].crops))],
        ];
        assert.deepEqual(names.sort(), Object.keys(c['grad/param']).sort(), 'every parameter is differentiated');
        for (const n of names) errors.push([`d ${n}`, relativeError(got[`d:${n}`] as Float32Array, read(c['grad/param'][n]))]);
        const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
        t.diagnostic(`${engine.kind}: ${errors.length} tensors, worst ${worst[1].toExponential(2)} (${worst[0]})`);
        for (const [k, e] of errors) assert.ok(e < 1e-4, `${engine.kind} ${name}: ${k} differs from PyTorch by ${e}`);
      }
    });
  }
});

describe('HisToGene sizes and settings', () => {
  const total = (net: HisToGeneNet) => [...net.table.specs.values()].reduce((s, p) => s + p.init.length, 0);

  test('the paper preset has the spec\'s §8 parameter count (L = 8: 106,099,962; L = 4: 72,512,762)', () => {
    assert.equal(histogeneParameterCount(HISTOGENE_PRESETS.paper, 250), 106_099_962);
    assert.equal(histogeneParameterCount({ ...HISTOGENE_PRESETS.paper, depth: 4 }, 250), 72_512_762);
  });

  test('the count from shapes is the table\'s, with and without to_out', (t) => {
    const configs: HistogeneConfig[] = [HISTOGENE_PRESETS.demo, { ...HISTOGENE_PRESETS.demo, heads: 3, dimHead: 8 }, { ...HISTOGENE_PRESETS.demo, heads: 1, dimHead: 64 }];
    for (const c of configs) assert.equal(histogeneParameterCount(c, 250), total(new HisToGeneNet(c, { genes: 250, featureDim: 0 })));
    t.diagnostic(`demo preset: ${histogeneParameterCount(HISTOGENE_PRESETS.demo, 250).toLocaleString('en')} parameters for 250 genes`);
  });

  test('initialisation: seeded, embeddings N(0, 1), Linear within its Kaiming bound, LayerNorm ones and zeros', () => {
    const dims = { genes: 5, featureDim: 0 };
    const net = new HisToGeneNet(HISTOGENE_PRESETS.demo, dims, 3);
    const again = new HisToGeneNet(HISTOGENE_PRESETS.demo, dims, 3);
    const other = new HisToGeneNet(HISTOGENE_PRESETS.demo, dims, 4);
    const init = (n: HisToGeneNet, k: string) => (n.table.specs.get(k) as { init: Float32Array }).init;
    assert.deepEqual(init(net, 'x_embed.weight'), init(again, 'x_embed.weight'));
    assert.notDeepEqual(init(net, 'x_embed.weight'), init(other, 'x_embed.weight'));
    const e = init(net, 'y_embed.weight');
    const mean = e.reduce((a, b) => a + b, 0) / e.length;
    const std = Math.sqrt(e.reduce((a, b) => a + (b - mean) ** 2, 0) / e.length);
    assert.ok(Math.abs(mean) < 0.05 && Math.abs(std - 1) < 0.05, `embedding mean ${mean}, std ${std}`);
    const w = init(net, 'patch_embedding.weight');
    const bound = 1 / Math.sqrt(3 * 56 * 56);
    assert.ok(w.every((v) => Math.abs(v) <= bound) && w.reduce((m, v) => Math.max(m, Math.abs(v)), 0) > 0.9 * bound, 'U(-1/sqrt(in), 1/sqrt(in))');
    assert.ok(init(net, 'gene_head.0.weight').every((v) => v === 1) && init(net, 'gene_head.0.bias').every((v) => v === 0));
  });

  test('positions must lie in [0, positions)', () => {
    const c = { ...HISTOGENE_PRESETS.paper, positions: 64 };
    assert.ok(histogenePositionsFit(c, [0, 33, 63], BigInt64Array.of(0n, 63n, 10n)));
    assert.ok(!histogenePositionsFit(c, [0, 64], [0, 1]), 'a row of 64');
    assert.ok(!histogenePositionsFit(c, [0, 1], [-1, 1]), 'a negative column');
    assert.ok(histogenePositionsFit(HISTOGENE_PRESETS.demo, [77], [127]), 'the demo covers Visium');
  });

  test('training draws a mask per dropout site; prediction draws none', () => {
    const net = new HisToGeneNet({ ...HISTOGENE_PRESETS.demo, cropSize: 8 }, { genes: 3, featureDim: 0 });
    const train = new Graph('float32');
    net.loss(train, declareInputs(train, net, 5));
    assert.equal(train.dropouts.size, 1 + 3 * HISTOGENE_PRESETS.demo.depth, 'embeddings, and attention out + 2 in the feed-forward per block');
    assert.equal(net.table.dropoutLayers, 1 + 3 * HISTOGENE_PRESETS.demo.depth);
    const infer = new Graph('float32');
    assert.deepEqual(net.predict(infer, declareInputs(infer, net, 5)).shape, [5, 3]);
    assert.equal(infer.dropouts.size, 0);
  });
});

describe('HisToGene trains', () => {
  test('a few Adam steps on one small section lower the loss (onnxruntime, dropout on)', async () => {
    const config: HistogeneConfig = { cropSize: 8, dim: 32, depth: 2, heads: 4, dimHead: 8, mlpDim: 64, dropout: 0.1, positions: 8 };
    const dims = { genes: 6, featureDim: 0 };
    const n = 16;
    const net = new HisToGeneNet(config, dims, 11);
    const random = mulberry32(5);
    const crops = Float32Array.from({ length: n * 8 * 8 * 3 }, () => Math.floor(256 * random()));
    const rows = BigInt64Array.from({ length: n }, (_, i) => BigInt(Math.floor(i / 4)));
    const cols = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 4));
    const truth = Float32Array.from({ length: n * dims.genes }, (_, i) => Math.sin(i) + 1);
    const step = await compileTrainStep(engines[0], (g) => net.loss(g, declareInputs(g, net, n)), undefined, 'histogene_train');
    const state = initialState(net.table.initialValues());
    const streams = new DropoutStreams();
    const losses: number[] = [];
    for (let s = 0; s < 30; s++) {
      streams.reseed(s, net.table.dropoutLayers);
      losses.push(await step.run(state, { crops, rows, cols, truth }, 1e-3, streams));
    }
    await step.program.dispose();
    assert.ok(losses.every(Number.isFinite), 'finite losses');
    assert.ok(losses[losses.length - 1] < 0.5 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  });
});
