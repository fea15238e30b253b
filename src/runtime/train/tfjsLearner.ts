import * as tf from '@tensorflow/tfjs-core';
import { activeViews, type TriplexConfig } from '../model/triplex/config';
import { TriplexModel, type InputStats } from '../model/triplex/model';
import type { StateDict } from '../weights/stateDict';
import { Adam } from './adam';
import { makeBatch, type Pick, type TargetInput } from './batches';
import type { SectionInputs, TrainingData } from './data';
import type { Learner, PredictOptions, StepOptions } from './learner';

/**
 * The TF.js learner: TRIPLEX as TF.js layers (model/triplex/), Adam as torch.optim.Adam, and the
 * gradient of a batch accumulated over micro-batches (the wasm heap holds 4 GB). Mode frozen
 * only: trunk modes run the engine's graphs (EngineLearner, on the TF.js interpreter here).
 */
export class TfjsLearner implements Learner {
  readonly engine = 'tfjs' as const;
  readonly model: TriplexModel;
  private readonly variables: tf.Variable[];
  private readonly optimizer: Adam;

  private readonly target: TargetInput;

  constructor(readonly config: TriplexConfig, o: { seed?: number } = {}) {
    this.target = 'tokens';
    this.model = new TriplexModel(config, { seed: o.seed ?? 0 });
    this.variables = this.model.trainableVariables();
    this.optimizer = new Adam(this.variables, variableNames(this.model, this.variables));
  }

  get views() { return this.model.views; }
  get standardizedViews() { return this.model.standardizedViews; }
  get hasTrunk() { return this.model.trunk !== undefined; }
  get step() { return this.optimizer.step; }

  setHeadBias(values: Float32Array): void { this.model.setHeadBias(values); }
  setInputStats(stats: InputStats): void { this.model.setInputStats(stats); }

  async trainBatch(picks: readonly Pick[], o: StepOptions): Promise<number> {
    this.optimizer.learningRate = o.learningRate;
    const grads = batchGradients(this.model, this.variables, picks, o.microBatch, {
      dim: this.config.dim, genes: this.config.genes, augment: o.augment, dropoutSeed: o.dropoutSeed, target: this.target,
    });
    this.optimizer.apply(grads.grads);
    tf.dispose(grads.grads);
    return Promise.resolve(grads.loss);
  }

  predict(data: TrainingData, sections: readonly SectionInputs[], o: PredictOptions = {}): Promise<Map<string, Float32Array>> {
    return Promise.resolve(predictWithModel(this.model, data, sections, o.batchSize, o.target));
  }

  async stateDict(withOptimizer: boolean): Promise<StateDict> {
    const sd = await this.model.stateDict();
    if (withOptimizer) for (const [k, v] of await this.optimizer.state()) sd.set(k, v);
    return sd;
  }

  load(sd: StateDict, source: string, optimizerStep?: number): void {
    this.model.loadStateDict(new Map([...sd].filter(([k]) => !k.startsWith('optimizer.'))), source);
    if (optimizerStep !== undefined) this.optimizer.load(sd, optimizerStep, source);
  }

  dispose(): Promise<void> {
    this.optimizer.dispose();
    this.model.dispose();
    return Promise.resolve();
  }
}

/** Names of the optimiser's variables (TRIPLEX parameters, then trunk variables), stable across processes. */
function variableNames(model: TriplexModel, variables: readonly tf.Variable[]): string[] {
  const own = new Map(model.params.names().map((n) => [model.params.get(n).name, n]));
  return variables.map((v) => own.get(v.name) ?? `target_encoder.${v.name.slice(v.name.indexOf('/') + 1)}`);
}

/**
 * The batch's mean loss and the gradient of every variable (in `variables` order), the batch run
 * as micro-batches of `microBatch` spots whose gradients are summed, each weighted by its share.
 *
 * The global encoder runs once per batch, not once per micro-batch: its output G over the
 * batch's slides is computed first, each micro-batch then takes its spots' tokens from G and
 * adds its dL/dG, and one backward pass of the encoder against the summed dL/dG gives the
 * encoder's gradients (the encoder recomputed with the same dropout masks). The same gradient as
 * one pass over the whole batch, with the slides' encoding paid twice forward and once backward.
 * `dropoutSeed` reseeds the model's dropout at the start of the step.
 */
