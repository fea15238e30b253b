import type { Graph, Sym } from '../engine/graph';
import { CrossAttentionBlock, LayerNorm, Linear, ParamTable, TransformerBlock, type Mode } from '../engine/nn';
import { activeViews, checkConfig, FUSION_LOSS_ALPHA, type EncoderConfig, type TriplexConfig, type ViewName } from './triplexConfig';
import { NEIGHBOR_TOKENS, TARGET_TOKENS } from './triplexInputs';
import { APEG } from './apeg';
import type { GlobalLayout } from './globalLayout';
import { ResNet18Trunk } from './resnet18';

/**
 * How the target view is computed: frozen token maps [B, 49, d] (mode frozen); the ResNet18
 * trunk's layer4 on cached layer3 maps [B, 14, 14, 256] (layer4: only layer4 trains); or the
 * whole trunk on ImageNet-normalised crops [B, 224, 224, 3] (full). Crops and maps come in NHWC,
 * as the batches hold them. Inference graphs of a trunk model take crops.
 */
export type TargetSource = 'tokens' | 'layer3' | 'crops';

/** Prefix of the trunk's tensors in checkpoints. */
export const TRUNK_PREFIX = 'target_encoder.';

/**
 * TRIPLEX on the engine's op interface, its one definition: every variant of TriplexConfig on one
 * code path (the spec's "Three views" and "Building blocks"), run by onnxruntime and by the
 * engine's TF.js interpreter alike. Parameters carry the state-dict names of our PyTorch reference
 * (scripts/fixtures/torch_triplex_reference.py): `neighbor_encoder.blocks.0.attn.qkv.weight`,
 * `global_encoder.peg.proj.weight`, `fusion_encoder.norm.bias`, `fc`, `fc_target`, ... The target
 * view takes token maps [B, 49, d] (mode frozen), or the ResNet18 trunk's output (layer4, full).
 *
 * Where the paper leaves a variant's wiring open, our choices:
 * - without the global view, the fusion layer's single query is the spot's mean target token
 *   (the neighbor tokens' mean when the target view is off too);
 * - a single-view model (TEM, NEM, GEM) predicts with its own head and trains on its MSE alone;
 * - summation, concatenation (+ Linear(k d, d)) and attentional pooling (Ilse et al. 2018,
 *   hidden 128) combine the views' summary vectors (mean target token, mean neighbor token,
 *   global token); every method ends in the fusion LayerNorm.
 */

/** Hidden size of attentional pooling's scoring network (Ilse et al. 2018 use 128). */
const ATTENTION_POOL_HIDDEN = 128;

/** The global view's inputs for the slides of a batch, laid out by globalLayout. */
export interface GlobalInputs {
  layout: Pick<GlobalLayout, 'tokens' | 'height' | 'width'>;
  /** Frozen features of every token, [tokens, d] (padding zero). */
  features: Sym;
  /** [tokens, 1] and key mask [1, tokens]. */
  valid: Sym;
  keep: Sym;
  /** Block-diagonal logit bias [tokens, tokens] (several slides). */
  bias?: Sym;
  /** int64 [tokens]: each token's cell on the position encoding's grid. */
  cells: Sym;
}

export interface TriplexGraphInputs {
  target?: Sym;
  neighbors?: Sym;
  mask?: Sym;
  /** The slides to encode, and int64 [B]: each batch spot's token. */
  global?: GlobalInputs;
  globalRows?: Sym;
  /** Or the batch's global tokens already encoded, [B, d] (whole-slide inference). */
  globalTokens?: Sym;
}

export interface HeadSyms {
  fusion: Sym;
  target?: Sym;
  neighbor?: Sym;
  global?: Sym;
}

class Encoder {
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;

  constructor(t: ParamTable, name: string, dim: number, e: EncoderConfig, relativePositionBias: boolean) {
    this.blocks = Array.from({ length: e.depth }, (_, i) => new TransformerBlock(t, `${name}.blocks.${i}`, { dim, heads: e.heads, mlpRatio: e.mlpRatio, dropout: e.dropout, relativePositionBias }));
    this.norm = new LayerNorm(t, `${name}.norm`, dim);
  }
}

