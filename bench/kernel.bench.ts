import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KernelProcess } from '../src/kernel/client';
import { printTable } from './table';

/**
 * The notebook kernel (issue: a trivial cell's round trip under 50 ms median with a warm kernel,
 * a kernel start under 2 s). Each is printed beside its floor measured in the same run: a bare
 * Node child with an IPC channel that echoes a message, and the start of such a child.
 */

const TARGETS = { roundTripMs: 50, startMs: 2000 };
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

async function bareChild(): Promise<{ child: ChildProcess; startMs: number }> {
  const t0 = performance.now();
  const child = spawn(process.execPath, ['-e', "process.on('message', (m) => process.send(m)); process.send('ready');"], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'advanced' });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`the bare Node child exited with code ${code}`)));
  });
  return { child, startMs: performance.now() - t0 };
}

export async function benchKernel(cells = 200, starts = 5): Promise<void> {
  const kernelScript = path.join(__dirname, 'kernel.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-kernel-bench-'));
  try {
    const kernelStarts: number[] = [];
    const bareStarts: number[] = [];
    for (let i = 0; i < starts; i++) {
      const t0 = performance.now();
      const k = await KernelProcess.start({ kernelScript, notebookDir: dir });
      kernelStarts.push(performance.now() - t0);
      k.dispose();
      const bare = await bareChild();
      bareStarts.push(bare.startMs);
      bare.child.kill();
    }

    const kernel = await KernelProcess.start({ kernelScript, notebookDir: dir });
    const sink = { stream: () => undefined, display: () => undefined };
    const trips: number[] = [];
    for (let i = 0; i < cells + 10; i++) {
      const t0 = performance.now();
      const outcome = await kernel.execute(`const x${i % 7} = ${i};\nx${i % 7} + 1`, { label: 'Cell 1', language: 'typescript' }, sink);
      if (outcome.status !== 'ok') throw new Error(`the bench cell failed: ${JSON.stringify(outcome)}`);
      if (i >= 10) trips.push(performance.now() - t0); // the first cells warm the compiler up
    }
    // The first `import 'triplex'` loads the runtime (TF.js included): what a notebook's first cell pays.
    const t0 = performance.now();
    await kernel.execute("import { crossValidate } from 'triplex';", { label: 'Cell 1', language: 'typescript' }, sink);
    const runtimeLoadMs = performance.now() - t0;
    kernel.dispose();

    const bare = await bareChild();
    const echoes: number[] = [];
    for (let i = 0; i < cells; i++) {
      const e0 = performance.now();
      bare.child.send({ i });
      await new Promise<void>((resolve) => bare.child.once('message', () => resolve()));
      echoes.push(performance.now() - e0);
    }
    bare.child.kill();

    printTable('Notebook kernel (ms)', ['measure', 'median', 'p95', 'floor (bare Node child) median', 'target'], [
      ['trivial cell round trip (warm)', quantile(trips, 0.5), quantile(trips, 0.95), quantile(echoes, 0.5), `< ${TARGETS.roundTripMs}`],
      ['kernel start', quantile(kernelStarts, 0.5), Math.max(...kernelStarts), quantile(bareStarts, 0.5), `< ${TARGETS.startMs}`],
      ["first import of 'triplex'", runtimeLoadMs, '-', '-', '-'],
    ]);
    const verdict = (v: number, t: number) => (v < t ? 'meets' : 'MISSES');
    console.log(`round trip ${verdict(quantile(trips, 0.5), TARGETS.roundTripMs)} its target; kernel start ${verdict(quantile(kernelStarts, 0.5), TARGETS.startMs)} its target`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
