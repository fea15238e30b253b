import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { relativeError } from './helpers/compare';
import { createResNet18, type ResNet18 } from '../../src/runtime/model/resnet18';
import { loadStateDict, WeightFileError } from '../../src/runtime/weights';
import { torchReference, torchSkip } from './helpers/torch';

/**
 * Our ResNet18 trunk against torchvision's, with the same weights and input, loaded from each
 * file format users have. The reference files come from a script run with Debian's PyTorch.
 */

const readF32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

describe('ResNet18 trunk matches torchvision', { skip: torchSkip }, () => {
  const ref = torchReference('torchvision_resnet18_reference.py');
  let dir = '';
  let x: tf.Tensor4D;
  let net: ResNet18;

  before(async () => {
    await initCompute({ backend: 'wasm' });
    dir = ref.dir();
    x = tf.tensor4d(readF32(path.join(dir, 'input.f32')), [2, 224, 224, 3]);
  });
  after(() => {
    x?.dispose();
    net?.dispose();
  });

  for (const file of ['resnet18.pth', 'lightning.ckpt', 'resnet18.safetensors']) {
    test(`inference from ${file}`, async (t) => {
      net?.dispose();
      net = createResNet18();
      net.loadStateDict(await loadStateDict(path.join(dir, file)), file);
      const tokens = net.tokens(x, 'inference');
      const pooled = net.pooled(x, 'inference');
      assert.deepEqual(tokens.shape, [2, 7, 7, 512]);
      const eTokens = relativeError(await tokens.data(), readF32(path.join(dir, 'eval_tokens.f32')));
      const ePooled = relativeError(await pooled.data(), readF32(path.join(dir, 'eval_pooled.f32')));
      tf.dispose([tokens, pooled]);
      t.diagnostic(`relative error: tokens ${eTokens.toExponential(2)}, pooled ${ePooled.toExponential(2)}`);
      assert.ok(eTokens < 1e-4, `tokens differ from torchvision by ${eTokens}`);
      assert.ok(ePooled < 1e-4, `pooled features differ from torchvision by ${ePooled}`);
    });
  }

  test('training mode: batch statistics and running-statistics update', async (t) => {
    net?.dispose();
    net = createResNet18();
    net.loadStateDict(await loadStateDict(path.join(dir, 'resnet18.pth')), 'resnet18.pth');
    const tokens = net.tokens(x, 'training');
    const e = relativeError(await tokens.data(), readF32(path.join(dir, 'train_tokens.f32')));
    tokens.dispose();
    t.diagnostic(`relative error: train-mode tokens ${e.toExponential(2)}`);
    assert.ok(e < 1e-4, `train-mode tokens differ from torchvision by ${e}`);
    const want = JSON.parse(fs.readFileSync(path.join(dir, 'train_running.json'), 'utf8')) as Record<string, number[]>;
    const sd = await net.stateDict();
    for (const [key, values] of Object.entries(want)) {
      const got = sd.get(key);
      assert.ok(got, key);
      const err = relativeError(got.data, values);
      assert.ok(err < 1e-4, `${key} after one training forward differs from torchvision by ${err}`);
    }
  });

  test('stateDict() round-trips through loadStateDict()', async () => {
    const sd = await net.stateDict();
    const copy = createResNet18({ seed: 99 });
    copy.loadStateDict(sd, 'memory');
    const a = net.pooled(x, 'inference');
    const b = copy.pooled(x, 'inference');
    assert.ok(relativeError(await b.data(), await a.data()) < 1e-6);
    tf.dispose([a, b]);
    copy.dispose();
  });
});

describe('bad checkpoints are refused whole', { skip: torchSkip }, () => {
  const ref = torchReference('torchvision_resnet18_reference.py');
  let tmp = '';
  before(async () => {
    await initCompute({ backend: 'wasm' });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-bad-ckpt-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Loads `sd` into a fresh trunk, expects an error, and checks that no weight changed. */
  async function expectRefused(mutate: (sd: Map<string, { shape: number[]; data: Float32Array; sourceDtype: string }>) => void, pattern: RegExp) {
    const sd = await loadStateDict(path.join(ref.dir(), 'resnet18.pth'));
    mutate(sd);
    const net = createResNet18({ seed: 5 });
    const before = await net.stateDict();
    assert.throws(() => net.loadStateDict(sd, '/data/mine.pth'), (e: unknown) => {
      assert.ok(e instanceof WeightFileError, String(e));
      assert.match(e.message, /\/data\/mine\.pth/);
      assert.match(e.message, pattern);
      return true;
    });
    const afterLoad = await net.stateDict();
    for (const [k, v] of before) assert.deepEqual(afterLoad.get(k)?.data, v.data, `${k} was changed by a refused load`);
    net.dispose();
  }

  test('a missing tensor is named', async () => {
    await expectRefused((sd) => sd.delete('layer3.1.bn2.running_var'), /layer3\.1\.bn2\.running_var/);
  });

  test('a tensor of the wrong shape is named with both shapes', async () => {
    await expectRefused((sd) => {
      sd.set('layer2.0.conv1.weight', { shape: [128, 64, 5, 5], data: new Float32Array(128 * 64 * 25), sourceDtype: 'float32' });
    }, /layer2\.0\.conv1\.weight.*\[128, 64, 5, 5\].*\[128, 64, 3, 3\]/);
  });

  test('a truncated checkpoint names the file', async () => {
    const bytes = fs.readFileSync(path.join(ref.dir(), 'resnet18.pth'));
    const cut = path.join(tmp, 'truncated.pth');
    fs.writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    await assert.rejects(loadStateDict(cut), (e: unknown) => e instanceof WeightFileError && e.message.includes(cut));
  });

  test('a file that is not a checkpoint names the file', async () => {
    const notZip = path.join(tmp, 'notes.pth');
    fs.writeFileSync(notZip, 'these are not weights\n');
    await assert.rejects(loadStateDict(notZip), (e: unknown) => e instanceof WeightFileError && e.message.includes(notZip));
  });
});
