import { mulberry32 } from '../util/random';
import type { Graph, Shape, Sym } from './graph';
import { sizeOf } from './graph';

/**
 * Layers written once against the op interface, with PyTorch's parameter names, layouts (Linear
 * weight [out, in]) and default initialisations, so that checkpoints and PyTorch references map
 * one to one. A layer declares its parameters in a ParamTable when built, and reads them from the
 * graph (g.param) when applied.
 */

export type Mode = 'train' | 'inference';

/** The float16 minimum: masked attention logits, as the reference sets them. */
export const MASKED_LOGIT = -65504;

/** Parameter names, shapes and seeded initial values of a model. */
export class ParamTable {
  readonly specs = new Map<string, { shape: number[]; init: Float32Array }>();
  readonly random: () => number;

  constructor(seed = 0) {
    this.random = mulberry32(seed);
  }

  add(name: string, shape: Shape, init: Float32Array): void {
    if (this.specs.has(name)) throw new Error(`parameter ${name} is defined twice`);
    if (init.length !== sizeOf(shape)) throw new Error(`parameter ${name}: ${init.length} values for [${shape.join(', ')}]`);
    this.specs.set(name, { shape: [...shape], init });
  }

  /** U(-bound, bound) from the table's generator, in creation order. */
  uniform(name: string, shape: Shape, bound: number): void {
    const v = new Float32Array(sizeOf(shape));
    for (let i = 0; i < v.length; i++) v[i] = (2 * this.random() - 1) * bound;
    this.add(name, shape, v);
  }

  constant(name: string, shape: Shape, value: number): void {
    this.add(name, shape, new Float32Array(sizeOf(shape)).fill(value));
  }

  /**
   * A Linear weight [out, in] drawn in [in, out] order (the order of the TF.js model this engine
   * replaced), so that a seed starts where runs begun before it started.
   */
  uniformLinear(name: string, outFeatures: number, inFeatures: number, bound: number): void {
    const v = new Float32Array(outFeatures * inFeatures);
    for (let i = 0; i < inFeatures; i++) for (let o = 0; o < outFeatures; o++) v[o * inFeatures + i] = (2 * this.random() - 1) * bound;
    this.add(name, [outFeatures, inFeatures], v);
  }

  /** A dropout layer: its index is its stream (dropout.ts); one draw of the table's generator (as the replaced TF.js model drew its layer's seed). */
  dropout(rate: number): DropoutLayer {
    this.random();
    return { rate, layer: this.dropoutLayers++ };
  }

  /** Dropout layers made so far (the streams a step seeds). */
  dropoutLayers = 0;

  /** Copies of the initial values, by name. */
  initialValues(): Map<string, Float32Array> {
    return new Map([...this.specs].map(([n, s]) => [n, s.init.slice()]));
  }

  shape(name: string): number[] {
    const s = this.specs.get(name);
    if (!s) throw new Error(`no parameter ${name}`);
    return s.shape;
  }

  /** The parameter as a graph input. */
  sym(g: Graph, name: string): Sym {
    return g.param(name, this.shape(name));
  }
}

export interface DropoutLayer { rate: number; layer: number }

/** x * mask in training, x in inference. */
export function dropout(g: Graph, x: Sym, d: DropoutLayer, mode: Mode): Sym {
  return mode === 'train' && d.rate > 0 ? g.mul(x, g.dropoutMask(x.shape, d.rate, d.layer)) : x;
}

/** nn.Linear: [..., in] -> [..., out]; weight [out, in], bias [out]; Kaiming-uniform (a = sqrt 5). */
export class Linear {
  constructor(private readonly t: ParamTable, readonly name: string, readonly inFeatures: number, readonly outFeatures: number, readonly bias = true) {
    const bound = 1 / Math.sqrt(inFeatures);
    t.uniformLinear(`${name}.weight`, outFeatures, inFeatures, bound);
    if (bias) t.uniform(`${name}.bias`, [outFeatures], bound);
  }

