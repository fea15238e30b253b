import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { relativeError } from './helpers/compare';
import type { Executor } from '../../src/runtime/engine/executor';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { ResNet18Encoder } from '../../src/runtime/features/resnet18Encoder';
import { loadStateDict, WeightFileError } from '../../src/runtime/weights';
import { torchReference, torchSkip } from './helpers/torch';

/**
 * The frozen ResNet18 encoder (the engine's graph of models/resnet18.ts, inference mode) against
 * torchvision's trunk, with the same weights and input, loaded from each file format users have,
 * on onnxruntime and on the engine's TF.js interpreter. The reference files come from a script
 * run with Debian's PyTorch. (Training mode and gradients: engineResnet18.test.ts.)
 */

const readF32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
};

describe('the frozen ResNet18 encoder matches torchvision', { skip: torchSkip }, () => {
  const ref = torchReference('torchvision_resnet18_reference.py');
  let dir = '';
  let x: Float32Array; // [2, 224, 224, 3] NHWC
  const executors: [string, Executor][] = [];

  before(async () => {
    await initCompute({ backend: 'wasm' });
    dir = ref.dir();
    x = readF32(path.join(dir, 'input.f32'));
    const ort = await createOrtExecutor({ threads: 2 });
    if ('unavailable' in ort) throw new Error(`onnxruntime-node: ${ort.unavailable}`);
    executors.push(['onnxruntime', ort], ['TF.js', createTfjsExecutor()]);
  });

  for (const file of ['resnet18.pth', 'lightning.ckpt', 'resnet18.safetensors']) {
    test(`inference from ${file}, tokens and pooled, on both engines`, async (t) => {
      for (const [engine, executor] of executors) {
        const encoder = new ResNet18Encoder(executor, await loadStateDict(path.join(dir, file)), file, 2);
        const got = await encoder.encode(x, 2);
        await encoder.dispose();
        assert.equal(got.tokens.length, 2 * 7 * 7 * 512);
        const eTokens = relativeError(got.tokens, readF32(path.join(dir, 'eval_tokens.f32')));
        const ePooled = relativeError(got.pooled, readF32(path.join(dir, 'eval_pooled.f32')));
        t.diagnostic(`${engine}: relative error tokens ${eTokens.toExponential(2)}, pooled ${ePooled.toExponential(2)}`);
        assert.ok(eTokens < 1e-4, `${engine}: tokens differ from torchvision by ${eTokens}`);
        assert.ok(ePooled < 1e-4, `${engine}: pooled features differ from torchvision by ${ePooled}`);
      }
    });
  }
});

describe('bad checkpoints are refused whole', { skip: torchSkip }, () => {
  const ref = torchReference('torchvision_resnet18_reference.py');
  let tmp = '';
  before(async () => {
    await initCompute({ backend: 'wasm' });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-bad-ckpt-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** Builds an encoder from the mutated weights: refused before any graph is built, naming the file. */
  async function expectRefused(mutate: (sd: Map<string, { shape: number[]; data: Float32Array; sourceDtype: string }>) => void, pattern: RegExp) {
    const sd = await loadStateDict(path.join(ref.dir(), 'resnet18.pth'));
    mutate(sd);
    assert.throws(() => new ResNet18Encoder(createTfjsExecutor(), sd, '/data/mine.pth'), (e: unknown) => {
      assert.ok(e instanceof WeightFileError, String(e));
      assert.match(e.message, /\/data\/mine\.pth/);
      assert.match(e.message, pattern);
      return true;
    });
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
