import type { Graph, Shape, Sym } from '../engine/graph';
import { attend, LayerNorm, Linear, ParamTable } from '../engine/nn';
import { normal } from '../util/random';
import { clampMin, imagenetNCHW, mseLoss, need, type BaselineDims, type BaselineInputs, type BaselineNet } from './model';

/**
 * EGN, the exemplar guided network (Yang et al. WACV 2023), as TRIPLEX's re-implementation
 * T:src/model/EGN/EGN.py builds it (../shared/docs/baselines-spec.md §5): a ViT on the
 * ImageNet-normalised crop whose trunk is bridged, every `bridgeEvery` layers, to K retrieved
 * exemplars (their frozen global features and expression). Parameter names are T's module paths
 * (`transformer.layers.1.1.update.query.0.weight`, ...), so a state dict maps one to one.
 *
 * Two departures from T, both the spec's: the exemplar features are the store's frozen ResNet18
 * global features (mdim = dims.featureDim, B3, where T hard-codes UNI's 1024), and clamp(min 0)
 * applies to the prediction only, the loss seeing the raw output (B4: T clamps before the loss,
 * which silences every gene head that drifts negative). T's EB hard-codes a 7x7 grid; here the
 * grid is cropSize / patchSize, which must divide evenly (the token layout does not otherwise
 * depend on the grid, so any square grid computes what T computes at 7x7).
 */

export interface EgnConfig {
  /** Side of the square crop (T's image_size, 224) and of a patch (patch_size, 32). */
  cropSize: number;
  patchSize: number;
  /** Token width (dim), trunk layers (depth), attention heads and head width (heads, dim_head), FF width (mlp_dim). */
  dim: number;
  depth: number;
  heads: number;
  headDim: number;
  mlpDim: number;
  /** Exemplar bridge: heads (bhead) and channels per head (bdim), one after every `bridgeEvery`-th layer (bfre). */
  bridgeHeads: number;
  bridgeHeadDim: number;
  bridgeEvery: number;
  /** Residual FF blocks of the exemplar projector (player). */
  projectorDepth: number;
  /** Exemplars per spot (T: 9). */
  exemplars: number;
}

export const EGN_PRESETS: { paper: EgnConfig; demo: EgnConfig } = {
  // T's constructor defaults (§5 "Architecture"), the paper's 224 px crops in 7x7 patches of 32.
  paper: { cropSize: 224, patchSize: 32, dim: 1024, depth: 16, heads: 16, headDim: 64, mlpDim: 2048, bridgeHeads: 16, bridgeHeadDim: 128, bridgeEvery: 2, projectorDepth: 2, exemplars: 9 },
  // The same 7x7 grid on crops downsampled to 112 px, narrow and shallow: seconds per epoch on a CPU.
  demo: { cropSize: 112, patchSize: 16, dim: 64, depth: 2, heads: 4, headDim: 16, mlpDim: 128, bridgeHeads: 4, bridgeHeadDim: 16, bridgeEvery: 2, projectorDepth: 1, exemplars: 9 },
};

/** The Update module's query MLP has 4 heads of bridgeHeadDim (T passes heads = 4 to it). */
const UPDATE_HEADS = 4;
/** CSRA's temperature and attention weight (T: CSRA(dim), T = 0.1, lam = 0.5). */
const CSRA_T = 0.1;
const CSRA_LAMBDA = 0.5;
/** Weight of the (1 - PCC) term and the Pearson denominator's epsilon (T's loss and pearson_R). */
const PCC_WEIGHT = 0.5;
const PCC_EPS = 1e-8;

/** PreNorm(dim, FeedForward(dim, hidden)): `${name}.norm`, `${name}.fn.net.0` and `.fn.net.3` (dropout 0). */
class PreNormFeedForward {
  readonly norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(t: ParamTable, name: string, dim: number, hidden: number) {
    this.norm = new LayerNorm(t, `${name}.norm`, dim);
    this.fc1 = new Linear(t, `${name}.fn.net.0`, dim, hidden);
    this.fc2 = new Linear(t, `${name}.fn.net.3`, hidden, dim);
  }

