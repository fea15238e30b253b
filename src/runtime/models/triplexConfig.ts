/**
 * The configuration of a TRIPLEX model: hyperparameters named by role, which views are used,
 * and how they are combined. Every variant the paper reports is a switch on this one record
 * (spec, "Variants the paper reports").
 */

export interface EncoderConfig {
  /** Transformer blocks. */
  depth: number;
  heads: number;
  /** Feed-forward hidden size as a multiple of the embedding size. */
  mlpRatio: number;
  dropout: number;
}

/**
 * The training loss. 'fusion' (the default): the fused prediction q_F is fitted to the truth y,
 * and each single-view head q_j both to y and, as distillation, to q_F:
 *   L = MSE(q_F, y) + sum over j of [(1 - alpha) MSE(q_j, y) + alpha MSE(q_j, q_F)], alpha = 0.3;
 * as in the reference, q_F is not detached (the distillation term also pulls q_F towards q_j).
 * 'noDistillation': alpha = 0, every head supervised, none distilled from q_F.
 * 'predictionOnly': MSE(q_F, y) alone, the single-view heads untrained; what we take the paper's
 * "without the fusion loss" ablation to mean (the spec does not say). models/triplex.ts builds it.
 */
export type FusionLossVariant = 'fusion' | 'noDistillation' | 'predictionOnly';

/** The reference's weight of the distillation terms. */
export const FUSION_LOSS_ALPHA = 0.3;

export type PositionEncoding = 'apeg' | 'peg' | 'none';
export type FusionMethod = 'layer' | 'sum' | 'concat' | 'attnpool';
export type ViewName = 'target' | 'neighbor' | 'global';

export interface TriplexConfig {
  /** Embedding size d: the ResNet18 feature width, 512. */
  dim: number;
  /** Genes predicted (m). */
  genes: number;
  neighbor: EncoderConfig;
  global: EncoderConfig & { positionEncoding: PositionEncoding; kernelSize: number };
  fusion: EncoderConfig & { method: FusionMethod };
  views: Record<ViewName, boolean>;
  /** Training loss: the fusion loss, or its ablations (FusionLossVariant). */
  loss: FusionLossVariant;
  /** Weight of the distillation terms of the fusion loss. */
  alpha: number;
  /** The NEM head's input: the plain mean of all 25 neighbor tokens (the reference), or of the valid ones. */
  neighborMean: 'all' | 'masked';
  /**
   * Standardise each frozen input channel (target tokens, neighbor tiles, global features) with
   * the training spots' mean and standard deviation, kept with the model. Off in the paper; for
   * frozen features whose spot-to-spot variation is small against their level, as a randomly
   * initialised encoder gives (the demo without pretrained weights).
   */
  standardizeInputs?: boolean;
}

/** The architecture part of a preset: what the spec's per-dataset table fixes. */
export type Preset = Pick<TriplexConfig, 'neighbor' | 'global' | 'fusion'>;

const block = (depth: number, heads: number, mlpRatio: number, dropout: number): EncoderConfig => ({ depth, heads, mlpRatio, dropout });

/** The CVPR configs per dataset (spec, "Hyperparameters per dataset"), and a small one for the demo. */
export const PRESETS = {
  /** HER2+ breast cancer (Andersson et al.): depth F/G/N 1/5/4, heads 4/8/4, MLP 4/4/4, dropout 0.4/0.3/0.3. */
  bc1: { fusion: { ...block(1, 4, 4, 0.4), method: 'layer' }, global: { ...block(5, 8, 4, 0.3), positionEncoding: 'apeg', kernelSize: 3 }, neighbor: block(4, 4, 4, 0.3) },
  /** ST-Net breast cancer data (He et al.): 3/3/4, 16/8/8, 4/2/4, 0.4/0.1/0.3. */
  bc2: { fusion: { ...block(3, 16, 4, 0.4), method: 'layer' }, global: { ...block(3, 8, 2, 0.1), positionEncoding: 'apeg', kernelSize: 3 }, neighbor: block(4, 8, 4, 0.3) },
  /** Skin squamous cell carcinoma (Ji et al.): 2/2/4, 8/16/16, 4/1/1, 0.1/0.1/0.3. */
  scc: { fusion: { ...block(2, 8, 4, 0.1), method: 'layer' }, global: { ...block(2, 16, 1, 0.1), positionEncoding: 'apeg', kernelSize: 3 }, neighbor: block(4, 16, 1, 0.3) },
  /** Not from the paper: one block per encoder (two in the global one, around APEG), for the demo's minutes on two cores. */
  demo: { fusion: { ...block(1, 4, 1, 0.1), method: 'layer' }, global: { ...block(2, 4, 1, 0.1), positionEncoding: 'apeg', kernelSize: 3 }, neighbor: block(1, 4, 1, 0.1) },
} satisfies Record<string, Preset>;

