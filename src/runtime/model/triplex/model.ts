import * as tf from '@tensorflow/tfjs-core';
import type { StateDict } from '../../weights/stateDict';
import { APEG, PEG, selectRows, type SpotGrid } from './apeg';
import { CrossAttentionBlock, TransformerBlock } from './attention';
import { activeViews, checkConfig, type TriplexConfig, type ViewName } from './config';
import { LayerNorm, Linear, ParameterSet, type ForwardMode } from './layers';
import { fusionLoss, type HeadPredictions } from './loss';

/**
 * TRIPLEX (spec, "Three views" and "Building blocks"): the target, neighbor and global encoders,
 * the fusion of their outputs, and four linear heads, with every variant of the paper as a switch
 * of TriplexConfig on this one code path. Parameters carry the state-dict names of our PyTorch
 * reference (scripts/fixtures/torch_triplex_reference.py): `neighbor_encoder.blocks.0.attn.qkv.weight`,
 * `global_encoder.peg.proj.weight`, `fusion_encoder.norm.bias`, `fc`, `fc_target`, ...
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
/** Tokens of the target view (the ResNet18 7x7 map) and of the neighbor view (5x5 tiles). */
export const TARGET_TOKENS = 49;
export const NEIGHBOR_TOKENS = 25;

/** One slide whose spots the global encoder sees all at once. */
export interface GlobalSlide {
  /** Frozen ResNet18 features of the slide's spots' own crops, [n, d]. */
  features: tf.Tensor2D;
  grid: SpotGrid;
}

/** The inputs of one batch of B spots. Views a configuration leaves out may be omitted. */
export interface TriplexInputs {
  /** Target tokens [B, 49, d] (mode frozen), layer3 maps [B, 14, 14, 256] (layer4), or ImageNet-normalised crops [B, 224, 224, 3] (full). */
  target?: tf.Tensor3D | tf.Tensor4D;
  /** Frozen features of the 25 neighbor tiles, [B, 25, d]. */
  neighbors?: tf.Tensor3D;
  /** 1 = tile inside the image, 0 = masked; [B, 25]. */
  mask?: tf.Tensor2D;
  /** The slides the batch's spots come from, each encoded whole. */
  slides?: GlobalSlide[];
  /** For each batch spot, its row in the slides' spots concatenated in order (all distinct). */
  globalRows?: Int32Array;
}

class Encoder {
  readonly blocks: TransformerBlock[];
  readonly norm: LayerNorm;

  constructor(params: ParameterSet, name: string, dim: number, e: TriplexConfig['neighbor'], relativePositionBias: boolean) {
    this.blocks = Array.from({ length: e.depth }, (_, i) => new TransformerBlock(params, `${name}.blocks.${i}`, { dim, heads: e.heads, mlpRatio: e.mlpRatio, dropout: e.dropout, relativePositionBias }));
    this.norm = new LayerNorm(params, `${name}.norm`, dim);
  }
}

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

export class TriplexModel {
  readonly params: ParameterSet;
  /** Standardisation of the frozen inputs (config.standardizeInputs), as [mean, 1 / std] tensors. */
  private inputNorm: Partial<Record<ViewName, [tf.Tensor1D, tf.Tensor1D]>> = {};
  readonly views: ViewName[];
  private readonly neighborEncoder?: Encoder;
  private readonly globalEncoder?: Encoder;
  private readonly positionEncoding?: APEG | PEG;
  private readonly fusionBlocks: CrossAttentionBlock[] = [];
  private readonly fusionNorm?: LayerNorm;
  private readonly fusionProj?: Linear;
  private readonly poolV?: Linear;
  private readonly poolW?: Linear;
  private readonly heads: Partial<Record<ViewName | 'fusion', Linear>> = {};