export class TriplexNet {
  readonly table: ParamTable;
  readonly views: ViewName[];
  private readonly neighborEncoder?: Encoder;
  private readonly globalEncoder?: Encoder;
  private readonly positionEncoding?: APEG;
  private readonly fusionBlocks: CrossAttentionBlock[] = [];
  private readonly fusionNorm?: LayerNorm;
  private readonly fusionProj?: Linear;
  private readonly poolV?: Linear;
  private readonly poolW?: Linear;
  private readonly heads: Partial<Record<ViewName | 'fusion', Linear>> = {};

  /** The ResNet18 of the target view (modes layer4 and full), `target_encoder.*`. */
  readonly trunk?: ResNet18Trunk;

  constructor(readonly config: TriplexConfig, seed = 0, o: { trunk?: boolean } = {}) {
    checkConfig(config);
    if (o.trunk && config.views.target) this.trunk = new ResNet18Trunk(TRUNK_PREFIX);
    const t = (this.table = new ParamTable(seed));
    const d = config.dim;
    this.views = activeViews(config);
    if (config.views.neighbor) this.neighborEncoder = new Encoder(t, 'neighbor_encoder', d, config.neighbor, true);
    if (config.views.global) {
      this.globalEncoder = new Encoder(t, 'global_encoder', d, config.global, false);
      // PEG is APEG on a square filled row by row (globalLayout places the tokens): one module.
      if (config.global.positionEncoding !== 'none') this.positionEncoding = new APEG(t, 'global_encoder.peg', d, config.global.kernelSize);
    }
    if (this.views.length > 1) {
      const f = config.fusion;
      if (f.method === 'layer') {
        for (let i = 0; i < f.depth; i++) this.fusionBlocks.push(new CrossAttentionBlock(t, `fusion_encoder.blocks.${i}`, { dim: d, heads: f.heads, mlpRatio: f.mlpRatio, dropout: f.dropout }));
      } else if (f.method === 'concat') {
        this.fusionProj = new Linear(t, 'fusion_encoder.proj', this.views.length * d, d);
      } else if (f.method === 'attnpool') {
        this.poolV = new Linear(t, 'fusion_encoder.attention_V', d, ATTENTION_POOL_HIDDEN);
        this.poolW = new Linear(t, 'fusion_encoder.attention_w', ATTENTION_POOL_HIDDEN, 1);
      }
      this.fusionNorm = new LayerNorm(t, 'fusion_encoder.norm', d);
      this.heads.fusion = new Linear(t, 'fc', d, config.genes);
    }
    for (const v of this.views) this.heads[v] = new Linear(t, `fc_${v}`, d, config.genes);
  }

  /** The frozen input of a view, standardised when the configuration asks (inputs `norm:<view>:mean|inv`, [d]). */
  private standardized(g: Graph, view: ViewName, x: Sym): Sym {
    if (!this.config.standardizeInputs) return x;
    const d = this.config.dim;
    return g.mul(g.sub(x, g.input(`norm:${view}:mean`, [d])), g.input(`norm:${view}:inv`, [d]));
  }

  /** The global encoder over the laid-out slides: [tokens, d]. */
  encodeGlobal(g: Graph, gi: GlobalInputs, mode: Mode): Sym {
    const enc = this.globalEncoder;
    if (!enc) throw new Error('this TRIPLEX configuration has no global view');
    const { tokens } = gi.layout;
    let x = g.reshape(this.standardized(g, 'global', gi.features), [1, tokens, this.config.dim]); // [1, N, d]
    enc.blocks.forEach((block, i) => {
      x = block.apply(g, x, mode, gi.keep, gi.bias);
      if (i === 0 && this.positionEncoding) x = g.reshape(this.encodePosition(g, g.reshape(x, [tokens, this.config.dim]), gi), [1, tokens, this.config.dim]);
    });
    return g.reshape(enc.norm.apply(g, x), [tokens, this.config.dim]); // [N, d]
  }

  /** The position encoding (after the global encoder's first block) of tokens x [tokens, d] -> [tokens, d]. */
  encodePosition(g: Graph, x: Sym, gi: Pick<GlobalInputs, 'layout' | 'valid' | 'cells'>): Sym {
    if (!this.positionEncoding) return x;
    const spots = g.mul(x, gi.valid); // padding zeroed: it must add nothing to the grid
    return this.positionEncoding.apply(g, spots, gi.cells, gi.layout.height, gi.layout.width); // [tokens, d]
  }

