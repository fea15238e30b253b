import type { Feeds, Program } from '../engine/executor';
import type { Graph, Sym } from '../engine/graph';
import type { GlobalLayout } from './globalLayout';
import type { TriplexNet } from './triplex';

/**
 * The global encoder over a whole slide in inference, its attention computed in blocks of query
 * rows: every token's keys and values are computed once per transformer block ([h, N, hd] each),
 * then R query rows at a time go through attention against all N keys, the output projection,
 * the residual and the feed-forward network (all row-wise but attention). No program sees more
 * than R rows at once but the attention's keys and values (fed, not copied). Peak memory is
 * O(N d) for the tokens, keys and values plus O(R N h) for one block's logits, instead of the
 * O(N^2 h) of the whole-slide graph (1.6 GB per head at 20,000 spots); R is chosen from a fixed
 * logits budget, so memory grows linearly in N. (Streaming the keys as well, with an online
 * softmax, would bound the logits too, but needs many more runs per block; at 50,000 spots the
 * query blocks alone fit in well under 4 GB.) Every row is computed as in the whole-slide graph,
 * so results agree to rounding (the tests hold them within 1e-5). The position encoding runs
 * once over the slide's grid, O(h w d).
 */

/** Bytes one block's attention logits may take (float32, heads x R x N); softmax and masking hold a few such tensors. */
export const LOGITS_BUDGET_BYTES = 64 * 2 ** 20;

/** Query rows per block for N tokens and `heads` heads: within the logits budget, a multiple of 8, at least 8. */
export function queryRowsPerBlock(tokens: number, heads: number, budgetBytes = LOGITS_BUDGET_BYTES): number {
  const rows = Math.floor(budgetBytes / (4 * heads * tokens) / 8) * 8;
  return Math.max(8, rows);
}

/** Compiles (or finds cached) the program built by `build` under `key`. */
export type ProgramSource = (key: string, build: (g: Graph) => Record<string, Sym>) => Promise<Program>;

/**
 * The encoded tokens [tokens, d] of one laid-out slide (layout.tokens rows, padding included),
 * features [tokens, d] already placed as the layout says. `feeds`: parameters and input
 * statistics; `rows`: query rows per block (default queryRowsPerBlock).
 */
export async function encodeGlobalInBlocks(net: TriplexNet, layout: GlobalLayout, features: Float32Array, feeds: Feeds, program: ProgramSource, rows?: number): Promise<Float32Array> {
  const parts = net.globalParts;
  const d = net.config.dim;
  const h = net.config.global.heads;
  const N = layout.tokens;
  const R = Math.min(rows ?? queryRowsPerBlock(N, h), N);
  const shape = `${N}x${R}`;
  // Row-wise steps (input standardisation, final norm) over the same blocks.
  const byRows = async (name: string, x: Float32Array, step: (g: Graph, x: Sym) => Sym, extra: Feeds = {}): Promise<Float32Array> => {
    const p = await program(`global:${name}:${shape}`, (g) => ({ y: step(g, g.input('x', [1, R, d])) }));
    const out = new Float32Array(N * d);
    for (let from = 0; from < N; from += R) {
      const n = Math.min(R, N - from);
      const block = new Float32Array(R * d); // the last block padded with zeros: rows are independent
      block.set(x.subarray(from * d, (from + n) * d));
      const y = (await p.run({ ...feeds, ...extra, x: block })).y as Float32Array;
      out.set(y.subarray(0, n * d), from * d);
    }
    return out;
  };
  // Keys and values [h, N, hd] by blocks of rows too, placed head by head: no program holds N rows.
  const hd = d / h;
  const keysValues = async (i: number, x: Float32Array, block: (typeof parts.blocks)[number]): Promise<{ k: Float32Array; v: Float32Array }> => {
    const p = await program(`global:kv${i}:${shape}`, (g) => block.keysValues(g, g.input('x', [1, R, d])));
    const all = { k: new Float32Array(N * d), v: new Float32Array(N * d) };
    for (let from = 0; from < N; from += R) {
      const n = Math.min(R, N - from);
      const rows = new Float32Array(R * d);
      rows.set(x.subarray(from * d, (from + n) * d));
      const out = await p.run({ ...feeds, x: rows }); // k, v: [1, h, R, hd]
      for (const name of ['k', 'v'] as const) {
        const part = out[name] as Float32Array;
        for (let head = 0; head < h; head++) all[name].set(part.subarray(head * R * hd, head * R * hd + n * hd), (head * N + from) * hd);
      }
    }
    return all;
  };
  let x = net.config.standardizeInputs ? await byRows('input', features, parts.input) : features;
  // Without padding tokens (an exact layout), no key is masked: four elementwise passes over the logits saved.
  const padded = layout.keep.some((m) => m === 0);
  for (const [i, block] of parts.blocks.entries()) {
    const { k, v } = await keysValues(i, x, block);
    const attend = (g: Graph, xr: Sym) => block.applyRows(g, xr, { k: g.input('k', [1, h, N, d / h]), v: g.input('v', [1, h, N, d / h]) }, padded ? g.input('keep', [1, N]) : undefined);
    x = await byRows(`rows${i}${padded ? 'm' : ''}`, x, attend, { k, v, ...(padded ? { keep: layout.keep } : {}) });
    if (i === 0 && parts.positionEncoding) {
      const pe = await program(`global:position:${layout.key}`, (g) => ({
        y: net.encodePosition(g, g.input('x', [N, d]), { layout, valid: g.input('valid', [N, 1]), cells: g.input('cells', [N], 'int64') }),
      }));
      x = (await pe.run({ ...feeds, x, valid: layout.valid, cells: layout.cells })).y as Float32Array;
    }
  }
  return byRows('norm', x, parts.norm);
}
