import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Items per second of `run` over `iterations` timed repetitions after one warm-up: the mean and the best. */
export async function throughput(items: number, iterations: number, run: () => Promise<unknown>): Promise<{ mean: number; best: number }> {
  await run(); // warm-up: graphs built, caches filled
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = performance.now();
    await run();
    times.push((performance.now() - t) / 1000);
  }
  return { mean: items / (times.reduce((a, b) => a + b, 0) / times.length), best: items / Math.min(...times) };
}

/** Samples RSS every few ms until stopped, and gives the peak; libvips and geotiff decode off the main thread, so the timer runs meanwhile. */
export function startRssSampler(): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

/** /proc/self/status VmHWM (peak resident set) in bytes; the resource usage's maxRSS elsewhere. */
export function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch { /* not Linux: fall back below */ }
  return process.resourceUsage().maxRSS * 1024;
}

/**
 * Runs the bench's own entry (dist/bench.js) in a child process with `args`: its last line of
 * JSON, or `failed: ` and the last `stderrLines` lines of its error output.
 */
export function benchChild<T>(args: string[], o: { maxBuffer?: number; stderrLines?: number } = {}): T | string {
  const r = spawnSync(process.execPath, [path.join(__dirname, 'bench.js'), ...args], { encoding: 'utf8', maxBuffer: o.maxBuffer ?? 16 * 2 ** 20 });
  if (r.status !== 0) return `failed: ${(r.stderr || r.error?.message || `exit ${r.status ?? r.signal}`).trim().split('\n').slice(-(o.stderrLines ?? 2)).join(' ')}`;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as T;
}
