import * as tf from '@tensorflow/tfjs-core';
import { type Dropout, LayerNorm, Linear, ParameterSet, gelu, matMul2d, type ForwardMode } from './layers';
import { queryRowsPerBlock } from '../../models/globalBlocks';

/**
 * The attention blocks of TRIPLEX: the pre-norm self-attention block of the neighbor and global
 * encoders (with the neighbor encoder's relative-position bias) and the cross-attention block of
 * the fusion encoder. Masks are [B, N] with 1 = valid key, 0 = masked key.
 */

/** The float16 minimum: masked logits are set to it, so a softmax row never becomes NaN. */
export const MASKED_LOGIT = -65504;

/** Side of the neighbor view's tile grid; tiles are numbered row-major. */
export const NEIGHBOR_GRID = 5;
const TILES = NEIGHBOR_GRID * NEIGHBOR_GRID;

/**
 * For each (query tile, key tile) pair of the 5x5 grid, row-major over [25, 25], the index of
 * their offset (|drow|, |dcol|) as |drow| * 5 + |dcol|: the 25 columns of a block's bias table.
 * (LeViT numbers offsets in order of first appearance, which for tile 0 is the same order.)
 */
export const RELATIVE_OFFSET_INDEX: Int32Array = (() => {
  const index = new Int32Array(TILES * TILES);
  for (let i = 0; i < TILES; i++) {
    for (let j = 0; j < TILES; j++) {
      const dRow = Math.abs(Math.floor(i / NEIGHBOR_GRID) - Math.floor(j / NEIGHBOR_GRID));
      const dCol = Math.abs((i % NEIGHBOR_GRID) - (j % NEIGHBOR_GRID));
      index[i * TILES + j] = dRow * NEIGHBOR_GRID + dCol;
    }
  }
  return index;
})();

/**
 * RELATIVE_OFFSET_INDEX one-hot, [25 offsets, 625 pairs]. The bias is table @ this: a product,
 * whose gradient works on wasm, where a gather's would need UnsortedSegmentSum (not in wasm).
 */
const OFFSET_ONE_HOT: Float32Array = (() => {
  const oneHot = new Float32Array(TILES * TILES * TILES);
  RELATIVE_OFFSET_INDEX.forEach((offset, pair) => { oneHot[offset * TILES * TILES + pair] = 1; });
  return oneHot;
})();

/**
 * Below this much work per head (query tokens x key tokens x head size) all heads go through one
 * batched product; above it, one 2-D product per head. Batched products take wasm's plain loop
 * (about 2.2 GFLOP/s); 2-D ones reach XNNPACK (10-30 GFLOP/s) but cost about 1 ms each to set up.
 * Measured: 25 and 49 tokens (80k / 300k of work) are faster batched; per head, a slide of 120
 * spots (1.8M) trained its global encoder 26% faster (the demo's GEM epoch 5.0 -> 3.7 s), 300
 * tokens 4x and 1000 tokens 10x faster.
 */
const PER_HEAD_MIN_WORK = 500_000;

export interface AttentionOptions {
  /** Embedding size d. */
  dim: number;
  heads: number;
  /** Dropout after the output projection and inside the feed-forward network. */
  dropout: number;
}

export interface TransformerBlockOptions extends AttentionOptions {
  /** Hidden size of the feed-forward network as a multiple of d. */
  mlpRatio: number;
  /** A learned [heads, 25] bias on the logits, by 5x5 tile offset (neighbor encoder only). */
  relativePositionBias?: boolean;
}

function checkHeads(name: string, dim: number, heads: number): void {
  if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) throw new Error(`${name}: ${dim} features cannot be split into ${heads} heads`);
}

function checkMask(name: string, mask: tf.Tensor | undefined, B: number, N: number): void {
  if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== N)) {
    throw new Error(`${name}: the key mask has shape [${mask.shape.join(', ')}], expected [${B}, ${N}] (1 = valid, 0 = masked)`);
  }
}

