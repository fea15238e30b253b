import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { createResNet18, normalizeImageNet, type ResNet18 } from '../../src/runtime/model/resnet18';
import type { StateDict } from '../../src/runtime/weights/stateDict';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { buildResNet18Onnx, OnnxGraphBuilder, readOnnxModel, type OnnxDim } from '../../src/runtime/onnx/resnet18Graph';
import { createOnnxEncoder, loadOnnxRuntime, onnxRuntimeStatus, type ImageEncoder } from '../../src/runtime/onnx/engine';
import { createTfjsResNet18Encoder } from '../../src/runtime/onnx/tfjsEncoder';
import { relativeError } from './helpers/compare';

/**
 * The ResNet18 graph we write ourselves, run by onnxruntime-node, against the TF.js trunk with the
 * same weights; users' ONNX encoders against values computed by hand; and the failure modes.
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

async function tfReference(net: ResNet18, x: tf.Tensor4D): Promise<{ tokens: Float32Array; pooled: Float32Array }> {
  const tokens = net.tokens(x, 'inference');
  const pooled = net.pooled(x, 'inference');
  const out = { tokens: (await tokens.data()) as Float32Array, pooled: (await pooled.data()) as Float32Array };
  tf.dispose([tokens, pooled]);
  return out;
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

describe('our ONNX ResNet18 equals the TF.js trunk', { skip: onnxSkip }, () => {
  const n = 3;
  let net: ResNet18;
  let sd: StateDict;
  let images: Float32Array; // [3, 224, 224, 3], ImageNet-normalised
  let expected: { tokens: Float32Array; pooled: Float32Array };
  let encoder: ImageEncoder;

  before(async () => {
    await initCompute({ backend: 'wasm' });
    net = createResNet18({ seed: 11 });
    sd = await net.stateDict();
    randomiseBatchNorms(sd, 12);
    net.loadStateDict(sd, 'randomised');
    images = normal(mulberry32(13), n * SIZE * SIZE * 3);
    const x = tf.tensor4d(images, [n, SIZE, SIZE, 3]);
    expected = await tfReference(net, x);
    x.dispose();
    encoder = await createOnnxEncoder(buildResNet18Onnx(sd), { threads: 2, name: 'resnet18 (random weights)' });
  });
  after(async () => {
    await encoder?.dispose();
    net?.dispose();
  });

  test('the graph: opset 17, IR 8, NHWC input with dynamic batch, batch norm folded', () => {
    const model = readOnnxModel(buildResNet18Onnx(sd));
    assert.equal(model.ir_version, 8);
    assert.deepEqual(model.opset_import.map((o) => o.version), [17]);
    const dims = (v: (typeof model.graph.input)[number]) => v.type?.tensor_type?.shape?.dim.map((d) => d.dim_param || d.dim_value);
    assert.deepEqual(model.graph.input.map((i) => [i.name, dims(i)]), [['images', ['N', 224, 224, 3]]]);
    assert.deepEqual(model.graph.output.map((o) => [o.name, dims(o)]), [['tokens', ['N', 7, 7, 512]], ['pooled', ['N', 512]]]);
    const ops = model.graph.node.map((nd) => nd.op_type);
    assert.equal(ops.filter((o) => o === 'Conv').length, 20);
    assert.equal(ops.filter((o) => o === 'Add').length, 8);
    assert.ok(!ops.includes('BatchNormalization'));
    const maxPool = model.graph.node.find((nd) => nd.op_type === 'MaxPool');
    assert.deepEqual(maxPool?.attribute.map((a) => [a.name, a.ints]), [['kernel_shape', [3, 3]], ['strides', [2, 2]], ['pads', [1, 1, 1, 1]]]);
  });

  test('tokens and pooled features match within 1e-4 (random weights, random batch-norm statistics)', async (t) => {
    assert.equal(encoder.embeddingWidth, 512);
    assert.equal(encoder.inputSize, 224);
    assert.equal(encoder.providesTokens, true);
    const got = await encoder.encode(images, n);
    assert.equal(got.tokens?.length, n * 7 * 7 * 512);
    const eTokens = relativeError(got.tokens as Float32Array, expected.tokens);
    const ePooled = relativeError(got.pooled, expected.pooled);
    t.diagnostic(`relative error vs TF.js wasm: tokens ${eTokens.toExponential(2)}, pooled ${ePooled.toExponential(2)}`);
    assert.ok(eTokens < 1e-4, `tokens differ by ${eTokens}`);
    assert.ok(ePooled < 1e-4, `pooled features differ by ${ePooled}`);
  });

  test('normalize: true takes RGB in [0, 255] and normalises inside the graph', async (t) => {
    const rgb = uniform(mulberry32(14), 2 * SIZE * SIZE * 3, 0, 255);
    const x = tf.tidy(() => normalizeImageNet(tf.tensor4d(rgb, [2, SIZE, SIZE, 3])));
    const want = await tfReference(net, x);
    x.dispose();
    const raw = await createOnnxEncoder(buildResNet18Onnx(sd, { normalize: true }), { threads: 2 });
    const got = await raw.encode(rgb, 2);
    await raw.dispose();
    const e = relativeError(got.pooled, want.pooled);
    t.diagnostic(`relative error with in-graph normalisation: pooled ${e.toExponential(2)}`);
    assert.ok(e < 1e-4, `pooled features differ by ${e}`);
  });

  test('repeated calls give identical results and leave earlier results untouched', async () => {
    const first = await encoder.encode(images, n);
    const kept = Float32Array.from(first.pooled);
    for (let i = 0; i < 3; i++) {
      const again = await encoder.encode(images, n);
      assert.deepEqual(again.pooled, first.pooled);
      assert.deepEqual(again.tokens, first.tokens);
    }
    assert.deepEqual(first.pooled, kept, 'a later call overwrote the arrays an earlier call returned');
    // A batch of one, then a batch of two: the dynamic batch dimension serves any size.
    const one = await encoder.encode(images.subarray(0, SIZE * SIZE * 3), 1);
    assert.deepEqual(one.pooled, first.pooled.subarray(0, 512));
    const two = await encoder.encode(images.subarray(SIZE * SIZE * 3), 2);
    assert.ok(relativeError(two.pooled, first.pooled.subarray(512)) < 1e-6);
  });

  test('a batch of the wrong length is refused with both sizes', async () => {
    await assert.rejects(encoder.encode(new Float32Array(100), 1), /expected 1 NHWC images of 224x224x3 \(150528 values\), got 100/);
  });
});

describe('the TF.js encoder (the fallback without onnxruntime-node)', () => {
  test('gives the trunk\'s tokens and pooled features and leaks no tensors', async () => {
    await initCompute({ backend: 'wasm' });
    const net = createResNet18({ seed: 31 });
    const images = normal(mulberry32(32), 2 * SIZE * SIZE * 3);
    const x = tf.tensor4d(images, [2, SIZE, SIZE, 3]);
    const expected = await tfReference(net, x);
    x.dispose();
    const encoder = createTfjsResNet18Encoder(net);
    assert.deepEqual([encoder.embeddingWidth, encoder.inputSize, encoder.providesTokens], [512, 224, true]);
    const tensors = tf.memory().numTensors;
    const got = await encoder.encode(images, 2);
    assert.equal(tf.memory().numTensors, tensors, 'encode() left tensors behind');
    assert.ok(relativeError(got.pooled, expected.pooled) < 1e-6);
    assert.ok(relativeError(got.tokens as Float32Array, expected.tokens) < 1e-6);
    await assert.rejects(encoder.encode(new Float32Array(10), 1), /expected 1 NHWC images of 224x224x3/);
    await encoder.dispose();
    await assert.rejects(encoder.encode(images, 2), /disposed/);
    net.dispose();
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
