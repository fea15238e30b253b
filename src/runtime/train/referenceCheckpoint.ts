import * as fs from 'node:fs';
import type { EngineChoice } from '../engine/choice';
import { checkRegularFile } from '../data/files';
import { readGeneListFile } from '../data/geneList';
import { activeViews, checkConfig, PRESETS, type EncoderConfig, type Preset, type TriplexConfig } from '../models/triplexConfig';
import { ResNet18Trunk } from '../models/resnet18';
import { TriplexNet, TRUNK_PREFIX } from '../models/triplex';
import { readWeightFile } from '../weights/decode';
import { decodeLightningCheckpoint, looksLikeZip, type HyperParameter } from '../weights/pytorch';
import { WeightFileError, type HostTensor, type StateDict } from '../weights/stateDict';
import { CHECKPOINT_VERSION, checkPredictedGenes, readCheckpoint, type CheckpointInfo, type TargetMode } from './checkpoints';
import type { FoldLearner } from './learner';
import { loadTrainedModel, triplexModelWithWeights } from './trainer';

/**
 * Checkpoints of the authors' PyTorch code (NEXGEM/TRIPLEX, CVPR 2024 version; PyTorch
 * Lightning): their parameter names mapped onto ours, the configuration read from the tensors'
 * shapes (what cannot be, from the recorded hyper-parameters or the paper's config they match),
 * and every tensor checked before a model is built. `loadModelCheckpoint` is the one entry point
 * of whatever predicts from a checkpoint: ours (safetensors) or theirs (.ckpt).
 */

/** The format recorded in the CheckpointInfo made up for an authors' checkpoint. */
export const REFERENCE_FORMAT = 'triplex-reference-lightning';

/** A request that does not fit the checkpoint given (the command line reports it as a usage error). */
export class CheckpointUsageError extends Error {
  override name = 'CheckpointUsageError';
}

export interface LoadedCheckpoint {
  model: FoldLearner;
  info: CheckpointInfo;
  /** What was inferred or assumed, one line each, for the user (none for our own checkpoints). */
  notes: string[];
}

export interface CheckpointLoadOptions {
  /** A file of gene names, one a line: the genes an authors' checkpoint predicts, in order. */
  genes?: string;
  engine?: EngineChoice;
}

/** The store a model predicts for: its genes (none without counts) and its features. */
export interface PredictionStore { genes: string[]; dim: number; hasCounts?: boolean; featuresDir?: string; genesByName?: boolean }

/**
 * A model from `file`, checked against the store: a checkpoint of `triplex train-fold`/`cv`
 * (safetensors), or a PyTorch Lightning checkpoint of the authors' TRIPLEX code (zip), whose
 * configuration is inferred and whose genes come from `o.genes` or, when the count matches, the store.
 */
export async function loadModelCheckpoint(file: string, data: PredictionStore, o: CheckpointLoadOptions = {}): Promise<LoadedCheckpoint> {
  if (!isPytorchFile(file)) {
    refuseGenesOption(file, o);
    const { model, info } = await loadTrainedModel(file, data, o.engine);
    return { model, info, notes: [] };
  }
  const { info, notes, weights, config } = await readReference(file, data, o);
  if (config.dim !== data.dim) {
    throw new Error(`${file} takes ${config.dim}-wide features, the store's are ${data.dim} wide; extract the store's features with the ResNet18 the model was trained with (the authors': tenpercent_resnet18.ckpt, \`triplex extract --weights\`)`);
  }
  checkPredictedGenes(file, info.genes, data);
  return { model: await triplexModelWithWeights(config, info.mode, weights, file, o.engine), info, notes };
}

/**
 * What a checkpoint predicts, without building the model: ours from its record, the authors'
 * inferred from its tensors (genes from `o.genes`, or the store's when their number matches).
 */
export async function describeCheckpoint(file: string, store: Pick<PredictionStore, 'genes' | 'hasCounts'>, o: CheckpointLoadOptions = {}): Promise<{ info: CheckpointInfo; notes: string[] }> {
  if (!isPytorchFile(file)) {
    refuseGenesOption(file, o);
    return { info: (await readCheckpoint(file)).info, notes: [] };
  }
  const { info, notes } = await readReference(file, store, o);
  return { info, notes };
}

