import type { TriplexConfig, ViewName } from '../models/triplexConfig';
import type { InputStats } from '../models/triplexInputs';
import type { StateDict } from '../weights/stateDict';
import type { Pick, TargetInput } from './batches';
import type { SectionInputs, TrainingData } from './data';

/**
 * What the one trainer, cross-validation and predict need of a model and its optimiser, whichever
 * executor runs its engine graphs: onnxruntime or the engine's TF.js interpreter (TRIPLEX:
 * engineLearner.ts; the baselines: baselineLearner.ts). Checkpoints are the same tensors under the
 * same names on both, so a run started on one resumes or predicts on the other.
 */

export type EngineKind = 'ort' | 'tfjs';

export interface StepOptions {
  learningRate: number;
  /** Seeds the dropout masks of the step (every layer's stream). */
  dropoutSeed: number;
  /** Seeded augmentation of the target view. */
  augment: () => number;
}

export interface PredictOptions {
  batchSize?: number;
  /** What the target view takes (a trunk model: crops, or cached layer3 maps in mode layer4). */
  target?: TargetInput;
  /**
   * Query rows per block of the global encoder's attention (models/globalBlocks.ts). Default:
   * the whole slide at once while its logits fit LOGITS_BUDGET_BYTES, else blocks that do.
   */
  globalQueryRows?: number;
}

/** What the trainer's loop, cross-validation and predict need of any model: TRIPLEX or a baseline (baselineLearner.ts). */
export interface FoldLearner {
  readonly engine: EngineKind;
  /** Optimiser steps taken. */
  readonly step: number;
  /** Whether predictions need the sections' crops loaded first (a trunk TRIPLEX; the baselines load their own inputs). */
  readonly hasTrunk: boolean;
  /** One optimiser step on a batch; returns the batch's mean loss. */
  trainBatch(picks: readonly Pick[], o: StepOptions): Promise<number>;
  /** Predictions [n, genes] of every spot of each section, in inference mode. */
  predict(data: TrainingData, sections: readonly SectionInputs[], o?: PredictOptions): Promise<Map<string, Float32Array>>;
  /** The model's tensors in PyTorch layout, and the optimiser's (`optimizer.exp_avg.<name>`, ...) when asked. */
  stateDict(withOptimizer: boolean): Promise<StateDict>;
  /** Loads model weights (all or nothing); with `optimizerStep`, the optimiser's state too (a resume). */
  load(sd: StateDict, source: string, optimizerStep?: number): void;
  dispose(): Promise<void>;
}

export interface Learner extends FoldLearner {
  readonly config: TriplexConfig;
  readonly views: ViewName[];
  /** Views whose frozen inputs are standardised (all but a trunk-computed target view). */
  readonly standardizedViews: ViewName[];
  setHeadBias(values: Float32Array): void;
  setInputStats(stats: InputStats): void;
}
