import type { Graph, Sym } from '../engine/graph';
import { sizeOf } from '../engine/graph';
import { attend, dropout, ParamTable, type DropoutLayer, type Mode } from '../engine/nn';
import { batchNorm2d } from '../engine/ops/batchnorm';
import { conv2d } from '../engine/ops/conv';
import { normal } from '../util/random';
import { augmentCrops, type CopyAugmentation } from './hist2stHost';
import { zinbLoss } from './zinb';
import { clampMax, clampMin, mseLoss, need, rawNCHW, type BaselineDims, type BaselineInputs, type BaselineNet, type InputName } from './model';

/**
 * Hist2ST (spec §4; biomed-AI/Hist2ST HIST2ST.py, transformer.py, gcn.py, NB_module.py): a whole
 * section per step. Raw 0..255 crops -> patch-embedding conv -> ConvMixer -> 1x1 `down` conv,
 * flattened to one token per spot (+ x/y position embeddings) -> transformer over all spots ->
 * GraphSAGE-style mean aggregation over the 4-NN spot graph -> LSTM jumping knowledge over the
 * graph layers -> gene head (the prediction), ZINB heads and the distillation weight head.
 * Parameter names are the original's state-dict names (`vit.transformer.layer2.0.attn.fn.to_qkv.weight`).
 * Loss = MSE + zinbWeight * ZINB(counts) + distillWeight * MSE(teacher over augmented copies, pred).
 */

export interface Hist2stConfig {
  /** Side of the crops (the original's fig_size, 112). */
  cropSize: number;
  /** Kernel and stride of the patch embedding (7). */
  patchSize: number;
  /** Channels of the ConvMixer (32); the token has (cropSize / patchSize)^2 * channels / 8 features. */
  channels: number;
  /** Depthwise kernel of the ConvMixer, odd ('same' padding; 5). */
  kernelSize: number;
  /** ConvMixer blocks (depth1, 2), attention blocks (depth2, 8), graph layers (depth3, 4). */
  mixerDepth: number;
  attentionDepth: number;
  graphDepth: number;
  /** Attention heads (16) and their width (dim_head, 64 in the original; inner = heads * headDim). */
  heads: number;
  headDim: number;
  /** Rows of each position embedding (n_pos, 64): array coordinates must lie below it. */
  positions: number;
  dropout: number;
  /** Weights of the ZINB term (0.25) and of the self-distillation term (0.5); 0 drops the term and its heads. */
  zinbWeight: number;
  distillWeight: number;
  /** Augmented copies per step for the distillation (bake, 5). */
  augmentations: number;
}

export const HIST2ST_PRESETS: { paper: Hist2stConfig; demo: Hist2stConfig } = {
  // Tag 5-7-2-8-4-16-32 with fig_size 112 (spec §4, §10): dim 1024.
  paper: {
    cropSize: 112, patchSize: 7, channels: 32, kernelSize: 5, mixerDepth: 2, attentionDepth: 8, graphDepth: 4,
    heads: 16, headDim: 64, positions: 64, dropout: 0.2, zinbWeight: 0.25, distillWeight: 0.5, augmentations: 5,
  },
  // 56 px crops -> 8x8 grid of 16 channels -> dim 128: 710,395 parameters for G = 250; about 1-2 s
  // per training step (1 + 2 passes) of a 600-spot section on onnxruntime, 2 cores.
  demo: {
    cropSize: 56, patchSize: 7, channels: 16, kernelSize: 5, mixerDepth: 1, attentionDepth: 2, graphDepth: 4,
    heads: 4, headDim: 32, positions: 128, dropout: 0.2, zinbWeight: 0.25, distillWeight: 0.5, augmentations: 2,
  },
};

/** Width of a spot's token: (cropSize / patchSize)^2 * channels / 8. */
export function hist2stDim(c: Hist2stConfig): number {
  return Math.floor(c.cropSize / c.patchSize) ** 2 * Math.floor(c.channels / 8);
}

type Init = { kind: 'uniform'; bound: number } | { kind: 'linear'; bound: number } | { kind: 'const'; value: number } | { kind: 'normal' };
interface ParamSpec { name: string; shape: number[]; init: Init }

const T = 'vit.transformer';

/**
 * Every parameter in the original's creation order, with its shape and PyTorch's default
 * initialisation: one source for the table and for counting the paper model without its 300 MB.
 */