  /**
   * The global encoder's parts, for inference over a whole slide in blocks of rows
   * (globalBlocks.ts): its transformer blocks, the standardised input and the final norm, each
   * row by row on [1, R, d].
   */
  get globalParts(): { blocks: readonly TransformerBlock[]; input: (g: Graph, x: Sym) => Sym; norm: (g: Graph, x: Sym) => Sym; positionEncoding: boolean } {
    const enc = this.globalEncoder;
    if (!enc) throw new Error('this TRIPLEX configuration has no global view');
    return {
      blocks: enc.blocks,
      input: (g, x) => this.standardized(g, 'global', x),
      norm: (g, x) => enc.norm.apply(g, x),
      positionEncoding: this.positionEncoding !== undefined,
    };
  }

  /** Target tokens [B, 49, d] from the target input of `source`. */
  private targetTokens(g: Graph, target: Sym, source: TargetSource, mode: Mode): Sym {
    if (source === 'tokens') return this.standardized(g, 'target', target);
    if (!this.trunk) throw new Error('the target input is images, but this model has no ResNet18 trunk (mode frozen takes token maps [B, 49, d])');
    const B = target.shape[0];
    const nchw = g.transpose(target, [0, 3, 1, 2]); // [B, C, H, W]
    const maps = source === 'crops'
      ? this.trunk.apply(g, nchw, mode) // [B, 512, 7, 7]
      : this.trunk.apply(g, nchw, mode, { stages: ['layer4'] });
    return g.transpose(g.reshape(maps, [B, this.config.dim, TARGET_TOKENS]), [0, 2, 1]); // [B, 49, d]: row-major cells, as NHWC reshapes
  }

  /** Every head's prediction [B, genes] for a batch. `source`: what inputs.target holds. */
  forward(g: Graph, inputs: TriplexGraphInputs, mode: Mode, source: TargetSource = 'tokens'): HeadSyms {
    const c = this.config;
    const summaries: Partial<Record<ViewName, Sym>> = {};
    // The global encoder first: its dropout layers draw their masks before the batch's own (the order runs have always used).
    let globalTokens = inputs.globalTokens;
    if (c.views.global && !globalTokens) {
      if (!inputs.global || !inputs.globalRows) throw new Error('the global view needs the batch\'s slides and each spot\'s row in them');
      globalTokens = g.gather(this.encodeGlobal(g, inputs.global, mode), inputs.globalRows); // [B, d]
    }
    let targetTokens: Sym | undefined;
    let neighborTokens: Sym | undefined;
    if (c.views.target) {
      if (!inputs.target) throw new Error('this configuration uses the target view, but the batch has no target input');
      targetTokens = this.targetTokens(g, inputs.target, source, mode); // [B, 49, d]
      summaries.target = g.mean(targetTokens, [1]); // [B, d]
    }
    if (c.views.neighbor) {
      if (!inputs.neighbors || !inputs.mask) throw new Error('this configuration uses the neighbor view, but the batch has no neighbor features and mask');
      let x = this.standardized(g, 'neighbor', inputs.neighbors);
      for (const block of this.neighborEncoder!.blocks) x = block.apply(g, x, mode, inputs.mask);
      neighborTokens = this.neighborEncoder!.norm.apply(g, x); // [B, 25, d]
      summaries.neighbor = c.neighborMean === 'masked'
        ? g.div(g.sum(g.mul(neighborTokens, g.reshape(inputs.mask, [...inputs.mask.shape, 1])), [1]), g.sum(inputs.mask, [1], true))
        : g.mean(neighborTokens, [1]); // [B, d]
    }
    if (c.views.global) summaries.global = globalTokens;

    const out: Partial<HeadSyms> = {};
    for (const v of this.views) out[v] = this.heads[v]!.apply(g, summaries[v]!);
    if (this.views.length === 1) return { ...out, fusion: out[this.views[0]]! };

    const vectors = this.views.map((v) => summaries[v]!);
    let fused: Sym; // [B, d]
    if (c.fusion.method === 'layer') {
      const q0 = summaries.global ?? summaries.target ?? summaries.neighbor!;
      const query = g.reshape(q0, [q0.shape[0], 1, c.dim]); // [B, 1, d]
      const attend = (context: Sym, keep?: Sym) => {
        let x = query;
        for (const block of this.fusionBlocks) x = block.apply(g, x, context, mode, keep);
        return g.reshape(x, [q0.shape[0], c.dim]); // [B, d]
      };
      const parts: Sym[] = [];
      if (targetTokens) parts.push(attend(targetTokens));
      if (neighborTokens) parts.push(attend(neighborTokens, inputs.mask));
      fused = parts.reduce((a, b) => g.add(a, b));
    } else if (c.fusion.method === 'sum') {
      fused = vectors.reduce((a, b) => g.add(a, b));
    } else if (c.fusion.method === 'concat') {
      fused = this.fusionProj!.apply(g, g.concat(vectors, 1));
    } else {
      const B = vectors[0].shape[0];
      const stacked = g.concat(vectors.map((v) => g.reshape(v, [B, 1, c.dim])), 1); // [B, k, d]
      const scores = g.reshape(this.poolW!.apply(g, g.tanh(this.poolV!.apply(g, stacked))), [B, vectors.length]); // [B, k]
      const weights = g.reshape(g.softmax(scores), [B, vectors.length, 1]); // [B, k, 1]
      fused = g.sum(g.mul(stacked, weights), [1]); // [B, d]
    }
    out.fusion = this.heads.fusion!.apply(g, this.fusionNorm!.apply(g, fused));
    return out as HeadSyms;
  }

