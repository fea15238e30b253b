import * as tf from '@tensorflow/tfjs-core';
import { topologicalOrder } from './autodiff';
import { broadcastShapes, type Sym } from './graph';
import { lower, product } from './tfjsLower';

/**
 * The TF.js executor's program, worked out once per graph: the nodes to compute in order, each
 * with the values it reads and those it reads for the last time (freed right after it, so that a
 * step holds only live activations, as onnxruntime's planner does), after two rewrites:
 * - a product whose only use is the addition of a bias vector (nn.Linear) becomes one fused
 *   product with bias (tf.fused.matMul): one pass over the output instead of two;
 * - a sum of pads that tile one axis (the gradient of slices) becomes one concatenation;
 * - a broadcast whose every use is an elementwise op that broadcasts by itself (the backward of
 *   a sum or a mean, say) is not materialised: the use reads the small tensor.
 * Nodes nothing reads any more after a rewrite are dropped.
 */

export interface PlanStep {
  /** The node whose value this step computes. */
  readonly sym: Sym;
  /** The nodes whose values it reads. */
  readonly reads: readonly Sym[];
  /** Computes the value from the tensors of `reads`, in order. */
  readonly run: (x: tf.Tensor[]) => tf.Tensor;
  /** Ids of values read here for the last time (neither outputs nor constants): freed after the step. */
  readonly frees: number[];
}

export interface Plan {
  /** Input nodes the graph reads, and its constants. */
  readonly inputs: readonly Sym[];
  readonly constants: readonly Sym[];
  readonly steps: readonly PlanStep[];
}

const BROADCASTING = new Set(['add', 'sub', 'mul', 'div']);
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The pads that a sum of pads along one axis adds up, when they do not overlap (the gradient of
 * slices, e.g. attention's q, k and v cut from one product): a concatenation then builds the sum
 * in one pass, instead of padding each to the full size and adding them pairwise.
 */
function padTiles(s: Sym, only: (x: Sym) => Sym | undefined): Sym[] | undefined {
  const leaves: Sym[] = [];
  const walk = (n: Sym, parent?: Sym): boolean => {
    if (parent && only(n) !== parent) return false;
    if (n.op === 'add') return n.inputs[0] !== n.inputs[1] && walk(n.inputs[0], n) && walk(n.inputs[1], n);
    leaves.push(n);
    return n.op === 'pad' && sameShape(n.shape, s.shape) && n.attrs.axis === leaves[0].attrs.axis;
  };
  if (!walk(s)) return undefined;
  leaves.sort((a, b) => (a.attrs.before as number) - (b.attrs.before as number));
  const axis = leaves[0].attrs.axis as number;
  const overlap = leaves.some((p, i) => i > 0 && (p.attrs.before as number) < (leaves[i - 1].attrs.before as number) + leaves[i - 1].inputs[0].shape[axis]);
  return overlap ? undefined : leaves;
}

/** The sum of non-overlapping pads (padTiles) as one concatenation of their inputs, zeros in the gaps. */
function tileAxis(s: Sym, pads: readonly Sym[], x: tf.Tensor[]): tf.Tensor {
  const axis = pads[0].attrs.axis as number;
  const parts: tf.Tensor[] = [];
  let at = 0;
  const gap = (to: number) => {
    if (to > at) parts.push(tf.zeros(s.shape.map((d, i) => (i === axis ? to - at : d))));
  };
  pads.forEach((p, i) => {
    gap(p.attrs.before as number);
    parts.push(x[i]);
    at = (p.attrs.before as number) + p.inputs[0].shape[axis];
  });
  gap(s.shape[axis]);
  return parts.length === 1 ? parts[0] : tf.concat(parts, axis);
}

export function planProgram(outputs: readonly Sym[]): Plan {
  const order = topologicalOrder(outputs);
  const isOutput = new Set(outputs.map((s) => s.id));
  const uses = new Map<number, Sym[]>();
  for (const s of order) for (const x of s.inputs) uses.set(x.id, [...(uses.get(x.id) ?? []), s]);
  const only = (x: Sym): Sym | undefined => {
    const u = uses.get(x.id) ?? [];
    return u.length === 1 && !isOutput.has(x.id) ? u[0] : undefined;
  };

  const steps = new Map<number, Omit<PlanStep, 'frees'>>();
  for (const s of order) {
    if (s.op === 'input' || s.op === 'const') continue;
    steps.set(s.id, { sym: s, reads: s.inputs, run: (x) => lower(s, x) });
  }
  for (const s of order) {
    const tiles = s.op === 'add' ? padTiles(s, only) : undefined;
    if (tiles) {
      steps.set(s.id, { sym: s, reads: tiles.map((t) => t.inputs[0]), run: (x) => tileAxis(s, tiles, x) });
    } else if (s.op === 'add') {
      const k = s.inputs.findIndex((m, i) => m.op === 'matmul' && only(m) === s && s.inputs[1 - i].rank === 1 && sameShape(m.shape, s.shape));
      if (k >= 0) {
        const m = s.inputs[k];
        const [A, B] = m.inputs;
        const { transA, transB } = m.attrs as { transA: boolean; transB: boolean };
        steps.set(s.id, { sym: s, reads: [A, B, s.inputs[1 - k]], run: ([a, b, bias]) => product(a, A.shape, b, B.shape, transA, transB, s.shape, bias) });
      }
    } else if (s.op === 'broadcast' && !isOutput.has(s.id)) {
      const x = s.inputs[0];
      const selfBroadcast = (uses.get(s.id) ?? []).every((u) => BROADCASTING.has(u.op) && u.inputs[0] !== u.inputs[1] &&
        sameShape(broadcastShapes(u.op, x.shape, (u.inputs[0] === s ? u.inputs[1] : u.inputs[0]).shape), u.shape));
      if (selfBroadcast) steps.set(s.id, { sym: s, reads: [x], run: ([t]) => t });
    }
  }

  // Only the steps that an output needs, in order; then each value's last reader.
  const needed = new Set(isOutput);
  const kept: Omit<PlanStep, 'frees'>[] = [];
  for (let i = order.length - 1; i >= 0; i--) {
    const step = steps.get(order[i].id);
    if (!step || !needed.has(step.sym.id)) continue;
    for (const r of step.reads) needed.add(r.id);
    kept.push(step);
  }
  kept.reverse();
  const last = new Map<number, number>();
  kept.forEach((step, i) => { for (const r of step.reads) last.set(r.id, i); });
  const planned = kept.map((step, i) => ({
    ...step,
    frees: [...new Set(step.reads.filter((r) => last.get(r.id) === i && !isOutput.has(r.id) && r.op !== 'const').map((r) => r.id))],
  }));
  return {
    inputs: order.filter((s) => s.op === 'input' && needed.has(s.id)),
    constants: order.filter((s) => s.op === 'const' && needed.has(s.id)),
    steps: planned,
  };
}
