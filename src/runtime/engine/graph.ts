/**
 * The engine's intermediate representation: a graph of symbolic tensors with concrete shapes.
 *
 * Model code calls the methods of `Graph` (the op interface); each call records a node whose shape
 * is inferred at once, so that backward rules and executors know every shape. A graph is then
 * differentiated (autodiff.ts) and executed either as one ONNX model on onnxruntime (onnx.ts,
 * ort.ts) or op by op on TF.js (tfjs.ts). Shapes are fixed per graph: a different batch or slide
 * size is another graph (a shape bucket), built once and cached by the executor.
 */

export type DType = 'float32' | 'float64' | 'int64';

/** Attributes of a node: plain data that the executors lower and that keys the graph's cache. */
export type Attrs = Readonly<Record<string, number | boolean | string | readonly number[]>>;

export type Shape = readonly number[];

export const sizeOf = (shape: Shape): number => shape.reduce((a, b) => a * b, 1);
export const showShape = (shape: Shape): string => `[${shape.join(', ')}]`;

/** A symbolic tensor: the output of one recorded operation. */
export class Sym {
  constructor(
    readonly graph: Graph,
    readonly id: number,
    readonly op: string,
    readonly inputs: readonly Sym[],
    readonly attrs: Attrs,
    readonly shape: Shape,
    readonly dtype: DType,
  ) {}

  get rank(): number { return this.shape.length; }
  get size(): number { return sizeOf(this.shape); }
}

/** Values a graph holds: constants (initializers), by node id. */
export type HostArray = Float32Array | Float64Array | BigInt64Array;

/** numpy broadcasting of two shapes, or an error naming the operation. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`${op}: shapes ${showShape(a)} and ${showShape(b)} do not broadcast`);
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** Prefixes of parameter and dropout-mask inputs. */
export const PARAM = 'param:';
export const DROPOUT = 'dropout:';
/** Prefix of buffer inputs: state that is fed but not trained (batch norm's running statistics). */
export const BUFFER = 'buffer:';

const normAxis = (axis: number, rank: number) => (axis < 0 ? axis + rank : axis);

/**
 * The op interface. Every model is written against these methods; the backward rules in
 * autodiff.ts are written with them too, so a gradient is just more graph.
 */
export class Graph {
  private nextId = 0;
  readonly constants = new Map<number, HostArray>();
  readonly inputs = new Map<string, Sym>();
  /** Dropout-mask inputs, in the order they were asked for: rate and the layer whose stream fills them. */
  readonly dropouts = new Map<string, { rate: number; layer: number }>();

  constructor(readonly floatType: 'float32' | 'float64' = 'float32') {}

  /** Records a node. Shape and dtype are given by the caller (the op methods below). */
  node(op: string, inputs: readonly Sym[], attrs: Attrs, shape: Shape, dtype: DType): Sym {
    for (const x of inputs) if (x.graph !== this) throw new Error(`${op}: an input belongs to another graph`);
    return new Sym(this, this.nextId++, op, inputs, attrs, [...shape], dtype);
  }

  // ---- leaves

  /** A value fed at every run (data, parameters, moments, dropout masks), by name. */
  input(name: string, shape: Shape, dtype: DType = this.floatType): Sym {
    if (this.inputs.has(name)) throw new Error(`graph input ${name} is declared twice`);
    const s = this.node('input', [], { name }, shape, dtype);
    this.inputs.set(name, s);
    return s;
  }

