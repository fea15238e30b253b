import * as tf from '@tensorflow/tfjs-core';
import type { Shape, Sym } from './graph';
import { opDefinition } from './registry';

/**
 * How the TF.js executor computes each recorded op: one TF.js op, or a few, per node. A product
 * followed by the addition of a bias vector runs as one fused product (tfjsPlan.ts finds those
 * pairs).
 */

/**
 * A 2-D product has its transposed operands transposed in memory first: tfjs-backend-wasm 4.22
 * sends only untransposed 2-D products to XNNPACK and computes the others in a plain loop.
 * Measured here (2 threads, [1024, 512] x [512, 1024], busy machine): untransposed 105 ms, transB
 * 1.6 s, transA 5 s, the transpose itself 20-35 ms. Batched products take the loop either way
 * (there the flags are as fast as a copy or faster), so they keep their flags, except a few large
 * ones (8 heads of 640 x 640 x 64), which run as one 2-D product per entry.
 */
/** Batched products of at most this many entries, each of at least this many multiply-adds, run entry by entry. */
const PER_ENTRY_BATCH = 32;
const PER_ENTRY_WORK = 1 << 20;

const untransposed = (t: tf.Tensor, trans: boolean) => (trans ? tf.transpose(t) : t);

/**
 * op(a) @ op(b) (+ bias [n]) for a [..., m, k] and b of the same batch, or b 2-D shared by every
 * batch entry of an untransposed a. Products with one batch entry run as 2-D ones; tf.matMul
 * takes rank 3 at most, so more batch axes are folded into one.
 */
export function product(a: tf.Tensor, aShape: Shape, b: tf.Tensor, bShape: Shape, transA: boolean, transB: boolean, out: Shape, bias?: tf.Tensor): tf.Tensor {
  const flat = (x: tf.Tensor, y: tf.Tensor) => {
    const [xx, yy] = [untransposed(x, transA), untransposed(y, transB)];
    return bias ? tf.fused.matMul({ a: xx as tf.Tensor2D, b: yy as tf.Tensor2D, bias }) : tf.matMul(xx, yy);
  };
  const batched = (x: tf.Tensor, y: tf.Tensor) => (bias
    ? tf.fused.matMul({ a: x as tf.Tensor3D, b: y as tf.Tensor3D, transposeA: transA, transposeB: transB, bias })
    : tf.matMul(x, y, transA, transB));
  const rank = aShape.length;
  const batch = aShape.slice(0, -2).reduce((p, d) => p * d, 1);
  if (bShape.length === 2 && rank > 2) return tf.reshape(flat(tf.reshape(a, [-1, aShape[rank - 1]]), b), [...out]);
  if (batch === 1) return tf.reshape(flat(tf.reshape(a, aShape.slice(-2)), tf.reshape(b, bShape.slice(-2))), [...out]);
  const a3 = tf.reshape(a, [batch, aShape[rank - 2], aShape[rank - 1]]);
  const b3 = tf.reshape(b, [batch, bShape[bShape.length - 2], bShape[bShape.length - 1]]);
  const [m, n] = out.slice(-2);
  const k = transA ? aShape[rank - 2] : aShape[rank - 1];
  if (batch <= PER_ENTRY_BATCH && m * n * k >= PER_ENTRY_WORK) {
    // A few large products (the global encoder's heads over a whole slide): each entry on XNNPACK.
    const as = tf.unstack(a3);
    const bs = tf.unstack(b3);
    return tf.reshape(tf.stack(as.map((x, i) => flat(x, bs[i]))), [...out]);
  }
  return tf.reshape(batched(a3, b3), [...out]);
}

/**
 * Entry i of attention's heads cut from one product, transpose(reshape(a @ op(w), [B, N, K, h,
 * hd]), [2, 0, 3, 1, 4])[i] as [1, B, h, N, hd] (`out`), computed from a product of its own with
 * the i-th block of d = h * hd output features of w (2-D): the same multiply-adds as the one
 * product, and then a rank-4 transpose of [B, N, h, hd] instead of a rank-5 one of all K entries
 * and a copy of one entry of its result.
 */
export function headOfProduct(a: tf.Tensor, aShape: Shape, w: tf.Tensor, wShape: Shape, transB: boolean, heads: Shape, i: number, out: Shape): tf.Tensor {
  const [B, N, , h, hd] = heads;
  const d = h * hd;
  const bShape = transB ? [d, wShape[1]] : [wShape[0], d];
  const block = tf.slice(w, transB ? [i * d, 0] : [0, i * d], bShape);
  const y = product(a, aShape, block, bShape, false, transB, [...aShape.slice(0, -1), d]);
  return tf.reshape(transposeLowRank(tf.reshape(y, [B, N, h, hd]), [0, 2, 1, 3]), [...out]);
}

/**
 * The transpose `perm` of a tensor of `shape` at its lowest rank: size-1 axes dropped and axes
 * that stay neighbours merged ([B, N, 3, d] -> [3, B, N, d] is [B*N, 3, d] -> [3, B*N, d]).
 * Returns the reduced shape and permutation.
 */
export function reducedTranspose(shape: Shape, perm: readonly number[]): { shape: number[]; perm: number[] } {
  const kept = perm.filter((p) => shape[p] !== 1);
  // Runs of input axes that follow one another in the output become one axis.
  const runs: number[][] = [];
  for (const p of kept) {
    const run = runs[runs.length - 1];
    if (run && run[run.length - 1] + 1 === p) run.push(p);
    else runs.push([p]);
  }
  const byInput = [...runs].sort((a, b) => a[0] - b[0]);
  return {
    shape: byInput.map((r) => r.reduce((n, p) => n * shape[p], 1)),
    perm: runs.map((r) => byInput.indexOf(r)),
  };
}

