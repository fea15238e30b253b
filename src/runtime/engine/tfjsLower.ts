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
    case 'transpose': return tf.transpose(x[0], [...(a.perm as number[])]);
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
