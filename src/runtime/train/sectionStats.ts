import type { ViewName } from '../models/triplexConfig';
import type { ChannelStats, InputStats } from '../models/triplexInputs';
import type { SectionInputs } from './data';

/** What a fold's start takes from its training sections: the inputs' per-channel statistics (standardised views) and the mean expression (the heads' bias). */

/** Per-channel mean and standard deviation of each view's frozen inputs over the sections' spots. */
export function inputStats(sections: readonly SectionInputs[], views: readonly ViewName[], d: number): InputStats {
  const of = (arrays: Float32Array[], rowMask?: (s: number, row: number) => boolean): ChannelStats => {
    const sum = new Float64Array(d);
    const sq = new Float64Array(d);
    let n = 0;
    arrays.forEach((a, s) => {
      for (let r = 0; r < a.length / d; r++) {
        if (rowMask && !rowMask(s, r)) continue;
        for (let c = 0; c < d; c++) {
          const v = a[r * d + c];
          sum[c] += v;
          sq[c] += v * v;
        }
        n++;
      }
    });
    const mean = Float32Array.from(sum, (v) => v / Math.max(n, 1));
    return { mean, std: Float32Array.from(sq, (v, c) => Math.sqrt(Math.max(v / Math.max(n, 1) - mean[c] * mean[c], 0))) };
  };
  const stats: InputStats = {};
  if (views.includes('target')) stats.target = of(sections.map((s) => s.target!));
  // Masked tiles hold the encoding of a blank input: left out of the statistics.
  if (views.includes('neighbor')) stats.neighbor = of(sections.map((s) => s.neighbors!), (s, row) => sections[s].mask![row] > 0);
  if (views.includes('global')) stats.global = of(sections.map((s) => s.global!));
  return stats;
}

/** Mean normalised expression per gene over the sections' spots. */
export function meanExpression(sections: readonly SectionInputs[], genes: number): Float32Array {
  const sum = new Float64Array(genes);
  let n = 0;
  for (const s of sections) {
    for (let i = 0; i < s.values.length; i++) sum[i % genes] += s.values[i];
    n += s.n;
  }
  return Float32Array.from(sum, (v) => v / n);
}