/** Masked keys' logits set to MASKED_LOGIT: logits * m + (1 - m) * MASKED_LOGIT is exact for m in {0, 1}. */
function maskKeys<T extends tf.Tensor>(logits: T, keep: tf.Tensor): T {
  return tf.add(tf.mul(logits, keep), tf.mul(tf.sub(1, keep), MASKED_LOGIT)) as T;
}

/**
 * [B, N, d] -> [B, h, N, d/h]. (Only transposes of rank 4 or less: wasm's rank-5 transpose took
 * 390 ms on [128, 25, 3, 4, 128], against 2 ms for the rank-4 one here.)
 */
function splitHeads(x: tf.Tensor3D, heads: number): tf.Tensor4D {
  const [B, N, d] = x.shape;
  return tf.transpose(tf.reshape<tf.Rank.R4>(x, [B, N, heads, d / heads]), [0, 2, 1, 3]); // [B, h, N, hd]
}

/** [B, h, N, hd] -> [B, N, h * hd]. */
function mergeHeads(x: tf.Tensor4D): tf.Tensor3D {
  const [B, h, N, hd] = x.shape;
  return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [B, N, h * hd]); // [B, N, d]
}

/** softmax(q k^T * scale + bias, masked) v per head: [B, h, Nq, hd] x [B, h, N, hd] -> [B, h, Nq, hd]. */
function attend(q: tf.Tensor4D, k: tf.Tensor4D, v: tf.Tensor4D, bias: tf.Tensor3D | undefined, mask: tf.Tensor2D | undefined, queryRows?: number): tf.Tensor4D {
  const [B, h, Nq, hd] = q.shape;
  const N = k.shape[2];
  if (queryRows && queryRows < Nq) {
    // Blocks of query rows, each in its own tidy: one block's logits [h, R, N] live at a time (models/globalBlocks.ts).
    const parts: tf.Tensor4D[] = [];
    for (let from = 0; from < Nq; from += queryRows) {
      const n = Math.min(queryRows, Nq - from);
      parts.push(tf.tidy(() => attend(tf.slice(q, [0, 0, from, 0], [B, h, n, hd]), k, v, bias && tf.slice(bias, [0, from, 0], [h, n, N]), mask)));
    }
    return tf.concat(parts, 2); // [B, h, Nq, hd]
  }
  // Scaling q (Nq x hd values) rather than the logits (Nq x N): the same product up to rounding.
  const qs = tf.mul(q, 1 / Math.sqrt(hd)); // [B, h, Nq, hd]
  const keep = mask ? tf.cast(mask, 'float32') : undefined; // [B, N]
  if (Nq * N * hd < PER_HEAD_MIN_WORK) {
    let logits: tf.Tensor4D = tf.matMul(qs, k, false, true); // [B, h, Nq, N]
    if (bias) logits = tf.add(logits, bias); // + [h, Nq, N]
    if (keep) logits = maskKeys(logits, tf.reshape(keep, [B, 1, 1, N])); // [B, h, Nq, N]
    return tf.matMul(tf.softmax(logits), v); // [B, h, Nq, hd]
  }
  const heads: tf.Tensor2D[] = [];
  for (let b = 0; b < B; b++) {
    const keepRow = keep ? tf.slice(keep, [b, 0], [1, N]) : undefined; // [1, N]
    for (let i = 0; i < h; i++) {
      const qi = tf.reshape<tf.Rank.R2>(tf.slice(qs, [b, i, 0, 0], [1, 1, Nq, hd]), [Nq, hd]); // [Nq, hd]
      const ki = tf.reshape<tf.Rank.R2>(tf.slice(k, [b, i, 0, 0], [1, 1, N, hd]), [N, hd]); // [N, hd]
      const vi = tf.reshape<tf.Rank.R2>(tf.slice(v, [b, i, 0, 0], [1, 1, N, hd]), [N, hd]); // [N, hd]
      let logits = matMul2d(qi, tf.transpose(ki)); // [Nq, N]
      if (bias) logits = tf.add(logits, tf.reshape(tf.slice(bias, [i, 0, 0], [1, Nq, N]), [Nq, N])); // + [Nq, N]
      if (keepRow) logits = maskKeys(logits, keepRow); // [Nq, N]
      heads.push(matMul2d(tf.softmax(logits), vi)); // [Nq, hd]
    }
  }
  return tf.reshape(tf.stack(heads), [B, h, Nq, hd]); // [B, h, Nq, hd]
}

