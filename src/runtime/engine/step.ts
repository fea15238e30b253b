import { gradients } from './autodiff';
import type { Executor, Feeds, Program } from './executor';
import type { DropoutStreams } from './dropout';
import { Graph, type HostArray, type Sym } from './graph';

/**
 * A training step as one program: forward, loss, backward and Adam, compiled once per shape
 * bucket. Parameters and Adam moments go in and come out of every run (onnxruntime wraps the
 * arrays without copying); the learning rate and bias corrections are scalar inputs, so StepLR
 * and the step count stay in JavaScript. Dropout masks come from the caller's seeded streams.
 */

/** Parameters and Adam state, by PyTorch name, in PyTorch's layout. */
export interface TrainState {
  params: Map<string, Float32Array>;
  /** Adam's first and second moments (torch's exp_avg, exp_avg_sq). */
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
  /** Adam steps taken. */
  step: number;
  /** Buffers (batch norm's running statistics) by PyTorch name: fed, and replaced by their updates. */
  buffers?: Map<string, Float32Array>;
}

export interface AdamSettings {
  beta1: number;
  beta2: number;
  epsilon: number;
}

/** torch.optim.Adam's defaults. */
export const TORCH_ADAM: AdamSettings = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/** A fresh state: the given parameter values and zero moments. */
export function initialState(params: Map<string, Float32Array>): TrainState {
  const zeros = () => new Map([...params].map(([n, p]) => [n, new Float32Array(p.length)]));
  return { params, m: zeros(), v: zeros(), step: 0 };
}

/**
 * Appends torch.optim.Adam's update to `g` for each parameter:
 *   m' = b1 m + (1 - b1) dp,  v' = b2 v + (1 - b2) dp^2,  p' = p - stepSize * m' / (sqrt(v') * invSqrtC2 + eps)
 * with stepSize = lr / (1 - b1^t) and invSqrtC2 = 1 / sqrt(1 - b2^t) fed per step.
 */
export function appendAdam(g: Graph, params: ReadonlyMap<string, Sym>, grads: readonly Sym[], adam: AdamSettings): Record<string, Sym> {
  const stepSize = g.input('adam:stepSize', []);
  const invSqrtC2 = g.input('adam:invSqrtC2', []);
  const out: Record<string, Sym> = {};
  [...params].forEach(([name, p], i) => {
    const dp = grads[i];
    const m = g.add(g.mul(g.input(`m:${name}`, p.shape), adam.beta1), g.mul(dp, 1 - adam.beta1));
    const v = g.add(g.mul(g.input(`v:${name}`, p.shape), adam.beta2), g.mul(g.square(dp), 1 - adam.beta2));
    const update = g.div(g.mul(m, stepSize), g.add(g.mul(g.sqrt(v), invSqrtC2), adam.epsilon));
    out[`new:${name}`] = g.sub(p, update);
    out[`newm:${name}`] = m;
    out[`newv:${name}`] = v;
  });
  return out;
}

/** Dropout masks for every `dropout:<k>` input of `g`, in the graph's order, from `streams`. */
export function dropoutFeeds(g: Graph, streams: DropoutStreams): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, { rate, layer }] of g.dropouts) out[name] = streams.mask(layer, rate, (g.inputs.get(name) as Sym).size);
  return out;
}

export interface TrainStep {
  readonly graph: Graph;
  readonly program: Program;
  /**
   * One step on `feeds` (the data inputs): updates `state` and returns the loss. Dropout masks
   * come from `streams`, reseeded by the caller for the step.
   */
  run(state: TrainState, feeds: Feeds, learningRate: number, streams: DropoutStreams): Promise<number>;
}

/**
 * Records `buildLoss` (which declares its parameters with g.param and its data with g.input),
 * differentiates it, appends Adam, and compiles the whole step on `executor`.
 */
export async function compileTrainStep(executor: Executor, buildLoss: (g: Graph) => Sym, adam: AdamSettings = TORCH_ADAM, name = 'train_step'): Promise<TrainStep> {
  const g = new Graph('float32');
  const loss = buildLoss(g);
  const params = g.params();
  const grads = gradients(loss, [...params.values()]);
  const bufferOutputs = Object.fromEntries([...g.bufferUpdates].map(([n, s]) => [`newbuf:${n}`, s]));
  const program = await executor.compile({ loss, ...appendAdam(g, params, grads, adam), ...bufferOutputs }, name);
  return {
    graph: g,
    program,
    async run(state, feeds, learningRate, streams) {
      const t = state.step + 1;
      const inputs: Record<string, HostArray> = {
        ...feeds,
        ...dropoutFeeds(g, streams),
        'adam:stepSize': Float32Array.of(learningRate / (1 - adam.beta1 ** t)),
        'adam:invSqrtC2': Float32Array.of(1 / Math.sqrt(1 - adam.beta2 ** t)),
      };
      for (const n of params.keys()) {
        const p = state.params.get(n);
        if (!p) throw new Error(`training state lacks parameter ${n}`);
        inputs[`param:${n}`] = p;
        inputs[`m:${n}`] = state.m.get(n) as Float32Array;
        inputs[`v:${n}`] = state.v.get(n) as Float32Array;
      }
      for (const n of g.buffers().keys()) {
        const b = state.buffers?.get(n);
        if (!b) throw new Error(`training state lacks buffer ${n}`);
        inputs[`buffer:${n}`] = b;
      }
      const out = await program.run(inputs);
      for (const n of g.bufferUpdates.keys()) state.buffers?.set(n, out[`newbuf:${n}`] as Float32Array);
      for (const n of params.keys()) {
        state.params.set(n, out[`new:${n}`] as Float32Array);
        state.m.set(n, out[`newm:${n}`] as Float32Array);
        state.v.set(n, out[`newv:${n}`] as Float32Array);
      }
      state.step = t;
      return Number(out.loss[0]);
    },
  };
}