  /** The target view takes precomputed token maps (mode `frozen`); trunk modes train on the engine (models/triplex.ts). */
  constructor(readonly config: TriplexConfig, options: { seed?: number } = {}) {
    checkConfig(config);
    this.params = new ParameterSet({ seed: options.seed ?? 0, scope: 'triplex' });
    const p = this.params;
    const d = config.dim;
    this.views = activeViews(config);
    if (config.views.neighbor) this.neighborEncoder = new Encoder(p, 'neighbor_encoder', d, config.neighbor, true);
    if (config.views.global) {
      const g = config.global;
      this.globalEncoder = new Encoder(p, 'global_encoder', d, g, false);
      if (g.positionEncoding === 'apeg') this.positionEncoding = new APEG(p, 'global_encoder.peg', d, g.kernelSize);
      else if (g.positionEncoding === 'peg') this.positionEncoding = new PEG(p, 'global_encoder.peg', d, g.kernelSize);
    }
    if (this.views.length > 1) {
      const f = config.fusion;
      if (f.method === 'layer') {
        for (let i = 0; i < f.depth; i++) this.fusionBlocks.push(new CrossAttentionBlock(p, `fusion_encoder.blocks.${i}`, { dim: d, heads: f.heads, mlpRatio: f.mlpRatio, dropout: f.dropout }));
      } else if (f.method === 'concat') {
        this.fusionProj = new Linear(p, 'fusion_encoder.proj', this.views.length * d, d);
      } else if (f.method === 'attnpool') {
        this.poolV = new Linear(p, 'fusion_encoder.attention_V', d, ATTENTION_POOL_HIDDEN);
        this.poolW = new Linear(p, 'fusion_encoder.attention_w', ATTENTION_POOL_HIDDEN, 1);
      }
      this.fusionNorm = new LayerNorm(p, 'fusion_encoder.norm', d);
      this.heads.fusion = new Linear(p, 'fc', d, config.genes);
    }
    for (const v of this.views) this.heads[v] = new Linear(p, `fc_${v}`, d, config.genes);
  }

  /** No trunk here: the target view is always frozen token maps. */
  readonly trunk = undefined;

  /** The views whose frozen inputs are standardised: all of them. */
  get standardizedViews(): ViewName[] {
    return this.views;
  }

  /** Every trainable variable: the TRIPLEX parameters. */
  trainableVariables(): tf.Variable[] {
    return this.params.variables();
  }

  /** Sets the standardisation of the frozen inputs (configurations with standardizeInputs). */
  setInputStats(stats: InputStats): void {
    if (!this.config.standardizeInputs) throw new Error('this configuration does not standardise its inputs');
    for (const v of this.standardizedViews) {
      const s = stats[v];
      if (!s || s.mean.length !== this.config.dim || s.std.length !== this.config.dim) throw new Error(`input statistics for the ${v} view are missing or not ${this.config.dim} wide`);
    }
    tf.dispose(Object.values(this.inputNorm).flat());
    this.inputNorm = {};
    for (const v of this.standardizedViews) {
      const s = stats[v]!;
      this.inputNorm[v] = [tf.keep(tf.tensor1d(s.mean)), tf.keep(tf.tensor1d(inverseStd(s.std)))];
    }
  }

  /** Frozen input x [..., d] of a view, standardised when the configuration asks for it. */
  private standardized<T extends tf.Tensor>(view: ViewName, x: T): T {
    if (!this.config.standardizeInputs) return x;
    const norm = this.inputNorm[view];
    if (!norm) throw new Error(`this model standardises its inputs, but has no statistics for the ${view} view (set them with setInputStats, or load a checkpoint that has them)`);
    return tf.mul(tf.sub(x, norm[0]), norm[1]) as T;
  }

  /**
   * The global encoder over one slide's spots: [n, d] -> [n, d]. `queryRows`: attention in
   * blocks of that many query rows in inference (default: SelfAttention.apply's).
   */
  encodeSlide(slide: GlobalSlide, mode: ForwardMode, queryRows?: number): tf.Tensor2D {
    const enc = this.globalEncoder;
    if (!enc) throw new Error('this TRIPLEX configuration has no global view');
    return tf.tidy(() => {
      let x = tf.expandDims(this.standardized('global', slide.features), 0) as tf.Tensor3D; // [1, n, d]
      enc.blocks.forEach((block, i) => {
        x = block.apply(x, mode, undefined, queryRows);
        if (i === 0 && this.positionEncoding) {
          const tokens = tf.squeeze<tf.Tensor2D>(x, [0]); // [n, d]
          const encoded = this.positionEncoding instanceof APEG ? this.positionEncoding.apply(tokens, slide.grid) : this.positionEncoding.apply(tokens);
          x = tf.expandDims(encoded, 0) as tf.Tensor3D;
        }
      });
      return tf.squeeze<tf.Tensor2D>(enc.norm.apply(x), [0]); // [n, d]
    });
  }

