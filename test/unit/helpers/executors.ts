import { initCompute } from '../../../src/runtime/compute/backend';
import type { Executor } from '../../../src/runtime/engine/executor';
import { createOrtExecutor } from '../../../src/runtime/engine/ort';
import { createTfjsExecutor } from '../../../src/runtime/engine/tfjs';

/**
 * The two executors the engine tests compare: onnxruntime on one thread (repeatable sums), and
 * TF.js on its cpu backend. onnxruntime missing fails the test: the engine tests need it.
 */
export async function testExecutors(): Promise<{ ort: Executor; tfjs: Executor }> {
  const ort = await createOrtExecutor({ threads: 1 });
  if ('unavailable' in ort) throw new Error(`onnxruntime-node is needed for the engine tests: ${ort.unavailable}`);
  await initCompute({ backend: 'cpu' });
  return { ort, tfjs: createTfjsExecutor() };
}

/** onnxruntime-node's error when Dawn has lost the device under a session run (its buffer manager's read-back fails). */
export const DAWN_DEVICE_LOST = 'Non-zero status code returned while running MatMul node. Name:\'/MatMul\' Status Message: ' +
  '/onnxruntime/core/providers/webgpu/buffer_manager.cc:543 status == wgpu::MapAsyncStatus::Success was false. ' +
  'Failed to download data from buffer: Failed to execute \'mapAsync\' on \'GPUBuffer\': [Device] is lost.';

/**
 * A real executor (onnxruntime's CPU provider) that reports another provider and, from its Nth
 * session run on (counted over all its programs), throws `error`: a GPU whose device is lost
 * mid-run (every run after fails too, as on a lost device). `runs` counts the runs so far.
 */
export function failingAt(inner: Executor, o: { provider: string; failAtRun: number; error?: string }): Executor & { readonly runs: number } {
  let runs = 0;
  return {
    kind: inner.kind, provider: o.provider, threads: inner.threads,
    get runs() { return runs; },
    // Its own description: the sessions cache (engineLearner.ts) keys programs by it.
    describe: () => `${inner.describe()} reporting ${o.provider}, failing from run ${o.failAtRun}`,
    async compile(outputs, name) {
      const program = await inner.compile(outputs, name);
      return {
        buildMs: program.buildMs, nodeCount: program.nodeCount, dispose: () => program.dispose(),
        run: (feeds) => (++runs >= o.failAtRun ? Promise.reject(new Error(o.error ?? DAWN_DEVICE_LOST)) : program.run(feeds)),
      };
    },
  };
}
