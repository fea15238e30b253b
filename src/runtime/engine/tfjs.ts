import * as tf from '@tensorflow/tfjs-core';
import { topologicalOrder } from './autodiff';
import { checkFeeds, type Executor, type Feeds, type Program } from './executor';
import type { DType, HostArray, Shape, Sym } from './graph';
import { opDefinition } from './registry';

/**
 * The fallback engine: the same recording interpreted op by op on the current TF.js backend
 * (wasm, cpu, or tfjs-node where a user has it), inside one tf.tidy per run. TF.js computes in
 * float32 (int32 for indices), so float64 graphs are refused; int64 feeds are narrowed to int32.
 */

const FLOAT_ONLY = 'the TF.js engine computes in float32; build the graph with new Graph(\'float32\')';

function lower(s: Sym, x: tf.Tensor[], constant: (s: Sym) => tf.Tensor): tf.Tensor {
  const a = s.attrs;
  switch (s.op) {
    case 'const': return constant(s);
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
      const { transA, transB } = a as { transA: boolean; transB: boolean };
      const [A, B] = s.inputs;
      if (B.rank === 2 && A.rank > 2) {
        const rows = tf.reshape(x[0], [-1, A.shape[A.rank - 1]]);
        return tf.reshape(tf.matMul(rows, x[1], false, transB), [...s.shape]);
      }
      if (A.rank <= 3) return tf.matMul(x[0], x[1], transA, transB);
      // tf.matMul takes rank 3 at most per batch axis set: fold the batch axes into one.
      const batch = A.shape.slice(0, -2).reduce((p, d) => p * d, 1);
      const a3 = tf.reshape(x[0], [batch, A.shape[A.rank - 2], A.shape[A.rank - 1]]);
      const b3 = tf.reshape(x[1], [batch, B.shape[B.rank - 2], B.shape[B.rank - 1]]);
      return tf.reshape(tf.matMul(a3, b3, transA, transB), [...s.shape]);
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
      // unsortedSegmentSum has no wasm kernel; a one-hot product adds rows on every backend.
      const oneHot = tf.oneHot(x[1], base.shape[0], 1, 0, 'float32'); // [n, rows]
      return tf.add(x[0], tf.reshape(tf.matMul(oneHot, rows, true, false), [...base.shape]));
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

class TfjsProgram implements Program {
  readonly buildMs = 0;
  constructor(
    private readonly order: readonly Sym[],
    private readonly outputs: Readonly<Record<string, Sym>>,
    private readonly declared: ReadonlyMap<string, { shape: Shape; dtype: DType }>,
    private readonly constants: ReadonlyMap<number, tf.Tensor>,
  ) {}

  get nodeCount(): number { return this.order.length; }

  async run(feeds: Feeds): Promise<Record<string, HostArray>> {
    checkFeeds(this.declared, feeds);
    const results = tf.tidy(() => {
      const values = new Map<number, tf.Tensor>();
      for (const s of this.order) {
        if (s.op === 'input') {
          const v = feeds[s.attrs.name as string];
          values.set(s.id, s.dtype === 'int64' ? tf.tensor(Int32Array.from(v as BigInt64Array, Number), [...s.shape], 'int32') : tf.tensor(v as Float32Array, [...s.shape]));
        } else {
          values.set(s.id, lower(s, s.inputs.map((i) => values.get(i.id) as tf.Tensor), (c) => this.constants.get(c.id) as tf.Tensor));
        }
      }
      return Object.entries(this.outputs).map(([name, s]) => [name, values.get(s.id) as tf.Tensor] as const);
    });
    const out: Record<string, HostArray> = {};
    // An output may be named twice (a single-view model's prediction is its view's head): read each tensor once.
    const read = new Map<tf.Tensor, HostArray>();
    for (const [name, t] of results) {
      let host = read.get(t);
      if (!host) {
        const data = await t.data();
        host = data instanceof Int32Array ? BigInt64Array.from(data, BigInt) : Float32Array.from(data as Float32Array);
        read.set(t, host);
      }
      out[name] = host;
    }
    tf.dispose([...read.keys()]);
    return out;
  }

  async dispose(): Promise<void> {
    for (const t of this.constants.values()) t.dispose();
  }
}

/** The TF.js executor on whatever backend TF.js has set. */
export function createTfjsExecutor(): Executor {
  return {
    kind: 'tfjs',
    describe: () => `TF.js ${tf.version_core} (${tf.getBackend()} backend)`,
    async compile(outputs: Readonly<Record<string, Sym>>): Promise<Program> {
      const syms = Object.values(outputs);
      const graph = syms[0].graph;
      if (graph.floatType !== 'float32') throw new Error(FLOAT_ONLY);
      const order = topologicalOrder(syms);
      const declared = new Map(order.filter((s) => s.op === 'input').map((s) => [s.attrs.name as string, { shape: s.shape, dtype: s.dtype }] as const));
      const constants = new Map(order.filter((s) => s.op === 'const').map((s) => {
        const v = graph.constants.get(s.id) as HostArray;
        const t = s.dtype === 'int64' ? tf.tensor(Int32Array.from(v as BigInt64Array, Number), [...s.shape], 'int32') : tf.tensor(v as Float32Array, [...s.shape]);
        return [s.id, tf.keep(t)] as const;
      }));
      return new TfjsProgram(order, outputs, declared, constants);
    },
  };
}