export function hist2stParamSpecs(c: Hist2stConfig, genes: number): ParamSpec[] {
  const dim = hist2stDim(c);
  const C = c.channels;
  const inner = c.heads * c.headDim;
  const specs: ParamSpec[] = [];
  const uniform = (name: string, shape: number[], fanIn: number) => specs.push({ name, shape, init: { kind: 'uniform', bound: 1 / Math.sqrt(fanIn) } });
  const conv = (name: string, out: number, inPerGroup: number, k: number) => {
    uniform(`${name}.weight`, [out, inPerGroup, k, k], inPerGroup * k * k);
    uniform(`${name}.bias`, [out], inPerGroup * k * k);
  };
  const ones = (name: string, d: number, value: number) => specs.push({ name, shape: [d], init: { kind: 'const', value } });
  const norm = (name: string, d: number) => { ones(`${name}.weight`, d, 1); ones(`${name}.bias`, d, 0); };
  const linear = (name: string, inF: number, outF: number, bias = true) => {
    specs.push({ name: `${name}.weight`, shape: [outF, inF], init: { kind: 'linear', bound: 1 / Math.sqrt(inF) } });
    if (bias) uniform(`${name}.bias`, [outF], inF);
  };

  conv('patch_embedding', C, 3, c.patchSize);
  for (const axis of ['x_embed', 'y_embed']) specs.push({ name: `${axis}.weight`, shape: [c.positions, dim], init: { kind: 'normal' } });
  for (let i = 0; i < c.mixerDepth; i++) {
    const p = `${T}.layer1.${i}`;
    conv(`${p}.dw.0`, C, 1, c.kernelSize);
    norm(`${p}.dw.1`, C);
    conv(`${p}.dw.3`, C, 1, c.kernelSize);
    norm(`${p}.dw.4`, C);
    conv(`${p}.pw.0`, C, C, 1);
    norm(`${p}.pw.2`, C);
  }
  for (let i = 0; i < c.attentionDepth; i++) {
    const p = `${T}.layer2.${i}`;
    norm(`${p}.attn.norm`, dim);
    linear(`${p}.attn.fn.to_qkv`, dim, 3 * inner, false);
    linear(`${p}.attn.fn.to_out.0`, inner, dim);
    norm(`${p}.ff.norm`, dim);
    linear(`${p}.ff.fn.net.0`, dim, dim);
    linear(`${p}.ff.fn.net.3`, dim, dim);
  }
  // gs_block weights: Xavier-uniform (init.xavier_uniform_).
  for (let i = 0; i < c.graphDepth; i++) specs.push({ name: `${T}.layer3.${i}.weight`, shape: [dim, dim], init: { kind: 'uniform', bound: Math.sqrt(6 / (2 * dim)) } });
  // nn.LSTM(dim, dim, 2): every tensor U(-1/sqrt(hidden), 1/sqrt(hidden)).
  for (let l = 0; l < 2; l++) {
    uniform(`${T}.jknet.0.weight_ih_l${l}`, [4 * dim, dim], dim);
    uniform(`${T}.jknet.0.weight_hh_l${l}`, [4 * dim, dim], dim);
    uniform(`${T}.jknet.0.bias_ih_l${l}`, [4 * dim], dim);
    uniform(`${T}.jknet.0.bias_hh_l${l}`, [4 * dim], dim);
  }
  conv(`${T}.down.0`, Math.floor(C / 8), C, 1);
  if (c.zinbWeight > 0) for (const head of ['mean', 'disp', 'pi']) linear(`${head}.0`, dim, genes);
  if (c.distillWeight > 0 && c.augmentations > 0) {
    linear('coef.0', dim, dim);
    linear('coef.2', dim, 1);
  }
  norm('gene_head.0', dim);
  linear('gene_head.1', dim, genes);
  return specs;
}

/** Trainable parameters of a configuration for G genes (spec §8: 73,596,333 for the paper preset, G = 250). */
export const hist2stParamCount = (c: Hist2stConfig, genes: number): number => hist2stParamSpecs(c, genes).reduce((n, s) => n + sizeOf(s.shape), 0);

