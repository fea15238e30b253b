import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { gradients } from '../../src/runtime/engine/autodiff';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../src/runtime/engine/graph';
import { spotGrid } from '../../src/runtime/models/spotGrid';
import { globalLayout } from '../../src/runtime/models/globalLayout';
import { TriplexNet } from '../../src/runtime/models/triplex';
import { testExecutors } from './helpers/executors';
import { relativeError } from './helpers/compare';
import { torchReference, torchSkip } from './helpers/torch';
import { readIndex, readTensor, type FileEntry, type ModelCase } from './helpers/torchFixtures';

/**
 * TRIPLEX written once on the engine, every variant, against the independent PyTorch reference
 * (scripts/fixtures/torch_triplex_reference.py): heads,
 * loss, and the gradient of the loss with respect to every parameter and float input, on
 * onnxruntime and on the TF.js executor, with the slides laid out in padded shape buckets (as
 * training lays them out) and exactly.
 */


const reference = torchReference('torch_triplex_reference.py');
const CASES = ['triplex', 'peg', 'no_pe', 'sum', 'concat', 'attnpool', 'no_global', 'no_target', 'tem', 'nem', 'gem', 'no_distillation', 'masked_mean'];

/**
 * relativeError, except for a gradient that is zero in exact arithmetic (attentional pooling's
 * score bias: softmax ignores a shift shared by every view), where float32 leaves rounding of
 * about 1e-9 against the reference's ~1e-20: there the absolute difference must be below 1e-6.
 */
function gradientError(ours: Float32Array, ref: Float32Array): number {
  const scale = ref.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  if (scale > 1e-8) return relativeError(ours, ref);
  return ours.reduce((m, v, i) => Math.max(m, Math.abs(v - ref[i])), 0) * 100; // < 1e-4 means < 1e-6 absolute
}

let engines: Executor[] = [];
before(async () => {
  const { ort, tfjs } = await testExecutors();
  engines = [ort, tfjs];
});