  /** [..., d] -> [..., d], without the residual (callers add it, as T does). */
  apply(g: Graph, x: Sym): Sym {
    return this.fc2.apply(g, g.gelu(this.fc1.apply(g, this.norm.apply(g, x))));
  }
}

/** PreNorm(dim, Attention): bias-free to_qkv with columns [q | k | v] x heads x headDim, to_out.0. */
class PreNormAttention {
  readonly norm: LayerNorm;
  readonly qkv: Linear;
  readonly out: Linear;

  constructor(t: ParamTable, name: string, dim: number, readonly heads: number, readonly headDim: number) {
    this.norm = new LayerNorm(t, `${name}.norm`, dim);
    this.qkv = new Linear(t, `${name}.fn.to_qkv`, dim, 3 * heads * headDim, false);
    // T drops the output projection only when heads == 1 and dim_head == dim (nn.Identity).
    if (heads === 1 && headDim === dim) throw new Error('egn: one head as wide as the tokens has no output projection in T; use more heads');
    this.out = new Linear(t, `${name}.fn.to_out.0`, heads * headDim, dim);
  }

  /** [B, N, d] -> [B, N, d], without the residual. */
  apply(g: Graph, x: Sym): Sym {
    const [B, N] = x.shape;
    const [h, hd] = [this.heads, this.headDim];
    const qkv = g.transpose(g.reshape(this.qkv.apply(g, this.norm.apply(g, x)), [B, N, 3, h, hd]), [2, 0, 3, 1, 4]); // [3, B, h, N, hd]
    const [q, k, v] = [0, 1, 2].map((i) => g.reshape(g.slice(qkv, 0, i, i + 1), [B, h, N, hd]));
    const merged = g.reshape(g.transpose(attend(g, q, k, v), [0, 2, 1, 3]), [B, N, h * hd]); // [B, N, h*hd]
    return this.out.apply(g, merged);
  }
}

/**
 * Projector (`transformer.encoder`): the spot's own feature and its exemplars (feature and
 * expression) into token space, refined jointly by `projectorDepth` residual FF blocks.
 */
class Projector {
  readonly proq: Linear;
  readonly proe: Linear;
  readonly layers: PreNormFeedForward[];
  readonly toV: Linear;

  constructor(t: ParamTable, name: string, featureDim: number, dim: number, genes: number, depth: number) {
    this.proq = new Linear(t, `${name}.proq`, featureDim, dim);
    this.proe = new Linear(t, `${name}.proe`, featureDim + genes, dim);
    this.layers = Array.from({ length: depth }, (_, i) => new PreNormFeedForward(t, `${name}.layers.${i}`, dim, dim));
    this.toV = new Linear(t, `${name}.to_v`, genes, dim);
  }

  /** own [B, 1, D], exemplars [B, K, D], targets [B, K, G] -> q [B, 1, d], o [B, K, d], v [B, K, d]. */
  apply(g: Graph, own: Sym, exemplars: Sym, targets: Sym): { q: Sym; o: Sym; v: Sym } {
    const K = exemplars.shape[1];
    let x = g.concat([this.proq.apply(g, own), this.proe.apply(g, g.concat([exemplars, targets], 2))], 1); // [B, 1+K, d]
    for (const ff of this.layers) x = g.add(ff.apply(g, x), x);
    return { q: g.slice(x, 1, 0, 1), o: g.slice(x, 1, 1, 1 + K), v: this.toV.apply(g, targets) };
  }
}

/**
 * The exemplar bridge EB: the Update module moves the spot's query q and the exemplar tokens o
 * towards each other through the exemplars' expression values; the updated query then gates, per
 * head and grid position, a projection of the image tokens, which flows back into both the tokens
 * and the query.
 */