/** Batch norms: the ConvMixer's, by name prefix. */
function batchNormNames(c: Hist2stConfig): string[] {
  return Array.from({ length: c.mixerDepth }, (_, i) => [`${T}.layer1.${i}.dw.1`, `${T}.layer1.${i}.dw.4`, `${T}.layer1.${i}.pw.2`]).flat();
}

/** torch.clamp(x, lo, hi), x exact inside the bounds (not rounded through them: the ZINB mean's bound is 1e6). Gradient 1 inside, 0 outside. */
export const clamp = (g: Graph, x: Sym, lo: number, hi: number): Sym => clampMax(g, clampMin(g, x, lo), hi);

/** Batch statistics of one training-mode pass through a batch norm, for the running-statistics update. */
interface BatchStats { mean: Sym; variance: Sym; count: number }

/** One forward pass: its mode, and (training) each batch norm's statistics in call order. */
interface Pass { mode: Mode; stats: Map<string, BatchStats[]> }

const BN_MOMENTUM = 0.1;
const BN_EPS = 1e-5;

export class Hist2stNet implements BaselineNet {
  readonly name = 'hist2st' as const;
  readonly headBias = 'gene_head.1.bias';
  readonly unit = 'section' as const;
  readonly needs: readonly InputName[] = ['crops', 'rows', 'cols', 'adjacency', 'counts', 'sizeFactors', 'truth'];
  readonly table: ParamTable;
  readonly cropSize: number;
  readonly dim: number;
  /** ViT.dropout on the patch embedding; per attention block: to_out, the FF's hidden and output. */
  private readonly embedDropout: DropoutLayer;
  private readonly blockDropouts: DropoutLayer[][];

  constructor(readonly config: Hist2stConfig, readonly dims: BaselineDims, seed = 0) {
    const c = config;
    if (c.kernelSize % 2 !== 1) throw new Error(`hist2st: kernelSize ${c.kernelSize} must be odd ('same' padding)`);
    if (c.channels < 8) throw new Error(`hist2st: channels ${c.channels} must be at least 8 (down keeps channels / 8)`);
    if (c.cropSize < c.patchSize) throw new Error(`hist2st: a ${c.patchSize} px patch does not fit a ${c.cropSize} px crop`);
    this.cropSize = c.cropSize;
    this.dim = hist2stDim(c);
    this.table = new ParamTable(seed);
    const t = this.table;
    for (const s of hist2stParamSpecs(c, dims.genes)) {
      const i = s.init;
      if (i.kind === 'uniform') t.uniform(s.name, s.shape, i.bound);
      else if (i.kind === 'linear') t.uniformLinear(s.name, s.shape[0], s.shape[1], i.bound);
      else if (i.kind === 'const') t.constant(s.name, s.shape, i.value);
      else t.add(s.name, s.shape, normal(t.random, sizeOf(s.shape)));
    }
    this.embedDropout = t.dropout(c.dropout);
    this.blockDropouts = Array.from({ length: c.attentionDepth }, () => [t.dropout(c.dropout), t.dropout(c.dropout), t.dropout(c.dropout)]);
  }

  /** Running statistics: mean 0, variance 1 (nn.BatchNorm2d). */
  initialBuffers(): Map<string, Float32Array> {
    const C = this.config.channels;
    return new Map(batchNormNames(this.config).flatMap((n) => [
      [`${n}.running_mean`, new Float32Array(C)],
      [`${n}.running_var`, new Float32Array(C).fill(1)],
    ] as const));
  }

  predict(g: Graph, inputs: BaselineInputs): Sym {
    const [crops, rows, cols, adjacency] = need(this, inputs, 'crops', 'rows', 'cols', 'adjacency');
    const h = this.encode(g, rawNCHW(g, crops), rows, cols, adjacency, { mode: 'inference', stats: new Map() });
    return this.geneHead(g, h);
  }

  loss(g: Graph, inputs: BaselineInputs): Sym {
    return this.lossTerms(g, inputs).total;
  }

