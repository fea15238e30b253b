import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { CrossAttentionBlock, Linear, ParamTable, TransformerBlock } from '../../src/runtime/engine/nn';
import { APEG, placeOnGrid } from '../../src/runtime/models/apeg';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { Adam } from '../../src/runtime/train/adam';
import { mulberry32 } from '../../src/runtime/util/random';
import { testExecutors } from './helpers/executors';
import { relativeError } from './helpers/compare';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type BlockCase, type FileEntry } from './helpers/torchFixtures';

/**
 * Layers written once against the op interface, on both engines: the transformer blocks against
 * PyTorch (forward and every gradient, the fixtures the TF.js blocks are held to), and the
 * training step's in-graph Adam against the TF.js Adam that mirrors torch.optim.Adam.
 */

let engines: Executor[] = [];

before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

type ReferenceCase = BlockCase;

const blocksReference = torchReference('torch_triplex_blocks_reference.py');

describe('engine layers match PyTorch, forward and backward, on onnxruntime and TF.js', { skip: torchSkip }, () => {
  type Build = (g: Graph, table: ParamTable, ref: ReferenceCase, x: Record<string, Sym>) => Record<string, Sym>;
  const cases: { name: string; prefix: string; build: Build; int64?: Record<string, (ref: ReferenceCase) => number[]> }[] = [
    {
      name: 'neighbor_block', prefix: 'neighbor.blocks.0',
      build: (g, t, ref, x) => ({ y: new TransformerBlock(t, 'neighbor.blocks.0', { dim: ref.meta.dim, heads: ref.meta.heads, mlpRatio: ref.meta.mlpRatio ?? 4, dropout: 0.3, relativePositionBias: true }).apply(g, x.x, 'inference', x.mask) }),
    },
    {
      name: 'global_block', prefix: 'global.blocks.0',
      build: (g, t, ref, x) => ({ y: new TransformerBlock(t, 'global.blocks.0', { dim: ref.meta.dim, heads: ref.meta.heads, mlpRatio: ref.meta.mlpRatio ?? 4, dropout: 0.1 }).apply(g, x.x, 'inference') }),
    },
    {
      name: 'fusion_block', prefix: 'fusion.blocks.0',
      build: (g, t, ref, x) => {
        const block = new CrossAttentionBlock(t, 'fusion.blocks.0', { dim: ref.meta.dim, heads: ref.meta.heads, mlpRatio: ref.meta.mlpRatio ?? 4, dropout: 0.4 });
        return { fromTarget: block.apply(g, x.query, x.target, 'inference'), fromNeighbor: block.apply(g, x.query, x.neighbor, 'inference', x.mask) };
      },
    },
    {
      name: 'apeg', prefix: 'global.apeg',
      build: (g, t, ref, x) => {
        const place = placeOnGrid(ref.meta.rows ?? [], ref.meta.cols ?? []);
        const cells = g.constant(place.cells, [place.cells.length], 'int64');
        return { y: new APEG(t, 'global.apeg', ref.meta.dim, ref.meta.kernelSize).apply(g, x.x, cells, place.height, place.width) };
      },
    },
  ];
  for (const c of cases) {
    test(c.name, async (t) => {
      const dir = blocksReference.dir();
      const ref = readIndex<ReferenceCase>(dir)[c.name];
      const read = (e: FileEntry) => readTensor(dir, e);
      const table = new ParamTable(1);
      const g = new Graph('float32');
      const x = Object.fromEntries(Object.entries(ref.input).map(([k, e]) => [k, g.input(k, e.shape)]));
      const ys = c.build(g, table, ref, x);
      const terms = Object.entries(ref.probe).map(([k, e]) => g.sum(g.mul(ys[k], g.constant(read(e), e.shape)), e.shape.map((_, i) => i)));
      const loss = terms.reduce((a, b) => g.add(a, b));
      const params = g.params();
      const names = Object.keys(ref['grad/param']);
      const inputNames = Object.keys(ref['grad/input']);
      const grads = gradients(loss, [...inputNames.map((k) => x[k]), ...names.map((n) => params.get(`${c.prefix}.${n}`)!)]);
      const outputs: Record<string, Sym> = { ...ys };
      inputNames.forEach((k, i) => { outputs[`dx:${k}`] = grads[i]; });
      names.forEach((n, i) => { outputs[`d:${n}`] = grads[inputNames.length + i]; });
      const feeds: Record<string, HostArray> = Object.fromEntries(Object.entries(ref.input).map(([k, e]) => [k, read(e)]));
      for (const [n, e] of Object.entries(ref.param)) {
        assert.deepEqual(table.shape(`${c.prefix}.${n}`), e.shape, `${n}: PyTorch's layout`);
        feeds[`param:${c.prefix}.${n}`] = read(e);
      }
      for (const engine of engines) {
        const program = await engine.compile(outputs);
        const r = await program.run(feeds);
        const errors: [string, number][] = Object.entries(ref.output).map(([k, e]) => [k, relativeError(r[k] as Float32Array, read(e))]);
        for (const k of inputNames) errors.push([`d input ${k}`, relativeError(r[`dx:${k}`] as Float32Array, read(ref['grad/input'][k]))]);
        for (const n of names) errors.push([`d ${n}`, relativeError(r[`d:${n}`] as Float32Array, read(ref['grad/param'][n]))]);
        const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
        t.diagnostic(`${engine.kind}: ${errors.length} tensors, worst relative error ${worst[1].toExponential(2)} (${worst[0]})`);
        for (const [k, e] of errors) assert.ok(e < 1e-4, `${engine.kind} ${c.name}: ${k} differs from PyTorch by ${e}`);
        await program.dispose();
      }
    });
  }
});