function refuseGenesOption(file: string, o: CheckpointLoadOptions): void {
  if (o.genes !== undefined) {
    throw new CheckpointUsageError(`--genes is for checkpoints of the authors' code, which do not name their genes; ${file} is a TRIPLEX checkpoint that records its own: leave --genes out`);
  }
}

/** An authors' checkpoint decoded: the run information made up for it, its weights in our names, and what was inferred. */
async function readReference(file: string, store: Pick<PredictionStore, 'genes' | 'hasCounts'>, o: CheckpointLoadOptions): Promise<{ info: CheckpointInfo; notes: string[]; weights: StateDict; config: TriplexConfig }> {
  const ckpt = decodeLightningCheckpoint(await readWeightFile(file), file);
  const inferred = inferReferenceModel(ckpt.stateDict, file, ckpt.hyperParameters);
  const { config, mode } = inferred;
  const notes = [
    `${file}: a PyTorch Lightning checkpoint of the authors' TRIPLEX code (CVPR 2024 layout${inferred.prefix ? `, keys under '${inferred.prefix}'` : ''}; ` +
      `Lightning ${ckpt.version ?? 'version not recorded'}, epoch ${ckpt.epoch ?? '?'}, step ${ckpt.globalStep ?? '?'})`,
    `inferred from its tensors: ${describeInferred(config)}; mode ${mode}${mode === 'full' ? ' (its fine-tuned ResNet18 target encoder runs on the spots\' crops)' : ''}`,
    ...inferred.notes,
  ];
  const genes = o.genes !== undefined ? readGeneListFile(o.genes) : undefined;
  if (genes && genes.length !== config.genes) {
    throw new Error(`${o.genes} lists ${genes.length} genes, but ${file} predicts ${config.genes} (its head fc.weight is [${config.genes}, ${config.dim}]); give the list of the genes it was trained on, in their order`);
  }
  if (!genes && (store.hasCounts === false || store.genes.length !== config.genes)) {
    throw new Error(`${file} does not name its genes and predicts ${config.genes}` +
      (store.hasCounts === false ? ', and the store has no genes to take' : `, the store has ${store.genes.length}`) +
      '; give them with --genes <file> (one name a line, in the order the model was trained with)');
  }
  const names = genes ?? store.genes;
  notes.push(genes
    ? `genes: the ${names.length} of ${o.genes}`
    : `genes: the store's ${names.length}, taken in its order because the checkpoint names none and the count matches (give --genes <file> to state them)`);
  const info: CheckpointInfo = {
    format: REFERENCE_FORMAT, version: CHECKPOINT_VERSION, config, mode, genes: names,
    epoch: ckpt.epoch ?? -1, step: ckpt.globalStep ?? -1, bestEpoch: -1, bestValidationPcc: null,
    signature: '', history: [], train: [], validation: [], featuresDir: '',
  };
  return { info, notes, weights: inferred.weights, config };
}