  /** A constant held in the graph (an ONNX initializer). */
  constant(values: ArrayLike<number>, shape: Shape, dtype: DType = this.floatType): Sym {
    if (values.length !== sizeOf(shape)) throw new Error(`constant: ${values.length} values do not fill ${showShape(shape)}`);
    const s = this.node('const', [], {}, shape, dtype);
    this.constants.set(s.id, dtype === 'int64' ? BigInt64Array.from(Array.from(values, (v) => BigInt(v))) : dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values));
    return s;
  }

  /** A scalar constant of the graph's float type (rank 0: broadcasts against anything). */
  scalar(value: number): Sym {
    return this.constant([value], [], this.floatType);
  }

  /** Zeros of a shape. */
  zeros(shape: Shape, dtype: DType = this.floatType): Sym {
    return this.node('zeros', [], { shape: [...shape] }, shape, dtype);
  }

  /**
   * A trainable parameter: a graph input named `param:<name>` (PyTorch's dotted name and layout),
   * declared once per graph and returned again when asked again.
   */
  param(name: string, shape: Shape): Sym {
    const known = this.inputs.get(PARAM + name);
    if (!known) return this.input(PARAM + name, shape);
    if (known.rank !== shape.length || known.shape.some((d, i) => d !== shape[i])) throw new Error(`parameter ${name} is used as ${showShape(shape)} and ${showShape(known.shape)}`);
    return known;
  }

  /** The parameters this graph declared, by name (without the prefix), in declaration order. */
  params(): Map<string, Sym> {
    return new Map([...this.inputs].filter(([n]) => n.startsWith(PARAM)).map(([n, s]) => [n.slice(PARAM.length), s]));
  }

  /**
   * Dropout's mask for a tensor of `shape`: an input named `dropout:<k>` that the runner fills at
   * every training run with 0 and 1 / (1 - rate), drawn from dropout layer `layer`'s stream
   * (dropout.ts), so that a run stays repeatable. x * mask is dropout; inference graphs do not
   * multiply. Masks are drawn in the order the graph asks for them.
   */
  dropoutMask(shape: Shape, rate: number, layer: number): Sym {
    if (!(rate > 0 && rate < 1)) throw new Error(`dropout rate ${rate} must lie in (0, 1)`);
    const name = `${DROPOUT}${this.dropouts.size}`;
    this.dropouts.set(name, { rate, layer });
    return this.input(name, shape);
  }

  /** New values of buffers computed by this graph, by name (without the prefix). */
  readonly bufferUpdates = new Map<string, Sym>();

  /**
   * A buffer: state fed at every run but never differentiated nor touched by Adam (PyTorch's
   * register_buffer: batch norm's running_mean, say), an input named `buffer:<name>` declared once
   * per graph. A training step writes the values given to updateBuffer back to its state.
   */
  buffer(name: string, shape: Shape): Sym {
    const known = this.inputs.get(BUFFER + name);
    if (!known) return this.input(BUFFER + name, shape);
    if (known.rank !== shape.length || known.shape.some((d, i) => d !== shape[i])) throw new Error(`buffer ${name} is used as ${showShape(shape)} and ${showShape(known.shape)}`);
    return known;
  }

  /** The buffer's value after this run (running statistics after a training-mode forward). */
  updateBuffer(name: string, value: Sym): void {
    const b = this.inputs.get(BUFFER + name);
    if (!b || b.shape.length !== value.rank || b.shape.some((d, i) => d !== value.shape[i])) throw new Error(`updateBuffer: ${name} is no buffer of shape ${showShape(value.shape)}`);
    if (this.bufferUpdates.has(name)) throw new Error(`buffer ${name} is updated twice`);
    this.bufferUpdates.set(name, value);
  }

  /** The buffers this graph declared, by name (without the prefix). */
  buffers(): Map<string, Sym> {
    return new Map([...this.inputs].filter(([n]) => n.startsWith(BUFFER)).map(([n, s]) => [n.slice(BUFFER.length), s]));
  }

  // ---- elementwise

  private binary(op: string, a: Sym | number, b: Sym | number): Sym {
    const x = typeof a === 'number' ? this.scalar(a) : a;
    const y = typeof b === 'number' ? this.scalar(b) : b;
    if (x.dtype !== y.dtype) throw new Error(`${op}: dtypes ${x.dtype} and ${y.dtype} differ`);
    return this.node(op, [x, y], {}, broadcastShapes(op, x.shape, y.shape), x.dtype);
  }

  add(a: Sym | number, b: Sym | number): Sym { return this.binary('add', a, b); }
  sub(a: Sym | number, b: Sym | number): Sym { return this.binary('sub', a, b); }
  mul(a: Sym | number, b: Sym | number): Sym { return this.binary('mul', a, b); }
  div(a: Sym | number, b: Sym | number): Sym { return this.binary('div', a, b); }

  private unary(op: string, x: Sym): Sym { return this.node(op, [x], {}, x.shape, x.dtype); }

  neg(x: Sym): Sym { return this.unary('neg', x); }
  exp(x: Sym): Sym { return this.unary('exp', x); }
  log(x: Sym): Sym { return this.unary('log', x); }
  sqrt(x: Sym): Sym { return this.unary('sqrt', x); }
  erf(x: Sym): Sym { return this.unary('erf', x); }
  tanh(x: Sym): Sym { return this.unary('tanh', x); }
  relu(x: Sym): Sym { return this.unary('relu', x); }
  /** 1 / (1 + exp(-x)), stable for large |x|. */
  sigmoid(x: Sym): Sym { return this.unary('sigmoid', x); }
  /** log(1 + exp(x)) (nn.Softplus, beta 1), stable for large |x|. */
  softplus(x: Sym): Sym { return this.unary('softplus', x); }
  /** Exact GELU, x * Phi(x) (nn.GELU's default). */
  gelu(x: Sym): Sym { return this.unary('gelu', x); }
  /** 1 where x > 0, else 0 (no gradient): ReLU's derivative. */
  positive(x: Sym): Sym { return this.unary('positive', x); }
  square(x: Sym): Sym { return this.mul(x, x); }

  // ---- products

  /**
   * op(a) @ op(b), op = transpose of the last two axes when asked. a [..., m, k] with b of the
   * same rank and batch, or b 2-D (shared by every batch entry of a, untransposed a).
   */
  matmul(a: Sym, b: Sym, transA = false, transB = false): Sym {
    if (a.rank < 2 || b.rank < 2) throw new Error(`matmul: operands must be at least 2-D, got ${showShape(a.shape)} and ${showShape(b.shape)}`);
    const [m, ka] = transA ? [a.shape[a.rank - 1], a.shape[a.rank - 2]] : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
    const [kb, n] = transB ? [b.shape[b.rank - 1], b.shape[b.rank - 2]] : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
    if (ka !== kb) throw new Error(`matmul: inner sizes differ: ${showShape(a.shape)}${transA ? '^T' : ''} @ ${showShape(b.shape)}${transB ? '^T' : ''}`);
    const batchA = a.shape.slice(0, -2);
    if (b.rank === 2) {
      if (a.rank > 2 && transA) throw new Error('matmul: a batched a with a shared 2-D b cannot be transposed');
    } else if (b.rank !== a.rank || b.shape.slice(0, -2).some((d, i) => d !== batchA[i])) {
      throw new Error(`matmul: batch axes differ: ${showShape(a.shape)} and ${showShape(b.shape)}`);
    }
    return this.node('matmul', [a, b], { transA, transB }, [...batchA, m, n], a.dtype);
  }

  // ---- movement

  reshape(x: Sym, shape: Shape): Sym {
    const known = shape.filter((d) => d !== -1);
    const out = shape.map((d) => (d === -1 ? x.size / sizeOf(known) : d));
    if (sizeOf(out) !== x.size || !out.every(Number.isInteger)) throw new Error(`reshape: ${showShape(x.shape)} cannot become ${showShape(shape)}`);
    if (out.every((d, i) => d === x.shape[i]) && out.length === x.rank) return x;
    return this.node('reshape', [x], { shape: out }, out, x.dtype);
  }

  transpose(x: Sym, perm: readonly number[]): Sym {
    if (perm.length !== x.rank || [...perm].sort().some((p, i) => p !== i)) throw new Error(`transpose: ${perm.join(',')} is not a permutation of ${x.rank} axes`);
    if (perm.every((p, i) => p === i)) return x;
    return this.node('transpose', [x], { perm: [...perm] }, perm.map((p) => x.shape[p]), x.dtype);
  }

  /** x[..., start:end, ...] along one axis. */
  slice(x: Sym, axis: number, start: number, end: number): Sym {
    const ax = normAxis(axis, x.rank);
    if (!(start >= 0 && end <= x.shape[ax] && start < end)) throw new Error(`slice: ${start}:${end} is outside axis ${ax} of ${showShape(x.shape)}`);
    if (start === 0 && end === x.shape[ax]) return x;
    return this.node('slice', [x], { axis: ax, start, end }, x.shape.map((d, i) => (i === ax ? end - start : d)), x.dtype);
  }

  /** Zeros added before and after along one axis (the gradient of slice). */
  pad(x: Sym, axis: number, before: number, after: number): Sym {
    const ax = normAxis(axis, x.rank);
    if (before === 0 && after === 0) return x;
    return this.node('pad', [x], { axis: ax, before, after }, x.shape.map((d, i) => (i === ax ? d + before + after : d)), x.dtype);
  }

  concat(xs: readonly Sym[], axis: number): Sym {
    if (xs.length === 1) return xs[0];
    const ax = normAxis(axis, xs[0].rank);
    for (const x of xs) {
      if (x.rank !== xs[0].rank || x.shape.some((d, i) => i !== ax && d !== xs[0].shape[i])) throw new Error(`concat: ${xs.map((s) => showShape(s.shape)).join(', ')} differ off axis ${ax}`);
    }
    const total = xs.reduce((n, x) => n + x.shape[ax], 0);
    return this.node('concat', xs, { axis: ax }, xs[0].shape.map((d, i) => (i === ax ? total : d)), xs[0].dtype);
  }

  broadcastTo(x: Sym, shape: Shape): Sym {
    const out = broadcastShapes('broadcastTo', x.shape, shape);
    if (out.length !== shape.length || out.some((d, i) => d !== shape[i])) throw new Error(`broadcastTo: ${showShape(x.shape)} does not broadcast to ${showShape(shape)}`);
    if (x.rank === shape.length && x.shape.every((d, i) => d === shape[i])) return x;
    return this.node('broadcast', [x], { shape: [...shape] }, shape, x.dtype);
  }

  // ---- reductions

  private reduce(op: string, x: Sym, axes: readonly number[], keepDims: boolean): Sym {
    const ax = [...new Set(axes.map((a) => normAxis(a, x.rank)))].sort((a, b) => a - b);
    if (ax.length === 0) return x;
    const shape = keepDims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
    return this.node(op, [x], { axes: ax, keepDims }, shape, x.dtype);
  }

  sum(x: Sym, axes: readonly number[], keepDims = false): Sym { return this.reduce('sum', x, axes, keepDims); }

  mean(x: Sym, axes: readonly number[], keepDims = false): Sym {
    const n = axes.reduce((p, a) => p * x.shape[normAxis(a, x.rank)], 1);
    return this.mul(this.sum(x, axes, keepDims), 1 / n);
  }

  // ---- indexing

  /** Rows of x (axis 0) at int64 `indices` [n]: [n, ...x.shape[1:]]. */
  gather(x: Sym, indices: Sym): Sym {
    if (indices.dtype !== 'int64' || indices.rank !== 1) throw new Error(`gather: indices must be int64 [n], got ${indices.dtype} ${showShape(indices.shape)}`);
    return this.node('gather', [x, indices], {}, [indices.shape[0], ...x.shape.slice(1)], x.dtype);
  }

  /** base with updates[i] added at row indices[i] (repeated indices add up). */
  scatterAdd(base: Sym, indices: Sym, updates: Sym): Sym {
    if (indices.dtype !== 'int64' || indices.rank !== 1 || updates.shape[0] !== indices.shape[0] || updates.rank !== base.rank || updates.shape.some((d, i) => i > 0 && d !== base.shape[i])) {
      throw new Error(`scatterAdd: updates ${showShape(updates.shape)} at ${showShape(indices.shape)} rows do not fit ${showShape(base.shape)}`);
    }
    return this.node('scatterAdd', [base, indices, updates], {}, base.shape, base.dtype);
  }

  // ---- neural-network primitives (each with a backward rule of its own)

  /** Softmax over the last axis. */
  softmax(x: Sym): Sym { return this.unary('softmax', x); }

  /** log(softmax(x)) over the last axis, computed stably (F.log_softmax). */
  logSoftmax(x: Sym): Sym { return this.unary('logSoftmax', x); }

  /** Layer norm over the last axis with weight and bias [d] (nn.LayerNorm). */
  layerNorm(x: Sym, weight: Sym, bias: Sym, eps = 1e-5): Sym {
    const d = x.shape[x.rank - 1];
    if (weight.rank !== 1 || weight.shape[0] !== d || bias.rank !== 1 || bias.shape[0] !== d) throw new Error(`layerNorm: weight and bias must be [${d}]`);
    return this.node('layerNorm', [x, weight, bias], { eps }, x.shape, x.dtype);
  }
}