class ExemplarBridge {
  readonly query1: Linear;
  readonly query2: Linear;
  readonly value: Linear;
  readonly xNorm: LayerNorm;
  readonly toX: Linear;
  readonly kNorm: LayerNorm;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toN: Linear;

  constructor(t: ParamTable, name: string, dim: number, readonly heads: number, readonly headDim: number, readonly tokens: number) {
    const inner = heads * headDim;
    this.query1 = new Linear(t, `${name}.update.query.0`, 2 * dim, UPDATE_HEADS * headDim);
    this.query2 = new Linear(t, `${name}.update.query.2`, UPDATE_HEADS * headDim, 2 * dim);
    this.value = new Linear(t, `${name}.update.value`, dim, dim);
    this.xNorm = new LayerNorm(t, `${name}.to_x.0`, dim);
    this.toX = new Linear(t, `${name}.to_x.1`, dim, inner);
    this.kNorm = new LayerNorm(t, `${name}.to_k.0`, dim);
    this.toK = new Linear(t, `${name}.to_k.1`, dim, tokens * heads);
    this.toV = new Linear(t, `${name}.to_v.1`, inner, dim, false);
    this.toN = new Linear(t, `${name}.to_n.1`, inner, dim, false);
  }

  /** x [B, N, d], q [B, 1, d], o and v [B, K, d] -> new x, q and o. */
  apply(g: Graph, x: Sym, q: Sym, o: Sym, v: Sym): { x: Sym; q: Sym; o: Sym } {
    const [B, N, d] = x.shape;
    const [h, c] = [this.heads, this.headDim];
    // Update: [a | b] = MLP([q - o, o]); q' = mean_K(sigmoid(a) * value) + q, o' = sigmoid(b) * value + o.
    const value = this.value.apply(g, v); // [B, K, d]
    const hidden = this.query1.apply(g, g.concat([g.sub(q, o), o], 2)); // [B, K, 4c]
    const ab = this.query2.apply(g, g.mul(hidden, g.sigmoid(hidden))); // [B, K, 2d] (SiLU)
    const a = g.slice(ab, 2, 0, d);
    const b = g.slice(ab, 2, d, 2 * d);
    const newQ = g.add(g.mean(g.mul(g.sigmoid(a), value), [1], true), q); // [B, 1, d]
    const newO = g.add(g.mul(g.sigmoid(b), value), o); // [B, K, d]
    // key 'b l (n h w)': one gate per head and grid position, laid out as the tokens [B, N, n, 1].
    const key = this.toK.apply(g, this.kNorm.apply(g, newQ)); // [B, 1, n*N]
    const gate = g.reshape(g.transpose(g.reshape(g.sigmoid(key), [B, h, N]), [0, 2, 1]), [B, N, h, 1]);
    // to_x 'b (h w) (n c)' gated, then to_v back to tokens and to_n (mean over positions) into the query.
    const gated = g.reshape(g.mul(g.reshape(this.toX.apply(g, this.xNorm.apply(g, x)), [B, N, h, c]), gate), [B, N, h * c]); // [B, N, n*c]
    return {
      x: g.add(this.toV.apply(g, gated), x), // [B, N, d]
      q: g.add(this.toN.apply(g, g.mean(gated, [1], true)), q), // [B, 1, d]: T adds to the old q, not q'
      o: newO,
    };
  }
}

interface TrunkLayer {
  attn: PreNormAttention;
  bridge?: ExemplarBridge;
  ff: PreNormFeedForward;
}

/** A ParamTable that records shapes only: the paper model's 225 M parameters counted without 900 MB of weights. */
class ShapeTable extends ParamTable {
  readonly shapes = new Map<string, number[]>();
  override add(name: string, shape: Shape): void {
    if (this.shapes.has(name)) throw new Error(`parameter ${name} is defined twice`);
    this.shapes.set(name, [...shape]);
  }
  override uniform(name: string, shape: Shape): void { this.add(name, shape); }
  override constant(name: string, shape: Shape): void { this.add(name, shape); }
  override uniformLinear(name: string, outFeatures: number, inFeatures: number): void { this.add(name, [outFeatures, inFeatures]); }
}

