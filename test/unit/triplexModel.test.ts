import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { spotGrid } from '../../src/runtime/model/triplex/apeg';
import { TriplexModel, type TriplexInputs } from '../../src/runtime/model/triplex/model';
import type { StateDict } from '../../src/runtime/weights';
import { relativeError } from './helpers/compare';
import { torchReference, torchSkip } from './helpers/torch';
import type { FileEntry, ModelCase } from './helpers/torchFixtures';

/**
 * The whole TRIPLEX model, every variant, against an independent PyTorch implementation of the
 * spec (scripts/fixtures/torch_triplex_reference.py, float64): the four heads, the loss, and the
 * loss's gradient with respect to every parameter and every float input, on small sizes (d = 32,
 * two slides with holes and unsorted spots, masked neighbor tiles, a batch drawn from both).
 */


const reference = torchReference('torch_triplex_reference.py');

describe('TRIPLEX, assembled, matches PyTorch forward and backward in every variant (wasm)', { skip: torchSkip }, () => {
  let dir = '';
  let index: Record<string, ModelCase> = {};
  before(async () => {
    await initCompute({ backend: 'wasm' });
    dir = reference.dir();
    index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as Record<string, ModelCase>;
  });

  const read = (e: FileEntry): Float32Array => {
    const b = fs.readFileSync(path.join(dir, e.file));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };

  const cases = ['triplex', 'peg', 'no_pe', 'sum', 'concat', 'attnpool', 'no_global', 'no_target', 'tem', 'nem', 'gem', 'no_distillation', 'masked_mean'];
  for (const name of cases) {
    test(name, async (t) => {
      const c = index[name];
      assert.ok(c, `the reference has no case ${name}`);
      const model = new TriplexModel(c.config, { seed: 99 });
      const sd: StateDict = new Map(Object.entries(c.param).map(([k, e]) => [k, { shape: e.shape, data: read(e), sourceDtype: 'float32' }]));
      assert.deepEqual([...model.params.names()].sort(), Object.keys(c.param).sort(), 'parameter names');
      model.loadStateDict(sd, path.join(dir, name));

      // Float inputs the reference differentiates become variables, so their gradients can be compared.
      const variables: Record<string, tf.Variable> = {};
      const tensor = (k: string) => {
        const e = c.input[k];
        const x = tf.tensor(read(e), e.shape);
        if (!c['grad/input']?.[k]) return x;
        variables[k] = tf.variable(x, true);
        x.dispose();
        return variables[k];
      };
      const inputs: TriplexInputs = {};
      if (c.input.target) inputs.target = tensor('target') as tf.Tensor3D;
      if (c.input.neighbors) {
        inputs.neighbors = tensor('neighbors') as tf.Tensor3D;
        inputs.mask = tensor('mask') as tf.Tensor2D;
      }
      if (c.meta.slides) {
        inputs.slides = c.meta.slides.map((s, k) => ({ features: tensor(`slide${k}_features`) as tf.Tensor2D, grid: spotGrid(s.rows, s.cols) }));
        const offsets = c.meta.slides.map((_, k) => c.meta.slides!.slice(0, k).reduce((n, s) => n + s.spots, 0));
        inputs.globalRows = Int32Array.from(c.meta.batchSlide!, (slide, i) => offsets[slide] + c.meta.batchSpot![i]);
      }
      const truth = tf.tensor2d(read(c.input.truth), c.input.truth.shape as [number, number]);

      const errors: [string, number][] = [];
      const out = model.forward(inputs, 'inference');
      const heads = { pred_fusion: out.fusion, pred_target: out.target, pred_neighbor: out.neighbor, pred_global: out.global };
      for (const [k, e] of Object.entries(c.output)) {
        if (k === 'loss') continue;
        const y = heads[k as keyof typeof heads];
        assert.ok(y, `${name}: no ${k}`);
        errors.push([k, relativeError(await y.data(), read(e))]);
      }
      for (const k of Object.keys(heads) as (keyof typeof heads)[]) if (heads[k] && !c.output[k]) assert.ok(k === 'pred_fusion', `${name}: ${k} should not exist`);
      const loss = model.loss(out, truth);
      errors.push(['loss', relativeError(await loss.data(), read(c.output.loss))]);
      tf.dispose([...Object.values(out), loss]);

      const { value, grads } = tf.variableGrads(() => model.loss(model.forward(inputs, 'inference'), truth), [...model.params.variables(), ...Object.values(variables)]);
      for (const [k, e] of Object.entries(c['grad/param'])) {
        const g = grads[model.params.get(k).name];
        assert.ok(g, `${name}: no gradient for ${k}`);
        errors.push([`d/d ${k}`, relativeError(model.params.toTorchLayout(k, (await g.data()) as Float32Array).data, read(e))]);
      }
      for (const [k, e] of Object.entries(c['grad/input'] ?? {})) errors.push([`d/d input ${k}`, relativeError(await grads[variables[k].name].data(), read(e))]);
      tf.dispose([value, ...Object.values(grads), ...Object.values(variables), truth, inputs.mask ?? [], ...(inputs.slides?.map((s) => s.features) ?? [])]);
      if (inputs.target && !variables.target) inputs.target.dispose();
      model.dispose();

      const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
      t.diagnostic(`${name}: ${errors.length} tensors, worst relative error ${worst[1].toExponential(2)} (${worst[0]})`);
      for (const [k, e] of errors) assert.ok(e < 1e-4, `${name}: ${k} differs from PyTorch by ${e}`);
    });
  }
});
