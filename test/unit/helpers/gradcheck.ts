import * as assert from 'node:assert/strict';
import { gradients } from '../../../src/runtime/engine/autodiff';
import type { Executor, Feeds } from '../../../src/runtime/engine/executor';
import { Graph, type HostArray, type Sym } from '../../../src/runtime/engine/graph';
import { mulberry32 } from '../../../src/runtime/util/random';

/**
 * Finite-difference checks of the engine's backward rules. A case is a function of named inputs;
 * the loss is sum(f(x) * r) with fixed random r, so every output element matters. In float64
 * (h = 1e-6, tolerance 1e-6 relative) truncation ~h^2 and rounding ~1e-16/h stay below 1e-9. A
 * case marked float32 (ops onnxruntime lacks in double) uses h = 1e-2 and tolerance 1e-3, which
 * holds for smooth ops on |x| < 2: truncation h^2/6 |f'''| and rounding 6e-8 |f| / h are both
 * below 2e-5.
 */

export interface GradientCase {
  name: string;
  /** Inputs (float unless int64 is given with its values; positive: drawn from [0.5, 1.5)). */
  inputs: Record<string, { shape: number[]; int64?: number[]; positive?: boolean }>;
  f: (g: Graph, x: Record<string, Sym>) => Sym;
  float32?: boolean;
}

export function feedsFor(c: GradientCase, dtype: 'float32' | 'float64', seed: number): Record<string, HostArray> {
  const random = mulberry32(seed);
  const out: Record<string, HostArray> = {};
  for (const [name, spec] of Object.entries(c.inputs)) {
    const n = spec.shape.reduce((a, b) => a * b, 1);
    if (spec.int64) { out[name] = BigInt64Array.from(spec.int64.map(BigInt)); continue; }
    const v = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = spec.positive ? 0.5 + random() : 4 * random() - 2;
    out[name] = v;
  }
  return out;
}

/** loss = sum(f(x) * r) with fixed random r, so every output element matters; its gradients. */
export function buildGradientCase(c: GradientCase, dtype: 'float32' | 'float64') {
  const g = new Graph(dtype);
  const x: Record<string, Sym> = {};
  for (const [name, spec] of Object.entries(c.inputs)) x[name] = g.input(name, spec.shape, spec.int64 ? 'int64' : dtype);
  const y = c.f(g, x);
  const random = mulberry32(99);
  const r = g.constant(Array.from({ length: y.size }, () => random() - 0.5), y.shape);
  const loss = g.sum(g.mul(y, r), y.shape.map((_, i) => i));
  const floats = Object.keys(c.inputs).filter((n) => !c.inputs[n].int64);
  const grads = gradients(loss, floats.map((n) => x[n]));
  return { y, loss, floats, grads: Object.fromEntries(floats.map((n, i) => [`d_${n}`, grads[i]])) };
}

/** Every coordinate of every float input: the rule's gradient against central differences. */
export async function checkAgainstFiniteDifferences(ort: Executor, c: GradientCase): Promise<void> {
  const dtype = c.float32 ? 'float32' : 'float64';
  const h = c.float32 ? 1e-2 : 1e-6;
  const tol = c.float32 ? 1e-3 : 1e-6;
  const { loss, floats, grads } = buildGradientCase(c, dtype);
  const forward = await ort.compile({ loss });
  const backward = await ort.compile(grads);
  const feeds = feedsFor(c, dtype, 7);
  const analytic = await backward.run(feeds);
  const lossAt = async (f: Feeds) => Number((await forward.run(f)).loss[0]);
  for (const name of floats) {
    const base = feeds[name] as Float64Array | Float32Array;
    const d = analytic[`d_${name}`];
    assert.equal(d.length, base.length, `d_${name} has the input's size`);
    for (let i = 0; i < base.length; i++) {
      const plus = base.slice(); plus[i] += h;
      const minus = base.slice(); minus[i] -= h;
      const numeric = ((await lossAt({ ...feeds, [name]: plus })) - (await lossAt({ ...feeds, [name]: minus }))) / (2 * h);
      const got = Number(d[i]);
      assert.ok(Math.abs(got - numeric) <= tol * (1 + Math.abs(numeric)), `${c.name}: d_${name}[${i}] = ${got}, finite differences ${numeric}`);
    }
  }
  await forward.dispose();
  await backward.dispose();
}

/** The case's forward and gradients (float32) on TF.js against onnxruntime, within 1e-4. */
export async function checkEnginesAgree(ort: Executor, tfjs: Executor, c: GradientCase): Promise<void> {
  const { y, grads } = buildGradientCase(c, 'float32');
  const outputs = { y, ...grads };
  const feeds = feedsFor(c, 'float32', 11);
  const [a, b] = await Promise.all([ort.compile(outputs), tfjs.compile(outputs)]);
  const [ra, rb] = [await a.run(feeds), await b.run(feeds)];
  for (const key of Object.keys(outputs)) {
    const [u, v] = [ra[key], rb[key]];
    assert.equal(u.length, v.length, `${c.name}: ${key} sizes`);
    for (let i = 0; i < u.length; i++) {
      assert.ok(Math.abs(Number(u[i]) - Number(v[i])) <= 1e-4 * (1 + Math.abs(Number(u[i]))), `${c.name}: ${key}[${i}] ort ${u[i]} tfjs ${v[i]}`);
    }
  }
  await a.dispose();
  await b.dispose();
}