  apply(g: Graph, x: Sym): Sym {
    if (x.shape[x.rank - 1] !== this.inFeatures) throw new Error(`${this.name}: input has ${x.shape[x.rank - 1]} features, the layer takes ${this.inFeatures}`);
    const y = g.matmul(x, this.t.sym(g, `${this.name}.weight`), false, true); // [..., out]
    return this.bias ? g.add(y, this.t.sym(g, `${this.name}.bias`)) : y;
  }
}

/** nn.LayerNorm over the last axis (weight ones, bias zeros). */
export class LayerNorm {
  constructor(private readonly t: ParamTable, readonly name: string, dim: number, readonly eps = 1e-5) {
    t.constant(`${name}.weight`, [dim], 1);
    t.constant(`${name}.bias`, [dim], 0);
  }

  apply(g: Graph, x: Sym): Sym {
    return g.layerNorm(x, this.t.sym(g, `${this.name}.weight`), this.t.sym(g, `${this.name}.bias`), this.eps);
  }
}

/** Linear(d, r*d), GELU, Dropout, Linear(r*d, d), Dropout. */
export class FeedForward {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly hiddenDropout: DropoutLayer;
  private readonly outputDropout: DropoutLayer;

  constructor(t: ParamTable, name: string, dim: number, hidden: number, rate: number) {
    this.fc1 = new Linear(t, `${name}.fc1`, dim, hidden);
    this.fc2 = new Linear(t, `${name}.fc2`, hidden, dim);
    this.hiddenDropout = t.dropout(rate);
    this.outputDropout = t.dropout(rate);
  }

  apply(g: Graph, x: Sym, mode: Mode): Sym {
    const hidden = dropout(g, g.gelu(this.fc1.apply(g, x)), this.hiddenDropout, mode); // [..., r*d]
    return dropout(g, this.fc2.apply(g, hidden), this.outputDropout, mode); // [..., d]
  }
}

/** 5x5 neighbour grid: tiles and the offset index |drow| * 5 + |dcol| of each (query, key) pair. */
const GRID = 5;
const TILES = GRID * GRID;
export const OFFSET_INDEX: number[] = Array.from({ length: TILES * TILES }, (_, p) => {
  const i = Math.floor(p / TILES);
  const j = p % TILES;
  return Math.abs(Math.floor(i / GRID) - Math.floor(j / GRID)) * GRID + Math.abs((i % GRID) - (j % GRID));
});

/**
 * softmax(q k^T / sqrt(hd) + bias, masked keys) v for q [B, h, Nq, hd], k and v [B, h, N, hd];
 * bias [h, Nq, N]; keep [B, N] (1 = valid key, 0 = masked).
 */
export function attend(g: Graph, q: Sym, k: Sym, v: Sym, bias?: Sym, keep?: Sym): Sym {
  const [B, , , hd] = q.shape;
  const N = k.shape[2];
  let logits = g.matmul(g.mul(q, 1 / Math.sqrt(hd)), k, false, true); // [B, h, Nq, N]
  if (bias) logits = g.add(logits, bias);
  if (keep) {
    const m = g.reshape(keep, [B, 1, 1, N]);
    logits = g.add(g.mul(logits, m), g.mul(g.sub(1, m), MASKED_LOGIT));
  }
  return g.matmul(g.softmax(logits), v); // [B, h, Nq, hd]
}

/** [B, h, N, hd] -> [B, N, h*hd]. */
const mergeHeads = (g: Graph, x: Sym) => {
  const [B, h, N, hd] = x.shape;
  return g.reshape(g.transpose(x, [0, 2, 1, 3]), [B, N, h * hd]);
};

/**
 * Multi-head self-attention: bias-free qkv (columns [q | k | v] x heads x hd), optional learned
 * relative-position bias [heads, 25] for the 5x5 neighbour grid, masked keys, output projection.
 */
export class SelfAttention {
  readonly qkv: Linear;
  readonly proj: Linear;
  private readonly dropout: DropoutLayer;

