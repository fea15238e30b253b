import * as fs from 'node:fs';
import { isBaseline, isBaselineName, type BaselineSettings } from '../baselines/registry';
import { fileKind } from '../data/files';
import { checkConfig, type TriplexConfig } from '../models/triplexConfig';
import { writeFileAtomic } from '../store/atomic';
import { encodeSafetensors, readSafetensors, safetensorsMetadata } from '../weights/safetensors';
import type { StateDict } from '../weights/stateDict';
import type { FoldLearner } from './learner';

/**
 * The checkpoint format: a safetensors file of the model's tensors (and the optimiser's, in
 * last.safetensors) whose metadata records the run (`format`, and `info` as JSON), read back
 * with every recorded field checked, so that a damaged or foreign file is refused by name.
 */

export type TargetMode = 'frozen' | 'layer4' | 'full';

/**
 * An epoch of a run. Loss, validation PCC and learning rate are its content: the same in every run
 * with the same seed, and all that checkpoints and history.json record. The timings vary from run
 * to run: they go to timings.json, and are known for the epochs of which it has them.
 */
export interface EpochRecord {
  epoch: number;
  loss: number;
  validationPcc: number | null;
  learningRate: number;
  seconds?: number;
  spotsPerSecond?: number;
}

export const CHECKPOINT_FORMAT = 'triplex-checkpoint';
export const CHECKPOINT_VERSION = 1;

/** What a checkpoint's metadata records. */
export interface CheckpointInfo {
  format: string;
  version: number;
  /** TRIPLEX's configuration, or a baseline's settings (with `model`). */
  config: TriplexConfig | BaselineSettings;
  mode: TargetMode;
  genes: string[];
  /** Epochs completed. */
  epoch: number;
  step: number;
  bestEpoch: number;
  bestValidationPcc: number | null;
  signature: string;
  history: EpochRecord[];
  train: string[];
  /** The patient of each training section (a retrieval model's reference spots are drawn by patient). */
  trainPatients?: string[];
  validation: string[];
  /**
   * The features trained on, relative to the store (`features/<encoder key>`); older checkpoints
   * hold an absolute path, and still load: only its last part is compared.
   */
  featuresDir: string;
  /** Modes layer4 and full: the identity of the ResNet18 weights the trunk started from. */
  trunkWeights?: string;
  /** Microns per pixel of the training crops (the training scale), when the features record it. */
  mpp?: number;
}

/** Reads a checkpoint's weights and metadata, checking it is one of ours. */
export async function readCheckpoint(file: string): Promise<{ info: CheckpointInfo; weights: StateDict }> {
  if (!fs.existsSync(file)) throw new Error(`${file}: no such checkpoint`);
  const stat = fs.statSync(file);
  if (!stat.isFile()) throw new Error(`${file} is ${fileKind(stat)}, not a checkpoint file`);
  const bytes = new Uint8Array(await fs.promises.readFile(file));
  const meta = safetensorsMetadata(bytes, file);
  if (meta.format !== CHECKPOINT_FORMAT) throw new Error(`${file} is not a TRIPLEX checkpoint (no '${CHECKPOINT_FORMAT}' metadata); checkpoints are written by \`triplex train-fold\` and \`triplex cv\``);
  const info = checkedInfo(meta.info, file);
  return { info, weights: await readSafetensors(file) };
}

export async function writeCheckpoint(file: string, learner: FoldLearner, info: CheckpointInfo, withOptimizer: boolean): Promise<void> {
  const sd = await learner.stateDict(withOptimizer);
  await writeFileAtomic(file, encodeSafetensors(sd, { format: CHECKPOINT_FORMAT, info: JSON.stringify(info) }));
}

/**
 * A store with counts must have the genes a model predicts, in its order (a store without counts
 * has none to agree with: the model's genes are predicted). `genesByName`: the store's genes may
 * differ (external validation aligns them by name afterwards, eval/evaluate.ts). `file` names the
 * model's checkpoint.
 */
export function checkPredictedGenes(file: string, genes: readonly string[], data: { genes: string[]; hasCounts?: boolean; genesByName?: boolean }): void {
  if (data.hasCounts === false || data.genesByName || (genes.length === data.genes.length && genes.every((g, i) => g === data.genes[i]))) return;
  const missing = genes.filter((g) => !data.genes.includes(g));
  throw new Error(`${file} predicts ${genes.length} genes, the store has ${data.genes.length}` +
    (missing.length ? ` and lacks ${missing.length} of them (${missing.slice(0, 5).join(', ')}...)` : ' in another order') +
    '; use a checkpoint trained on a store with the same genes');
}

const TARGET_MODES: readonly TargetMode[] = ['frozen', 'layer4', 'full'];

/** The recorded run information, parsed and checked; the error names the file and the field. */
function checkedInfo(text: string | undefined, file: string): CheckpointInfo {
  const bad = (what: string): never => {
    throw new Error(`${file}: ${what}; the checkpoint is damaged or was not written by \`triplex train-fold\` or \`triplex cv\`: use another, or train again`);
  };
  let raw: unknown;
  try {
    raw = JSON.parse(text ?? '');
  } catch (e) {
    return bad(`its recorded run information is not readable JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad('its recorded run information is not an object');
  const info = raw as Record<string, unknown>;
  if (info.version !== CHECKPOINT_VERSION) throw new Error(`${file}: checkpoint version ${String(info.version)}, this TRIPLEX reads ${CHECKPOINT_VERSION}`);
  const strings = (v: unknown) => Array.isArray(v) && v.every((x) => typeof x === 'string');
  const count = (v: unknown) => Number.isInteger(v) && (v as number) >= -1;
  if (!strings(info.genes) || (info.genes as string[]).length === 0) bad('it records no list of genes');
  if (!strings(info.train) || !strings(info.validation)) bad('it records no training and validation sections');
  if (info.trainPatients !== undefined && !strings(info.trainPatients)) bad('its training patients are not a list of names');
  if (!TARGET_MODES.includes(info.mode as TargetMode)) bad(`its mode ${JSON.stringify(info.mode)} is none of ${TARGET_MODES.join(', ')}`);
  if (!count(info.epoch) || !count(info.step) || !count(info.bestEpoch)) bad('its epoch, step or best epoch is not a whole number');
  if (!Array.isArray(info.history)) bad('its history is not a list');
  if (typeof info.featuresDir !== 'string') bad('it does not record the features it was trained on');
  if (info.mpp !== undefined && !(typeof info.mpp === 'number' && info.mpp > 0)) bad(`its training scale (mpp) ${JSON.stringify(info.mpp)} is not a positive number of microns per pixel`);
  const config = info.config;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return bad('its model configuration is not an object');
  if (isBaseline(config)) {
    if (!isBaselineName(config.model)) bad(`it records the model '${config.model}', which this TRIPLEX does not know`);
    if (typeof config.config !== 'object' || config.config === null) bad(`it records a ${config.model} model without its settings`);
  } else {
    try {
      checkConfig(config as TriplexConfig);
    } catch (e) {
      bad(`its TRIPLEX configuration is not valid (${e instanceof TypeError ? 'fields are missing' : (e as Error).message})`);
    }
    if ((config as TriplexConfig).genes !== (info.genes as string[]).length) bad(`its configuration predicts ${(config as TriplexConfig).genes} genes but it lists ${(info.genes as string[]).length}`);
  }
  return info as unknown as CheckpointInfo;
}
