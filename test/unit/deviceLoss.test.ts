import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { engineReport, selectEngine } from '../../src/runtime/engine/choice';
import { isDeviceLoss } from '../../src/runtime/engine/deviceLoss';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph } from '../../src/runtime/engine/graph';
import { againOnCpuIfDeviceLost } from '../../src/runtime/train/deviceRecovery';
import { readCheckpoint, trainFold, type TrainOptions } from '../../src/runtime/train/trainer';
import { DAWN_DEVICE_LOST, failingAt } from './helpers/executors';
import { config, syntheticData } from './helpers/trainingData';

/**
 * A GPU lost mid-run: the messages of Dawn, CUDA, Vulkan and DirectX that mean it (and those that
 * do not), and a training run whose WebGPU device is lost in its third epoch: one line says so, the
 * run goes on from its last checkpoint on the CPU provider, and ends with the weights of a run
 * stopped at that checkpoint and resumed on the CPU. The GPU is a real onnxruntime CPU executor
 * that reports 'webgpu' and fails from its Nth session run on (helpers/executors.ts). Predictions
 * lost mid-way start again on the CPU; other errors are not retried.
 */

describe('a GPU device lost mid-run', () => {
  let tmp = '';
  let cpu: Executor;
  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-device-loss-'));
    const e = await createOrtExecutor({ threads: 1 });
    if ('unavailable' in e) throw new Error(`onnxruntime-node is needed: ${e.unavailable}`);
    cpu = e;
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('device-loss messages of each GPU stack are recognised; memory, shape and start-up errors are not', () => {
    const lost = [
      DAWN_DEVICE_LOST,
      'WebGPU device lost (2): Device was lost',
      'Failed to download data from buffer: Device is lost.',
      'A valid external Instance reference no longer exists.',
      'CUDA failure 719: unspecified launch failure ; GPU=0 ; hostname=node3 ; file=/onnxruntime/core/providers/cuda/gpu_data_transfer.cc ; line=73 ; expr=cudaMemcpyAsync(dst_data, src_data, bytes, cudaMemcpyDeviceToHost, static_cast<cudaStream_t>(stream.GetHandle()));',
      'CUDA failure 700: an illegal memory access was encountered ; GPU=0',
      'CUDA error cudaErrorECCUncorrectable:uncorrectable ECC error encountered',
      'CUDA_ERROR_LAUNCH_FAILED',
      'GPU has fallen off the bus',
      'vkQueueSubmit failed with VK_ERROR_DEVICE_LOST',
      'The GPU device instance has been suspended. Use GetDeviceRemovedReason to determine the appropriate action. (0x887A0005 DXGI_ERROR_DEVICE_REMOVED)',
    ];
    const notLost = [
      'Non-zero status code returned while running MatMul node. Status Message: std::bad_alloc',
      'CUDA failure 2: out of memory ; GPU=0 ; hostname=node3',
      'Failed to get a WebGPU adapter: no adapter found',
      'Got invalid dimensions for input: x for the following indices index: 0 Got: 3 Expected: 2',
      'ENOSPC: no space left on device, write',
    ];
    for (const m of lost) assert.equal(isDeviceLoss(new Error(m)), true, m);
    for (const m of notLost) assert.equal(isDeviceLoss(new Error(m)), false, m);
    // An error explained for the user keeps the provider's own as its cause.
    assert.equal(isDeviceLoss(new Error('a training step failed', { cause: new Error(DAWN_DEVICE_LOST) })), true);
  });

  test('training goes on from its last checkpoint on the CPU, to the weights of a run stopped there and resumed on the CPU', async (t) => {
    const data = syntheticData(4);
    const base: Omit<TrainOptions, 'outDir'> = { config: config(), mode: 'frozen', train: ['S0', 'S1'], validation: ['S2'], batchSize: 16, learningRate: 1e-2, seed: 5 };
    // The reference: two epochs (counting the session runs they take), stopped, then resumed to four on the CPU.
    const counting = failingAt(cpu, { provider: 'webgpu', failAtRun: Infinity });
    const refDir = path.join(tmp, 'reference');
    const first = await trainFold(data, { ...base, outDir: refDir, epochs: 2, executor: counting });
    assert.equal(first.epochsRun, 2);
    const reference = await trainFold(data, { ...base, outDir: refDir, epochs: 4, executor: cpu });
    assert.equal(reference.resumedFrom, 2);

    // The same run on a "GPU" lost at the third step of the third epoch.
    const gpu = failingAt(cpu, { provider: 'webgpu', failAtRun: counting.runs + 3 });
    const lines: string[] = [];
    const engineLines: string[] = [];
    const dir = path.join(tmp, 'lost');
    const r = await trainFold(data, { ...base, outDir: dir, epochs: 4, executor: gpu, onDeviceLost: (l) => lines.push(l), onEngine: (l) => engineLines.push(l) });
    t.diagnostic(lines.join('\n'));
    assert.equal(lines.length, 1, 'one line');
    assert.match(lines[0], /^device lost: the webgpu execution provider failed at epoch 3, batch 3 \(.*\[Device\] is lost\.\); the run goes on from its last checkpoint .*last\.safetensors \(2 epoch\(s\) done\) on the CPU provider$/);
    assert.equal(r.deviceLost, lines[0]);
    assert.equal(r.resumedFrom, 2);
    assert.equal(r.epochsRun, 4);
    assert.match(engineLines.at(-1)!, /engine: onnxruntime-node .*\(cpu execution provider, 1 CPU thread\)/);
    assert.deepEqual(r.history.map((h) => [h.loss, h.validationPcc]), reference.history.map((h) => [h.loss, h.validationPcc]));
    for (const file of ['last.safetensors', 'best.safetensors']) {
      const want = (await readCheckpoint(path.join(refDir, file))).weights;
      const got = (await readCheckpoint(path.join(dir, file))).weights;
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), file);
      for (const [k, v] of want) assert.deepEqual(got.get(k)!.data, v.data, `${file}: ${k}`);
    }
    // The run's record notes the switch on the epoch run again on the CPU.
    const timings = JSON.parse(fs.readFileSync(path.join(dir, 'timings.json'), 'utf8')) as { epoch: number; deviceLost?: string }[];
    assert.deepEqual(timings.map((x) => [x.epoch, x.deviceLost]), [[0, undefined], [1, undefined], [2, lines[0]], [3, undefined]]);
    // The process is on the CPU now: what runs next does not go back to the lost device, and info says why.
    const after = await selectEngine('ort');
    assert.equal(after.executor?.provider, 'cpu');
    assert.match((await engineReport()).providerWhy ?? '', /the webgpu device was lost mid-run \(.*\[Device\] is lost\.\); the CPU took over/);
  });

  test('predictions lost mid-way start again on the CPU, given the CPU executor', async () => {
    const g = new Graph('float32');
    const x = g.input('x', [2, 2]);
    const outputs = { y: g.add(x, x) };
    const given: (string | undefined)[] = [];
    const predict = async (executor?: Executor) => {
      given.push(executor?.provider);
      const program = await executor!.compile(outputs);
      try {
        return (await program.run({ x: Float32Array.of(1, 2, 3, 4) })).y as Float32Array;
      } finally {
        await program.dispose();
      }
    };
    const lines: string[] = [];
    const y = await againOnCpuIfDeviceLost('the predictions', predict, { executor: failingAt(cpu, { provider: 'webgpu', failAtRun: 1 }), say: (l) => lines.push(l) });
    assert.deepEqual(Array.from(y), [2, 4, 6, 8]);
    assert.deepEqual(given, ['webgpu', 'cpu']);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /^device lost: the webgpu execution provider failed during the predictions \(.*\[Device\] is lost\.\); the predictions start again on the CPU provider$/);
    const shapeError = 'Got invalid dimensions for input: x';
    await assert.rejects(againOnCpuIfDeviceLost('the predictions', predict, { executor: failingAt(cpu, { provider: 'webgpu', failAtRun: 1, error: shapeError }), say: () => assert.fail('not a loss') }),
      (e: Error) => e.message === shapeError);
  });

  test('errors that are not a device loss, and any error on the CPU, are not retried', async () => {
    const data = syntheticData(3);
    const base: Omit<TrainOptions, 'outDir' | 'executor'> = { config: config(), mode: 'frozen', train: ['S0'], validation: ['S1'], batchSize: 16, epochs: 2, seed: 1 };
    const shapeError = 'Got invalid dimensions for input: x for the following indices index: 0 Got: 3 Expected: 2';
    await assert.rejects(trainFold(data, { ...base, outDir: path.join(tmp, 'bug'), executor: failingAt(cpu, { provider: 'webgpu', failAtRun: 2, error: shapeError }) }),
      (e: Error) => e.message === shapeError);
    await assert.rejects(trainFold(data, { ...base, outDir: path.join(tmp, 'on-cpu'), executor: failingAt(cpu, { provider: 'cpu', failAtRun: 2 }), onDeviceLost: () => assert.fail('not a GPU') }),
      /\[Device\] is lost/);
  });
});
