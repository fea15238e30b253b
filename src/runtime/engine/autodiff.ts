import { type Graph, type Shape, type Sym } from './graph';
import { opDefinition } from './registry';

/**
 * Reverse-mode differentiation of a recorded graph: a topological sort and one reverse sweep, as
 * micrograd does it, with each primitive's rule written with the op interface, so the gradient is
 * more graph and runs wherever the forward runs. Ops without a rule (positive, leaves) pass
 * no gradient.
 */

/** dy summed back to `shape` over the axes that broadcasting added or stretched. */
export function unbroadcast(g: Graph, dy: Sym, shape: Shape): Sym {
  if (dy.rank === shape.length && dy.shape.every((d, i) => d === shape[i])) return dy;
  const lead = dy.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < dy.rank; i++) if (i < lead || (shape[i - lead] === 1 && dy.shape[i] !== 1)) axes.push(i);
  return g.reshape(g.sum(dy, axes), shape);
}

type Rule = (g: Graph, y: Sym, dy: Sym) => readonly (Sym | undefined)[];

const SQRT_2 = Math.SQRT2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** The local backward rule of every differentiable op: input gradients from the output's. */
const RULES: Record<string, Rule> = {
  add: (g, y, dy) => [unbroadcast(g, dy, y.inputs[0].shape), unbroadcast(g, dy, y.inputs[1].shape)],
  sub: (g, y, dy) => [unbroadcast(g, dy, y.inputs[0].shape), unbroadcast(g, g.neg(dy), y.inputs[1].shape)],
  mul: (g, y, dy) => {
    const [a, b] = y.inputs;
    return [unbroadcast(g, g.mul(dy, b), a.shape), unbroadcast(g, g.mul(dy, a), b.shape)];
  },
  div: (g, y, dy) => {
    const [a, b] = y.inputs;
    const da = g.div(dy, b);
    return [unbroadcast(g, da, a.shape), unbroadcast(g, g.neg(g.mul(da, y)), b.shape)]; // d(a/b)/db = -y/b
  },
  neg: (g, _y, dy) => [g.neg(dy)],
  exp: (g, y, dy) => [g.mul(dy, y)],
  log: (g, y, dy) => [g.div(dy, y.inputs[0])],
  sqrt: (g, y, dy) => [g.div(g.mul(dy, 0.5), y)],
  erf: (g, y, dy) => {
    const x = y.inputs[0];
    return [g.mul(dy, g.mul(g.exp(g.neg(g.square(x))), 2 / Math.sqrt(Math.PI)))];
  },
  tanh: (g, y, dy) => [g.mul(dy, g.sub(1, g.square(y)))],
  relu: (g, y, dy) => [g.mul(dy, g.positive(y.inputs[0]))],
  sigmoid: (g, y, dy) => [g.mul(dy, g.mul(y, g.sub(1, y)))],
  softplus: (g, y, dy) => [g.mul(dy, g.sigmoid(y.inputs[0]))],
  gelu: (g, y, dy) => {
    // d/dx x Phi(x) = Phi(x) + x phi(x)
    const x = y.inputs[0];
    const cdf = g.mul(g.add(g.erf(g.mul(x, 1 / SQRT_2)), 1), 0.5);
    const pdf = g.mul(g.exp(g.mul(g.square(x), -0.5)), INV_SQRT_2PI);
    return [g.mul(dy, g.add(cdf, g.mul(x, pdf)))];
  },
  matmul: (g, y, dy) => {
    const [a, b] = y.inputs;
    const { transA, transB } = y.attrs as { transA: boolean; transB: boolean };
    const da = transA ? g.matmul(b, dy, transB, true) : g.matmul(dy, b, false, !transB);
    if (b.rank === 2 && a.rank > 2) {
      // b is shared by every batch entry: its gradient sums over them, as one 2-D product.
      const a2 = g.reshape(a, [-1, a.shape[a.rank - 1]]);
      const dy2 = g.reshape(dy, [-1, dy.shape[dy.rank - 1]]);
      return [da, transB ? g.matmul(dy2, a2, true, false) : g.matmul(a2, dy2, true, false)];
    }
    return [da, transB ? g.matmul(dy, a, true, transA) : g.matmul(a, dy, !transA, false)];
  },
  reshape: (g, y, dy) => [g.reshape(dy, y.inputs[0].shape)],
  transpose: (g, y, dy) => {
    const perm = y.attrs.perm as number[];
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(dy, inverse)];
  },
  slice: (g, y, dy) => {
    const { axis, start, end } = y.attrs as { axis: number; start: number; end: number };
    return [g.pad(dy, axis, start, y.inputs[0].shape[axis] - end)];
  },
  pad: (g, y, dy) => {
    const { axis, before } = y.attrs as { axis: number; before: number };
    return [g.slice(dy, axis, before, before + y.inputs[0].shape[axis])];
  },
  concat: (g, y, dy) => {
    const axis = y.attrs.axis as number;
    let at = 0;
    return y.inputs.map((x) => g.slice(dy, axis, at, (at += x.shape[axis])));
  },
  broadcast: (g, y, dy) => [unbroadcast(g, dy, y.inputs[0].shape)],
  sum: (g, y, dy) => {
    const x = y.inputs[0];
    const axes = y.attrs.axes as number[];
    return [g.broadcastTo(g.reshape(dy, x.shape.map((d, i) => (axes.includes(i) ? 1 : d))), x.shape)];
  },
  gather: (g, y, dy) => [g.scatterAdd(g.zeros(y.inputs[0].shape, dy.dtype), y.inputs[1], dy), undefined],
  scatterAdd: (g, y, dy) => [dy, undefined, g.gather(dy, y.inputs[1])],
  softmax: (g, y, dy) => {
    // y * (dy - sum(dy * y))
    const dot = g.sum(g.mul(dy, y), [-1], true);
    return [g.mul(y, g.sub(dy, dot))];
  },
  logSoftmax: (g, y, dy) => [g.sub(dy, g.mul(g.exp(y), g.sum(dy, [-1], true)))],
  layerNorm: (g, y, dy) => {
    // With xhat = (x - mean) * rstd and h = dy * weight:
    //   dx = rstd * (h - mean(h) - xhat * mean(h * xhat)), dweight = sum(dy * xhat), dbias = sum(dy).
    const [x, weight] = y.inputs;
    const eps = y.attrs.eps as number;
    const rows = Array.from({ length: x.rank - 1 }, (_, i) => i);
    const centred = g.sub(x, g.mean(x, [-1], true));
    const rstd = g.div(1, g.sqrt(g.add(g.mean(g.square(centred), [-1], true), eps)));
    const xhat = g.mul(centred, rstd);
    const h = g.mul(dy, weight);
    const dx = g.mul(rstd, g.sub(g.sub(h, g.mean(h, [-1], true)), g.mul(xhat, g.mean(g.mul(h, xhat), [-1], true))));
    return [dx, g.sum(g.mul(dy, xhat), rows), g.sum(dy, rows)];
  },
};