/** A torch.save file (zip, or the legacy pickle, which the reader refuses saying why), by its first bytes. */
function isPytorchFile(file: string): boolean {
  checkRegularFile(file);
  let head = new Uint8Array(0);
  try {
    const fd = fs.openSync(file, 'r');
    try {
      head = new Uint8Array(4);
      head = head.subarray(0, fs.readSync(fd, head, 0, 4, 0));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false; // the checkpoint reader reports the file as missing or unreadable
  }
  return looksLikeZip(head) || head[0] === 0x80;
}

// ---- The authors' names ----

/** nn.Sequential(*list(resnet18.children())[:-2]): conv1, bn1, relu, maxpool, layer1..layer4. */
const TRUNK_CHILDREN: readonly (string | undefined)[] = ['conv1', 'bn1', undefined, undefined, 'layer1', 'layer2', 'layer3', 'layer4'];

/** A block is [PreNorm(attention), PreNorm(FeedForward)]: their part of a block, and ours. */
const BLOCK_PARTS: readonly (readonly [string, string])[] = [
  ['0.norm', 'norm1'], ['0.fn.to_qkv', 'attn.qkv'], ['0.fn.to_q', 'attn.q'], ['0.fn.to_kv', 'attn.kv'], ['0.fn.to_out.0', 'attn.proj'],
  ['0.fn.attention_biases', 'attn.attention_biases'], ['1.norm', 'norm2'], ['1.fn.net.0', 'mlp.fc1'], ['1.fn.net.3', 'mlp.fc2'],
];

/**
 * Their transformer stacks and ours: the global encoder's first block is their `layer1` (before
 * APEG), the others their `layer2`, so their block i of `layer2` is our block i + 1.
 */
const STACKS: readonly { theirs: string; ours: string; first: number; count?: number }[] = [
  { theirs: 'neighbor_encoder.layer.layers', ours: 'neighbor_encoder.blocks', first: 0 },
  { theirs: 'global_encoder.layer1.layers', ours: 'global_encoder.blocks', first: 0, count: 1 },
  { theirs: 'global_encoder.layer2.layers', ours: 'global_encoder.blocks', first: 1 },
  { theirs: 'fusion_encoder.fusion_layer.layers', ours: 'fusion_encoder.blocks', first: 0 },
];

const SAME_NAME = /^(fc|fc_target|fc_neighbor|fc_global|neighbor_encoder\.norm|global_encoder\.norm|fusion_encoder\.norm)\.(weight|bias)$/;
const APEG_NAMES = ['global_encoder.pos_layer.proj1.', 'global_encoder.peg.proj.'] as const;

/** Buffers of theirs that hold nothing learned: batch norm's counter, the neighbor bias's index table. */
const IGNORED = /(^|\.)(num_batches_tracked|attention_bias_idxs)$/;

/** Keys only the 2025 version of their code writes (another architecture), and what differs. */
const VERSION_2025 = /^(target_linear\.|global_encoder\.pos_layer\.proj\.|global_encoder\.layer\.layers\.|global_encoder\.spatial_token)/;

/** Swaps the part of a block key found in `from` for the matching one of `to` (BLOCK_PARTS's columns). */
function renamePart(rest: string, from: 0 | 1): string | undefined {
  const to = from === 0 ? 1 : 0;
  const part = BLOCK_PARTS.find((p) => rest === p[from] || rest.startsWith(`${p[from]}.`));
  return part && part[to] + rest.slice(part[from].length);
}

/** Their key (without the Lightning module's prefix) as ours; undefined when it is none of theirs. */
function oursOf(key: string): string | undefined {
  if (SAME_NAME.test(key)) return key;
  if (key.startsWith(APEG_NAMES[0])) return APEG_NAMES[1] + key.slice(APEG_NAMES[0].length);
  const trunk = /^target_encoder\.(\d+)\.(.+)$/.exec(key);
  if (trunk) {
    const child = TRUNK_CHILDREN[Number(trunk[1])];
    return child && `${TRUNK_PREFIX}${child}.${trunk[2]}`;
  }
  for (const s of STACKS) {
    const m = new RegExp(`^${s.theirs.replace(/\./g, '\\.')}\\.(\\d+)\\.(.+)$`).exec(key);
    if (!m || (s.count !== undefined && Number(m[1]) >= s.count)) continue;
    const part = renamePart(m[2], 0);
    return part && `${s.ours}.${s.first + Number(m[1])}.${part}`;
  }
  return undefined;
}

/** Our key as theirs (for messages about tensors a checkpoint lacks). */
function theirsOf(key: string): string {
  if (key.startsWith(APEG_NAMES[1])) return APEG_NAMES[0] + key.slice(APEG_NAMES[1].length);
  if (key.startsWith(TRUNK_PREFIX)) {
    const [child, ...rest] = key.slice(TRUNK_PREFIX.length).split('.');
    return `target_encoder.${TRUNK_CHILDREN.indexOf(child)}.${rest.join('.')}`;
  }
  const m = /^(\w+)\.blocks\.(\d+)\.(.+)$/.exec(key);
  if (m) {
    const i = Number(m[2]);
    const stack = [...STACKS].reverse().find((s) => s.ours === `${m[1]}.blocks` && i >= s.first)!;
    return `${stack.theirs}.${i - stack.first}.${renamePart(m[3], 1) ?? m[3]}`;
  }
  return key;
}

// ---- The configuration from the shapes ----

export interface InferredReference {
  config: TriplexConfig;
  /** 'full': their fine-tuned ResNet18 target encoder comes with the checkpoint and runs on the crops. */
  mode: TargetMode;
  /** The checkpoint's tensors under our names, every one checked against the configuration. */
  weights: StateDict;
  /** The prefix their keys carried ('model.' from a Lightning wrapper module), or ''. */
  prefix: string;
  /** How what the shapes do not tell was settled. */
  notes: string[];
}

const shapeText = (t: HostTensor | readonly number[]) => `[${('shape' in t ? t.shape : t).join(', ')}]`;

/**
 * The configuration and mode of an authors' state dict, from its tensors' shapes: genes and d from
 * the heads, views from the heads present, depths from the blocks, MLP widths from their first
 * layers, neighbor heads from the relative-position bias tables, APEG and its kernel from the
 * convolution. The global and fusion encoders' heads are not in any shape: they come from the
 * recorded hyper-parameters (num_heads2, num_heads1), or from the paper's config (bc1, bc2, scc)
 * that the rest matches. Then every tensor is checked against the model that configuration builds;
 * the first unknown, misshapen or missing tensor is refused, naming the file, the key and its shape.
 * Only shapes are read (tensors may hold no data), so paper-size configurations are cheap to check.
 */
export function inferReferenceModel(sd: StateDict, file: string, hyperParameters: ReadonlyMap<string, HyperParameter> = new Map()): InferredReference {
  const keys = [...sd.keys()];
  const prefix = keys.length > 0 && keys.every((k) => k.startsWith('model.')) ? 'model.' : '';
  const named = (theirs: string) => prefix + theirs;
  const weights: StateDict = new Map();
  const original = new Map<string, string>();
  for (const [key, tensor] of sd) {
    const theirs = key.slice(prefix.length);
    if (IGNORED.test(theirs)) continue;
    if (VERSION_2025.test(theirs)) {
      throw new WeightFileError(file, key, `(shape ${shapeText(tensor)}) is from the 2025 version of the authors' code, whose model differs from the CVPR 2024 one this TRIPLEX implements ` +
        '(a projection after the target encoder, APEG on a grid of pixel positions, outputs clamped at 0); only checkpoints of the CVPR version load');
    }
    const ours = oursOf(theirs);
    if (ours === undefined) {
      throw new WeightFileError(file, key, `(shape ${shapeText(tensor)}) is no tensor of TRIPLEX as the authors' CVPR code builds it; ` +
        'the checkpoint is of another model or configuration, which this TRIPLEX cannot load');
    }
    weights.set(ours, tensor);
    original.set(ours, key);
  }
  const missing = (ours: string, why: string): never => {
    throw new WeightFileError(file, named(theirsOf(ours)), `is missing, and ${why}; the checkpoint is incomplete or of another model`);
  };
  const shapeOf = (ours: string, why: string): number[] => weights.get(ours)?.shape ?? missing(ours, why);

  // Views and sizes from the heads.
  const views = { target: weights.has('fc_target.weight'), neighbor: weights.has('fc_neighbor.weight'), global: weights.has('fc_global.weight') };
  const nViews = Object.values(views).filter(Boolean).length;
  if (nViews === 0) missing('fc_global.weight', 'no view has its prediction head (fc_target, fc_neighbor, fc_global)');
  const head = nViews > 1 ? 'fc.weight' : ['fc_target.weight', 'fc_neighbor.weight', 'fc_global.weight'].find((k) => weights.has(k))!;
  const headShape = shapeOf(head, `a model of ${nViews} views predicts with the fusion head`);
  if (headShape.length !== 2) throw new WeightFileError(file, original.get(head), `has shape ${shapeText(headShape)}; a prediction head is [genes, d]`);
  const [genes, dim] = headShape;

  const notes: string[] = [];
  const depthOf = (stack: string) => [...weights.keys()].reduce((n, k) => {
    const m = k.startsWith(`${stack}.`) ? /^(\d+)\./.exec(k.slice(stack.length + 1)) : null;
    return m ? Math.max(n, Number(m[1]) + 1) : n;
  }, 0);
  const mlpRatio = (stack: string) => shapeOf(`${stack}.0.mlp.fc1.weight`, 'the block\'s feed-forward width is read from it')[0] / dim;
  const dropout = (n: 1 | 2 | 3) => {
    const v = hyperParameters.get(`dropout${n}`);
    return typeof v === 'number' && v >= 0 && v < 1 ? v : 0;
  };
  const encoder = (stack: string, n: 1 | 2 | 3): EncoderConfig => ({ depth: depthOf(stack), heads: 0, mlpRatio: mlpRatio(stack), dropout: dropout(n) });

  const unused: EncoderConfig = { depth: 1, heads: 1, mlpRatio: 1, dropout: 0 };
  const neighbor = views.neighbor ? encoder('neighbor_encoder.blocks', 3) : { ...unused };
  if (views.neighbor) {
    const bias = shapeOf('neighbor_encoder.blocks.0.attn.attention_biases', 'the neighbor encoder\'s heads are read from it');
    if (bias.length !== 2 || bias[1] !== 25) {
      throw new WeightFileError(file, original.get('neighbor_encoder.blocks.0.attn.attention_biases'), `has shape ${shapeText(bias)}; the relative-position bias of the 5x5 neighbor grid is [heads, 25] (other neighbor resolutions are not supported)`);
    }
    neighbor.heads = bias[0];
  }
  const globalEncoder = views.global ? encoder('global_encoder.blocks', 2) : { ...unused };
  const apeg = weights.get('global_encoder.peg.proj.weight')?.shape;
  const fusion = nViews > 1 ? encoder('fusion_encoder.blocks', 1) : { ...unused };
  if (views.global) {
    globalEncoder.heads = headsFromRecord(hyperParameters, 'num_heads2', 'global', notes) ?? 0;
  }
  if (nViews > 1) fusion.heads = headsFromRecord(hyperParameters, 'num_heads1', 'fusion', notes) ?? 0;
  if ((views.global && globalEncoder.heads === 0) || (nViews > 1 && fusion.heads === 0)) {
    const preset = matchingPreset({ neighbor, global: globalEncoder, fusion }, views, dim);
    const which = views.global && globalEncoder.heads === 0 ? 'global_encoder.blocks.0.attn.qkv.weight' : 'fusion_encoder.blocks.0.attn.q.weight';
    if (!preset) {
      throw new WeightFileError(file, named(theirsOf(which)), 'the number of attention heads of the global and fusion encoders is in no tensor\'s shape, the checkpoint\'s hyper_parameters ' +
        'do not record it (num_heads2, num_heads1), and its depths and widths match none of the paper\'s configs (bc1, bc2, scc); re-save it with its hyper-parameters');
    }
    if (globalEncoder.heads === 0) globalEncoder.heads = preset.config.global.heads;
    if (fusion.heads === 0) fusion.heads = preset.config.fusion.heads;
    notes.push(`attention heads of the global and fusion encoders (${globalEncoder.heads}, ${fusion.heads}): the paper's ${preset.name} config, which its depths and widths match (its hyper_parameters do not record them)`);
  }
  const config: TriplexConfig = {
    dim, genes, neighbor,
    global: { ...globalEncoder, positionEncoding: apeg ? 'apeg' : 'none', kernelSize: apeg?.[2] ?? 3 },
    fusion: { ...fusion, method: 'layer' },
    views, loss: 'fusion', alpha: 0.3, neighborMean: 'all',
  };
  try {
    checkConfig(config);
  } catch (e) {
    throw new WeightFileError(file, original.get(head), `its tensors describe no TRIPLEX this program can build (${(e as Error).message})`);
  }
  const mode: TargetMode = views.target ? 'full' : 'frozen';
  checkAgainst(expectedShapes(config, mode), weights, original, file, named, config);
  return { config, mode, weights, prefix, notes };
}

/** A head count recorded in the hyper-parameters (num_heads1: fusion, num_heads2: global), with a note. */
function headsFromRecord(hp: ReadonlyMap<string, HyperParameter>, name: string, encoder: string, notes: string[]): number | undefined {
  const v = hp.get(name);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return undefined;
  notes.push(`attention heads of the ${encoder} encoder (${v}): its hyper_parameters' ${name} (not in any tensor's shape)`);
  return v;
}

/** The paper's config whose depths, widths and neighbor heads these are, if exactly one is. */
function matchingPreset(p: Record<'neighbor' | 'global' | 'fusion', EncoderConfig>, views: TriplexConfig['views'], dim: number): { name: string; config: Preset } | undefined {
  if (dim !== 512 || !views.target || !views.neighbor || !views.global) return undefined;
  const same = (a: EncoderConfig, b: EncoderConfig) => a.depth === b.depth && a.mlpRatio === b.mlpRatio;
  const found = Object.entries(PRESETS as Record<string, Preset>).filter(([name, c]) => name !== 'demo' &&
    same(c.neighbor, p.neighbor) && c.neighbor.heads === p.neighbor.heads && same(c.global, p.global) && same(c.fusion, p.fusion));
  return found.length === 1 ? { name: found[0][0], config: found[0][1] } : undefined;
}

/** Every tensor of the model a configuration builds, by our name, with its PyTorch shape. */
function expectedShapes(config: TriplexConfig, mode: TargetMode): Map<string, readonly number[]> {
  const shapes = new Map<string, readonly number[]>([...new TriplexNet(config).table.specs].map(([n, s]) => [n, s.shape]));
  if (mode !== 'frozen' && config.views.target) {
    const trunk = new ResNet18Trunk(TRUNK_PREFIX);
    for (const [n, s] of [...trunk.parameterShapes(), ...trunk.bufferShapes()]) shapes.set(TRUNK_PREFIX + n, s);
  }
  return shapes;
}

/** The first tensor (in file order) that the configuration has not, or has in another shape; then the first it lacks. */
function checkAgainst(expected: ReadonlyMap<string, readonly number[]>, weights: StateDict, original: ReadonlyMap<string, string>, file: string, named: (theirs: string) => string, config: TriplexConfig): void {
  const inferred = `the configuration its other tensors describe (${describeInferred(config)})`;
  for (const [ours, tensor] of weights) {
    const want = expected.get(ours);
    if (!want) throw new WeightFileError(file, original.get(ours), `(shape ${shapeText(tensor)}) has no place in ${inferred}; the checkpoint is of another configuration`);
    if (want.length !== tensor.shape.length || want.some((d, i) => d !== tensor.shape[i])) {
      throw new WeightFileError(file, original.get(ours), `has shape ${shapeText(tensor)}, but ${inferred} needs ${shapeText(want)}; the checkpoint is of a configuration this TRIPLEX cannot build`);
    }
  }
  const lacking = [...expected.keys()].filter((k) => !weights.has(k));
  if (lacking.length) {
    throw new WeightFileError(file, named(theirsOf(lacking[0])), `(shape ${shapeText(expected.get(lacking[0])!)}) is missing, with ${lacking.length - 1} more tensors of ${inferred}; the checkpoint is incomplete or of another model`);
  }
}

/** One line: views, d, genes, and each encoder's depth, heads and MLP ratio. */
export function describeInferred(c: TriplexConfig): string {
  const enc = (e: EncoderConfig) => `depth ${e.depth}, ${e.heads} heads, MLP ratio ${+e.mlpRatio.toFixed(4)}`;
  const parts = [`views ${activeViews(c).join('+')}`, `d ${c.dim}`, `${c.genes} genes`];
  if (c.views.neighbor) parts.push(`neighbor encoder ${enc(c.neighbor)}`);
  if (c.views.global) parts.push(`global encoder ${enc(c.global)}, position encoding ${c.global.positionEncoding}${c.global.positionEncoding === 'apeg' ? ` (kernel ${c.global.kernelSize})` : ''}`);
  if (activeViews(c).length > 1) parts.push(`fusion layer ${enc(c.fusion)}`);
  return parts.join('; ');
}
