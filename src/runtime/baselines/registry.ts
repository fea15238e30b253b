import * as path from 'node:path';
import { seededResNet18StateDict } from '../models/resnet18Weights';
import { loadStateDict, type StateDict } from '../weights';
import { BLEEP_PRESETS, BleepNet, bleepPretrainedWeights, type BleepConfig } from './bleep';
import { EGN_PRESETS, EgnNet, type EgnConfig } from './egn';
import { HIST2ST_PRESETS, Hist2stNet, type Hist2stConfig } from './hist2st';
import { HISTOGENE_PRESETS, HisToGeneNet, type HistogeneConfig } from './histogene';
import { STNET_PRESETS, StNet, stnetPretrainedWeights, type StNetConfig } from './stnet';
import type { BaselineDims, BaselineName, BaselineNet } from './model';
import { BASELINES } from './model';

/**
 * The baselines by name: their presets and constructors, and the settings a run records
 * (`BaselineSettings`, in checkpoints and results) from which the same model is built again.
 */

export type BaselinePreset = 'paper' | 'demo';

/** A baseline as a run records it: the model, the preset it came from, and its full configuration. */
export interface BaselineSettings {
  model: BaselineName;
  preset: BaselinePreset;
  config: Record<string, unknown>;
}

interface Entry {
  presets: Record<BaselinePreset, object>;
  create(config: object, dims: BaselineDims, seed: number): BaselineNet;
  /** Paper-facing name, as Table 1 prints it. */
  label: string;
  /** Maps a pretrained trunk's state dict as users have it to the model's tensors (ST-Net's DenseNet-121, BLEEP's ResNet18). */
  pretrained?(sd: StateDict, file: string, config: Record<string, unknown>): Map<string, Float32Array>;
  /** The trunk's start without --weights: BLEEP's ResNet18 starts as the seeded encoder `triplex extract` uses without --weights. */
  defaultStart?: 'seeded-resnet18';
}

const entries = new Map<BaselineName, Entry>([
  ['stnet', {
    label: 'ST-Net', presets: STNET_PRESETS, create: (c, d, seed) => new StNet(c as StNetConfig, d, seed),
    pretrained: (sd, file, c) => stnetPretrainedWeights(sd, file, c as unknown as StNetConfig),
  }],
  ['histogene', { label: 'HisToGene', presets: HISTOGENE_PRESETS, create: (c, d, seed) => new HisToGeneNet(c as HistogeneConfig, d, seed) }],
  ['hist2st', { label: 'Hist2ST', presets: HIST2ST_PRESETS, create: (c, d, seed) => new Hist2stNet(c as Hist2stConfig, d, seed) }],
  ['bleep', {
    label: 'BLEEP', presets: BLEEP_PRESETS, create: (c, d, seed) => new BleepNet(c as BleepConfig, d, seed),
    pretrained: (sd, file) => bleepPretrainedWeights(sd, file), defaultStart: 'seeded-resnet18',
  }],
  ['egn', { label: 'EGN', presets: EGN_PRESETS, create: (c, d, seed) => new EgnNet(c as EgnConfig, d, seed) }],
]);

export const isBaselineName = (name: string): name is BaselineName => (BASELINES as readonly string[]).includes(name);

/** Whether a run's configuration is a baseline's (TRIPLEX configurations have no `model`). */
export const isBaseline = (c: object): c is BaselineSettings => 'model' in c && typeof (c as { model: unknown }).model === 'string';

function entryOf(name: string): Entry {
  const e = isBaselineName(name) ? entries.get(name) : undefined;
  if (!e) throw new Error(`unknown model '${name}'; the baselines are ${BASELINES.join(', ')}`);
  return e;
}

/** A baseline's settings from a preset name (default 'paper'; TRIPLEX's bc1/bc2/scc presets mean the paper's sizes too). */
export function baselineSettings(name: string, preset?: string): BaselineSettings {
  const e = entryOf(name);
  const p: BaselinePreset = preset === 'demo' ? 'demo' : 'paper';
  return { model: name as BaselineName, preset: p, config: { ...(e.presets[p] as Record<string, unknown>) } };
}

export function createBaselineNet(s: BaselineSettings, dims: BaselineDims, seed = 0): BaselineNet {
  return entryOf(s.model).create(s.config, dims, seed);
}

export const baselineLabel = (name: BaselineName): string => entryOf(name).label;

/** One line describing a baseline run's model. */
export const describeBaseline = (s: BaselineSettings): string => `${baselineLabel(s.model)} (${s.preset} preset)`;

/**
 * The weights a baseline's trunk starts from: the file given (--weights), else its default (the
 * seeded ResNet18 of `triplex extract`, for BLEEP), else none (PyTorch's initialisation).
 * `identity` goes into the run's signature, so a resume with other weights refuses.
 */
export async function baselineStart(s: BaselineSettings, weights?: string): Promise<{ weights: Map<string, Float32Array>; identity: string } | undefined> {
  const e = entryOf(s.model);
  if (weights) {
    if (!e.pretrained) throw new Error(`${s.model} takes no pretrained weights (--weights ${weights}); it trains from its initialisation, as its paper does`);
    return { weights: e.pretrained(await loadStateDict(weights), weights, s.config), identity: path.resolve(weights) };
  }
  if (e.defaultStart === 'seeded-resnet18' && e.pretrained) return { weights: e.pretrained(seededResNet18StateDict(0), 'the seeded ResNet18', s.config), identity: 'seeded-resnet18' };
  return undefined;
}