/** Whether an op has a backward rule (a test checks that every differentiable op does). */
export const hasRule = (op: string): boolean => op in RULES || opDefinition(op)?.backward !== undefined;

/** The nodes `outputs` depend on, inputs before the nodes that use them. */
export function topologicalOrder(outputs: readonly Sym[]): Sym[] {
  const order: Sym[] = [];
  const seen = new Set<number>();
  // Iterative depth-first search: deep graphs (a ResNet's backward) would overflow recursion.
  const stack: { s: Sym; next: number }[] = [];
  for (const root of outputs) {
    if (seen.has(root.id)) continue;
    seen.add(root.id);
    stack.push({ s: root, next: 0 });
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (top.next < top.s.inputs.length) {
        const child = top.s.inputs[top.next++];
        if (!seen.has(child.id)) {
          seen.add(child.id);
          stack.push({ s: child, next: 0 });
        }
      } else {
        order.push(top.s);
        stack.pop();
      }
    }
  }
  return order;
}

/**
 * Gradients of the scalar `loss` with respect to each of `wrt`, as new nodes of the same graph
 * (zeros for a value the loss does not depend on).
 */
export function gradients(loss: Sym, wrt: readonly Sym[]): Sym[] {
  const g = loss.graph;
  if (loss.size !== 1) throw new Error(`gradients: the loss must be a scalar, got shape [${loss.shape.join(', ')}]`);
  const order = topologicalOrder([loss]);
  const grads = new Map<number, Sym>([[loss.id, g.broadcastTo(g.constant([1], [], loss.dtype), loss.shape)]]);
  const wanted = new Set(wrt.map((s) => s.id));
  for (let i = order.length - 1; i >= 0; i--) {
    const y = order[i];
    const dy = grads.get(y.id);
    if (!dy || y.inputs.length === 0) continue;
    const rule = RULES[y.op] ?? opDefinition(y.op)?.backward;
    if (!rule) continue;
    const dxs = rule(g, y, dy);
    y.inputs.forEach((x, k) => {
      const dx = dxs[k];
      if (!dx || x.dtype === 'int64') return;
      const prior = grads.get(x.id);
      grads.set(x.id, prior ? g.add(prior, dx) : dx);
    });
    if (!wanted.has(y.id)) grads.delete(y.id); // keeps the map small; a wanted node keeps its sum
  }
  return wrt.map((s) => grads.get(s.id) ?? g.zeros(s.shape, s.dtype));
}
