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