/**
 * Transposes of rank 5 and more (attention's [B, N, 3, h, hd] -> [3, B, h, N, hd] and its
 * gradient's inverse) run in tfjs-backend-wasm's generic kernel, about 300 times slower than its
 * kernels of rank 4 and less (here, 6.4M values: 1.1-1.4 s against 4 ms). So a transpose is run at
 * its lowest rank (reducedTranspose), and one still above rank 4 as a few moves of one axis to its
 * place ([pre, mid, x, post] -> [pre, x, mid, post]: rank 4 at most), each one copy.
 */
export function transposeLowRank(x: tf.Tensor, perm: readonly number[]): tf.Tensor {
  const out = perm.map((p) => x.shape[p]);
  const r = reducedTranspose(x.shape, perm);
  if (r.perm.every((p, i) => p === i)) return tf.reshape(x, out);
  if (r.perm.length <= 4) return tf.reshape(tf.transpose(tf.reshape(x, r.shape), r.perm), out);
  // Move the axis wanted at position i there, for i = 0, 1, ...: `order` holds the axes of r.shape as they now lie.
  let y = tf.reshape(x, r.shape);
  let order = r.perm.map((_, i) => i);
  for (let i = 0; i < r.perm.length; i++) {
    const j = order.indexOf(r.perm[i]);
    if (j === i) continue;
    const move = order.map((_, k) => (k < i || k > j ? k : k === i ? j : k - 1));
    y = transposeLowRank(y, move);
    order = move.map((k) => order[k]);
  }
  return tf.reshape(y, out);
}

/** The value of node `s` (neither an input nor a constant) from its inputs' values. */
export function lower(s: Sym, x: tf.Tensor[]): tf.Tensor {
  const a = s.attrs;
  switch (s.op) {
    case 'zeros': return tf.zeros([...s.shape], s.dtype === 'int64' ? 'int32' : 'float32');
    case 'add': return tf.add(x[0], x[1]);
    case 'sub': return tf.sub(x[0], x[1]);
    case 'mul': return tf.mul(x[0], x[1]);
    case 'div': return tf.div(x[0], x[1]);
    case 'neg': return tf.neg(x[0]);
    case 'exp': return tf.exp(x[0]);
    case 'log': return tf.log(x[0]);
    case 'sqrt': return tf.sqrt(x[0]);
    case 'erf': return tf.erf(x[0]);
    case 'tanh': return tf.tanh(x[0]);
    case 'relu': return tf.relu(x[0]);
    case 'sigmoid': return tf.sigmoid(x[0]);
    case 'softplus': return tf.softplus(x[0]);
    case 'gelu': return tf.mul(x[0], tf.mul(tf.add(tf.erf(tf.mul(x[0], Math.SQRT1_2)), 1), 0.5));
    case 'positive': return tf.cast(tf.greater(x[0], 0), 'float32');
    case 'matmul': {
      const [A, B] = s.inputs;
      return product(x[0], A.shape, x[1], B.shape, a.transA as boolean, a.transB as boolean, s.shape);
    }
    case 'reshape': return tf.reshape(x[0], [...s.shape]);
    case 'transpose': return transposeLowRank(x[0], a.perm as number[]);
    case 'slice': {
      const begin = s.shape.map(() => 0);
      begin[a.axis as number] = a.start as number;
      return tf.slice(x[0], begin, [...s.shape]);
    }
    case 'pad': {
      const pads = s.shape.map((): [number, number] => [0, 0]);
      pads[a.axis as number] = [a.before as number, a.after as number];
      return tf.pad(x[0], pads);
    }
    case 'concat': return tf.concat(x, a.axis as number);
    case 'broadcast': return tf.broadcastTo(x[0], [...s.shape]);
    case 'sum': return tf.sum(x[0], [...(a.axes as number[])], a.keepDims as boolean);
    case 'gather': return tf.gather(x[0], x[1], 0);
    case 'scatterAdd': {
      const base = s.inputs[0];
      const rows = tf.reshape(x[2], [s.inputs[2].shape[0], -1]);
      // One row: every index is 0 (tf.oneHot refuses a depth of 1, as a one-spot slide's grid has).
      if (base.shape[0] === 1) return tf.add(x[0], tf.reshape(tf.sum(rows, 0), [...base.shape]));
      // unsortedSegmentSum has no wasm kernel; a one-hot product adds rows on every backend.
      const oneHot = tf.oneHot(x[1], base.shape[0], 1, 0, 'float32'); // [n, rows]
      return tf.add(x[0], tf.reshape(tf.matMul(tf.transpose(oneHot), rows), [...base.shape]));
    }
    case 'softmax': return tf.softmax(x[0]);
    case 'logSoftmax': return tf.logSoftmax(x[0]);
    case 'layerNorm': {
      const { mean, variance } = tf.moments(x[0], -1, true);
      const xhat = tf.mul(tf.sub(x[0], mean), tf.rsqrt(tf.add(variance, a.eps as number)));
      return tf.add(tf.mul(xhat, x[1]), x[2]);
    }
    default: {
      const def = opDefinition(s.op);
      if (!def) throw new Error(`TF.js engine: no lowering for op ${s.op}`);
      return def.tfjs(s, x);
    }
  }
}
