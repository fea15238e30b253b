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
