import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { HIST2ST_PRESETS, Hist2stNet, hist2stParamCount, type Hist2stConfig } from '../../src/runtime/baselines/hist2st';
import { augmentCrops, hist2stAdjacency } from '../../src/runtime/baselines/hist2stHost';
import { lgamma, zinbLoss } from '../../src/runtime/baselines/zinb';
import { declareInputs } from '../../src/runtime/baselines/model';
import { gradients } from '../../src/runtime/engine/autodiff';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { mulberry32 } from '../../src/runtime/util/random';
import { relativeError } from './helpers/compare';
import { testExecutors } from './helpers/executors';
import { checkAgainstFiniteDifferences } from './helpers/gradcheck';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type FileEntry } from './helpers/torchFixtures';

/**
 * Hist2ST on the engine against the independent PyTorch reference
 * (scripts/fixtures/torch_hist2st_reference.py): inference prediction, the training loss and its
 * three terms, every parameter's gradient, the crops' gradient and the running statistics after
 * the step's 1 + A passes, on onnxruntime and TF.js; lgamma and the ZINB loss alone; the host's
 * adjacency and augmentation; the paper model's size; and a few Adam steps lowering the loss.
 */

interface Hist2stCase {
  config: Hist2stConfig;
  /** float32Error: PyTorch's own float32 relative error on each parameter's gradient (the fixture's). */
  meta: { genes: number; spots: number; rows: number[]; cols: number[]; float32Error: Record<string, number> };
  param: Record<string, FileEntry>;
  buffer: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
  'grad/input': Record<string, FileEntry>;
  after: Record<string, FileEntry>;
}

const reference = torchReference('torch_hist2st_reference.py');

/**
 * relativeError, except for a gradient that is zero in exact arithmetic (coef.2.bias: the softmax
 * over copies ignores a shift shared by every copy), where float32 leaves rounding: there the
 * absolute difference must be below 1e-6.
 */
function gradientError(ours: ArrayLike<number>, ref: Float32Array): number {
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  if (scale > 1e-8) return relativeError(ours, ref);
  return Array.from(ours).reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0) * 100;
}

const int64 = (v: Float32Array) => BigInt64Array.from(v, (x) => BigInt(Math.round(x)));

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