/** nn.GELU feed-forward network: Linear(d, r*d), GELU, Dropout, Linear(r*d, d), Dropout. */
export class FeedForward {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly hiddenDropout: Dropout;
  private readonly outputDropout: Dropout;

  constructor(params: ParameterSet, name: string, dim: number, hidden: number, dropout: number) {
    this.fc1 = new Linear(params, `${name}.fc1`, dim, hidden);
    this.fc2 = new Linear(params, `${name}.fc2`, hidden, dim);
    this.hiddenDropout = params.dropout(dropout);
    this.outputDropout = params.dropout(dropout);
  }

  /** [..., d] -> [..., d]. */
  apply<T extends tf.Tensor>(x: T, mode: ForwardMode): T {
    return tf.tidy(() => {
      const hidden = this.hiddenDropout.apply(gelu(this.fc1.apply(x)), mode); // [..., r*d]
      return this.outputDropout.apply(this.fc2.apply(hidden), mode); // [..., d]
    });
  }
}

/**
 * Multi-head self-attention: one bias-free QKV projection (d -> 3d, columns ordered
 * [q | k | v] x heads x head size), scale 1/sqrt(d/heads), the optional relative-position bias
 * added after scaling, masked keys, softmax (no dropout on the weights), then the output
 * projection with bias and dropout.
 */
export class SelfAttention {
  readonly qkv: Linear;
  readonly proj: Linear;
  /** [heads, 25], by offset index |drow| * 5 + |dcol|; initialised to zero. */
  readonly relativeBias: tf.Variable | undefined;
  private readonly dropout: Dropout;

  constructor(params: ParameterSet, readonly name: string, readonly dim: number, readonly heads: number, dropout: number, relativePositionBias = false) {
    checkHeads(name, dim, heads);
    this.qkv = new Linear(params, `${name}.qkv`, dim, 3 * dim, { bias: false });
    this.proj = new Linear(params, `${name}.proj`, dim, dim);
    this.relativeBias = relativePositionBias ? params.addConstant(`${name}.attention_biases`, [heads, TILES], 0) : undefined;
    this.dropout = params.dropout(dropout);
  }

  /**
   * [B, N, d] (already normalised) -> [B, N, d]; `mask` [B, N] masks keys. In inference,
   * attention runs in blocks of `queryRows` query rows (default: within the logits budget of
   * models/globalBlocks.ts, the whole sequence while it fits); training keeps the exact path.
   */
  apply(x: tf.Tensor3D, mode: ForwardMode, mask?: tf.Tensor2D, queryRows?: number): tf.Tensor3D {
    const [B, N] = x.shape;
    const h = this.heads;
    if (this.relativeBias && N !== TILES) throw new Error(`${this.name}: the relative-position bias is for the 5x5 neighbor grid (25 tokens), got ${N} tokens`);
    checkMask(this.name, mask, B, N);
    return tf.tidy(() => {
      const [q, k, v] = this.qkv.applyChunks(x, 3).map((t) => splitHeads(t, h)); // [B, h, N, hd] each
      const bias = this.relativeBias
        ? tf.reshape<tf.Rank.R3>(matMul2d(this.relativeBias as tf.Tensor2D, tf.tensor2d(OFFSET_ONE_HOT, [TILES, TILES * TILES])), [h, TILES, TILES]) // [h, 25, 25]
        : undefined;
      const rows = mode === 'inference' ? queryRows ?? queryRowsPerBlock(N, h) : undefined;
      const heads = attend(q, k, v, bias, mask, rows); // [B, h, N, hd]
      const merged = mergeHeads(heads); // [B, N, d]
      return this.dropout.apply(this.proj.apply(merged), mode); // [B, N, d]
    });
  }
}