  constructor(private readonly t: ParamTable, readonly name: string, readonly dim: number, readonly heads: number, rate: number, readonly relativeBias = false) {
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) throw new Error(`${name}: ${dim} features cannot be split into ${heads} heads`);
    this.qkv = new Linear(t, `${name}.qkv`, dim, 3 * dim, false);
    this.proj = new Linear(t, `${name}.proj`, dim, dim);
    if (relativeBias) t.constant(`${name}.attention_biases`, [heads, TILES], 0);
    this.dropout = t.dropout(rate);
  }

  /** [B, N, d] (normalised) -> [B, N, d]; keep [B, N] masks keys; bias [.., N, N] is added to the logits (e.g. a block-diagonal mask). */
  apply(g: Graph, x: Sym, mode: Mode, keep?: Sym, logitBias?: Sym): Sym {
    const [B, N, d] = x.shape;
    const h = this.heads;
    const qkv = g.transpose(g.reshape(this.qkv.apply(g, x), [B, N, 3, h, d / h]), [2, 0, 3, 1, 4]); // [3, B, h, N, hd]
    const [q, k, v] = [0, 1, 2].map((i) => g.reshape(g.slice(qkv, 0, i, i + 1), [B, h, N, d / h]));
    let bias = logitBias;
    if (this.relativeBias) {
      if (N !== TILES) throw new Error(`${this.name}: the relative-position bias is for the 5x5 grid (25 tokens), got ${N}`);
      const table = g.transpose(this.t.sym(g, `${this.name}.attention_biases`), [1, 0]); // [25, h]
      const index = g.constant(OFFSET_INDEX, [TILES * TILES], 'int64');
      bias = g.reshape(g.transpose(g.gather(table, index), [1, 0]), [h, TILES, TILES]); // [h, 25, 25]
    }
    const merged = mergeHeads(g, attend(g, q, k, v, bias, keep)); // [B, N, d]
    return dropout(g, this.proj.apply(g, merged), this.dropout, mode);
  }

  /**
   * The keys and values of all tokens, [B, h, N, hd] each, for attention computed over blocks of
   * queries (applyQueries). x [B, N, d] is normalised.
   */
  keysValues(g: Graph, x: Sym): { k: Sym; v: Sym } {
    const [B, N, d] = x.shape;
    const h = this.heads;
    const w = this.t.sym(g, `${this.qkv.name}.weight`); // [3d, d]: rows [q | k | v]
    const kv = g.transpose(g.reshape(g.matmul(x, g.slice(w, 0, d, 3 * d), false, true), [B, N, 2, h, d / h]), [2, 0, 3, 1, 4]); // [2, B, h, N, hd]
    const [k, v] = [0, 1].map((i) => g.reshape(g.slice(kv, 0, i, i + 1), [B, h, N, d / h]));
    return { k, v };
  }

  /**
   * Inference over a block of query rows x [B, R, d] (normalised) against every token's keys and
   * values (keysValues) -> [B, R, d]: the rows apply() gives, with memory for R x N logits per
   * head instead of N x N. No relative bias (the neighbour grid is never split).
   */
  applyQueries(g: Graph, x: Sym, kv: { k: Sym; v: Sym }, keep?: Sym): Sym {
    if (this.relativeBias) throw new Error(`${this.name}: the relative-position bias is for the whole 5x5 grid, not blocks of queries`);
    const [B, R, d] = x.shape;
    const h = this.heads;
    const w = this.t.sym(g, `${this.qkv.name}.weight`); // [3d, d]
    const q = g.transpose(g.reshape(g.matmul(x, g.slice(w, 0, 0, d), false, true), [B, R, h, d / h]), [0, 2, 1, 3]); // [B, h, R, hd]
    return this.proj.apply(g, mergeHeads(g, attend(g, q, kv.k, kv.v, undefined, keep))); // [B, R, d]
  }
}

/**
 * Multi-head cross-attention: bias-free q (d -> d) and kv (d -> 2d, columns [k | v] x heads x hd)
 * projections, masked keys, output projection with bias and dropout.
 */