export type PresetName = keyof typeof PRESETS;

export interface Variant {
  name: string;
  /** Where it is in the paper. */
  group: 'model' | 'views' | 'position encoding' | 'fusion' | 'loss';
  description: string;
  apply(config: TriplexConfig): TriplexConfig;
}

const only = (view: ViewName) => (c: TriplexConfig): TriplexConfig => ({ ...c, views: { target: view === 'target', neighbor: view === 'neighbor', global: view === 'global' } });
const without = (view: ViewName) => (c: TriplexConfig): TriplexConfig => ({ ...c, views: { ...c.views, [view]: false } });
const positionEncoding = (pe: PositionEncoding) => (c: TriplexConfig): TriplexConfig => ({ ...c, global: { ...c.global, positionEncoding: pe } });
const fusionMethod = (method: FusionMethod) => (c: TriplexConfig): TriplexConfig => ({ ...c, fusion: { ...c.fusion, method } });

/** Every runnable variant, by name. 'triplex' is the full model (APEG, fusion layer, fusion loss). */
export const VARIANTS: readonly Variant[] = [
  { name: 'triplex', group: 'model', description: 'TRIPLEX: target, neighbor and global views fused', apply: (c) => c },
  { name: 'tem', group: 'views', description: 'TEM: the target view alone', apply: only('target') },
  { name: 'nem', group: 'views', description: 'NEM: the neighbor view alone', apply: only('neighbor') },
  { name: 'gem', group: 'views', description: 'GEM: the global view alone', apply: only('global') },
  { name: 'no-tem', group: 'views', description: 'TRIPLEX without the target view', apply: without('target') },
  { name: 'no-nem', group: 'views', description: 'TRIPLEX without the neighbor view', apply: without('neighbor') },
  { name: 'no-gem', group: 'views', description: 'TRIPLEX without the global view', apply: without('global') },
  { name: 'pe-none', group: 'position encoding', description: 'no position encoding in the global encoder', apply: positionEncoding('none') },
  { name: 'peg', group: 'position encoding', description: 'PEG (tokens filled row by row into a square) instead of APEG', apply: positionEncoding('peg') },
  { name: 'fusion-sum', group: 'fusion', description: 'views fused by summation', apply: fusionMethod('sum') },
  { name: 'fusion-concat', group: 'fusion', description: 'views fused by concatenation and a linear layer', apply: fusionMethod('concat') },
  { name: 'fusion-attnpool', group: 'fusion', description: 'views fused by attentional pooling (Ilse et al. 2018)', apply: fusionMethod('attnpool') },
  { name: 'no-fusion-loss', group: 'loss', description: 'trained on the prediction\'s MSE alone, without the fusion loss', apply: (c) => ({ ...c, loss: 'predictionOnly' }) },
];

export function variant(name: string): Variant {
  const v = VARIANTS.find((x) => x.name === name);
  if (!v) throw new Error(`unknown model variant '${name}'; choose one of ${VARIANTS.map((x) => x.name).join(', ')}`);
  return v;
}

export interface ConfigOptions {
  preset?: PresetName | (string & {});
  variant?: string;
  genes: number;
  dim?: number;
  standardizeInputs?: boolean;
}