export function batchGradients(model: TriplexModel, variables: tf.Variable[], picks: readonly Pick[], microBatch: number,
  o: { dim: number; genes: number; augment?: () => number; dropoutSeed: number; target?: TargetInput }): { loss: number; grads: tf.Tensor[] } {
  const views = model.views;
  model.params.reseedDropout(o.dropoutSeed);
  const size = picks.length;
  const slides: SectionInputs[] = [];
  const offset = new Map<SectionInputs, number>();
  let total = 0;
  if (views.includes('global')) {
    for (const p of picks) {
      if (offset.has(p.section)) continue;
      offset.set(p.section, total);
      slides.push(p.section);
      total += p.section.n;
    }
  }
  const encodeAll = () => tf.tidy(() => {
    const parts = slides.map((s) => model.encodeSlide({ features: tf.tensor2d(s.global!, [s.n, o.dim]), grid: s.grid }, 'training'));
    return parts.length === 1 ? parts[0] : tf.concat(parts, 0);
  });
  if (slides.length && size <= microBatch) return onePass(model, variables, picks, offset, encodeAll, o);
  const globalNames = new Set(model.params.names().filter((n) => n.startsWith('global_encoder.')).map((n) => model.params.get(n).name));
  const local = variables.filter((v) => !globalNames.has(v.name));
  // tf.variable keeps its initial tensor alive; the tidy releases it and keeps the variable.
  const tokens = slides.length ? tf.tidy(() => tf.variable(encodeAll(), true)) : undefined; // [sum n, d]
  const sums = new Map<string, tf.Tensor>();
  const add = (name: string, g: tf.Tensor) => {
    const prev = sums.get(name);
    sums.set(name, prev ? tf.tidy(() => tf.add(prev, g)) : tf.clone(g));
    prev?.dispose();
  };
  let loss = 0;
  try {
    for (let from = 0; from < size; from += microBatch) {
      const part = picks.slice(from, Math.min(size, from + microBatch));
      const batch = makeBatch(part, { views: views.filter((v) => v !== 'global'), dim: o.dim, genes: o.genes, augment: o.augment, target: o.target });
      try {
        const inputs = tokens ? { ...batch.inputs, globalRows: Int32Array.from(part, (p) => offset.get(p.section)! + p.spot) } : batch.inputs;
        const weight = part.length / size;
        const { value, grads } = tf.variableGrads(
          () => tf.mul(model.loss(model.forward(inputs, 'training', tokens ? [tokens] : undefined), batch.truth), weight) as tf.Scalar,
          tokens ? [...local, tokens] : local);
        loss += value.dataSync()[0];
        value.dispose();
        for (const [name, g] of Object.entries(grads)) add(name, g);
        tf.dispose(Object.values(grads));
      } finally {
        batch.dispose();
      }
    }
    if (tokens) {
      const dTokens = sums.get(tokens.name);
      if (dTokens) {
        model.params.reseedDropout(o.dropoutSeed); // the encoder's dropout masks of the forward pass above
        const globalVars = variables.filter((v) => globalNames.has(v.name));
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(encodeAll(), dTokens)) as tf.Scalar, globalVars);
        value.dispose();
        for (const [name, g] of Object.entries(grads)) add(name, g);
        tf.dispose(Object.values(grads));
      }
    }
    return { loss, grads: variables.map((v) => sums.get(v.name) ?? tf.zerosLike(v)) };
  } finally {
    if (tokens) sums.get(tokens.name)?.dispose();
    tokens?.dispose();
  }
}

/**
 * A batch that fits in one pass: the global encoder inside the same gradient pass as the rest
 * (once forward, once backward, instead of batchGradients' second forward). The dropout masks are
 * drawn in the same order as there, so the two give the same gradient.
 */
function onePass(model: TriplexModel, variables: tf.Variable[], picks: readonly Pick[], offset: Map<SectionInputs, number>,
  encodeAll: () => tf.Tensor2D, o: { dim: number; genes: number; augment?: () => number; target?: TargetInput }): { loss: number; grads: tf.Tensor[] } {
  const batch = makeBatch(picks, { views: model.views.filter((v) => v !== 'global'), dim: o.dim, genes: o.genes, augment: o.augment, target: o.target });
  try {
    const inputs = { ...batch.inputs, globalRows: Int32Array.from(picks, (p) => offset.get(p.section)! + p.spot) };
    const { value, grads } = tf.variableGrads(() => {
      const encoded = encodeAll(); // first, as batchGradients encodes the slides before the batch's own forward pass
      return model.loss(model.forward(inputs, 'training', [encoded]), batch.truth);
    }, variables);
    const loss = value.dataSync()[0];
    value.dispose();
    return { loss, grads: variables.map((v) => grads[v.name] ?? tf.zerosLike(v)) };
  } finally {
    batch.dispose();
  }
}

/**
 * Predictions [n, genes] for every spot of each section, in inference mode. A model with a trained
 * trunk takes the sections' crops (loadTargetCrops first).
 */
export function predictWithModel(model: TriplexModel, data: TrainingData, sections: readonly SectionInputs[], batchSize = model.trunk ? 32 : 256,
  target: TargetInput = model.trunk ? 'crops' : 'tokens'): Map<string, Float32Array> {
  const views = activeViews(model.config);
  const G = model.config.genes;
  const out = new Map<string, Float32Array>();
  for (const section of sections) {
    const pred = new Float32Array(section.n * G);
    const encoded = views.includes('global')
      ? tf.tidy(() => model.encodeSlide({ features: tf.tensor2d(section.global!, [section.n, data.dim]), grid: section.grid }, 'inference'))
      : undefined;
    try {
      for (let from = 0; from < section.n; from += batchSize) {
        const picks = Array.from({ length: Math.min(batchSize, section.n - from) }, (_, i) => ({ section, spot: from + i }));
        const batch = makeBatch(picks, { views: views.filter((v) => v !== 'global'), dim: data.dim, genes: G, target });
        try {
          const values = tf.tidy(() => {
            const inputs = encoded ? { ...batch.inputs, globalRows: Int32Array.from(picks, (p) => p.spot) } : batch.inputs;
            return model.forward(inputs, 'inference', encoded ? [encoded] : undefined).fusion;
          });
          pred.set(values.dataSync() as Float32Array, from * G);
          values.dispose();
        } finally {
          batch.dispose();
        }
      }
    } finally {
      encoded?.dispose();
    }
    out.set(section.id, pred);
  }
  return out;
}
