import type { Graph, Sym } from '../engine/graph';
import { attend, dropout, LayerNorm, Linear, ParamTable, type DropoutLayer, type Mode } from '../engine/nn';
import { normal } from '../util/random';
import { mseLoss, need, type BaselineDims, type BaselineInputs, type BaselineNet, type InputName } from './model';

/**
 * HisToGene (Pang et al. 2021; baselines-spec §3), the original pixel model of maxpmx/HisToGene
 * (`vis_model.py` HisToGene, `transformer.py` ViT), for one whole section of n spots per step:
 *
 *   x = patch_embedding(crop flattened) + x_embed(col) + y_embed(row)     [n, dim]
 *   x = dropout(x); depth pre-norm blocks over all n spots (global n x n attention)
 *   prediction = gene_head(x) = Linear(LN(x))                              [n, G]
 *
 * Parameter names are the original's state dict (`vit.transformer.layers.3.0.fn.to_qkv.weight`,
 * `gene_head.1.bias`, ...), so an O-HTG checkpoint of the same sizes loads one to one. Two facts
 * read in the original and kept here:
 * - the crop is flattened in (x, y, channel) order, not CHW: `dataset.py` ViT_HER2ST indexes the
 *   HWC image permuted to [W, H, 3] as im[x-r:x+r, y-r:y+r, :] and flattens that, x the
 *   horizontal pixel axis; so a crop [S(rows), S(cols), 3] is transposed to [cols, rows, 3] first;
 * - `x_embed` reads pos[:, 0], the ST array x (the horizontal index, our `cols`), and `y_embed`
 *   pos[:, 1] (our `rows`).
 * Pixels are raw 0..255 (no /255, no normalisation: the spec's B12), and the prediction is not clamped.
 */

export interface HistogeneConfig {
  /** Side of the square crop S; the patch embedding takes 3 * S * S raw pixels. */
  cropSize: number;
  /** Token width (the original's dim). */
  dim: number;
  /** Transformer blocks (the original's n_layers: 8 in its tutorial). */
  depth: number;
  heads: number;
  /** Width of one attention head; heads * dimHead need not equal dim (the original: 16 x 64). */
  dimHead: number;
  /** Hidden width of the feed-forward (the original: 2 * dim). */
  mlpDim: number;
  /** Dropout after the embeddings, after attention's output and twice in the feed-forward. */
  dropout: number;
  /**
   * Rows of each position embedding (the original's n_pos): array coordinates must lie in
   * [0, positions). The original's 64 covers the ST arrays (about 33 x 35); Visium's array columns
   * reach 127, so a Visium run needs 128. The learner must refuse a section for which
   * histogenePositionsFit is false (an embedding lookup out of range has no defined value).
   */
  positions: number;
}

/**
 * paper: the original model as the spec reads it (§3 "Spec choice", §10): 112 px crops (T's
 * 224 px downsampled by 2), dim 1024, 8 blocks of 16 heads x 64, mlp 2048, dropout 0.1,
 * n_pos 64 (106,099,962 parameters for 250 genes). demo: a narrow model on 56 px crops (the 224 px
 * crops averaged 4 x 4, the same 112 um field), 2 blocks, 128 positions (ST and Visium), that
 * trains in seconds per epoch on a CPU.
 */
export const HISTOGENE_PRESETS: { paper: HistogeneConfig; demo: HistogeneConfig } = {
  paper: { cropSize: 112, dim: 1024, depth: 8, heads: 16, dimHead: 64, mlpDim: 2048, dropout: 0.1, positions: 64 },
  demo: { cropSize: 56, dim: 64, depth: 2, heads: 4, dimHead: 16, mlpDim: 128, dropout: 0.1, positions: 128 },
};

/** The original's Attention drops its output projection when one head spans the whole width. */
const projectsOut = (c: HistogeneConfig) => !(c.heads === 1 && c.dimHead === c.dim);

/** Trainable parameters of a configuration for `genes` outputs, from the shapes alone (no weights allocated). */
export function histogeneParameterCount(c: HistogeneConfig, genes: number): number {
  const { dim, mlpDim } = c;
  const inner = c.heads * c.dimHead;
  const linear = (i: number, o: number) => i * o + o;
  const block = 2 * dim + 3 * inner * dim + (projectsOut(c) ? linear(inner, dim) : 0) + 2 * dim + linear(dim, mlpDim) + linear(mlpDim, dim);
  return linear(3 * c.cropSize * c.cropSize, dim) + 2 * c.positions * dim + c.depth * block + 2 * dim + linear(dim, genes);
}

/** Whether every array coordinate lies in [0, positions) (the learner refuses a section otherwise). */
export function histogenePositionsFit(c: HistogeneConfig, rows: ArrayLike<number | bigint>, cols: ArrayLike<number | bigint>): boolean {
  const fits = (v: number | bigint) => Number(v) >= 0 && Number(v) < c.positions && Number.isInteger(Number(v));
  return Array.from(rows).every(fits) && Array.from(cols).every(fits);
}

/** PreNorm(dim, Attention): LN, bias-free qkv (columns [q | k | v] x heads x dimHead), softmax, to_out. */
class AttentionLayer {
  readonly norm: LayerNorm;
  readonly qkv: Linear;
  readonly out?: Linear;
  private readonly drop: DropoutLayer;

  constructor(t: ParamTable, name: string, private readonly c: HistogeneConfig) {
    const inner = c.heads * c.dimHead;
    this.norm = new LayerNorm(t, `${name}.norm`, c.dim);
    this.qkv = new Linear(t, `${name}.fn.to_qkv`, c.dim, 3 * inner, false);
    if (projectsOut(c)) this.out = new Linear(t, `${name}.fn.to_out.0`, inner, c.dim);
    this.drop = t.dropout(c.dropout);
  }