  /**
   * The training loss and its terms, in training mode: the section's own pass, then one pass per
   * augmented copy (declared here as input 'augmented' [A, n, S, S, 3]), every pass with its own
   * dropout masks and batch statistics; the running statistics move once per pass, in that order,
   * as the original's six forward calls of a step move them.
   */
  lossTerms(g: Graph, inputs: BaselineInputs): { total: Sym; prediction: Sym; mse: Sym; zinb?: Sym; distill?: Sym } {
    const c = this.config;
    const [crops, rows, cols, adjacency, counts, sizeFactors, truth] = need(this, inputs, ...this.needs);
    const n = crops.shape[0];
    const pass: Pass = { mode: 'train', stats: new Map() };
    const h = this.encode(g, rawNCHW(g, crops), rows, cols, adjacency, pass); // [n, dim]
    const prediction = this.geneHead(g, h); // [n, G]
    const mse = mseLoss(g, prediction, truth);
    let total = mse;
    let zinb: Sym | undefined;
    let distill: Sym | undefined;
    if (c.zinbWeight > 0) {
      const mean = clamp(g, g.exp(this.linear(g, 'mean.0', h)), 1e-5, 1e6); // MeanAct
      const disp = clamp(g, g.softplus(this.linear(g, 'disp.0', h)), 1e-4, 1e4); // DispAct
      const pi = g.sigmoid(this.linear(g, 'pi.0', h));
      zinb = zinbLoss(g, counts, g.mul(mean, sizeFactors), disp, pi);
      total = g.add(total, g.mul(zinb, c.zinbWeight));
    }
    if (c.distillWeight > 0 && c.augmentations > 0) {
      const A = c.augmentations;
      const S = this.cropSize;
      const augmented = g.input('augmented', [A, n, S, S, 3]);
      const preds: Sym[] = [];
      const scores: Sym[] = [];
      for (let b = 0; b < A; b++) {
        const copy = g.reshape(g.slice(augmented, 0, b, b + 1), [n, S, S, 3]);
        const hb = this.encode(g, rawNCHW(g, copy), rows, cols, adjacency, pass); // [n, dim]
        preds.push(g.reshape(this.geneHead(g, hb), [n, 1, -1])); // [n, 1, G]
        scores.push(this.linear(g, 'coef.2', g.relu(this.linear(g, 'coef.0', hb)))); // [n, 1]
      }
      const weights = g.reshape(g.softmax(g.concat(scores, 1)), [n, A, 1]); // softmax over copies, per spot
      const teacher = g.sum(g.mul(g.concat(preds, 1), weights), [1]); // [n, G]
      distill = mseLoss(g, teacher, prediction); // no detach on either side (the original)
      total = g.add(total, g.mul(distill, c.distillWeight));
    }
    this.updateRunningStats(g, pass);
    return { total, prediction, mse, zinb, distill };
  }

  /** The distillation's augmented copies [A, n, S, S, 3] for one step, from its generator. */
  trainingFeeds(crops: Float32Array, n: number, random: () => number): Record<string, Float32Array> {
    const { augmentations: A, distillWeight } = this.config;
    if (!(distillWeight > 0 && A > 0)) return {};
    const S = this.cropSize;
    const out = new Float32Array(A * n * S * S * 3);
    for (let b = 0; b < A; b++) {
      const a: CopyAugmentation = { grayscale: random() < 0.1, degrees: (2 * random() - 1) * 90, flip: random() < 0.2 };
      out.set(augmentCrops(crops, n, S, a), b * n * S * S * 3);
    }
    return { augmented: out };
  }

  // ---- the network

  /** Crops [n, 3, S, S] (raw 0..255) -> h [n, dim]: ConvMixer, transformer, GNN, LSTM jumping knowledge. */
  private encode(g: Graph, x: Sym, rows: Sym, cols: Sym, adjacency: Sym, pass: Pass): Sym {
    const c = this.config;
    const n = x.shape[0];
    let f = dropout(g, this.conv(g, 'patch_embedding', x, c.patchSize), this.embedDropout, pass.mode); // [n, C, S/p, S/p]
    for (let i = 0; i < c.mixerDepth; i++) f = this.mixerBlock(g, `${T}.layer1.${i}`, f, pass);
    f = g.reshape(this.conv(g, `${T}.down.0`, f), [n, this.dim]); // [n, dim]: channel-major flatten
    // x_embed reads the first coordinate of the original's (x, y): the array column.
    const position = g.add(g.gather(this.p(g, 'x_embed.weight'), cols), g.gather(this.p(g, 'y_embed.weight'), rows)); // [n, dim]
    let tokens = g.add(f, position);
    for (let i = 0; i < c.attentionDepth; i++) tokens = this.attentionBlock(g, `${T}.layer2.${i}`, tokens, this.blockDropouts[i], pass.mode);
    const layers: Sym[] = [];
    let node = tokens;
    for (let i = 0; i < c.graphDepth; i++) {
      node = this.graphLayer(g, `${T}.layer3.${i}`, node, adjacency); // [n, dim]
      layers.push(node);
    }
    return this.jumpingKnowledge(g, layers); // [n, dim]
  }

