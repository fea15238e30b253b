import { initialState, type TrainState } from '../engine/step';
import { WeightFileError, type StateDict } from '../weights/stateDict';

/**
 * A learner's training state (parameters, buffers, Adam moments: engine/step.ts) to and from the
 * tensors of a checkpoint, in PyTorch's names and layouts, the same for TRIPLEX and the baselines:
 * `<name>` for parameters and buffers, `optimizer.exp_avg.<name>` and `optimizer.exp_avg_sq.<name>`
 * for the moments of the parameters that train.
 */

/** Parameters and buffers as the inputs of a graph (`param:<name>`, `buffer:<name>`). */
export function stateFeeds(state: TrainState): Record<string, Float32Array> {
  return {
    ...Object.fromEntries([...state.params].map(([n, v]) => [`param:${n}`, v])),
    ...Object.fromEntries([...(state.buffers ?? [])].map(([n, v]) => [`buffer:${n}`, v])),
  };
}

/** The state's tensors with their shapes, and the moments of the trained parameters when asked (a resumable checkpoint). */
export function stateTensors(state: TrainState, shapes: ReadonlyMap<string, readonly number[]>, withOptimizer: boolean, trained: (name: string) => boolean = () => true): StateDict {
  const sd: StateDict = new Map();
  for (const [n, v] of [...state.params, ...(state.buffers ?? [])]) sd.set(n, { shape: [...shapes.get(n)!], data: v, sourceDtype: 'float32' });
  if (withOptimizer) {
    for (const [n, m] of state.m) if (trained(n)) sd.set(`optimizer.exp_avg.${n}`, { shape: [m.length], data: m, sourceDtype: 'float32' });
    for (const [n, v] of state.v) if (trained(n)) sd.set(`optimizer.exp_avg_sq.${n}`, { shape: [v.length], data: v, sourceDtype: 'float32' });
  }
  return sd;
}

/**
 * Refuses a state dict that lacks one of `shapes`' tensors, has one of another shape, or names a
 * tensor that is none of them (besides optimizer state and what `alsoAllowed` accepts), naming
 * the file and the tensor. `model` names the model in the messages.
 */
export function checkTensors(sd: StateDict, shapes: ReadonlyMap<string, readonly number[]>, source: string, model: string, alsoAllowed: (key: string) => boolean): void {
  const missing = [...shapes.keys()].filter((n) => !sd.has(n));
  if (missing.length) throw new WeightFileError(source, missing[0], `lacks ${missing.length} of the ${shapes.size} tensors of ${model} (${missing.slice(0, 5).join(', ')})`);
  const unexpected = [...sd.keys()].filter((k) => !shapes.has(k) && !k.startsWith('optimizer.') && !alsoAllowed(k));
  if (unexpected.length) throw new WeightFileError(source, unexpected[0], `names no tensor of ${model} (${unexpected.length} such keys: ${unexpected.slice(0, 5).join(', ')})`);
  for (const [n, shape] of shapes) {
    const t = sd.get(n)!;
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new WeightFileError(source, n, `has shape [${t.shape.join(', ')}], ${model} needs [${shape.join(', ')}] (PyTorch layout)`);
    }
  }
}

/**
 * The state a checked state dict holds: `state`'s parameters and buffers read from it; with
 * `optimizerStep` (a resume) the Adam moments too, which every trained parameter must have
 * (one that never trains starts at zero), else fresh moments at the current step.
 */
export function restoreState(sd: StateDict, source: string, state: TrainState, optimizerStep?: number, trained: (name: string) => boolean = () => true): TrainState {
  const names = [...state.params.keys()];
  const params = new Map(names.map((n) => [n, Float32Array.from(sd.get(n)!.data)]));
  const buffers = new Map([...(state.buffers ?? new Map<string, Float32Array>()).keys()].map((n) => [n, Float32Array.from(sd.get(n)!.data)]));
  if (optimizerStep === undefined) return { ...initialState(params), buffers, step: state.step };
  const moment = (kind: string, n: string) => {
    const t = sd.get(`optimizer.${kind}.${n}`);
    if (!t && !trained(n)) return new Float32Array(params.get(n)!.length); // never trained in this mode: no state
    if (!t || t.data.length !== params.get(n)!.length) throw new Error(`${source}: optimizer state optimizer.${kind}.${n} is missing or has the wrong size; the checkpoint is from another configuration`);
    return Float32Array.from(t.data);
  };
  return {
    params, buffers, step: optimizerStep,
    m: new Map(names.map((n) => [n, moment('exp_avg', n)])),
    v: new Map(names.map((n) => [n, moment('exp_avg_sq', n)])),
  };
}