/** Pre-norm transformer block: x + MHA(LN(x)), then x + FFN(LN(x)). */
export class TransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn: SelfAttention;
  readonly norm2: LayerNorm;
  readonly mlp: FeedForward;

  constructor(params: ParameterSet, readonly name: string, options: TransformerBlockOptions) {
    this.norm1 = new LayerNorm(params, `${name}.norm1`, options.dim);
    this.attn = new SelfAttention(params, `${name}.attn`, options.dim, options.heads, options.dropout, options.relativePositionBias ?? false);
    this.norm2 = new LayerNorm(params, `${name}.norm2`, options.dim);
    this.mlp = new FeedForward(params, `${name}.mlp`, options.dim, Math.floor(options.dim * options.mlpRatio), options.dropout);
  }

  /** [B, N, d] -> [B, N, d]; `mask` [B, N] removes keys (1 = valid, 0 = masked); `queryRows`: SelfAttention.apply's. */
  apply(x: tf.Tensor3D, mode: ForwardMode, mask?: tf.Tensor2D, queryRows?: number): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(x, this.attn.apply(this.norm1.apply(x), mode, mask, queryRows)); // [B, N, d]
      return tf.add(attended, this.mlp.apply(this.norm2.apply(attended), mode)); // [B, N, d]
    });
  }
}

const headMasks = new Map<string, tf.Tensor2D>();

/** [h, d]: row i is 1 on head i's hd columns, 0 elsewhere (kept for the process's life). */
function headMask(h: number, d: number): tf.Tensor2D {
  const key = `${h}x${d}`;
  let m = headMasks.get(key);
  if (!m) {
    const values = new Float32Array(h * d);
    for (let i = 0; i < h; i++) values.fill(1, i * d + i * (d / h), i * d + (i + 1) * (d / h));
    m = tf.keep(tf.tensor2d(values, [h, d]));
    headMasks.set(key, m);
  }
  return m;
}

/**
 * Multi-head cross-attention: q projection d -> d and kv projection d -> 2d (columns
 * [k | v] x heads x head size), both without bias; output projection with bias and dropout.
 */
export class CrossAttention {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  private readonly dropout: Dropout;

  constructor(params: ParameterSet, readonly name: string, readonly dim: number, readonly heads: number, dropout: number) {
    checkHeads(name, dim, heads);
    this.q = new Linear(params, `${name}.q`, dim, dim, { bias: false });
    this.kv = new Linear(params, `${name}.kv`, dim, 2 * dim, { bias: false });
    this.proj = new Linear(params, `${name}.proj`, dim, dim);
    this.dropout = params.dropout(dropout);
  }

  /** Queries [B, Nq, d] attend to context [B, N, d] (both already normalised) -> [B, Nq, d]. */
  apply(query: tf.Tensor3D, context: tf.Tensor3D, mode: ForwardMode, mask?: tf.Tensor2D): tf.Tensor3D {
    const [B, , d] = query.shape;
    const N = context.shape[1];
    const h = this.heads;
    if (context.shape[0] !== B || context.shape[2] !== d) {
      throw new Error(`${this.name}: context [${context.shape.join(', ')}] does not match the queries [${query.shape.join(', ')}] in batch or features`);
    }
    checkMask(this.name, mask, B, N);
    if (query.shape[1] === 1) return this.applySingleQuery(query, context, mode, mask);
    return tf.tidy(() => {
      const q = splitHeads(this.q.apply(query), h); // [B, h, Nq, hd]
      const [k, v] = this.kv.applyChunks(context, 2).map((t) => splitHeads(t, h)); // [B, h, N, hd] each
      const heads = attend(q, k, v, undefined, mask); // [B, h, Nq, hd]
      const merged = mergeHeads(heads); // [B, Nq, d]
      return this.dropout.apply(this.proj.apply(merged), mode); // [B, Nq, d]
    });
  }