describe('engine training step', () => {
  /** A two-layer regression whose loss is MSE: enough to exercise parameters, GELU and Adam. */
  function regression(table: ParamTable) {
    const fc1 = new Linear(table, 'fc1', 6, 8);
    const fc2 = new Linear(table, 'fc2', 8, 3);
    return (g: Graph) => {
      const x = g.input('x', [5, 6]);
      const target = g.input('y', [5, 3]);
      const err = g.sub(fc2.apply(g, g.gelu(fc1.apply(g, x))), target);
      return g.mean(g.square(err), [0, 1]);
    };
  }
  const random = mulberry32(5);
  const batch = () => ({ x: Float32Array.from({ length: 30 }, () => random() * 2 - 1), y: Float32Array.from({ length: 15 }, () => random() * 2 - 1) });
  const first = batch();
  const batches = [first, batch(), first, batch(), first, first];

  test('Adam in the graph takes the same steps as torch.optim.Adam (the TF.js Adam), on both engines', async () => {
    // Reference: tf.grad of the same model written in plain TF.js, updated by our TF.js Adam.
    const table = new ParamTable(3);
    const build = regression(table);
    const init = table.initialValues();
    const vars = [...init].map(([n, v]) => tf.variable(tf.tensor(v, table.shape(n)), true, `engine_adam_${n}`));
    const adam = new Adam(vars, [...init.keys()], 0.05);
    const referenceLosses: number[] = [];
    for (const b of batches) {
      const [w1, b1, w2, b2] = vars;
      const lossFn = () => {
        const x = tf.tensor2d(b.x, [5, 6]);
        const hidden = tf.add(tf.matMul(x, w1, false, true), b1);
        const act = tf.mul(hidden, tf.mul(tf.add(tf.erf(tf.mul(hidden, Math.SQRT1_2)), 1), 0.5));
        const out = tf.add(tf.matMul(act, w2, false, true), b2);
        return tf.mean(tf.square(tf.sub(out, tf.tensor2d(b.y, [5, 3])))) as tf.Scalar;
      };
      const { value, grads } = tf.variableGrads(lossFn, vars);
      referenceLosses.push((await value.data())[0]);
      adam.apply(vars.map((v) => grads[v.name]));
      tf.dispose([value, ...Object.values(grads)]);
    }
    const referenceParams = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));

    for (const engine of engines) {
      const step = await compileTrainStep(engine, build);
      const state = initialState(table.initialValues());
      const losses: number[] = [];
      for (const b of batches) losses.push(await step.run(state, b, 0.05, new DropoutStreams()));
      losses.forEach((l, i) => assert.ok(Math.abs(l - referenceLosses[i]) < 1e-5 * (1 + referenceLosses[i]), `${engine.kind} step ${i}: loss ${l} against ${referenceLosses[i]}`));
      [...state.params.values()].forEach((p, i) => assert.ok(relativeError(p, referenceParams[i]) < 1e-5, `${engine.kind}: parameter ${i} after 6 steps differs by ${relativeError(p, referenceParams[i])}`));
      assert.equal(state.step, batches.length);
      assert.ok(losses[5] < losses[4] && losses[4] < losses[0], 'the loss on the repeated batch falls');
      await step.program.dispose();
    }
    adam.dispose();
    vars.forEach((v) => v.dispose());
  });

  test('dropout masks come from the caller\'s generator: same seed, same run', async () => {
    const table = new ParamTable(4);
    const block = new TransformerBlock(table, 'b', { dim: 8, heads: 2, mlpRatio: 2, dropout: 0.5 });
    const build = (g: Graph) => g.mean(g.square(block.apply(g, g.input('x', [2, 3, 8]), 'train')), [0, 1, 2]);
    const x = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i));
    const [ort] = engines;
    const step = await compileTrainStep(ort, build);
    assert.equal(step.graph.dropouts.size, 3, 'three dropouts in a block: attention output, FFN hidden and output');
    const runTwice = async (seed: number) => {
      const state = initialState(table.initialValues());
      const streams = new DropoutStreams();
      streams.reseed(seed, table.dropoutLayers);
      return [await step.run(state, { x }, 1e-3, streams), await step.run(state, { x }, 1e-3, streams)];
    };
    assert.deepEqual(await runTwice(1), await runTwice(1));
    assert.notDeepEqual(await runTwice(1), await runTwice(2));
    await step.program.dispose();
  });
});
