import type { Graph, Sym } from '../graph';
import type { Mode } from '../nn';

/**
 * nn.BatchNorm2d on NCHW from primitives, so that autodiff differentiates it through the ops'
 * own rules. Training mode normalises by the batch's statistics over (N, H, W) (biased variance)
 * and records the running statistics' updates as PyTorch does them (momentum 0.1, the running
 * variance from the unbiased batch variance); inference mode uses the running statistics, folded
 * into one scale and shift per channel.
 */

export interface BatchNormTensors {
  weight: Sym;
  bias: Sym;
  runningMean: Sym;
  runningVar: Sym;
}

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  /** Names of the running-statistics buffers to update in training mode (none: no update). */
  update?: { runningMean: string; runningVar: string };
}

/** [N, C, H, W] -> [N, C, H, W]; the parameters and buffers are [C]. */
export function batchNorm2d(g: Graph, x: Sym, p: BatchNormTensors, mode: Mode, o: BatchNormOptions = {}): Sym {
  const { eps = 1e-5, momentum = 0.1 } = o;
  const C = x.shape[1];
  const perChannel = (s: Sym) => g.reshape(s, [1, C, 1, 1]);
  if (mode === 'inference') {
    const scale = g.div(p.weight, g.sqrt(g.add(p.runningVar, eps))); // [C]
    const shift = g.sub(p.bias, g.mul(p.runningMean, scale)); // [C]
    return g.add(g.mul(x, perChannel(scale)), perChannel(shift));
  }
  const n = x.size / C;
  const mean = g.mean(x, [0, 2, 3], true); // [1, C, 1, 1]
  const centred = g.sub(x, mean); // [N, C, H, W]
  const variance = g.mean(g.square(centred), [0, 2, 3], true); // [1, C, 1, 1], biased
  const scale = g.div(perChannel(p.weight), g.sqrt(g.add(variance, eps))); // [1, C, 1, 1]
  const y = g.add(g.mul(centred, scale), perChannel(p.bias));
  if (o.update) {
    const mix = (old: Sym, batch: Sym) => g.add(g.mul(old, 1 - momentum), g.mul(g.reshape(batch, [C]), momentum));
    g.updateBuffer(o.update.runningMean, mix(p.runningMean, mean));
    g.updateBuffer(o.update.runningVar, mix(p.runningVar, g.mul(variance, n / Math.max(n - 1, 1))));
  }
  return y;
}