export class CrossAttention {
  readonly q: Linear;
  readonly kv: Linear;
  readonly proj: Linear;
  private readonly dropout: DropoutLayer;

  constructor(private readonly t: ParamTable, readonly name: string, readonly dim: number, readonly heads: number, rate: number) {
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) throw new Error(`${name}: ${dim} features cannot be split into ${heads} heads`);
    this.q = new Linear(t, `${name}.q`, dim, dim, false);
    this.kv = new Linear(t, `${name}.kv`, dim, 2 * dim, false);
    this.proj = new Linear(t, `${name}.proj`, dim, dim);
    this.dropout = t.dropout(rate);
  }

  /** Queries [B, Nq, d] over context [B, N, d] (both normalised) -> [B, Nq, d]; keep [B, N]. */
  apply(g: Graph, query: Sym, context: Sym, mode: Mode, keep?: Sym): Sym {
    if (query.shape[1] === 1) return this.applySingleQuery(g, query, context, mode, keep);
    const [B, Nq, d] = query.shape;
    const N = context.shape[1];
    const h = this.heads;
    const q = g.transpose(g.reshape(this.q.apply(g, query), [B, Nq, h, d / h]), [0, 2, 1, 3]); // [B, h, Nq, hd]
    const kv = g.transpose(g.reshape(this.kv.apply(g, context), [B, N, 2, h, d / h]), [2, 0, 3, 1, 4]); // [2, B, h, N, hd]
    const [k, v] = [0, 1].map((i) => g.reshape(g.slice(kv, 0, i, i + 1), [B, h, N, d / h]));
    const merged = mergeHeads(g, attend(g, q, k, v, undefined, keep)); // [B, Nq, d]
    return dropout(g, this.proj.apply(g, merged), this.dropout, mode);
  }

  /**
   * One query per sample (the fusion encoder's global token), without projecting the context.
   * With q_h head h's query and W_kh, W_vh its key and value weights:
   *   q_h . (W_kh x_j) = (W_kh^T q_h) . x_j     and     sum_j a_j W_vh x_j = W_vh (sum_j a_j x_j),
   * so the query goes back to the input space once per head and the context is only pooled:
   * about h N d work per sample instead of the key/value projection's 2 N d^2 (35 times less for
   * 49 target tokens at d = 512). The same function up to rounding, the same parameters.
   */
  private applySingleQuery(g: Graph, query: Sym, context: Sym, mode: Mode, keep?: Sym): Sym {
    const [B, , d] = query.shape;
    const N = context.shape[1];
    const h = this.heads;
    const heads = headMask(g, h, d); // [h, d]
    const q = g.reshape(this.q.apply(g, query), [B, 1, d]); // [B, 1, d]
    const spread = g.reshape(g.mul(q, heads), [B * h, d]); // [B*h, d]: each head's query alone in its columns
    const kv = this.t.sym(g, `${this.kv.name}.weight`); // [2d, d_in]: rows [k | v]
    const wk = g.slice(kv, 0, 0, d); // [d, d_in]
    const wv = g.slice(kv, 0, d, 2 * d); // [d, d_in]
    const back = g.reshape(g.matmul(spread, wk), [B, h, d]); // [B, h, d_in]: W_kh^T q_h
    let logits = g.mul(g.matmul(back, context, false, true), 1 / Math.sqrt(d / h)); // [B, h, N]
    if (keep) {
      const m = g.reshape(keep, [B, 1, N]);
      logits = g.add(g.mul(logits, m), g.mul(g.sub(1, m), MASKED_LOGIT));
    }
    const pooled = g.matmul(g.softmax(logits), context); // [B, h, d_in]
    const values = g.reshape(g.matmul(g.reshape(pooled, [B * h, d]), wv, false, true), [B, h, d]); // [B, h, d]: W_v on each head's pool
    const merged = g.reshape(g.sum(g.mul(values, heads), [1]), [B, 1, d]); // [B, 1, d]: head h's own columns
    return dropout(g, this.proj.apply(g, merged), this.dropout, mode);
  }
}