  /** [1, n, dim] -> [1, n, dim] (the residual's branch). */
  apply(g: Graph, x: Sym, mode: Mode): Sym {
    const [B, n] = x.shape;
    const { heads: h, dimHead: hd } = this.c;
    const qkv = g.transpose(g.reshape(this.qkv.apply(g, this.norm.apply(g, x)), [B, n, 3, h, hd]), [2, 0, 3, 1, 4]); // [3, B, h, n, hd]
    const [q, k, v] = [0, 1, 2].map((i) => g.reshape(g.slice(qkv, 0, i, i + 1), [B, h, n, hd]));
    const merged = g.reshape(g.transpose(attend(g, q, k, v), [0, 2, 1, 3]), [B, n, h * hd]); // [B, n, inner]
    return this.out ? dropout(g, this.out.apply(g, merged), this.drop, mode) : merged;
  }
}

/** PreNorm(dim, FeedForward): LN, Linear(dim -> mlp) (net.0), GELU, dropout, Linear(mlp -> dim) (net.3), dropout. */
class FeedForwardLayer {
  readonly norm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly hiddenDrop: DropoutLayer;
  private readonly outDrop: DropoutLayer;

  constructor(t: ParamTable, name: string, c: HistogeneConfig) {
    this.norm = new LayerNorm(t, `${name}.norm`, c.dim);
    this.fc1 = new Linear(t, `${name}.fn.net.0`, c.dim, c.mlpDim);
    this.hiddenDrop = t.dropout(c.dropout);
    this.fc2 = new Linear(t, `${name}.fn.net.3`, c.mlpDim, c.dim);
    this.outDrop = t.dropout(c.dropout);
  }

  apply(g: Graph, x: Sym, mode: Mode): Sym {
    const hidden = dropout(g, g.gelu(this.fc1.apply(g, this.norm.apply(g, x))), this.hiddenDrop, mode); // [1, n, mlp]
    return dropout(g, this.fc2.apply(g, hidden), this.outDrop, mode); // [1, n, dim]
  }
}

export class HisToGeneNet implements BaselineNet {
  readonly name = 'histogene';
  readonly headBias = 'gene_head.1.bias';
  readonly unit = 'section';
  readonly needs: readonly InputName[] = ['crops', 'rows', 'cols', 'truth'];
  readonly cropSize: number;
  readonly table: ParamTable;
  private readonly patchEmbedding: Linear;
  private readonly embeddingDrop: DropoutLayer;
  private readonly layers: [AttentionLayer, FeedForwardLayer][] = [];
  private readonly headNorm: LayerNorm;
  private readonly head: Linear;

  constructor(readonly config: HistogeneConfig, readonly dims: BaselineDims, seed = 0) {
    const c = config;
    if (!(c.dropout >= 0 && c.dropout < 1)) throw new Error(`histogene: dropout ${c.dropout} must lie in [0, 1)`);
    this.cropSize = c.cropSize;
    const t = (this.table = new ParamTable(seed));
    // The original's creation order: patch_embedding, x_embed, y_embed, vit (its dropout first), gene_head.
    this.patchEmbedding = new Linear(t, 'patch_embedding', 3 * c.cropSize * c.cropSize, c.dim);
    for (const axis of ['x_embed', 'y_embed']) t.add(`${axis}.weight`, [c.positions, c.dim], normal(t.random, c.positions * c.dim)); // nn.Embedding: N(0, 1)
    this.embeddingDrop = t.dropout(c.dropout);
    for (let i = 0; i < c.depth; i++) {
      const p = `vit.transformer.layers.${i}`;
      this.layers.push([new AttentionLayer(t, `${p}.0`, c), new FeedForwardLayer(t, `${p}.1`, c)]);
    }
    this.headNorm = new LayerNorm(t, 'gene_head.0', c.dim);
    this.head = new Linear(t, 'gene_head.1', c.dim, dims.genes);
  }

  /** One section: crops [n, S, S, 3], rows and cols [n] -> genes [n, G]. */
  private forward(g: Graph, inputs: BaselineInputs, mode: Mode): Sym {
    const [crops, rows, cols] = need(this, inputs, 'crops', 'rows', 'cols');
    const [n, S] = crops.shape;
    if (S !== this.cropSize) throw new Error(`histogene: crops are ${S} px, the model takes ${this.cropSize}`);
    const pixels = g.reshape(g.transpose(crops, [0, 2, 1, 3]), [n, 3 * S * S]); // [n, 3 S^2] in the original's (x, y, channel) order
    const positions = g.add(g.gather(this.table.sym(g, 'x_embed.weight'), cols), g.gather(this.table.sym(g, 'y_embed.weight'), rows)); // [n, dim]
    let x = g.add(this.patchEmbedding.apply(g, pixels), positions); // [n, dim]
    x = g.reshape(dropout(g, x, this.embeddingDrop, mode), [1, n, this.config.dim]); // the section as one sequence
    for (const [attention, feedForward] of this.layers) {
      x = g.add(attention.apply(g, x, mode), x);
      x = g.add(feedForward.apply(g, x, mode), x);
    }
    return g.reshape(this.head.apply(g, this.headNorm.apply(g, x)), [n, this.dims.genes]); // [n, G]
  }

  predict(g: Graph, inputs: BaselineInputs): Sym {
    return this.forward(g, inputs, 'inference');
  }

  /** MSE over the section's spots x genes (the original's F.mse_loss). */
  loss(g: Graph, inputs: BaselineInputs): Sym {
    const [truth] = need(this, inputs, 'truth');
    return mseLoss(g, this.forward(g, inputs, 'train'), truth);
  }
}