  /** Global tokens of the batch's spots, [B, d]: every slide encoded whole, then the batch's rows picked. */
  globalTokens(inputs: TriplexInputs, mode: ForwardMode, encoded?: tf.Tensor2D[]): tf.Tensor2D {
    const { slides, globalRows } = inputs;
    if (!(encoded?.length || slides?.length) || !globalRows) throw new Error('the global view needs the slides of the batch and each spot\'s row in them (slides, globalRows)');
    return tf.tidy(() => {
      const perSlide = encoded ?? slides!.map((s) => this.encodeSlide(s, mode));
      const all = perSlide.length === 1 ? perSlide[0] : tf.concat(perSlide, 0); // [sum n, d]
      return selectRows(all, globalRows); // [B, d]
    });
  }

  /**
   * The target tokens [B, 49, d]: given (mode frozen), from the trunk's layer4 on cached layer3
   * maps [B, 14, 14, 256] (mode layer4), or from the whole trunk on crops [B, 224, 224, 3] (full).
   */
  private targetTokens(target: tf.Tensor3D | tf.Tensor4D, mode: ForwardMode): tf.Tensor3D {
    if (target.rank === 3) return this.standardized('target', target as tf.Tensor3D);
    throw new Error(`the target input is images, but this TF.js model has no ResNet18 trunk (it takes token maps [B, ${TARGET_TOKENS}, d]; mode ${mode === 'training' ? 'full and layer4 train' : 'full and layer4 predict'} on the engine)`);
  }

  /**
   * Predictions of every head for a batch, [B, genes] each. `fusion` is the model's prediction
   * (for a single-view model, that view's head). `encodedSlides` may hold the global encoder's
   * output per slide when it has already been computed (inference over a whole slide).
   */
  forward(inputs: TriplexInputs, mode: ForwardMode, encodedSlides?: tf.Tensor2D[]): HeadPredictions {
    const c = this.config;
    return tf.tidy((): tf.TensorContainerObject => {
      const summaries: Partial<Record<ViewName, tf.Tensor2D>> = {};
      let targetTokens: tf.Tensor3D | undefined;
      let neighborTokens: tf.Tensor3D | undefined;
      let mask: tf.Tensor2D | undefined;
      if (c.views.target) {
        if (!inputs.target) throw new Error('this configuration uses the target view, but the batch has no target input');
        targetTokens = this.targetTokens(inputs.target, mode);
        summaries.target = tf.mean(targetTokens, 1) as tf.Tensor2D; // [B, d]
      }
      if (c.views.neighbor) {
        if (!inputs.neighbors || !inputs.mask) throw new Error('this configuration uses the neighbor view, but the batch has no neighbor features and mask');
        const enc = this.neighborEncoder!;
        mask = inputs.mask;
        let x = this.standardized('neighbor', inputs.neighbors);
        for (const block of enc.blocks) x = block.apply(x, mode, mask);
        neighborTokens = enc.norm.apply(x); // [B, 25, d]
        summaries.neighbor = c.neighborMean === 'masked'
          ? tf.div(tf.sum(tf.mul(neighborTokens, tf.expandDims(mask, 2)), 1), tf.sum(mask, 1, true)) as tf.Tensor2D // [B, d]
          : tf.mean(neighborTokens, 1) as tf.Tensor2D;
      }
      if (c.views.global) summaries.global = this.globalTokens(inputs, mode, encodedSlides); // [B, d]

      const out: Partial<HeadPredictions> = {};
      for (const v of this.views) out[v] = this.heads[v]!.apply(summaries[v]!);
      if (this.views.length === 1) return { ...out, fusion: out[this.views[0]]! };

      let fused: tf.Tensor2D; // [B, d]
      const vectors = this.views.map((v) => summaries[v]!);
      if (c.fusion.method === 'layer') {
        const query = tf.expandDims(summaries.global ?? summaries.target ?? summaries.neighbor!, 1) as tf.Tensor3D; // [B, 1, d]
        const attend = (context: tf.Tensor3D, contextMask?: tf.Tensor2D) => {
          let x = query;
          for (const block of this.fusionBlocks) x = block.apply(x, context, mode, contextMask);
          return tf.squeeze<tf.Tensor2D>(x, [1]); // [B, d]
        };
        const parts: tf.Tensor2D[] = [];
        if (targetTokens) parts.push(attend(targetTokens));
        if (neighborTokens) parts.push(attend(neighborTokens, mask));
        fused = parts.length === 1 ? parts[0] : tf.addN(parts);
      } else if (c.fusion.method === 'sum') {
        fused = tf.addN(vectors);
      } else if (c.fusion.method === 'concat') {
        fused = this.fusionProj!.apply(tf.concat(vectors, 1) as tf.Tensor2D);
      } else {
        const stacked = tf.stack(vectors, 1) as tf.Tensor3D; // [B, k, d]
        const scores = this.poolW!.apply(tf.tanh(this.poolV!.apply(stacked))); // [B, k, 1]
        const weights = tf.softmax(tf.squeeze(scores, [2]), 1); // [B, k]
        fused = tf.sum(tf.mul(stacked, tf.expandDims(weights, 2)), 1) as tf.Tensor2D;
      }
      out.fusion = this.heads.fusion!.apply(this.fusionNorm!.apply(fused));
      return out;
    }) as unknown as HeadPredictions;
  }

