import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import type { StateDict } from '../../src/runtime/weights/stateDict';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { OnnxGraphBuilder, type OnnxDim } from '../../src/runtime/engine/onnxProto';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import type { Executor } from '../../src/runtime/engine/executor';
import { ResNet18Encoder } from '../../src/runtime/features/resnet18Encoder';
import { seededResNet18StateDict } from '../../src/runtime/models/resnet18Weights';
import { createOnnxEncoder, loadOnnxRuntime, onnxRuntimeStatus } from '../../src/runtime/onnx/engine';
import { relativeError } from './helpers/compare';

/**
 * The built-in ResNet18 encoder (the engine's graph) on onnxruntime against the same graph on the
 * engine's TF.js interpreter (torchvision parity: resnet18.test.ts); users' ONNX encoders against
 * values computed by hand; and the failure modes.
 * onnxruntime-node is optional: TRIPLEX_SKIP_ONNX=1 skips these on a machine without it.
 */
const onnxSkip: string | false = process.env.TRIPLEX_SKIP_ONNX ? 'needs onnxruntime-node, and TRIPLEX_SKIP_ONNX is set' : false;

const SIZE = 224;
const uniform = (rand: () => number, n: number, lo: number, hi: number) => Float32Array.from({ length: n }, () => lo + (hi - lo) * rand());

/** Non-trivial batch-norm statistics and affine parameters, so that folding is really tested. */
function randomiseBatchNorms(sd: StateDict, seed: number): void {
  const rand = mulberry32(seed);
  for (const [key, t] of sd) {
    const n = t.data.length;
    if (key.endsWith('running_var')) t.data.set(uniform(rand, n, 0.5, 2));
    else if (key.endsWith('running_mean')) t.data.set(normal(rand, n, 0.2));
    else if (/bn\d\.weight$|downsample\.1\.weight$/.test(key)) t.data.set(uniform(rand, n, 0.5, 1.5));
    else if (key.endsWith('.bias')) t.data.set(normal(rand, n, 0.1));
  }
}

describe('onnxruntime-node loads', { skip: onnxSkip }, () => {
  test('the optional package is found and reports its version', async () => {
    const ort = await loadOnnxRuntime();
    const status = onnxRuntimeStatus();
    assert.ok(ort, `onnxruntime-node did not load: ${status.reason}`);
    assert.equal(status.available, true);
    assert.match(status.version ?? '', /^\d+\.\d+\.\d+/);
  });
});

describe('the ResNet18 encoder on onnxruntime equals the TF.js interpreter', { skip: onnxSkip }, () => {
  const n = 5;
  let sd: StateDict;
  let images: Float32Array; // [5, 224, 224, 3], ImageNet-normalised
  let ort: Executor;
  let encoder: ResNet18Encoder; // onnxruntime, 2 crops a run: 5 crops are three runs, the last padded
  let expected: { tokens: Float32Array; pooled: Float32Array };

  before(async () => {
    await initCompute({ backend: 'wasm' });
    sd = seededResNet18StateDict(11);
    randomiseBatchNorms(sd, 12);
    images = normal(mulberry32(13), n * SIZE * SIZE * 3);
    const made = await createOrtExecutor({ threads: 2 });
    if ('unavailable' in made) throw new Error(made.unavailable);
    ort = made;
    encoder = new ResNet18Encoder(ort, sd, 'randomised', 2);
    const tfjs = new ResNet18Encoder(createTfjsExecutor(), sd, 'randomised', 8);
    expected = await tfjs.encode(images, n);
    const tensors = tf.memory().numTensors;
    await tfjs.encode(images, n);
    assert.equal(tf.memory().numTensors, tensors, 'a TF.js run left tensors behind');
    await tfjs.dispose();
  });
  after(async () => {
    await encoder?.dispose();
  });

  test('tokens and pooled features match within 1e-4 (random weights, random batch-norm statistics)', async (t) => {
    assert.deepEqual([encoder.embeddingWidth, encoder.inputSize, encoder.providesTokens], [512, 224, true]);
    const got = await encoder.encode(images, n);
    assert.equal(got.tokens.length, n * 7 * 7 * 512);
    assert.equal(got.pooled.length, n * 512);
    const eTokens = relativeError(got.tokens, expected.tokens);
    const ePooled = relativeError(got.pooled, expected.pooled);
    t.diagnostic(`relative error vs the TF.js interpreter: tokens ${eTokens.toExponential(2)}, pooled ${ePooled.toExponential(2)}`);
    assert.ok(eTokens < 1e-4, `tokens differ by ${eTokens}`);
    assert.ok(ePooled < 1e-4, `pooled features differ by ${ePooled}`);
  });

  test('layer3 maps and a whole tile\'s map are the same graph, cut short or run wider', async () => {
    const l3 = await encoder.layer3(images.subarray(0, 3 * SIZE * SIZE * 3), 3);
    assert.equal(l3.length, 3 * 14 * 14 * 256);
    assert.ok(l3.some((v) => v > 0) && l3.every((v) => v >= 0), 'layer3 ends in a ReLU');
    // A 224 px image's map is its crop's tokens.
    const map = await encoder.map(images.subarray(0, SIZE * SIZE * 3), SIZE);
    assert.ok(relativeError(map, expected.tokens.subarray(0, 49 * 512)) < 1e-5);
    await assert.rejects(encoder.map(new Float32Array(100 * 100 * 3), 100), /multiple of 32/);
  });

  test('repeated calls give identical results and leave earlier results untouched; any count of crops', async () => {
    const first = await encoder.encode(images, n);
    const kept = Float32Array.from(first.pooled);
    for (let i = 0; i < 2; i++) {
      const again = await encoder.encode(images, n);
      assert.deepEqual(again.pooled, first.pooled);
      assert.deepEqual(again.tokens, first.tokens);
    }
    assert.deepEqual(first.pooled, kept, 'a later call overwrote the arrays an earlier call returned');
    const one = await encoder.encode(images.subarray(0, SIZE * SIZE * 3), 1);
    assert.ok(relativeError(one.pooled, first.pooled.subarray(0, 512)) < 1e-6);
    const three = await encoder.encode(images.subarray(2 * SIZE * SIZE * 3), 3);
    assert.ok(relativeError(three.pooled, first.pooled.subarray(2 * 512)) < 1e-6);
  });

  test('a batch of the wrong length is refused with both sizes; a disposed encoder says so', async () => {
    await assert.rejects(encoder.encode(new Float32Array(100), 1), /expected 1 NHWC images of 224x224x3 \(150528 values\), got 100/);
    const other = new ResNet18Encoder(ort, sd, 'randomised', 2);
    await other.dispose();
    await assert.rejects(other.encode(images, n), /disposed/);
  });
});