  /** convmixer_block: x = dw(x) + x, then pw(x) without a residual. [n, C, H, W] -> same. */
  private mixerBlock(g: Graph, p: string, x: Sym, pass: Pass): Sym {
    const pad = (this.config.kernelSize - 1) / 2;
    const C = this.config.channels;
    let y = g.gelu(this.batchNorm(g, `${p}.dw.1`, this.conv(g, `${p}.dw.0`, x, 1, pad, C), pass));
    y = g.gelu(this.batchNorm(g, `${p}.dw.4`, this.conv(g, `${p}.dw.3`, y, 1, pad, C), pass));
    const mixed = g.add(y, x);
    return this.batchNorm(g, `${p}.pw.2`, g.gelu(this.conv(g, `${p}.pw.0`, mixed)), pass);
  }

  /** attn_block: x + MHSA(LN(x)), then x + FF(LN(x)); every spot attends to every spot. [n, dim] -> [n, dim]. */
  private attentionBlock(g: Graph, p: string, x: Sym, drops: DropoutLayer[], mode: Mode): Sym {
    const { heads: h, headDim: hd } = this.config;
    const n = x.shape[0];
    const normed = this.layerNorm(g, `${p}.attn.norm`, x);
    const qkv = g.transpose(g.reshape(this.linear(g, `${p}.attn.fn.to_qkv`, normed), [n, 3, h, hd]), [1, 2, 0, 3]); // [3, h, n, hd]
    const [q, k, v] = [0, 1, 2].map((i) => g.reshape(g.slice(qkv, 0, i, i + 1), [1, h, n, hd]));
    const merged = g.reshape(g.transpose(g.reshape(attend(g, q, k, v), [h, n, hd]), [1, 0, 2]), [n, h * hd]); // [n, inner]
    const attended = g.add(x, dropout(g, this.linear(g, `${p}.attn.fn.to_out.0`, merged), drops[0], mode));
    const hidden = dropout(g, g.gelu(this.linear(g, `${p}.ff.fn.net.0`, this.layerNorm(g, `${p}.ff.norm`, attended))), drops[1], mode);
    return g.add(attended, dropout(g, this.linear(g, `${p}.ff.fn.net.3`, hidden), drops[2], mode));
  }

  /**
   * gs_block (gcn, mean): the neighbours' mean (the fed row-normalised adjacency [n, n] times x),
   * a bias-free ReLU layer, then F.normalize's row L2 normalisation, x / max(|x|, 1e-12), written
   * as x / sqrt(max(|x|^2, 1e-24)) so that an all-zero row (an isolated spot) has a finite gradient.
   */
  private graphLayer(g: Graph, name: string, x: Sym, adjacency: Sym): Sym {
    const agg = g.matmul(adjacency, x); // [n, dim]
    const y = g.relu(g.matmul(agg, this.p(g, `${name}.weight`), false, true)); // [n, dim]
    const sumSq = g.sum(g.square(y), [1], true); // [n, 1]
    const norm = g.sqrt(g.add(sumSq, g.relu(g.sub(1e-24, sumSq)))); // sqrt(max(|y|^2, 1e-24))
    return g.div(y, norm);
  }