  /** The training loss of this configuration on a batch with truth [B, genes]. */
  loss(predictions: HeadPredictions, truth: tf.Tensor2D): tf.Scalar {
    if (this.views.length === 1) return fusionLoss({ fusion: predictions.fusion }, truth, { variant: 'predictionOnly' });
    return fusionLoss(predictions, truth, { variant: this.config.loss, alpha: this.config.alpha });
  }

  /**
   * Sets the bias of every head to `values` [genes] (e.g. the training spots' mean expression):
   * an optional data-dependent start, so that short runs spend their steps on the spatial
   * structure rather than on learning each gene's level. Not the reference's initialisation.
   */
  setHeadBias(values: Float32Array): void {
    if (values.length !== this.config.genes) throw new Error(`setHeadBias: ${values.length} values for ${this.config.genes} genes`);
    tf.tidy(() => {
      for (const head of Object.values(this.heads)) head!.bias?.assign(tf.tensor1d(values));
    });
  }

  /** The TRIPLEX parameters (and the trunk's, under `target_encoder.`) in PyTorch layout. */
  async stateDict(): Promise<StateDict> {
    const sd = await this.params.stateDict();
    for (const [v, [mean, inv]] of Object.entries(this.inputNorm) as [ViewName, [tf.Tensor1D, tf.Tensor1D]][]) {
      sd.set(`input_norm.${v}.mean`, { shape: mean.shape, data: (await mean.data()) as Float32Array, sourceDtype: 'float32' });
      sd.set(`input_norm.${v}.std`, { shape: inv.shape, data: Float32Array.from((await inv.data()) as Float32Array, (x) => 1 / x), sourceDtype: 'float32' });
    }
    return sd;
  }

  /** Loads a state dict written by stateDict (or the PyTorch reference); all or nothing. */
  loadStateDict(sd: StateDict, source: string): void {
    const own: StateDict = new Map([...sd].filter(([k]) => !k.startsWith('target_encoder.') && !k.startsWith('input_norm.')));
    const stats = this.config.standardizeInputs ? inputStatsFrom(sd, this.standardizedViews, source) : {};
    const trunk: StateDict = new Map([...sd].filter(([k]) => k.startsWith('target_encoder.')).map(([k, v]) => [k.slice('target_encoder.'.length), v]));
    if (trunk.size > 0) throw new Error(`${source}: holds target_encoder.* weights (a fine-tuned trunk: mode full or layer4), but this model takes frozen target tokens`);
    this.params.loadStateDict(own, source);
    if (this.config.standardizeInputs) this.setInputStats(stats);
  }

  dispose(): void {
    tf.dispose(Object.values(this.inputNorm).flat());
    this.params.dispose();
  }
}