/**
 * [h, d]: row i is 1 on head i's columns. A constant of the graph: head i's part of a [.., d] vector.
 */
function headMask(g: Graph, h: number, d: number): Sym {
  const values = new Float32Array(h * d);
  for (let i = 0; i < h; i++) values.fill(1, i * d + i * (d / h), i * d + (i + 1) * (d / h));
  return g.constant(values, [h, d]);
}

export interface BlockOptions {
  dim: number;
  heads: number;
  mlpRatio: number;
  dropout: number;
  relativePositionBias?: boolean;
}

/** Pre-norm transformer block: x + MHA(LN(x)), then x + FFN(LN(x)). */
export class TransformerBlock {
  readonly norm1: LayerNorm;
  readonly attn: SelfAttention;
  readonly norm2: LayerNorm;
  readonly mlp: FeedForward;

  constructor(t: ParamTable, readonly name: string, o: BlockOptions) {
    this.norm1 = new LayerNorm(t, `${name}.norm1`, o.dim);
    this.attn = new SelfAttention(t, `${name}.attn`, o.dim, o.heads, o.dropout, o.relativePositionBias ?? false);
    this.norm2 = new LayerNorm(t, `${name}.norm2`, o.dim);
    this.mlp = new FeedForward(t, `${name}.mlp`, o.dim, Math.floor(o.dim * o.mlpRatio), o.dropout);
  }

  /** [B, N, d] -> [B, N, d]; keep [B, N] masks keys; logitBias is added to the attention logits. */
  apply(g: Graph, x: Sym, mode: Mode, keep?: Sym, logitBias?: Sym): Sym {
    const attended = g.add(x, this.attn.apply(g, this.norm1.apply(g, x), mode, keep, logitBias));
    return g.add(attended, this.mlp.apply(g, this.norm2.apply(g, attended), mode));
  }

  /** Keys and values of every token of x [B, N, d] for applyRows, [B, h, N, hd] each. */
  keysValues(g: Graph, x: Sym): { k: Sym; v: Sym } {
    return this.attn.keysValues(g, this.norm1.apply(g, x));
  }

  /**
   * Inference on a block of rows x [B, R, d] whose keys and values over all N tokens come from
   * keysValues: apply()'s rows. Everything but attention works row by row, so the block needs
   * memory for R rows (and R x N logits per head).
   */
  applyRows(g: Graph, x: Sym, kv: { k: Sym; v: Sym }, keep?: Sym): Sym {
    const attended = g.add(x, this.attn.applyQueries(g, this.norm1.apply(g, x), kv, keep));
    return g.add(attended, this.mlp.apply(g, this.norm2.apply(g, attended), 'inference'));
  }
}

/**
 * A fusion-encoder block: x_q + CrossMHA(LN(x_q), LN(x_kv)) with one LayerNorm for both inputs,
 * then x_q + FFN(LN2(x_q)).
 */
export class CrossAttentionBlock {
  readonly norm1: LayerNorm;
  readonly attn: CrossAttention;
  readonly norm2: LayerNorm;
  readonly mlp: FeedForward;

  constructor(t: ParamTable, readonly name: string, o: BlockOptions) {
    this.norm1 = new LayerNorm(t, `${name}.norm1`, o.dim);
    this.attn = new CrossAttention(t, `${name}.attn`, o.dim, o.heads, o.dropout);
    this.norm2 = new LayerNorm(t, `${name}.norm2`, o.dim);
    this.mlp = new FeedForward(t, `${name}.mlp`, o.dim, Math.floor(o.dim * o.mlpRatio), o.dropout);
  }

  /** Queries [B, Nq, d] over context [B, N, d] -> [B, Nq, d]; keep [B, N]. */
  apply(g: Graph, query: Sym, context: Sym, mode: Mode, keep?: Sym): Sym {
    const attended = g.add(query, this.attn.apply(g, this.norm1.apply(g, query), this.norm1.apply(g, context), mode, keep));
    return g.add(attended, this.mlp.apply(g, this.norm2.apply(g, attended), mode));
  }
}
