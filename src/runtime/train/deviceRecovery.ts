import * as fs from 'node:fs';
import * as path from 'node:path';
import { cpuAfterDeviceLoss, selectEngine } from '../engine/choice';
import { errorLine, isDeviceLoss, onGpu } from '../engine/deviceLoss';
import type { Executor } from '../engine/executor';
import { readCheckpoint } from './checkpoints';
import type { TrainOptions, TrainResult } from './trainer';

/** Where a run is: the epoch and batch it is on (batch 0: the epoch's validation), and whether it has written a checkpoint. */
export interface RunPosition { epoch: number; batch: number; wrote: boolean }

/**
 * A run whose GPU device is lost under a step or a validation pass (engine/deviceLoss.ts) stops
 * with one line saying so, the process moves to the CPU provider, and the run resumes there from
 * its last checkpoint, optimiser state included: the trainer's resume path, so the same bytes as a
 * run stopped at that checkpoint and resumed on the CPU. Other errors, and errors on the CPU, are
 * not retried. `train` is the trainer's loop; `lost`, on the retry, is the line to note in timings.json.
 */
export async function trainWithDeviceRecovery(options: TrainOptions, train: (o: TrainOptions, at: RunPosition, lost?: string) => Promise<TrainResult>): Promise<TrainResult> {
  const at: RunPosition = { epoch: 0, batch: 0, wrote: false };
  try {
    return await train(options, at);
  } catch (e) {
    const used = options.executor ?? (await selectEngine(options.engine)).executor;
    if (!used || !onGpu(used.provider) || !isDeviceLoss(e)) throw e;
    // A run asked to start over (resume false) resumes only from a checkpoint it wrote itself.
    const resume = options.resume !== false || at.wrote;
    const last = path.join(options.outDir, 'last.safetensors');
    const from = resume && fs.existsSync(last) ? `its last checkpoint ${last} (${(await readCheckpoint(last)).info.epoch} epoch(s) done)` : 'the start (no checkpoint yet)';
    const line = `device lost: the ${used.provider} execution provider failed at epoch ${at.epoch + 1}, ${at.batch ? `batch ${at.batch}` : 'validation'} ` +
      `(${errorLine(e)}); the run goes on from ${from} on the CPU provider`;
    (options.onDeviceLost ?? console.warn)(line);
    const cpu = await cpuAfterDeviceLoss(used, errorLine(e));
    return { ...(await train({ ...options, executor: cpu, resume }, at, line)), deviceLost: line };
  }
}

/**
 * Predictions (or any work on an executor) when a GPU device is lost under them: one line says
 * so, the process moves to the CPU provider, and `work` runs again from its start there (it loads
 * its model again), given the CPU executor. `executor`: the one `work` is first given (default:
 * none, i.e. work takes the process's engine choice, which is then the CPU too). Other errors are
 * not retried.
 */
export async function againOnCpuIfDeviceLost<T>(what: string, work: (executor?: Executor) => Promise<T>, o: { say?: (line: string) => void; executor?: Executor } = {}): Promise<T> {
  try {
    return await work(o.executor);
  } catch (e) {
    const used = o.executor ?? (await selectEngine()).executor;
    if (!used || !onGpu(used.provider) || !isDeviceLoss(e)) throw e;
    (o.say ?? console.warn)(`device lost: the ${used.provider} execution provider failed during ${what} (${errorLine(e)}); ${what} start again on the CPU provider`);
    return work(await cpuAfterDeviceLoss(used, errorLine(e)));
  }
}