  /** nn.LSTM(dim, dim, 2) over the graph layers (sequence) with spots as the batch; mean of the top layer's outputs. */
  private jumpingKnowledge(g: Graph, sequence: Sym[]): Sym {
    let xs = sequence;
    for (let l = 0; l < 2; l++) {
      const p = `${T}.jknet.0`;
      const wih = this.p(g, `${p}.weight_ih_l${l}`);
      const whh = this.p(g, `${p}.weight_hh_l${l}`);
      const bias = g.add(this.p(g, `${p}.bias_ih_l${l}`), this.p(g, `${p}.bias_hh_l${l}`)); // [4H]
      const H = this.dim;
      let h: Sym | undefined;
      let cell: Sym | undefined;
      const outs: Sym[] = [];
      for (const x of xs) {
        let gates = g.add(g.matmul(x, wih, false, true), bias); // [n, 4H]: i, f, g, o
        if (h) gates = g.add(gates, g.matmul(h, whh, false, true));
        const gate = (k: number) => g.slice(gates, 1, k * H, (k + 1) * H);
        const [i, f, o] = [gate(0), gate(1), gate(3)].map((s) => g.sigmoid(s));
        const candidate = g.mul(i, g.tanh(gate(2)));
        cell = cell ? g.add(g.mul(f, cell), candidate) : candidate; // c0 = 0
        h = g.mul(o, g.tanh(cell));
        outs.push(h);
      }
      xs = outs;
    }
    return g.mul(xs.reduce((a, b) => g.add(a, b)), 1 / xs.length);
  }

  /** gene_head: LN -> Linear(dim, G). */
  private geneHead(g: Graph, h: Sym): Sym {
    return this.linear(g, 'gene_head.1', this.layerNorm(g, 'gene_head.0', h));
  }

  // ---- layers by parameter name

  private p(g: Graph, name: string): Sym {
    return this.table.sym(g, name);
  }

  private linear(g: Graph, name: string, x: Sym): Sym {
    const y = g.matmul(x, this.p(g, `${name}.weight`), false, true);
    return this.table.specs.has(`${name}.bias`) ? g.add(y, this.p(g, `${name}.bias`)) : y;
  }

  private layerNorm(g: Graph, name: string, x: Sym): Sym {
    return g.layerNorm(x, this.p(g, `${name}.weight`), this.p(g, `${name}.bias`));
  }

  /** nn.Conv2d with bias, NCHW. */
  private conv(g: Graph, name: string, x: Sym, stride = 1, pad = 0, groups = 1): Sym {
    const w = this.p(g, `${name}.weight`);
    const y = conv2d(g, x, w, { stride, pad, groups });
    return g.add(y, g.reshape(this.p(g, `${name}.bias`), [1, w.shape[0], 1, 1]));
  }

  /**
   * nn.BatchNorm2d: running statistics in inference; in training the batch's (biased variance),
   * recorded so that the pass's running-statistics update can be chained after all passes.
   */
  private batchNorm(g: Graph, name: string, x: Sym, pass: Pass): Sym {
    const C = x.shape[1];
    const tensors = {
      weight: this.p(g, `${name}.weight`),
      bias: this.p(g, `${name}.bias`),
      runningMean: g.buffer(`${name}.running_mean`, [C]),
      runningVar: g.buffer(`${name}.running_var`, [C]),
    };
    if (pass.mode === 'inference') return batchNorm2d(g, x, tensors, 'inference', { eps: BN_EPS });
    const mean = g.mean(x, [0, 2, 3], true); // [1, C, 1, 1]
    const centred = g.sub(x, mean);
    const variance = g.mean(g.square(centred), [0, 2, 3], true); // [1, C, 1, 1]
    const stats = pass.stats.get(name) ?? [];
    stats.push({ mean, variance, count: x.size / C });
    pass.stats.set(name, stats);
    const scale = g.div(g.reshape(tensors.weight, [1, C, 1, 1]), g.sqrt(g.add(variance, BN_EPS)));
    return g.add(g.mul(centred, scale), g.reshape(tensors.bias, [1, C, 1, 1]));
  }

  /** running = (1 - m) running + m batch, once per training pass in order (unbiased variance). */
  private updateRunningStats(g: Graph, pass: Pass): void {
    for (const [name, list] of pass.stats) {
      let mean = g.buffer(`${name}.running_mean`, [list[0].mean.shape[1]]);
      let variance = g.buffer(`${name}.running_var`, [list[0].mean.shape[1]]);
      for (const s of list) {
        const C = s.mean.shape[1];
        mean = g.add(g.mul(mean, 1 - BN_MOMENTUM), g.mul(g.reshape(s.mean, [C]), BN_MOMENTUM));
        variance = g.add(g.mul(variance, 1 - BN_MOMENTUM), g.mul(g.reshape(s.variance, [C]), BN_MOMENTUM * s.count / Math.max(s.count - 1, 1)));
      }
      g.updateBuffer(`${name}.running_mean`, mean);
      g.updateBuffer(`${name}.running_var`, variance);
    }
  }
}
