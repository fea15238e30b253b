import * as tf from '@tensorflow/tfjs-core';
import { topologicalOrder } from './autodiff';
import { broadcastShapes, type Sym } from './graph';
import { headOfProduct, lower, product } from './tfjsLower';

/**
 * The TF.js executor's program, worked out once per graph: the nodes to compute in order, each
 * with the values it reads and those it reads for the last time (freed right after it, so that a
 * step holds only live activations, as onnxruntime's planner does), after these rewrites:
 * - a product whose only use is the addition of a bias vector (nn.Linear) becomes one fused
 *   product with bias (tf.fused.matMul): one pass over the output instead of two;
 * - a sum of pads that tile one axis (the gradient of slices) becomes one concatenation;
 * - a broadcast whose every use is an elementwise op that broadcasts by itself (the backward of
 *   a sum or a mean, say) is not materialised: the use reads the small tensor;
 * - attention's q, k and v (or k and v) cut from one product by a rank-5 transpose and slices
 *   are each one product with their block of the weight, then a rank-4 transpose (headCut).
 * Transposes run at their lowest rank, none above 4 (tfjsLower.ts: transposeLowRank).
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

const HEADS_PERM = '2,0,3,1,4';

/**
 * Attention's heads cut from one product: a slice (axis 0, one entry) of transpose(reshape(x @
 * op(W), [B, N, K, h, hd]), [2, 0, 3, 1, 4]), W 2-D, where the product, the reshape and the
 * transpose feed nothing else and every use of the transpose is such a slice (q, k and v of a
 * SelfAttention, k and v of a CrossAttention). Gives the product and the reshape.
 */
function headCut(s: Sym, only: (x: Sym) => Sym | undefined, usesOf: (x: Sym) => readonly Sym[], isOutput: (x: Sym) => boolean): { m: Sym; r: Sym } | undefined {
  const entry = (u: Sym) => u.op === 'slice' && u.attrs.axis === 0 && u.shape[0] === 1;
  const t = s.inputs[0];
  if (!entry(s) || t.op !== 'transpose' || (t.attrs.perm as number[]).join(',') !== HEADS_PERM || isOutput(t) || !usesOf(t).every(entry)) return undefined;
  const r = t.inputs[0];
  const m = r.inputs[0];
  if (r.op !== 'reshape' || only(r) !== t || m.op !== 'matmul' || only(m) !== r || m.attrs.transA || m.inputs[1].rank !== 2) return undefined;
  const [, , K, h, hd] = r.shape;
  return m.shape[m.rank - 1] === K * h * hd ? { m, r } : undefined;
}

export function planProgram(outputs: readonly Sym[]): Plan {
  const order = topologicalOrder(outputs);
  const isOutput = new Set(outputs.map((s) => s.id));
  const uses = new Map<number, Sym[]>();
  for (const s of order) for (const x of s.inputs) uses.set(x.id, [...(uses.get(x.id) ?? []), s]);
  const usesOf = (x: Sym): readonly Sym[] => uses.get(x.id) ?? [];
  const only = (x: Sym): Sym | undefined => {
    const u = usesOf(x);
    return u.length === 1 && !isOutput.has(x.id) ? u[0] : undefined;
  };

  const steps = new Map<number, Omit<PlanStep, 'frees'>>();
  for (const s of order) {
    if (s.op === 'input' || s.op === 'const') continue;
    steps.set(s.id, { sym: s, reads: s.inputs, run: (x) => lower(s, x) });
  }
  for (const s of order) {
    const tiles = s.op === 'add' ? padTiles(s, only) : undefined;
    const cut = s.op === 'slice' ? headCut(s, only, usesOf, (x) => isOutput.has(x.id)) : undefined;
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
    } else if (cut) {
      const { m, r } = cut;
      const [A, W] = m.inputs;
      steps.set(s.id, { sym: s, reads: [A, W], run: ([a, w]) => headOfProduct(a, A.shape, w, W.shape, m.attrs.transB as boolean, r.shape, s.attrs.start as number, s.shape) });
    } else if (s.op === 'broadcast' && !isOutput.has(s.id)) {
      const x = s.inputs[0];
      const selfBroadcast = usesOf(s).every((u) => BROADCASTING.has(u.op) && u.inputs[0] !== u.inputs[1] &&
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