/**
 * A user's encoder exported NCHW: Conv(3 -> 32, 3x3, stride 2, pad 1) -> Relu ->
 * GlobalAveragePool -> Flatten, on 32x32 images; `batch` may be fixed.
 */
function tinyConvEncoder(batch: OnnxDim, w: Float32Array, b: Float32Array): Uint8Array {
  const g = new OnnxGraphBuilder('tiny_conv_encoder');
  g.input('pixel_values', [batch, 3, 32, 32]);
  const conv = g.node('Conv', ['pixel_values', g.floats('w', [32, 3, 3, 3], w), g.floats('b', [32], b)], 'conv', {
    kernel_shape: { ints: [3, 3] }, strides: { ints: [2, 2] }, pads: { ints: [1, 1, 1, 1] },
  });
  g.node('Flatten', [g.node('GlobalAveragePool', [g.node('Relu', [conv], 'relu')], 'gap')], 'embedding', { axis: { i: 1 } });
  g.output('embedding', [batch, 32]);
  return g.toModel();
}

/** The same computation, by hand, on NHWC input: [n, 32, 32, 3] -> [n, 32]. */
function tinyConvExpected(x: Float32Array, n: number, w: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(n * 32);
  for (let img = 0; img < n; img++) {
    for (let o = 0; o < 32; o++) {
      let sum = 0;
      for (let i = 0; i < 16; i++) {
        for (let j = 0; j < 16; j++) {
          let v = b[o];
          for (let kh = 0; kh < 3; kh++) {
            for (let kw = 0; kw < 3; kw++) {
              const y = 2 * i + kh - 1;
              const xx = 2 * j + kw - 1;
              if (y < 0 || y >= 32 || xx < 0 || xx >= 32) continue;
              for (let c = 0; c < 3; c++) v += x[((img * 32 + y) * 32 + xx) * 3 + c] * w[((o * 3 + c) * 3 + kh) * 3 + kw];
            }
          }
          sum += Math.max(v, 0);
        }
      }
      out[img * 32 + o] = sum / 256;
    }
  }
  return out;
}

/** A ViT-like NHWC encoder with dynamic size and width: pixels as tokens, [n, h*w, 3] x [3, 32]. */
function tinyTokenEncoder(proj: Float32Array): Uint8Array {
  const g = new OnnxGraphBuilder('tiny_token_encoder');
  g.input('image', ['batch', 'height', 'width', 3]);
  const tokens = g.node('Reshape', ['image', g.int64s('to_tokens', [0, -1, 3])], 'tokens_in');
  g.node('MatMul', [tokens, g.floats('proj', [3, 32], proj)], 'last_hidden_state');
  g.output('last_hidden_state', ['batch', 'tokens', 'hidden']);
  return g.toModel();
}