describe('Hist2ST on the engine matches PyTorch, forward and backward', { skip: torchSkip }, () => {
  for (const name of ['tiny', 'deeper']) {
    test(name, async (t) => {
      const dir = reference.dir();
      const c = readIndex<Hist2stCase>(dir)[name];
      const read = (e: FileEntry) => readTensor(dir, e);
      const net = new Hist2stNet(c.config, { genes: c.meta.genes, featureDim: 0 }, 3);
      assert.deepEqual([...net.table.specs.keys()], Object.keys(c.param), 'parameter names, in PyTorch order');
      for (const [k, e] of Object.entries(c.param)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: PyTorch's layout`);
      assert.deepEqual([...net.initialBuffers().keys()].sort(), Object.keys(c.buffer).sort(), 'running statistics');
      assert.equal(hist2stParamCount(c.config, c.meta.genes), Object.values(c.param).reduce((n, e) => n + e.shape.reduce((a, b) => a * b, 1), 0));

      const g = new Graph('float32');
      const inputs = declareInputs(g, net, c.meta.spots);
      const predict = net.predict(g, inputs);
      const terms = net.lossTerms(g, inputs);
      const params = g.params();
      const names = [...params.keys()];
      const grads = gradients(terms.total, [...params.values(), inputs.crops as Sym]);
      const outputs: Record<string, Sym> = { predict, prediction: terms.prediction, mse: terms.mse, zinb: terms.zinb!, distill: terms.distill!, loss: terms.total };
      names.forEach((n, i) => { outputs[`d:${n}`] = grads[i]; });
      outputs['dx:crops'] = grads[names.length];
      for (const [n, s] of g.bufferUpdates) outputs[`after:${n}`] = s;

      const feeds: Record<string, HostArray> = {};
      for (const k of ['crops', 'adjacency', 'counts', 'sizeFactors', 'truth', 'augmented']) feeds[k] = read(c.input[k]);
      feeds.rows = int64(read(c.input.rows));
      feeds.cols = int64(read(c.input.cols));
      for (const [k, e] of Object.entries(c.param)) feeds[`param:${k}`] = read(e);
      for (const [k, e] of Object.entries(c.buffer)) feeds[`buffer:${k}`] = read(e);

      for (const engine of engines) {
        const program = await engine.compile(outputs, `hist2st_${name}`);
        const r = await program.run(feeds);
        await program.dispose();
        const errors: [string, number][] = Object.entries(c.output).map(([k, e]) => [k, relativeError(r[k] as Float32Array, read(e))]);
        for (const n of names) errors.push([`d ${n}`, gradientError(r[`d:${n}`] as Float32Array, read(c['grad/param'][n]))]);
        errors.push(['d crops', relativeError(r['dx:crops'] as Float32Array, read(c['grad/input'].crops))]);
        for (const [k, e] of Object.entries(c.after)) errors.push([`after ${k}`, relativeError(r[`after:${k}`] as Float32Array, read(e))]);
        assert.equal(errors.length, 6 + names.length + 1 + Object.keys(c.after).length, 'every reference tensor compared');
        const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
        const loosened = Object.entries(c.meta.float32Error).filter(([, e]) => 3 * e > 1e-4).map(([k, e]) => `${k} (torch float32 ${e.toExponential(1)})`);
        t.diagnostic(`${engine.kind}: ${errors.length} tensors, worst ${worst[1].toExponential(2)} (${worst[0]})${loosened.length ? `; bound 3x torch float32 for ${loosened.join(', ')}` : ''}`);
        for (const [k, e] of errors) {
          // 1e-4, or 3x PyTorch's own float32 error where that is larger: the distillation head's
          // gradients (coef.*) are a difference of differences of the copies' predictions.
          const bound = Math.max(1e-4, 3 * (c.meta.float32Error[k.replace(/^d /, '')] ?? 0));
          assert.ok(e < bound, `${engine.kind} ${name}: ${k} differs from PyTorch by ${e} (bound ${bound})`);
        }
      }
    });
  }

  test('the host adjacency is the reference\'s (4 nearest within distance 2, row-normalised, isolated row zero)', () => {
    const dir = reference.dir();
    for (const c of Object.values(readIndex<Hist2stCase>(dir)).filter((x) => x.meta?.rows)) {
      assert.deepEqual(Array.from(hist2stAdjacency(c.meta.rows, c.meta.cols)), Array.from(readTensor(dir, c.input.adjacency)));
    }
  });

  test('lgamma and its derivative (digamma) match torch.lgamma and torch.digamma', async () => {
    const dir = reference.dir();
    const c = readIndex<Hist2stCase>(dir).lgamma;
    const z = readTensor(dir, c.input.z);
    for (const engine of engines) {
      const g = new Graph('float32');
      const x = g.input('z', [z.length]);
      const value = lgamma(g, x);
      const [digamma] = gradients(g.sum(value, [0]), [x]);
      const program = await engine.compile({ value, digamma });
      const r = await program.run({ z });
      await program.dispose();
      const want = { value: readTensor(dir, c.output.value), digamma: readTensor(dir, c.output.digamma) };
      for (const k of ['value', 'digamma'] as const) {
        want[k].forEach((v, i) => assert.ok(Math.abs(Number(r[k][i]) - v) <= 2e-5 * Math.max(1, Math.abs(v)), `${engine.kind} ${k}(${z[i]}) = ${r[k][i]}, torch ${v}`));
      }
    }
  });

  test('the ZINB loss and its gradients match NB_module.ZINB_loss', async () => {
    const dir = reference.dir();
    const c = readIndex<Hist2stCase>(dir).zinb;
    const read = (k: string) => readTensor(dir, c.input[k]);
    for (const engine of engines) {
      const g = new Graph('float32');
      const [x, mu, theta, pi] = ['x', 'mu', 'theta', 'pi'].map((k) => g.input(k, c.input[k].shape));
      const loss = zinbLoss(g, x, mu, theta, pi);
      const [dmu, dtheta, dpi] = gradients(loss, [mu, theta, pi]);
      const program = await engine.compile({ loss, dmu, dtheta, dpi });
      const r = await program.run({ x: read('x'), mu: read('mu'), theta: read('theta'), pi: read('pi') });
      await program.dispose();
      assert.ok(relativeError(r.loss as Float32Array, readTensor(dir, c.output.loss)) < 1e-5, `${engine.kind} loss ${r.loss[0]}`);
      for (const k of ['mu', 'theta', 'pi']) assert.ok(relativeError(r[`d${k}`] as Float32Array, readTensor(dir, c['grad/input'][k])) < 1e-4, `${engine.kind} d ${k}`);
    }
  });
});

describe('Hist2ST pieces', () => {
  test('lgamma: hand values, and its gradient by finite differences (float64)', async () => {
    const g = new Graph('float64');
    const z = g.input('z', [5]);
    const program = await engines[0].compile({ y: lgamma(g, z) });
    const r = await program.run({ z: Float64Array.of(1, 2, 0.5, 10, 1e-3) });
    await program.dispose();
    // Gamma(1) = Gamma(2) = 1, Gamma(1/2) = sqrt(pi), Gamma(10) = 9!, Gamma(z) ~ 1/z - euler near 0.
    const want = [0, 0, 0.5 * Math.log(Math.PI), Math.log(362880), 6.907178885383853];
    want.forEach((v, i) => assert.ok(Math.abs(Number(r.y[i]) - v) < 1e-9, `lgamma #${i}: ${r.y[i]} vs ${v}`));
    await checkAgainstFiniteDifferences(engines[0], { name: 'lgamma', inputs: { z: { shape: [6], positive: true } }, f: (gr, x) => lgamma(gr, gr.mul(x.z, 3)) });
  });

  test('adjacency: 4 nearest others by distance then index, kept within distance 2, rows sum to 1, an isolated spot all zero', () => {
    // A row of 6 spots 1 apart, and one at distance 3 from the last (isolated).
    const rows = [0, 0, 0, 0, 0, 0, 0];
    const cols = [0, 1, 2, 3, 4, 5, 8];
    const a = hist2stAdjacency(rows, cols);
    const row = (i: number) => Array.from(a.subarray(i * 7, i * 7 + 7));
    assert.deepEqual(row(0), [0, 0.5, 0.5, 0, 0, 0, 0], 'spot 0: 1 and 2 (3 and 4 lie beyond 2)');
    assert.deepEqual(row(2), [0.25, 0.25, 0, 0.25, 0.25, 0, 0], 'spot 2: four at distance <= 2');
    assert.deepEqual(row(5), [0, 0, 0, 0.5, 0.5, 0, 0], 'spot 5: the isolated spot is at 3');
    assert.deepEqual(row(6), [0, 0, 0, 0, 0, 0, 0], 'the isolated spot aggregates nothing');
    // Ties: spot 0 has 2 and 4 at distance 1, then 1, 3 and 5 at sqrt 2: the lower indices 1 and 3 win.
    const tie = hist2stAdjacency([1, 2, 0, 0, 1, 2], [1, 2, 1, 0, 0, 0]);
    assert.deepEqual(Array.from(tie.subarray(0, 6)), [0, 0.25, 0.25, 0.25, 0.25, 0]);
  });

  test('augmentation: identity, flip, an exact quarter turn counter-clockwise, grayscale, shared by all crops', () => {
    const S = 4;
    const n = 2;
    const crops = Float32Array.from({ length: n * S * S * 3 }, (_, i) => i);
    const at = (a: Float32Array, i: number, y: number, x: number, ch: number) => a[((i * S + y) * S + x) * 3 + ch];
    assert.deepEqual(augmentCrops(crops, n, S, { grayscale: false, degrees: 0, flip: false }), crops);
    const flipped = augmentCrops(crops, n, S, { grayscale: false, degrees: 0, flip: true });
    const turned = augmentCrops(crops, n, S, { grayscale: false, degrees: 90, flip: false });
    for (let i = 0; i < n; i++) {
      for (let y = 0; y < S; y++) {
        for (let x = 0; x < S; x++) {
          assert.equal(at(flipped, i, y, x, 1), at(crops, i, y, S - 1 - x, 1));
          assert.equal(at(turned, i, y, x, 2), at(crops, i, x, S - 1 - y, 2), 'the right column becomes the top row');
        }
      }
    }
    const gray = augmentCrops(crops, n, S, { grayscale: true, degrees: 0, flip: false });
    assert.ok(Math.abs(gray[0] - (0.2989 * 0 + 0.587 * 1 + 0.114 * 2)) < 1e-6 && gray[0] === gray[1] && gray[1] === gray[2]);
    const tilted = augmentCrops(crops, n, S, { grayscale: false, degrees: 45, flip: false });
    assert.equal(at(tilted, 0, 0, 0, 0), 0, 'a corner rotated in from outside is zero-filled');

    const net = new Hist2stNet({ ...HIST2ST_PRESETS.demo, cropSize: S, patchSize: 1, channels: 8 }, { genes: 3, featureDim: 0 });
    const a = net.trainingFeeds(crops, n, mulberry32(1)).augmented;
    assert.equal(a.length, 2 * crops.length, 'A copies');
    assert.deepEqual(a, net.trainingFeeds(crops, n, mulberry32(1)).augmented, 'the generator decides');
  });

  test('the paper preset has the spec\'s 73,596,333 parameters (71,776,958 without the auxiliary heads)', () => {
    assert.equal(hist2stParamCount(HIST2ST_PRESETS.paper, 250), 73_596_333);
    assert.equal(hist2stParamCount({ ...HIST2ST_PRESETS.paper, zinbWeight: 0, distillWeight: 0 }, 250), 71_776_958);
  });

  test('a few Adam steps lower the loss on a tiny section (dropout, ZINB and distillation on)', async () => {
    const config: Hist2stConfig = { ...HIST2ST_PRESETS.demo, cropSize: 14, channels: 16, attentionDepth: 1, heads: 2, headDim: 8, positions: 8, dropout: 0.1 };
    const G = 6;
    const net = new Hist2stNet(config, { genes: G, featureDim: 0 }, 1);
    const rows = [0, 0, 0, 1, 1, 1, 2, 2, 5];
    const cols = [0, 1, 2, 0, 1, 2, 0, 1, 6];
    const n = rows.length;
    const random = mulberry32(4);
    const crops = Float32Array.from({ length: n * 14 * 14 * 3 }, () => 255 * random());
    const counts = Float32Array.from({ length: n * G }, () => (random() < 0.4 ? 0 : Math.floor(10 * random())));
    const feeds: Record<string, HostArray> = {
      crops, counts,
      rows: BigInt64Array.from(rows, BigInt), cols: BigInt64Array.from(cols, BigInt),
      adjacency: hist2stAdjacency(rows, cols),
      sizeFactors: Float32Array.from({ length: n }, () => 0.5 + random()),
      truth: Float32Array.from({ length: n * G }, () => random() * 2),
    };
    const step = await compileTrainStep(engines[0], (g) => net.loss(g, declareInputs(g, net, n)), undefined, 'hist2st_train');
    const state = initialState(net.table.initialValues());
    state.buffers = net.initialBuffers();
    const streams = new DropoutStreams();
    const losses: number[] = [];
    for (let s = 0; s < 8; s++) {
      streams.reseed(s, net.table.dropoutLayers);
      const aug = net.trainingFeeds(crops, n, mulberry32(100 + s));
      losses.push(await step.run(state, { ...feeds, ...aug }, 3e-3, streams));
    }
    await step.program.dispose();
    assert.ok(losses.every(Number.isFinite), `finite losses: ${losses.join(', ')}`);
    assert.ok(losses[7] < 0.8 * losses[0], `the loss falls: ${losses.map((l) => l.toFixed(3)).join(', ')}`);
    const runningVar = state.buffers.get('vit.transformer.layer1.0.dw.1.running_var')!;
    assert.ok(runningVar.some((v) => v !== 1), 'the running statistics moved');
  });
});