  /** The training loss: the fusion loss or its ablation (FusionLossVariant), MSE alone for a single view. */
  loss(g: Graph, heads: HeadSyms, truth: Sym): Sym {
    const mse = (a: Sym, b: Sym) => g.mean(g.square(g.sub(a, b)), [0, 1]);
    let loss = mse(heads.fusion, truth);
    const variant = this.views.length === 1 ? 'predictionOnly' : this.config.loss;
    if (variant === 'predictionOnly') return loss;
    const alpha = variant === 'fusion' ? this.config.alpha ?? FUSION_LOSS_ALPHA : 0;
    for (const view of [heads.target, heads.neighbor, heads.global]) {
      if (!view) continue;
      loss = g.add(loss, g.mul(mse(view, truth), 1 - alpha));
      if (alpha > 0) loss = g.add(loss, g.mul(mse(view, heads.fusion), alpha));
    }
    return loss;
  }

  /**
   * Graph inputs of a batch of B spots (and of the layout's slides), under the names the feeds
   * use. `encodedGlobal`: the global view comes as the batch's tokens, encoded beforehand.
   */
  declareInputs(g: Graph, B: number, layout?: Pick<GlobalLayout, 'tokens' | 'height' | 'width' | 'bias'>, encodedGlobal = false, source: TargetSource = 'tokens'): TriplexGraphInputs {
    const d = this.config.dim;
    const inputs: TriplexGraphInputs = {};
    const targetShape = source === 'crops' ? [B, 224, 224, 3] : source === 'layer3' ? [B, 14, 14, 256] : [B, TARGET_TOKENS, d];
    if (this.config.views.target) inputs.target = g.input('target', targetShape);
    if (this.config.views.neighbor) {
      inputs.neighbors = g.input('neighbors', [B, NEIGHBOR_TOKENS, d]);
      inputs.mask = g.input('mask', [B, NEIGHBOR_TOKENS]);
    }
    if (this.config.views.global && encodedGlobal) {
      inputs.globalTokens = g.input('global:tokens', [B, d]);
    } else if (this.config.views.global) {
      if (!layout) throw new Error('the global view needs the layout of the batch\'s slides');
      inputs.global = this.declareGlobalInputs(g, layout);
      inputs.globalRows = g.input('global:rows', [B], 'int64');
    }
    return inputs;
  }

  /** Graph inputs of laid-out slides for the global encoder. */
  declareGlobalInputs(g: Graph, layout: Pick<GlobalLayout, 'tokens' | 'height' | 'width' | 'bias'>): GlobalInputs {
    const N = layout.tokens;
    return {
      layout,
      features: g.input('global:features', [N, this.config.dim]),
      valid: g.input('global:valid', [N, 1]),
      keep: g.input('global:keep', [1, N]),
      cells: g.input('global:cells', [N], 'int64'),
      ...(layout.bias ? { bias: g.input('global:bias', [N, N]) } : {}),
    };
  }
}
