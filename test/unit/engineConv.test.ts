import * as assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { hasRule } from '../../src/runtime/engine/autodiff';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph } from '../../src/runtime/engine/graph';
import { batchNorm2d } from '../../src/runtime/engine/ops/batchnorm';
import { conv2d } from '../../src/runtime/engine/ops/conv';
import { maxPool2d } from '../../src/runtime/engine/ops/pool';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { checkAgainstFiniteDifferences, checkEnginesAgree, type GradientCase } from './helpers/gradcheck';
import { DropoutStreams } from '../../src/runtime/engine/dropout';
import { testExecutors } from './helpers/executors';

/**
 * Convolution, max pooling and batch norm on the engine: each backward rule against central finite
 * differences on onnxruntime, then the same graphs (forward and gradients) on TF.js against
 * onnxruntime. onnxruntime's Conv and ConvTranspose are float-only, so the convolution cases run
 * in float32 (h 1e-2, tolerance 1e-3; see helpers/gradcheck.ts): a convolution is bilinear, so the
 * central difference has no truncation error at all and only float32 rounding (6e-8 |loss| / h,
 * about 1e-5 here) remains. Max pooling and batch norm run in float64.
 */

const CASES: GradientCase[] = [
  { name: 'conv2d 3x3', inputs: { x: { shape: [2, 3, 5, 5] }, w: { shape: [4, 3, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w), float32: true },
  { name: 'conv2d 3x3 pad 1', inputs: { x: { shape: [2, 3, 5, 5] }, w: { shape: [4, 3, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w, { pad: 1 }), float32: true },
  { name: 'conv2d 3x3 stride 2 pad 1 (odd input)', inputs: { x: { shape: [2, 3, 7, 7] }, w: { shape: [4, 3, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w, { stride: 2, pad: 1 }), float32: true },
  { name: 'conv2d 3x3 stride 2 pad 1 (even input)', inputs: { x: { shape: [1, 2, 6, 6] }, w: { shape: [3, 2, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w, { stride: 2, pad: 1 }), float32: true },
  { name: 'conv2d 7x7 stride 2 pad 3 (the stem)', inputs: { x: { shape: [1, 3, 10, 10] }, w: { shape: [2, 3, 7, 7] } }, f: (g, x) => conv2d(g, x.x, x.w, { stride: 2, pad: 3 }), float32: true },
  { name: 'conv2d 1x1 stride 2 (downsample)', inputs: { x: { shape: [2, 4, 6, 6] }, w: { shape: [3, 4, 1, 1] } }, f: (g, x) => conv2d(g, x.x, x.w, { stride: 2 }), float32: true },
  { name: 'conv2d depthwise (groups = channels) pad 1', inputs: { x: { shape: [2, 3, 5, 5] }, w: { shape: [3, 1, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w, { pad: 1, groups: 3 }), float32: true },
  { name: 'conv2d groups 2 stride 2', inputs: { x: { shape: [1, 4, 7, 7] }, w: { shape: [6, 2, 3, 3] } }, f: (g, x) => conv2d(g, x.x, x.w, { stride: 2, pad: 1, groups: 2 }), float32: true },
  { name: 'maxPool2d 3x3 stride 2 pad 1', inputs: { x: { shape: [2, 3, 8, 8] } }, f: (g, x) => maxPool2d(g, x.x, { kernel: 3, stride: 2, pad: 1 }) },
  { name: 'maxPool2d 3x3 stride 2 pad 1 (odd)', inputs: { x: { shape: [1, 2, 7, 7] } }, f: (g, x) => maxPool2d(g, x.x, { kernel: 3, stride: 2, pad: 1 }) },
  { name: 'maxPool2d 2x2 stride 2', inputs: { x: { shape: [1, 2, 6, 6] } }, f: (g, x) => maxPool2d(g, x.x, { kernel: 2, stride: 2, pad: 0 }) },
  {
    name: 'batchNorm2d training (batch statistics)',
    inputs: { x: { shape: [3, 2, 3, 3] }, w: { shape: [2] }, b: { shape: [2] }, m: { shape: [2] }, v: { shape: [2], positive: true } },
    f: (g, x) => batchNorm2d(g, x.x, { weight: x.w, bias: x.b, runningMean: x.m, runningVar: x.v }, 'train'),
  },
  {
    name: 'batchNorm2d inference (running statistics)',
    inputs: { x: { shape: [2, 3, 2, 2] }, w: { shape: [3] }, b: { shape: [3] }, m: { shape: [3] }, v: { shape: [3], positive: true } },
    f: (g, x) => batchNorm2d(g, x.x, { weight: x.w, bias: x.b, runningMean: x.m, runningVar: x.v }, 'inference'),
  },
  {
    name: 'conv, batch norm, relu, max pool (composite)',
    inputs: { x: { shape: [2, 2, 8, 8] }, w: { shape: [3, 2, 3, 3] }, s: { shape: [3] }, b: { shape: [3] } },
    f: (g, x) => {
      const y = conv2d(g, x.x, x.w, { stride: 2, pad: 1 });
      const [m, v] = [g.constant([0, 0, 0], [3]), g.constant([1, 1, 1], [3])];
      return maxPool2d(g, g.relu(batchNorm2d(g, y, { weight: x.s, bias: x.b, runningMean: m, runningVar: v }, 'train')), { kernel: 3, stride: 2, pad: 1 });
    },
    float32: true,
  },
];

let ort: Executor;
let tfjs: Executor;

describe('engine: convolution, pooling and batch norm', () => {
  before(async () => {
    ({ ort, tfjs } = await testExecutors());
  });

  test('the new ops have backward rules', () => {
    for (const op of ['conv2d', 'maxPool2d']) assert.ok(hasRule(op), `${op} has no backward rule`);
  });

  for (const c of CASES) test(`finite differences: ${c.name}`, async () => checkAgainstFiniteDifferences(ort, c));

  for (const method of ['swapped', 'im2col']) {
    test(`conv weight gradient by ${method} agrees with finite differences`, async () => {
      process.env.TRIPLEX_CONV_DW = method;
      try {
        for (const c of CASES.filter((k) => k.name.startsWith('conv2d') && !k.name.includes('group'))) await checkAgainstFiniteDifferences(ort, c);
      } finally {
        delete process.env.TRIPLEX_CONV_DW;
      }
    });
  }

  test('TF.js engine: the same graphs, forward and gradients, agree with onnxruntime (float32, 1e-4)', async () => {
    for (const c of CASES) await checkEnginesAgree(ort, tfjs, c);
  });

  test('buffers: a training step feeds them and writes back their updates (momentum 0.1, unbiased variance)', async () => {
    const x = Float32Array.from({ length: 2 * 1 * 2 * 2 }, (_, i) => i); // one channel: 0..7
    const step = await compileTrainStep(ort, (g: Graph) => {
      const input = g.input('x', [2, 1, 2, 2]);
      const p = { weight: g.param('bn.weight', [1]), bias: g.param('bn.bias', [1]), runningMean: g.buffer('bn.running_mean', [1]), runningVar: g.buffer('bn.running_var', [1]) };
      const y = batchNorm2d(g, input, p, 'train', { update: { runningMean: 'bn.running_mean', runningVar: 'bn.running_var' } });
      return g.mean(g.square(y), [0, 1, 2, 3]);
    });
    const state = { ...initialState(new Map([['bn.weight', Float32Array.of(1)], ['bn.bias', Float32Array.of(0)]])), buffers: new Map([['bn.running_mean', Float32Array.of(1)], ['bn.running_var', Float32Array.of(2)]]) };
    await step.run(state, { x }, 1e-3, new DropoutStreams());
    // batch mean 3.5, unbiased variance 6: 0.9 * 1 + 0.1 * 3.5 and 0.9 * 2 + 0.1 * 6.
    assert.ok(Math.abs((state.buffers.get('bn.running_mean') as Float32Array)[0] - 1.25) < 1e-6);
    assert.ok(Math.abs((state.buffers.get('bn.running_var') as Float32Array)[0] - 2.4) < 1e-6);
    assert.equal(state.step, 1);
    await step.program.dispose();
  });
});
