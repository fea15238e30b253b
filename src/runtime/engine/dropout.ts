import { mulberry32 } from '../util/random';

/**
 * Dropout masks drawn in JavaScript, one stream per dropout layer: reseeding with a step's seed
 * gives each layer, in creation order, a state from mulberry32(seed); each 32-bit draw of a
 * layer's stream decides two mask values (low and high 16 bits against keep * 65536). The masks
 * are inputs of the graph, not drawn by the executor, so onnxruntime and the TF.js interpreter
 * train alike for the same seed.
 */
export class DropoutStreams {
  private states: number[] = [];

  /** Gives each of `layers` streams its state for a step. */
  reseed(seed: number, layers: number): void {
    const random = mulberry32(seed);
    this.states = Array.from({ length: layers }, () => Math.floor(random() * 0x100000000) >>> 0);
  }

  /** The next `n` mask values of stream `layer`: 0 or 1 / (1 - rate). */
  mask(layer: number, rate: number, n: number): Float32Array {
    if (layer >= this.states.length) throw new Error(`dropout stream ${layer} was not seeded (${this.states.length} streams)`);
    const { mask, state } = dropoutMask(this.states[layer], rate, n);
    this.states[layer] = state;
    return mask;
  }
}

/**
 * `n` dropout mask values (0 or 1 / (1 - rate)) from a mulberry32 stream at `state`, and the
 * stream's next state. The keep probability in steps of 1/65536: each 32-bit draw, inlined,
 * decides two values, half the time of one generator call per value (which took 100 ms for the
 * [3200, 2048] FFN activation of a neighbor block). Both engines' dropout layers draw with it.
 */
export function dropoutMask(state: number, rate: number, n: number): { mask: Float32Array; state: number } {
  const keep = 1 - rate;
  const scale = 1 / keep;
  const threshold = Math.round(keep * 65536);
  const mask = new Float32Array(n);
  let a = state;
  for (let i = 0; i < n; i += 2) {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    t = (t ^ (t >>> 14)) >>> 0;
    mask[i] = (t & 0xffff) < threshold ? scale : 0;
    if (i + 1 < n) mask[i + 1] = t >>> 16 < threshold ? scale : 0;
  }
  return { mask, state: a >>> 0 };
}