/** Parameter shapes of EGN for a config, by PyTorch name, allocating no weights. */
export function egnParameterShapes(config: EgnConfig, dims: BaselineDims): Map<string, number[]> {
  const t = new ShapeTable();
  void new EgnNet(config, dims, 0, t);
  return t.shapes;
}

/**
 * Trainable parameters of EGN for a config: 226,882,938 for the paper preset with D = 512, G = 250,
 * as PyTorch counts T's modules. The spec's §8 says 224,783,738, one Linear(1024, 1024) short in
 * each of the two projector blocks (T's FeedForward(dim, dim) has two).
 */
export const egnParameterCount = (config: EgnConfig, dims: BaselineDims): number =>
  [...egnParameterShapes(config, dims).values()].reduce((n, s) => n + s.reduce((p, d) => p * d, 1), 0);

export class EgnNet implements BaselineNet {
  readonly name = 'egn' as const;
  readonly headBias = 'mlp_head.1.bias';
  readonly unit = 'spot' as const;
  readonly needs = ['crops', 'own', 'exemplars', 'exemplarTargets', 'truth'] as const;
  readonly table: ParamTable;
  readonly cropSize: number;
  readonly exemplarCount: number;
  /** Grid side (cropSize / patchSize) and tokens per crop. */
  readonly grid: number;
  readonly tokens: number;
  private readonly patchEmbedding: Linear;
  private readonly projector: Projector;
  private readonly layers: TrunkLayer[];
  private readonly pool: Linear;
  private readonly headNorm: LayerNorm;
  private readonly head: Linear;

  /** `table` replaces the seeded one (egnParameterShapes passes a table that allocates nothing). */
  constructor(readonly config: EgnConfig, readonly dims: BaselineDims, seed = 0, table?: ParamTable) {
    const c = config;
    const { genes: G, featureDim: D } = dims;
    for (const [k, v] of Object.entries(c)) if (!Number.isInteger(v) || v < 1) throw new Error(`egn: ${k} must be a positive integer, got ${v}`);
    if (c.cropSize % c.patchSize !== 0) throw new Error(`egn: the crop (${c.cropSize} px) must split into whole patches of ${c.patchSize} px`);
    if (!(D > 0)) throw new Error('egn: the store has no frozen global features (featureDim 0); EGN retrieves exemplars by them');
    this.table = table ?? new ParamTable(seed);
    this.cropSize = c.cropSize;
    this.exemplarCount = c.exemplars;
    this.grid = c.cropSize / c.patchSize;
    this.tokens = this.grid * this.grid;
    const t = this.table;
    // T's creation order: to_patch_embedding, pos_embedding (torch.randn), transformer, mlp_head.
    this.patchEmbedding = new Linear(t, 'to_patch_embedding.1', c.patchSize * c.patchSize * 3, c.dim);
    const posShape = [1, this.tokens + 1, c.dim]; // one slot more than used, as in T
    if (t instanceof ShapeTable) t.add('pos_embedding', posShape);
    else t.add('pos_embedding', posShape, normal(t.random, this.tokens * c.dim + c.dim));
    this.projector = new Projector(t, 'transformer.encoder', D, c.dim, G, c.projectorDepth);
    this.layers = Array.from({ length: c.depth }, (_, l) => ({
      attn: new PreNormAttention(t, `transformer.layers.${l}.0`, c.dim, c.heads, c.headDim),
      bridge: (l + 1) % c.bridgeEvery === 0 ? new ExemplarBridge(t, `transformer.layers.${l}.1`, c.dim, c.bridgeHeads, c.bridgeHeadDim, this.tokens) : undefined,
      ff: new PreNormFeedForward(t, `transformer.layers.${l}.2`, c.dim, c.mlpDim),
    }));
    this.pool = new Linear(t, 'transformer.pool.head', c.dim, c.dim);
    this.headNorm = new LayerNorm(t, 'mlp_head.0', 2 * c.dim);
    this.head = new Linear(t, 'mlp_head.1', 2 * c.dim, G);
  }

