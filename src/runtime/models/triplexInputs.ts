import type { StateDict } from '../weights/stateDict';
import type { ViewName } from './triplexConfig';

/**
 * What TRIPLEX takes in per spot, whichever engine runs it: token counts of the target and
 * neighbor views, and the per-channel statistics a configuration with standardised inputs
 * (TriplexConfig.standardizeInputs) keeps with its weights.
 */

/** Tokens of the target view (the ResNet18 7x7 map) and of the neighbor view (5x5 tiles). */
export const TARGET_TOKENS = 49;
export const NEIGHBOR_TOKENS = 25;

/** Per-channel mean and standard deviation of one frozen input, [d] each. */
export interface ChannelStats { mean: Float32Array; std: Float32Array }
export type InputStats = Partial<Record<ViewName, ChannelStats>>;

/** 1 / std per channel, a constant channel's std taken as 1e-6: what standardisation multiplies by. */
export const inverseStd = (std: Float32Array): Float32Array => Float32Array.from(std, (x) => 1 / Math.max(x, 1e-6));

/** The input statistics a checkpoint holds for `views` (`input_norm.<view>.mean|std`); an error naming `source` when one is missing. */
export function inputStatsFrom(sd: StateDict, views: readonly ViewName[], source: string): InputStats {
  const stats: InputStats = {};
  for (const v of views) {
    const mean = sd.get(`input_norm.${v}.mean`);
    const std = sd.get(`input_norm.${v}.std`);
    if (!mean || !std) throw new Error(`${source}: lacks input_norm.${v}.mean/std, which a model with standardised inputs needs`);
    stats[v] = { mean: mean.data, std: std.data };
  }
  return stats;
}