  /**
   * One query per sample (the fusion encoder's global token), computed without projecting the
   * context. With q_h the query's head h and W_kh, W_vh head h's key and value weights:
   *   q_h . (W_kh x_j) = (W_kh^T q_h) . x_j     and     sum_j a_j W_vh x_j = W_vh (sum_j a_j x_j),
   * so the query is mapped back to the input space once per head and the context is only pooled:
   * about h * N * d work per sample instead of the N * d * 2d of the key/value projection
   * (35 times less for 49 target tokens at d = 512). The same function up to rounding; the
   * parameters and their layout are unchanged.
   */
  private applySingleQuery(query: tf.Tensor3D, context: tf.Tensor3D, mode: ForwardMode, mask?: tf.Tensor2D): tf.Tensor3D {
    const [B, , d] = query.shape;
    const N = context.shape[1];
    const h = this.heads;
    return tf.tidy(() => {
      const heads = headMask(h, d); // [h, d]
      const q = tf.reshape(this.q.apply(query), [B, 1, d]); // [B, 1, d]
      // Each head's query alone in its columns: [B * h, d], zeros elsewhere.
      const spread = tf.reshape(tf.mul(q, heads), [B * h, d]) as tf.Tensor2D; // [B * h, d]
      const kv = this.kv.weight as tf.Tensor2D; // [d_in, 2d], columns [k | v] x heads x hd
      const wk = tf.slice(kv, [0, 0], [d, d]) as tf.Tensor2D; // [d_in, d]
      const wv = tf.slice(kv, [0, d], [d, d]) as tf.Tensor2D; // [d_in, d]
      const back = tf.reshape(matMul2d(spread, tf.transpose(wk)), [B, h, d]) as tf.Tensor3D; // [B, h, d_in]: W_kh^T q_h
      let logits = tf.mul(tf.matMul(back, context, false, true), 1 / Math.sqrt(d / h)) as tf.Tensor3D; // [B, h, N]
      if (mask) logits = maskKeys(logits, tf.reshape(tf.cast(mask, 'float32'), [B, 1, N]));
      const pooled = tf.matMul(tf.softmax(logits), context); // [B, h, d_in]: sum_j a_hj x_j
      const values = tf.reshape(matMul2d(tf.reshape(pooled, [B * h, d]) as tf.Tensor2D, wv), [B, h, d]); // [B, h, d]: W_v applied to each head's pool
      const merged = tf.reshape(tf.sum(tf.mul(values, heads), 1), [B, 1, d]) as tf.Tensor3D; // [B, 1, d]: head h's own columns
      return this.dropout.apply(this.proj.apply(merged), mode); // [B, 1, d]
    });
  }
}

/**
 * A block of the fusion encoder: x_q + CrossMHA(LN(x_q), LN(x_kv)) with ONE LayerNorm applied to
 * both inputs, then x_q + FFN(LN2(x_q)). The same block (same weights) serves the target and the
 * neighbor tokens.
 */
export class CrossAttentionBlock {
  readonly norm1: LayerNorm;
  readonly attn: CrossAttention;
  readonly norm2: LayerNorm;
  readonly mlp: FeedForward;

  constructor(params: ParameterSet, readonly name: string, options: TransformerBlockOptions) {
    if (options.relativePositionBias) throw new Error(`${name}: the cross-attention block has no relative-position bias`);
    this.norm1 = new LayerNorm(params, `${name}.norm1`, options.dim);
    this.attn = new CrossAttention(params, `${name}.attn`, options.dim, options.heads, options.dropout);
    this.norm2 = new LayerNorm(params, `${name}.norm2`, options.dim);
    this.mlp = new FeedForward(params, `${name}.mlp`, options.dim, Math.floor(options.dim * options.mlpRatio), options.dropout);
  }

  /** Queries [B, Nq, d] (the global token: Nq = 1) over context [B, N, d] -> [B, Nq, d]; `mask` [B, N]. */
  apply(query: tf.Tensor3D, context: tf.Tensor3D, mode: ForwardMode, mask?: tf.Tensor2D): tf.Tensor3D {
    return tf.tidy(() => {
      const attended = tf.add(query, this.attn.apply(this.norm1.apply(query), this.norm1.apply(context), mode, mask)); // [B, Nq, d]
      return tf.add(attended, this.mlp.apply(this.norm2.apply(attended), mode)); // [B, Nq, d]
    });
  }
}