  /** The raw regression output [B, G] (before the clamp). */
  forward(g: Graph, inputs: BaselineInputs): Sym {
    const [crops, own, exemplars, targets] = need(this, inputs, 'crops', 'own', 'exemplars', 'exemplarTargets');
    const B = crops.shape[0];
    const { grid: n, tokens: N } = this;
    const p = this.config.patchSize;
    // 'b c (h p1) (w p2) -> b (h w) (p1 p2 c)'
    const image = g.reshape(imagenetNCHW(g, crops), [B, 3, n, p, n, p]); // [B, c, h, p1, w, p2]
    const patches = g.reshape(g.transpose(image, [0, 2, 4, 3, 5, 1]), [B, N, p * p * 3]); // [B, N, p*p*3]
    const pos = g.slice(this.table.sym(g, 'pos_embedding'), 1, 0, N); // [1, N, d]
    let x = g.add(this.patchEmbedding.apply(g, patches), pos); // [B, N, d]
    const projected = this.projector.apply(g, g.reshape(own, [B, 1, own.shape[1]]), exemplars, targets);
    let { q, o } = projected; // [B, 1, d], [B, K, d]
    const { v } = projected; // [B, K, d]
    for (const layer of this.layers) {
      x = g.add(layer.attn.apply(g, g.add(x, pos)), x); // T re-adds the position embedding at every layer
      if (layer.bridge) ({ x, q, o } = layer.bridge.apply(g, x, q, o, v));
      x = g.add(layer.ff.apply(g, x), x);
    }
    // CSRA: mean over tokens of s + lambda * sum over tokens of s * softmax_tokens(T s).
    const s = this.pool.apply(g, x); // [B, N, d]
    const weights = g.transpose(g.softmax(g.transpose(g.mul(s, CSRA_T), [0, 2, 1])), [0, 2, 1]); // [B, N, d]
    const pooled = g.add(g.mean(s, [1]), g.mul(g.sum(g.mul(s, weights), [1]), CSRA_LAMBDA)); // [B, d]
    const joint = g.concat([pooled, g.reshape(q, [B, this.config.dim])], 1); // [B, 2d]
    return this.head.apply(g, this.headNorm.apply(g, joint)); // [B, G]
  }

  predict(g: Graph, inputs: BaselineInputs): Sym {
    return clampMin(g, this.forward(g, inputs), 0);
  }

  /** MSE + 0.5 (1 - mean over genes of the within-batch Pearson r), on the unclamped output (B4). */
  loss(g: Graph, inputs: BaselineInputs): Sym {
    const [truth] = need(this, inputs, 'truth');
    const out = this.forward(g, inputs);
    return g.add(mseLoss(g, out, truth), g.mul(g.sub(1, g.mean(pearsonPerGene(g, out, truth), [0])), PCC_WEIGHT));
  }
}

/**
 * Pearson r of each column over the batch, [B, G] x [B, G] -> [G]: sum(x~ y~) / (|x~| |y~| + 1e-8)
 * on batch-centred columns (T's pearson_R). The norms' squares get 1e-30 under the root so that a
 * column constant over the batch (a batch of one) has a zero gradient, as torch.norm's, rather
 * than 0 * inf; in float32 1e-30 is far below any non-zero square's rounding.
 */
export function pearsonPerGene(g: Graph, x: Sym, y: Sym): Sym {
  const xc = g.sub(x, g.mean(x, [0], true));
  const yc = g.sub(y, g.mean(y, [0], true));
  const norm = (c: Sym) => g.sqrt(g.add(g.sum(g.square(c), [0]), 1e-30)); // [G]
  return g.div(g.sum(g.mul(xc, yc), [0]), g.add(g.mul(norm(xc), norm(yc)), PCC_EPS));
}