describe('TRIPLEX on the engine matches PyTorch in every variant, forward and backward', { skip: torchSkip }, () => {
  for (const name of CASES) {
    test(name, async (t) => {
      const dir = reference.dir();
      const c = readIndex<ModelCase>(dir)[name];
      const read = (e: FileEntry) => readTensor(dir, e);
      const net = new TriplexNet(c.config, 99);
      assert.deepEqual([...net.table.specs.keys()].sort(), Object.keys(c.param).sort(), 'parameter names');
      for (const [k, e] of Object.entries(c.param)) assert.deepEqual(net.table.shape(k), e.shape, `${k}: PyTorch's layout`);
      const B = c.meta.batch;
      const d = c.config.dim;

      for (const exact of [false, true]) {
        const slides = c.meta.slides?.map((s) => ({ n: s.spots, grid: spotGrid(s.rows, s.cols) }));
        const layout = slides ? globalLayout(slides, c.config.global.positionEncoding, c.config.global.kernelSize, exact) : undefined;
        const g = new Graph('float32');
        const inputs = net.declareInputs(g, B, layout);
        const heads = net.forward(g, inputs, 'inference');
        const loss = net.loss(g, heads, g.input('truth', [B, c.config.genes]));
        const params = g.params();
        const paramNames = Object.keys(c['grad/param']);
        const floatInputs: [string, Sym][] = [];
        if (c['grad/input']?.target) floatInputs.push(['target', inputs.target!]);
        if (c['grad/input']?.neighbors) floatInputs.push(['neighbors', inputs.neighbors!]);
        if (inputs.global) floatInputs.push(['global', inputs.global.features]);
        const grads = gradients(loss, [...paramNames.map((n) => params.get(n)!), ...floatInputs.map(([, s]) => s)]);
        const outputs: Record<string, Sym> = { loss, pred_fusion: heads.fusion };
        for (const v of net.views) outputs[`pred_${v}`] = heads[v]!;
        paramNames.forEach((n, i) => { outputs[`d:${n}`] = grads[i]; });
        floatInputs.forEach(([k], i) => { outputs[`dx:${k}`] = grads[paramNames.length + i]; });

        const feeds: Record<string, HostArray> = { truth: read(c.input.truth) };
        for (const [k, e] of Object.entries(c.param)) feeds[`param:${k}`] = read(e);
        if (inputs.target) feeds.target = read(c.input.target);
        if (inputs.neighbors) { feeds.neighbors = read(c.input.neighbors); feeds.mask = read(c.input.mask); }
        if (layout && slides) {
          const features = new Float32Array(layout.tokens * d);
          slides.forEach((_, k) => features.set(read(c.input[`slide${k}_features`]), layout.offsets[k] * d));
          Object.assign(feeds, { 'global:features': features, 'global:valid': layout.valid, 'global:keep': layout.keep, 'global:cells': layout.cells });
          if (layout.bias) feeds['global:bias'] = layout.bias;
          feeds['global:rows'] = BigInt64Array.from(c.meta.batchSlide!, (s, i) => BigInt(layout.offsets[s] + c.meta.batchSpot![i]));
        }
        for (const engine of engines) {
          const program = await engine.compile(outputs);
          const r = await program.run(feeds);
          await program.dispose();
          const errors: [string, number][] = Object.entries(c.output).map(([k, e]) => [k, relativeError(r[k] as Float32Array, read(e))]);
          for (const n of paramNames) errors.push([`d ${n}`, gradientError(r[`d:${n}`] as Float32Array, read(c['grad/param'][n]))]);
          for (const [k] of floatInputs) {
            if (k !== 'global') { errors.push([`d input ${k}`, relativeError(r[`dx:${k}`] as Float32Array, read(c['grad/input']![k]))]); continue; }
            const dx = r['dx:global'] as Float32Array;
            slides!.forEach((s, j) => errors.push([`d input slide${j}_features`, relativeError(dx.subarray(layout!.offsets[j] * d, (layout!.offsets[j] + s.n) * d), read(c['grad/input']![`slide${j}_features`]))]));
          }
          const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
          t.diagnostic(`${engine.kind}${layout ? (exact ? ', exact layout' : `, bucketed layout ${layout.key}`) : ''}: ${errors.length} tensors, worst ${worst[1].toExponential(2)} (${worst[0]})`);
          for (const [k, e] of errors) assert.ok(e < 1e-4, `${engine.kind} ${name}: ${k} differs from PyTorch by ${e}`);
        }
        if (!layout) break;
      }
    });
  }

  test('a seed starts every parameter as PyTorch\'s defaults would, repeatably', () => {
    const c = readIndex<ModelCase>(reference.dir()).triplex;
    const net = new TriplexNet(c.config, 5);
    for (const [k, spec] of net.table.specs) {
      const v = spec.init;
      if (/norm\d?\.weight$/.test(k)) assert.ok(v.every((x) => x === 1), `${k}: LayerNorm weight 1`);
      else if (/norm\d?\.bias$|attention_biases$/.test(k)) assert.ok(v.every((x) => x === 0), `${k}: 0`);
      else {
        // nn.Linear and nn.Conv2d: U(-1/sqrt(fan-in), 1/sqrt(fan-in)) for weight and bias alike.
        const fanIn = k.endsWith('.bias') ? net.table.shape(k.replace(/bias$/, 'weight')).slice(1).reduce((a, b) => a * b, 1) : spec.shape.slice(1).reduce((a, b) => a * b, 1);
        const bound = 1 / Math.sqrt(fanIn);
        const max = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        assert.ok(max <= bound, `${k}: |values| up to ${max}, past the bound ${bound}`);
        if (v.length >= 100) assert.ok(max > 0.9 * bound, `${k}: |values| only up to ${max} of the bound ${bound}`);
      }
    }
    const again = new TriplexNet(c.config, 5);
    const other = new TriplexNet(c.config, 6);
    for (const [k, spec] of net.table.specs) assert.deepEqual(again.table.specs.get(k)!.init, spec.init, `${k}: the same seed starts alike`);
    assert.notDeepEqual(other.table.specs.get('fc.weight')!.init, net.table.specs.get('fc.weight')!.init, 'another seed starts elsewhere');
  });
});