describe("a user's ONNX encoder", { skip: onnxSkip }, () => {
  const rand = mulberry32(21);
  const w = normal(rand, 32 * 3 * 3 * 3, 0.3);
  const b = normal(rand, 32, 0.1);
  const n = 3;
  const x = normal(rand, n * 32 * 32 * 3);
  const expected = tinyConvExpected(x, n, w, b);
  let tmp = '';
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-onnx-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const batch of ['batch', 2] as const) {
    test(`NCHW Conv -> GlobalAveragePool -> Flatten from a file, batch dimension ${batch}`, async (t) => {
      const file = path.join(tmp, `tiny_${batch}.onnx`);
      fs.writeFileSync(file, tinyConvEncoder(batch, w, b));
      const enc = await createOnnxEncoder(file, { threads: 1 });
      assert.equal(enc.embeddingWidth, 32);
      assert.equal(enc.inputSize, 32);
      assert.equal(enc.providesTokens, false);
      assert.equal(enc.name, `onnx:tiny_${batch}.onnx`);
      const got = await enc.encode(x, n);
      await enc.dispose();
      assert.equal(got.tokens, undefined);
      const e = relativeError(got.pooled, expected);
      t.diagnostic(`relative error vs hand-computed: ${e.toExponential(2)}`);
      assert.ok(e < 1e-5, `features differ by ${e}`);
    });
  }

  test('3-D output [n, tokens, width]: dynamic width is learned, tokens are averaged (or the first taken)', async () => {
    const proj = normal(rand, 3 * 32);
    const model = tinyTokenEncoder(proj);
    const imgs = normal(rand, 2 * 16 * 16 * 3);
    const project = (px: Float32Array) => Float32Array.from({ length: 32 }, (_, j) => px[0] * proj[j] + px[1] * proj[32 + j] + px[2] * proj[64 + j]);
    const mean = new Float32Array(2 * 32);
    const cls = new Float32Array(2 * 32);
    for (let img = 0; img < 2; img++) {
      const avg = new Float32Array(3);
      for (let p = 0; p < 256; p++) for (let c = 0; c < 3; c++) avg[c] += imgs[(img * 256 + p) * 3 + c] / 256;
      mean.set(project(avg), img * 32);
      cls.set(project(imgs.subarray(img * 768, img * 768 + 3)), img * 32);
    }
    for (const [pooling, want] of [['mean', mean], ['cls', cls]] as const) {
      const enc = await createOnnxEncoder(model, { inputSize: 16, tokenPooling: pooling, threads: 1 });
      assert.equal(enc.embeddingWidth, 32);
      assert.equal(enc.inputSize, 16);
      const got = await enc.encode(imgs, 2);
      await enc.dispose();
      assert.ok(relativeError(got.pooled, want) < 1e-5, `${pooling} pooling differs by ${relativeError(got.pooled, want)}`);
    }
  });

  test('a corrupt .onnx file is refused with its path', async () => {
    const good = tinyConvEncoder('batch', w, b);
    const broken = path.join(tmp, 'broken.onnx');
    fs.writeFileSync(broken, good.subarray(0, Math.floor(good.length / 2))); // truncated in the weights
    await assert.rejects(createOnnxEncoder(broken), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.includes(broken), e.message);
      assert.match(e.message, /could not be loaded as an ONNX model/);
      return true;
    });
    const garbage = path.join(tmp, 'garbage.onnx');
    fs.writeFileSync(garbage, Buffer.from('PK\x03\x04 this is a zip, not an ONNX model'));
    await assert.rejects(createOnnxEncoder(garbage), (e: unknown) => e instanceof Error && e.message.includes(garbage));
    const missing = path.join(tmp, 'missing.onnx');
    await assert.rejects(createOnnxEncoder(missing), new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} does not exist`));
  });

  test('a model without an image-like input is refused, naming the file and its inputs', async () => {
    const g = new OnnxGraphBuilder('not_an_image_model');
    g.input('features', ['batch', 10]);
    g.node('Relu', ['features'], 'out');
    g.output('out', ['batch', 10]);
    const file = path.join(tmp, 'tabular.onnx');
    fs.writeFileSync(file, g.toModel());
    await assert.rejects(createOnnxEncoder(file), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.ok(e.message.includes(file), e.message);
      assert.match(e.message, /no image input.*features float32 \[batch, 10\]/);
      return true;
    });
  });
});