/** A full configuration from a preset (default bc1) and a variant (default triplex). */
export function triplexConfig(options: ConfigOptions): TriplexConfig {
  const presetName = options.preset ?? 'bc1';
  if (!(presetName in PRESETS)) throw new Error(`unknown preset '${presetName}'; choose one of ${Object.keys(PRESETS).join(', ')}`);
  const preset = PRESETS[presetName as PresetName] as Preset;
  const base: TriplexConfig = {
    dim: options.dim ?? 512,
    genes: options.genes,
    neighbor: { ...preset.neighbor },
    global: { ...preset.global },
    fusion: { ...preset.fusion },
    views: { target: true, neighbor: true, global: true },
    loss: 'fusion',
    alpha: FUSION_LOSS_ALPHA,
    neighborMean: 'all',
    ...(options.standardizeInputs ? { standardizeInputs: true } : {}),
  };
  const config = variant(options.variant ?? 'triplex').apply(base);
  checkConfig(config);
  return config;
}

/** The views a configuration uses, in the order target, neighbor, global. */
export const activeViews = (c: TriplexConfig): ViewName[] => (['target', 'neighbor', 'global'] as const).filter((v) => c.views[v]);

/** Throws a message naming the field when a configuration cannot be built. */
export function checkConfig(c: TriplexConfig): void {
  const fail = (what: string) => { throw new Error(`TRIPLEX configuration: ${what}`); };
  if (!Number.isInteger(c.dim) || c.dim < 1) fail(`dim must be a positive integer, got ${c.dim}`);
  if (!Number.isInteger(c.genes) || c.genes < 1) fail(`genes must be a positive integer, got ${c.genes}`);
  if (activeViews(c).length === 0) fail('no view is enabled');
  for (const [name, e] of [['neighbor', c.neighbor], ['global', c.global], ['fusion', c.fusion]] as const) {
    if (!Number.isInteger(e.depth) || e.depth < 1) fail(`${name}.depth must be at least 1, got ${e.depth}`);
    if (!Number.isInteger(e.heads) || e.heads < 1 || c.dim % e.heads !== 0) fail(`${name}.heads (${e.heads}) must divide dim ${c.dim}`);
    if (!(e.mlpRatio > 0)) fail(`${name}.mlpRatio must be positive, got ${e.mlpRatio}`);
    if (!(e.dropout >= 0 && e.dropout < 1)) fail(`${name}.dropout must be in [0, 1), got ${e.dropout}`);
  }
  if (!['apeg', 'peg', 'none'].includes(c.global.positionEncoding)) fail(`global.positionEncoding must be apeg, peg or none, got ${c.global.positionEncoding}`);
  if (!['layer', 'sum', 'concat', 'attnpool'].includes(c.fusion.method)) fail(`fusion.method must be layer, sum, concat or attnpool, got ${c.fusion.method}`);
  if (!['fusion', 'noDistillation', 'predictionOnly'].includes(c.loss)) fail(`loss must be fusion, noDistillation or predictionOnly, got ${c.loss}`);
  if (!(c.alpha >= 0 && c.alpha <= 1)) fail(`alpha must be in [0, 1], got ${c.alpha}`);
}

/** A stable one-line description, e.g. for tables and logs. */
export function describeConfig(c: TriplexConfig): string {
  const views = activeViews(c);
  const parts = [`views ${views.join('+')}`, `d ${c.dim}`, `${c.genes} genes`];
  if (c.views.neighbor) parts.push(`N ${c.neighbor.depth}x${c.neighbor.heads}h`);
  if (c.views.global) parts.push(`G ${c.global.depth}x${c.global.heads}h ${c.global.positionEncoding}`);
  if (views.length > 1) parts.push(`F ${c.fusion.method}${c.fusion.method === 'layer' ? ` ${c.fusion.depth}x${c.fusion.heads}h` : ''}`, `loss ${c.loss}`);
  return parts.join(', ');
}
