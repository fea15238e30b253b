import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../../src/runtime/compute/backend';
import { registerWasmDepthwiseKernels } from '../../src/runtime/compute/wasmDepthwiseKernels';
import { Dropout, Linear, ParameterSet, gelu, matMul2d } from '../../src/runtime/model/triplex/layers';
import { CrossAttentionBlock, RELATIVE_OFFSET_INDEX, TransformerBlock } from '../../src/runtime/model/triplex/attention';
import { APEG, PEG, spotGrid, type SpotGrid } from '../../src/runtime/model/triplex/apeg';
import { fusionLoss, type FusionLossVariant } from '../../src/runtime/model/triplex/loss';
import { mulberry32, normal } from '../../src/runtime/util/random';
import { WeightFileError, type HostTensor, type StateDict } from '../../src/runtime/weights';
import { relativeError } from './helpers/compare';
import { torchReference, torchSkip } from './helpers/torch';
import type { BlockCase, FileEntry } from './helpers/torchFixtures';

/**
 * The TRIPLEX building blocks (attention blocks, APEG/PEG, the fusion loss) against computations
 * that share nothing with them: plain JavaScript loops in float64 on tiny sizes, hand-computed
 * values, and PyTorch (forward and backward) through scripts/fixtures/torch_triplex_blocks_reference.py.
 */

// ---------------------------------------------------------------------------------------------
// Plain-JS reference computations (float64, no tf).

type Rows = number[][];

/** erf by its everywhere-positive series 2/sqrt(pi) exp(-x^2) sum 2^n x^(2n+1) / (2n+1)!!. */
function erf(x: number): number {
  if (Math.abs(x) > 6) return Math.sign(x);
  let term = x;
  let sum = x;
  for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
    term *= (2 * x * x) / (2 * n + 1);
    sum += term;
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum;
}
const geluJs = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));

const param = (sd: StateDict, key: string): Float32Array => {
  const t = sd.get(key);
  if (!t) throw new Error(`test state dict lacks ${key}`);
  return t.data;
};

/** x W^T + b with W in PyTorch's [out, in] layout. */
function linearJs(x: number[], w: Float32Array, b?: Float32Array): number[] {
  const inF = x.length;
  const outF = w.length / inF;
  return Array.from({ length: outF }, (_, o) => {
    let s = b ? b[o] : 0;
    for (let i = 0; i < inF; i++) s += w[o * inF + i] * x[i];
    return s;
  });
}

function layerNormJs(x: number[], w: Float32Array, b: Float32Array): number[] {
  const mean = x.reduce((a, v) => a + v, 0) / x.length;
  const variance = x.reduce((a, v) => a + (v - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[i] + b[i]);
}

/** Tile offset index of the 5x5 grid, computed here from its definition. */
const offsetOf = (i: number, j: number) => Math.abs(Math.floor(i / 5) - Math.floor(j / 5)) * 5 + Math.abs((i % 5) - (j % 5));

/**
 * Multi-head attention of query rows over key/value rows, returning the concatenated heads
 * (before the output projection) and the attention weights [h][Nq][N].
 */
function attentionJs(q: Rows, k: Rows, v: Rows, heads: number, bias?: Float32Array, keep?: number[]): { out: Rows; weights: number[][][] } {
  const d = q[0].length;
  const hd = d / heads;
  const out: Rows = q.map(() => new Array<number>(d).fill(0));
  const weights: number[][][] = [];
  for (let h = 0; h < heads; h++) {
    weights.push(q.map((qi, i) => {
      const logits = k.map((kj, j) => {
        if (keep && keep[j] === 0) return -65504;
        let s = 0;
        for (let c = h * hd; c < (h + 1) * hd; c++) s += qi[c] * kj[c];
        return s / Math.sqrt(hd) + (bias ? bias[h * 25 + offsetOf(i, j)] : 0);
      });
      const max = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - max));
      const total = e.reduce((a, b) => a + b, 0);
      const p = e.map((x) => x / total);
      for (let c = h * hd; c < (h + 1) * hd; c++) out[i][c] = p.reduce((a, pj, j) => a + pj * v[j][c], 0);
      return p;
    }));
  }
  return { out, weights };
}

function feedForwardJs(x: number[], sd: StateDict, p: string): number[] {
  const hidden = linearJs(x, param(sd, `${p}.mlp.fc1.weight`), param(sd, `${p}.mlp.fc1.bias`)).map(geluJs);
  return linearJs(hidden, param(sd, `${p}.mlp.fc2.weight`), param(sd, `${p}.mlp.fc2.bias`));
}

/** One sample [N][d] through a pre-norm self-attention block. */
function selfBlockJs(x: Rows, sd: StateDict, p: string, heads: number, relativeBias: boolean, keep?: number[]) {
  const d = x[0].length;
  const xn = x.map((r) => layerNormJs(r, param(sd, `${p}.norm1.weight`), param(sd, `${p}.norm1.bias`)));
  const qkv = xn.map((r) => linearJs(r, param(sd, `${p}.attn.qkv.weight`)));
  const { out, weights } = attentionJs(qkv.map((r) => r.slice(0, d)), qkv.map((r) => r.slice(d, 2 * d)), qkv.map((r) => r.slice(2 * d)),
    heads, relativeBias ? param(sd, `${p}.attn.attention_biases`) : undefined, keep);
  const attended = out.map((r, i) => linearJs(r, param(sd, `${p}.attn.proj.weight`), param(sd, `${p}.attn.proj.bias`)).map((v, c) => v + x[i][c]));
  const y = attended.map((r) => {
    const f = feedForwardJs(layerNormJs(r, param(sd, `${p}.norm2.weight`), param(sd, `${p}.norm2.bias`)), sd, p);
    return r.map((v, c) => v + f[c]);
  });
  return { y, weights };
}

/** One sample: queries [Nq][d] over context [N][d] through a cross-attention block. */
function crossBlockJs(query: Rows, context: Rows, sd: StateDict, p: string, heads: number, keep?: number[]): Rows {
  const norm = (r: number[]) => layerNormJs(r, param(sd, `${p}.norm1.weight`), param(sd, `${p}.norm1.bias`));
  const q = query.map((r) => linearJs(norm(r), param(sd, `${p}.attn.q.weight`)));
  const kv = context.map((r) => linearJs(norm(r), param(sd, `${p}.attn.kv.weight`)));
  const d = query[0].length;
  const { out } = attentionJs(q, kv.map((r) => r.slice(0, d)), kv.map((r) => r.slice(d)), heads, undefined, keep);
  const attended = out.map((r, i) => linearJs(r, param(sd, `${p}.attn.proj.weight`), param(sd, `${p}.attn.proj.bias`)).map((v, c) => v + query[i][c]));
  return attended.map((r) => {
    const f = feedForwardJs(layerNormJs(r, param(sd, `${p}.norm2.weight`), param(sd, `${p}.norm2.bias`)), sd, p);
    return r.map((v, c) => v + f[c]);
  });
}

/** PyTorch's depthwise conv (cross-correlation, zero padding k//2) with bias at one cell of a dense grid. */
function depthwiseAtJs(at: (r: number, c: number) => number[] | undefined, r: number, c: number, w: Float32Array, b: Float32Array, k: number): number[] {
  const d = b.length;
  const p = (k - 1) / 2;
  const out = Array.from(b);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const x = at(r + i - p, c + j - p);
      if (x) for (let ch = 0; ch < d; ch++) out[ch] += w[(ch * k + i) * k + j] * x[ch];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

const rand = mulberry32(2024);
const randn = (shape: number[], std = 1) => tf.tensor(normal(rand, shape.reduce((a, b) => a * b, 1), std), shape);
const host = (shape: number[], data: Float32Array): HostTensor => ({ shape, data, sourceDtype: 'float32' });
const flat = (rows: Rows[]) => rows.flat(2);

/** The state dict of `params` with layer norms, biases and bias tables made non-trivial. */
async function perturbed(params: ParameterSet): Promise<StateDict> {
  const sd = await params.stateDict();
  const r = mulberry32(11);
  for (const [key, t] of sd) {
    if (/norm\d\.weight$/.test(key)) t.data = t.data.map(() => 0.5 + r());
    else if (/norm\d\.bias$|attention_biases$/.test(key)) t.data = t.data.map(() => (r() - 0.5) * 0.8);
  }
  return sd;
}

/** tokens [B][N][d] as nested arrays. */
async function nested(t: tf.Tensor3D): Promise<Rows[]> {
  return (await t.array()) as Rows[];
}

async function useWasm(): Promise<void> {
  await initCompute({ backend: 'wasm' });
  registerWasmDepthwiseKernels();
}

// ---------------------------------------------------------------------------------------------

describe('parameter helpers', () => {
  before(useWasm);

  test('Linear: PyTorch-default bounds, seeded, [out, in] in the state dict', async () => {
    const a = new ParameterSet({ seed: 3 });
    const b = new ParameterSet({ seed: 3 });
    const la = new Linear(a, 'head', 64, 10);
    new Linear(b, 'head', 64, 10);
    const sdA = await a.stateDict();
    const sdB = await b.stateDict();
    assert.deepEqual(a.names(), ['head.weight', 'head.bias']);
    assert.deepEqual(sdA.get('head.weight')?.shape, [10, 64]);
    assert.deepEqual(la.weight.shape, [64, 10]);
    assert.deepEqual(sdA.get('head.weight')?.data, sdB.get('head.weight')?.data, 'same seed, same weights');
    const w = sdA.get('head.weight')?.data ?? new Float32Array();
    assert.ok(w.every((v) => Math.abs(v) <= 1 / 8), 'weights within 1/sqrt(in)');
    assert.ok(Math.max(...w) > 0.1 && Math.min(...w) < -0.1, 'weights spread over the range');
    const x = randn([3, 64]);
    const y = la.apply(x);
    const xs = (await x.array()) as Rows;
    const ys = (await y.array()) as Rows;
    const expected = xs.map((r) => linearJs(r, w, sdA.get('head.bias')?.data));
    assert.ok(relativeError(ys.flat(), expected.flat()) < 1e-6);
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
  });

  test('matMul2d and Linear gradients equal tfjs\' own matMul gradients', () => {
    const a = randn([7, 5]) as tf.Tensor2D;
    const b = randn([5, 9]) as tf.Tensor2D;
    const r = randn([7, 9]);
    const ours = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(matMul2d(x as tf.Tensor2D, y as tf.Tensor2D), r)))([a, b]);
    const theirs = tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y), r)))([a, b]);
    for (let i = 0; i < 2; i++) assert.ok(relativeError(ours[i].dataSync(), theirs[i].dataSync()) < 1e-6);
    // Both choices of the transposed product for dB (wide and narrow outputs).
    const wide = randn([40, 3]) as tf.Tensor2D;
    const wideW = randn([3, 50]) as tf.Tensor2D;
    const r2 = randn([40, 50]);
    const g1 = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(matMul2d(wide, w as tf.Tensor2D), r2)))(wideW);
    const g2 = tf.grad((w: tf.Tensor) => tf.sum(tf.mul(tf.matMul(wide, w), r2)))(wideW);
    assert.ok(relativeError(g1.dataSync(), g2.dataSync()) < 1e-6);
    tf.dispose([a, b, r, ...ours, ...theirs, wide, wideW, r2, g1, g2]);
  });

  test('exact GELU (erf form) and its gradient', async () => {
    const xs = Array.from({ length: 81 }, (_, i) => -6 + i * 0.15);
    const x = tf.tensor1d(xs);
    const y = gelu(x);
    const dy = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x);
    const dGelu = (v: number) => 0.5 * (1 + erf(v / Math.SQRT2)) + (v * Math.exp(-v * v / 2)) / Math.sqrt(2 * Math.PI);
    const ey = relativeError(await y.data(), xs.map(geluJs));
    const ed = relativeError(await dy.data(), xs.map(dGelu));
    assert.ok(ey < 1e-6 && ed < 1e-6, `GELU off by ${ey}, its derivative by ${ed}`);
    tf.dispose([x, y, dy]);
  });

  test('dropout: identity in inference; seeded, rate and scale in training', async () => {
    const x = tf.ones([200, 100]);
    const d1 = new Dropout(0.3, 42);
    assert.equal(d1.apply(x, 'inference'), x, 'inference returns the input itself');
    const y1 = await d1.apply(x, 'training').data();
    const y2 = await new Dropout(0.3, 42).apply(x, 'training').data();
    const y3 = await d1.apply(x, 'training').data();
    assert.deepEqual(y1, y2, 'same seed, same mask');
    assert.notDeepEqual(y1, y3, 'a new mask on every call');
    const zeros = y1.filter((v) => v === 0).length / y1.length;
    assert.ok(Math.abs(zeros - 0.3) < 0.02, `dropped ${zeros}, expected 0.3`);
    assert.ok(y1.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6), 'kept values scaled by 1/(1-p)');
    assert.throws(() => new Dropout(1, 0), /\[0, 1\)/);
    x.dispose();
  });

  test('stateDict round-trips and loadStateDict refuses bad files whole, naming key and file', async () => {
    const params = new ParameterSet({ seed: 1 });
    new TransformerBlock(params, 'neighbor.blocks.0', { dim: 8, heads: 2, mlpRatio: 2, dropout: 0.1, relativePositionBias: true });
    new APEG(params, 'global.apeg', 8);
    assert.deepEqual(params.torchShape('neighbor.blocks.0.attn.qkv.weight'), [24, 8]);
    assert.deepEqual(params.torchShape('neighbor.blocks.0.attn.attention_biases'), [2, 25]);
    assert.deepEqual(params.torchShape('global.apeg.proj.weight'), [8, 1, 3, 3]);
    const good = await perturbed(params);
    const copy = new ParameterSet({ seed: 99 });
    new TransformerBlock(copy, 'neighbor.blocks.0', { dim: 8, heads: 2, mlpRatio: 2, dropout: 0.1, relativePositionBias: true });
    new APEG(copy, 'global.apeg', 8);
    copy.loadStateDict(good, 'memory');
    for (const [k, v] of await copy.stateDict()) assert.deepEqual(v.data, good.get(k)?.data, `${k} after a round trip`);

    const before = await copy.stateDict();
    const refuse = (mutate: (sd: StateDict) => void, pattern: RegExp, options?: { prefix?: string }) => {
      const sd: StateDict = new Map([...good].map(([k, v]) => [(options?.prefix ?? '') + k, v]));
      mutate(sd);
      assert.throws(() => copy.loadStateDict(sd, '/ckpt/triplex.pth', options), (e: unknown) => {
        assert.ok(e instanceof WeightFileError, String(e));
        assert.match(e.message, /\/ckpt\/triplex\.pth/);
        assert.match(e.message, pattern);
        return true;
      });
    };
    refuse((sd) => sd.delete('neighbor.blocks.0.mlp.fc2.bias'), /neighbor\.blocks\.0\.mlp\.fc2\.bias/);
    refuse((sd) => sd.set('neighbor.blocks.0.attn.qkv.weight', host([8, 24], new Float32Array(192))), /attn\.qkv\.weight.*\[8, 24\].*\[24, 8\]/);
    refuse((sd) => sd.set('neighbor.blocks.0.attn.rel_pos', host([2, 25], new Float32Array(50))), /attn\.rel_pos/);
    refuse((sd) => sd.delete('model.global.apeg.proj.bias'), /model\.global\.apeg\.proj\.bias/, { prefix: 'model.' });
    for (const [k, v] of await copy.stateDict()) assert.deepEqual(v.data, before.get(k)?.data, `${k} changed by a refused load`);
    params.dispose();
    copy.dispose();
  });
});

describe('attention blocks against a direct JS computation', () => {
  const B = 2;
  const N = 25;
  const d = 8;
  const heads = 2;
  // Sample 0: a few masked tiles; sample 1: most of the border masked. The centre (12) never is.
  const keep = [
    Array.from({ length: N }, (_, j) => ([0, 4, 20].includes(j) ? 0 : 1)),
    Array.from({ length: N }, (_, j) => (j === 12 || (j % 5 >= 1 && j % 5 <= 3 && j >= 5 && j < 20) ? 1 : 0)),
  ];
  before(useWasm);

  test('the relative-offset table is |drow| * 5 + |dcol|', () => {
    assert.equal(RELATIVE_OFFSET_INDEX.length, 625);
    for (let i = 0; i < 25; i++) {
      for (let j = 0; j < 25; j++) {
        assert.equal(RELATIVE_OFFSET_INDEX[i * 25 + j], offsetOf(i, j));
        assert.equal(RELATIVE_OFFSET_INDEX[i * 25 + j], RELATIVE_OFFSET_INDEX[j * 25 + i]);
      }
    }
    assert.deepEqual([RELATIVE_OFFSET_INDEX[0 * 25 + 24], RELATIVE_OFFSET_INDEX[4 * 25 + 20], RELATIVE_OFFSET_INDEX[12 * 25 + 13]], [24, 24, 1]);
    assert.equal(new Set(RELATIVE_OFFSET_INDEX).size, 25);
  });

  const cases = [
    { name: 'relative bias and mask (neighbor encoder)', relativeBias: true, masked: true },
    { name: 'relative bias, no mask', relativeBias: true, masked: false },
    { name: 'mask, no relative bias', relativeBias: false, masked: true },
    { name: 'plain (global encoder)', relativeBias: false, masked: false },
  ];
  for (const c of cases) {
    test(`self-attention block: ${c.name}`, async () => {
      const params = new ParameterSet({ seed: 5 });
      const block = new TransformerBlock(params, 'neighbor.blocks.0', { dim: d, heads, mlpRatio: 2, dropout: 0.3, relativePositionBias: c.relativeBias });
      const sd = await perturbed(params);
      params.loadStateDict(sd, 'memory');
      const x = randn([B, N, d]) as tf.Tensor3D;
      const mask = c.masked ? tf.tensor2d(keep) : undefined;
      const y = block.apply(x, 'inference', mask);
      const xs = await nested(x);
      const expected = xs.map((sample, b) => selfBlockJs(sample, sd, 'neighbor.blocks.0', heads, c.relativeBias, c.masked ? keep[b] : undefined).y);
      const e = relativeError(flat(await nested(y)), flat(expected));
      assert.ok(e < 1e-5, `differs from the direct computation by ${e}`);
      tf.dispose([x, y, mask]);
      params.dispose();
    });
  }

  test('masked keys get no weight; masked tiles still have outputs (masked as keys only)', async () => {
    const params = new ParameterSet({ seed: 6 });
    const block = new TransformerBlock(params, 'b', { dim: d, heads, mlpRatio: 2, dropout: 0, relativePositionBias: true });
    const sd = await perturbed(params);
    params.loadStateDict(sd, 'memory');
    const x = randn([B, N, d]) as tf.Tensor3D;
    const xs = await nested(x);
    // The direct computation's attention weights on masked keys underflow to exactly 0.
    for (let b = 0; b < B; b++) {
      const { weights } = selfBlockJs(xs[b], sd, 'b', heads, true, keep[b]);
      for (const head of weights) for (const row of head) row.forEach((p, j) => { if (keep[b][j] === 0) assert.equal(p, 0); });
    }
    // Ours: changing the masked tokens changes nothing at the valid tiles.
    const keepT = tf.tensor2d(keep);
    const noise = tf.mul(randn([B, N, d], 10), tf.reshape(tf.sub(1, keepT), [B, N, 1]));
    const x2 = tf.add(x, noise) as tf.Tensor3D;
    const [y1, y2] = [block.apply(x, 'inference', keepT), block.apply(x2, 'inference', keepT)];
    const [a1, a2] = [await nested(y1), await nested(y2)];
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < N; j++) {
        const diff = Math.max(...a1[b][j].map((v, c) => Math.abs(v - a2[b][j][c])));
        if (keep[b][j] === 1) assert.ok(diff < 1e-6, `valid tile ${j} of sample ${b} moved by ${diff}`);
        else assert.ok(diff > 1e-3 && a1[b][j].every(Number.isFinite), `masked tile ${j} of sample ${b} as a query`);
      }
    }
    tf.dispose([x, keepT, noise, x2, y1, y2]);
    params.dispose();
  });

  for (const c of [{ tokens: 25, masked: true }, { tokens: 49, masked: false }]) {
    test(`cross-attention block: one query over ${c.tokens} tokens${c.masked ? ', masked' : ''}`, async () => {
      const params = new ParameterSet({ seed: 8 });
      const block = new CrossAttentionBlock(params, 'fusion.blocks.0', { dim: d, heads, mlpRatio: 4, dropout: 0.4 });
      const sd = await perturbed(params);
      params.loadStateDict(sd, 'memory');
      const query = randn([B, 1, d]) as tf.Tensor3D;
      const context = randn([B, c.tokens, d]) as tf.Tensor3D;
      const mask = c.masked ? tf.tensor2d(keep) : undefined;
      const y = block.apply(query, context, 'inference', mask);
      assert.deepEqual(y.shape, [B, 1, d]);
      const [qs, cs] = [await nested(query), await nested(context)];
      const expected = qs.map((q, b) => crossBlockJs(q, cs[b], sd, 'fusion.blocks.0', heads, c.masked ? keep[b] : undefined));
      const e = relativeError(flat(await nested(y)), flat(expected));
      assert.ok(e < 1e-5, `differs from the direct computation by ${e}`);
      if (mask) {
        // Masked context tokens do not matter.
        const moved = tf.add(context, tf.mul(randn([B, c.tokens, d], 10), tf.reshape(tf.sub(1, mask), [B, c.tokens, 1]))) as tf.Tensor3D;
        const y2 = block.apply(query, moved, 'inference', mask);
        assert.ok(relativeError(await y2.data(), await y.data()) < 1e-6);
        tf.dispose([moved, y2]);
      }
      tf.dispose([query, context, mask, y]);
      params.dispose();
    });
  }

  test('wrong shapes are refused with the shapes named', () => {
    const params = new ParameterSet();
    const block = new TransformerBlock(params, 'neighbor.blocks.0', { dim: 8, heads: 2, mlpRatio: 1, dropout: 0, relativePositionBias: true });
    const x = tf.zeros([1, 24, 8]) as tf.Tensor3D;
    assert.throws(() => block.apply(x, 'inference'), /25 tokens/);
    const x25 = tf.zeros([1, 25, 8]) as tf.Tensor3D;
    const badMask = tf.ones([2, 25]) as tf.Tensor2D;
    assert.throws(() => block.apply(x25, 'inference', badMask), /\[2, 25\], expected \[1, 25\]/);
    assert.throws(() => new TransformerBlock(params, 'x', { dim: 10, heads: 4, mlpRatio: 1, dropout: 0 }), /10 features cannot be split into 4 heads/);
    tf.dispose([x, x25, badMask]);
    params.dispose();
  });
});

describe('APEG and PEG', () => {
  before(useWasm);
  const d = 4;
  // 9 spots on a 4 x 5 window of array rows 10..13, columns 3..7, in no particular order.
  const rows = [12, 10, 13, 11, 10, 12, 13, 11, 12];
  const cols = [4, 3, 7, 6, 5, 7, 3, 3, 5];

  test('the grid: coordinates shifted to 0, each spot on its own cell', () => {
    const grid = spotGrid(rows, cols);
    assert.deepEqual([grid.height, grid.width], [4, 5]);
    rows.forEach((r, i) => {
      assert.equal(grid.cellOfSpot[i], (r - 10) * 5 + (cols[i] - 3));
      assert.equal(grid.spotOfCell[grid.cellOfSpot[i]], i);
    });
    assert.equal([...grid.spotOfCell].filter((s) => s < 0).length, 20 - 9, 'holes stay empty');
  });

  test('two spots on one cell are an error naming both', () => {
    assert.throws(() => spotGrid([1, 2, 1], [3, 4, 3], ['AAAC', 'GGTT', 'CCTA']), /spot 0 \(AAAC\) and spot 2 \(CCTA\).*row 1, col 3/);
    assert.throws(() => spotGrid([1, 2, 1], [3, 4, 3]), /spot 0 and spot 2/);
    assert.throws(() => spotGrid([1.5], [2]), /integer array coordinates/);
    assert.throws(() => spotGrid([0, 4000], [0, 9000]), /pixel positions/);
  });

  /** An APEG or PEG with its conv set to `weight` [d, 1, 3, 3] (PyTorch layout) and `bias`. */
  function withConv<T>(make: (p: ParameterSet) => T, weight: Float32Array, bias: Float32Array): { module: T; params: ParameterSet } {
    const params = new ParameterSet();
    const module = make(params);
    params.loadStateDict(new Map([['pe.proj.weight', host([d, 1, 3, 3], weight)], ['pe.proj.bias', host([d], bias)]]), 'memory');
    return { module, params };
  }

  test('zero kernel and bias: every token comes back to its own spot', async () => {
    const grid = spotGrid(rows, cols);
    const { module, params } = withConv((p) => new APEG(p, 'pe', d), new Float32Array(d * 9), new Float32Array(d));
    const x = randn([rows.length, d]) as tf.Tensor2D;
    const y = module.apply(x, grid);
    assert.deepEqual(await y.data(), await x.data());
    tf.dispose([x, y]);
    params.dispose();
  });

  test('a known kernel: each spot gets bias + its neighbours through the kernel + itself', async () => {
    const grid: SpotGrid = spotGrid(rows, cols);
    const r = mulberry32(3);
    const w = Float32Array.from({ length: d * 9 }, () => r() - 0.5);
    const b = Float32Array.from({ length: d }, () => r() - 0.5);
    const { module, params } = withConv((p) => new APEG(p, 'pe', d), w, b);
    const x = randn([rows.length, d]) as tf.Tensor2D;
    const xs = (await x.array()) as Rows;
    const at = (rr: number, cc: number) => {
      const i = rows.findIndex((v, s) => v === rr && cols[s] === cc);
      return i < 0 ? undefined : xs[i];
    };
    const expected = xs.map((token, i) => depthwiseAtJs(at, rows[i], cols[i], w, b, 3).map((v, c) => v + token[c]));
    const y = module.apply(x, grid);
    assert.ok(relativeError(await y.data(), expected.flat()) < 1e-6);
    tf.dispose([x, y]);
    params.dispose();
  });

  for (const n of [1, 4, 9, 10, 17]) {
    test(`PEG: ${n} tokens padded with zeros to a ${PEG.side(n)} x ${PEG.side(n)} square, row by row`, async () => {
      const side = PEG.side(n);
      assert.ok(side * side >= n && (side - 1) * (side - 1) < n);
      const r = mulberry32(n);
      const w = Float32Array.from({ length: d * 9 }, () => r() - 0.5);
      const b = Float32Array.from({ length: d }, () => r() - 0.5);
      const { module, params } = withConv((p) => new PEG(p, 'pe', d), w, b);
      const x = randn([n, d]) as tf.Tensor2D;
      const xs = (await x.array()) as Rows;
      const at = (rr: number, cc: number) => (rr >= 0 && cc >= 0 && rr < side && cc < side && rr * side + cc < n ? xs[rr * side + cc] : undefined);
      const expected = xs.map((token, i) => depthwiseAtJs(at, Math.floor(i / side), i % side, w, b, 3).map((v, c) => v + token[c]));
      const y = module.apply(x);
      assert.deepEqual(y.shape, [n, d]);
      assert.ok(relativeError(await y.data(), expected.flat()) < 1e-6);
      tf.dispose([x, y]);
      params.dispose();
    });
  }
});

describe('fusion loss against hand computation', () => {
  before(useWasm);
  // Two spots, two genes.
  const y = [[1, 2], [0, -1]];
  const qF = [[1.5, 2], [0, 0]]; // MSE(qF, y) = (0.25 + 0 + 0 + 1) / 4 = 0.3125
  const qT = [[1, 1], [1, -1]]; // MSE(qT, y) = (0 + 1 + 1 + 0) / 4 = 0.5;  MSE(qT, qF) = (0.25 + 1 + 1 + 1) / 4 = 0.8125
  const qN = [[2, 2], [0, -1]]; // MSE(qN, y) = 1 / 4 = 0.25;               MSE(qN, qF) = (0.25 + 0 + 0 + 1) / 4 = 0.3125
  const qG = [[1, 2], [0, -3]]; // MSE(qG, y) = 4 / 4 = 1;                  MSE(qG, qF) = (0.25 + 0 + 0 + 9) / 4 = 2.3125
  const cases: { name: string; variant?: FusionLossVariant; alpha?: number; views: ('target' | 'neighbor' | 'global')[]; expected: number }[] = [
    { name: 'the fusion loss, alpha 0.3', views: ['target', 'neighbor', 'global'], expected: 0.3125 + 0.7 * (0.5 + 0.25 + 1) + 0.3 * (0.8125 + 0.3125 + 2.3125) },
    { name: 'alpha 0.5', alpha: 0.5, views: ['target', 'neighbor', 'global'], expected: 0.3125 + 0.5 * (0.5 + 0.25 + 1) + 0.5 * (0.8125 + 0.3125 + 2.3125) },
    { name: 'without the global view', views: ['target', 'neighbor'], expected: 0.3125 + 0.7 * (0.5 + 0.25) + 0.3 * (0.8125 + 0.3125) },
    { name: 'no distillation: the plain sum', variant: 'noDistillation', views: ['target', 'neighbor', 'global'], expected: 0.3125 + 0.5 + 0.25 + 1 },
    { name: 'prediction only', variant: 'predictionOnly', views: ['target', 'neighbor', 'global'], expected: 0.3125 },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const t = (v: number[][]) => tf.tensor2d(v);
      const [truth, fusion, target, neighbor, global] = [t(y), t(qF), t(qT), t(qN), t(qG)];
      const views = { target, neighbor, global };
      const loss = fusionLoss({ fusion, ...Object.fromEntries(c.views.map((v) => [v, views[v]])) }, truth, { variant: c.variant, alpha: c.alpha });
      assert.ok(Math.abs((await loss.data())[0] - c.expected) < 1e-6, `${(await loss.data())[0]} != ${c.expected}`);
      tf.dispose([truth, fusion, target, neighbor, global, loss]);
    });
  }

  test('no stop-gradient: distillation pulls q_F too', async () => {
    const truth = tf.tensor2d(y);
    const qTt = tf.tensor2d(qT);
    const g = tf.grad((f: tf.Tensor) => fusionLoss({ fusion: f as tf.Tensor2D, target: qTt }, truth))(tf.tensor2d(qF));
    // d/dqF [MSE(qF, y) + 0.3 MSE(qT, qF)] = 2 (qF - y) / 4 + 0.3 * 2 (qF - qT) / 4
    const expected = qF.flatMap((row, i) => row.map((v, j) => (2 * (v - y[i][j])) / 4 + (0.3 * 2 * (v - qT[i][j])) / 4));
    assert.ok(relativeError(await g.data(), expected) < 1e-6);
    tf.dispose([truth, qTt, g]);
  });
});

describe('wasm depthwise-convolution gradient kernels match the cpu backend', () => {
  type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
  const cases: { name: string; x: [number, number, number, number]; k: number; multiplier: number; stride: number; pad: Pad }[] = [
    { name: '3x3 stride 1 explicit 1 (APEG)', x: [1, 9, 11, 5], k: 3, multiplier: 1, stride: 1, pad: [[0, 0], [1, 1], [1, 1], [0, 0]] },
    { name: '3x3 stride 1 same, batch 2', x: [2, 6, 7, 4], k: 3, multiplier: 1, stride: 1, pad: 'same' },
    { name: '3x3 stride 1 valid, multiplier 2', x: [2, 9, 8, 3], k: 3, multiplier: 2, stride: 1, pad: 'valid' },
    { name: '3x3 stride 2 same', x: [2, 9, 11, 3], k: 3, multiplier: 1, stride: 2, pad: 'same' },
    { name: '5x5 stride 2 valid, multiplier 3', x: [1, 10, 11, 2], k: 5, multiplier: 3, stride: 2, pad: 'valid' },
    { name: '7x7 stride 1 same', x: [1, 7, 7, 4], k: 7, multiplier: 1, stride: 1, pad: 'same' },
  ];
  after(useWasm);

  for (const c of cases) {
    test(c.name, async (t) => {
      const xs = normal(rand, c.x.reduce((a, b) => a * b, 1));
      const ws = normal(rand, c.k * c.k * c.x[3] * c.multiplier);
      const run = () => tf.tidy(() => {
        const x = tf.tensor4d(xs, c.x);
        const w = tf.tensor4d(ws, [c.k, c.k, c.x[3], c.multiplier]);
        const yShape = tf.depthwiseConv2d(x, w, c.stride, c.pad).shape;
        const r = tf.tensor(Float32Array.from({ length: yShape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(0.37 * i)), yShape);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), r)))([x, w]);
        return [dx.dataSync(), dw.dataSync()];
      });
      await initCompute({ backend: 'cpu' });
      const reference = run();
      await useWasm();
      const before = tf.memory().numTensors;
      const got = run();
      assert.equal(tf.memory().numTensors, before, 'the kernels leak no tensors');
      const [ex, ew] = [relativeError(got[0], reference[0]), relativeError(got[1], reference[1])];
      t.diagnostic(`relative error: input ${ex.toExponential(2)}, filter ${ew.toExponential(2)}`);
      assert.ok(ex < 1e-5 && ew < 1e-5, `input gradient off by ${ex}, filter gradient by ${ew}`);
    });
  }
});

describe('no tensor leaks in forward + backward', () => {
  before(useWasm);

  /** Forward in training mode (dropout on) and gradients of every parameter; nothing may survive. */
  async function expectNoLeak(params: ParameterSet, forward: () => tf.Tensor): Promise<void> {
    const probe = tf.tidy(() => forward()); // the output shape, and warm-up
    const r = tf.randomNormal(probe.shape);
    probe.dispose();
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(forward(), r)), params.variables());
    assert.equal(Object.keys(grads).length, params.variables().length, 'a gradient for every parameter');
    for (const g of Object.values(grads)) assert.ok((await g.data()).every(Number.isFinite));
    tf.dispose([value, ...Object.values(grads)]);
    assert.equal(tf.memory().numTensors, before, 'tensors left behind');
    r.dispose();
    params.dispose();
  }

  test('neighbor block (relative bias, mask)', async () => {
    const params = new ParameterSet({ seed: 1 });
    const block = new TransformerBlock(params, 'b', { dim: 16, heads: 4, mlpRatio: 4, dropout: 0.3, relativePositionBias: true });
    const x = randn([3, 25, 16]) as tf.Tensor3D;
    const mask = tf.tensor2d(Array.from({ length: 3 }, (_, b) => Array.from({ length: 25 }, (_, j) => (j === 12 || (j + b) % 3 ? 1 : 0))));
    await expectNoLeak(params, () => block.apply(x, 'training', mask));
    tf.dispose([x, mask]);
  });

  test('global block (one 2-D product per head)', async () => {
    const params = new ParameterSet({ seed: 2 });
    const block = new TransformerBlock(params, 'b', { dim: 32, heads: 2, mlpRatio: 1, dropout: 0.1 });
    const x = randn([1, 400, 32]) as tf.Tensor3D;
    await expectNoLeak(params, () => block.apply(x, 'training'));
    x.dispose();
  });

  test('fusion block', async () => {
    const params = new ParameterSet({ seed: 3 });
    const block = new CrossAttentionBlock(params, 'b', { dim: 16, heads: 4, mlpRatio: 4, dropout: 0.4 });
    const [q, ctx] = [randn([3, 1, 16]) as tf.Tensor3D, randn([3, 49, 16]) as tf.Tensor3D];
    await expectNoLeak(params, () => block.apply(q, ctx, 'training'));
    tf.dispose([q, ctx]);
  });

  test('APEG and PEG', async () => {
    const grid = spotGrid([0, 2, 1, 4, 3], [1, 0, 3, 2, 4]);
    const x = randn([5, 8]) as tf.Tensor2D;
    const apegParams = new ParameterSet({ seed: 4 });
    const apeg = new APEG(apegParams, 'a', 8);
    await expectNoLeak(apegParams, () => apeg.apply(x, grid));
    const pegParams = new ParameterSet({ seed: 5 });
    const peg = new PEG(pegParams, 'p', 8);
    await expectNoLeak(pegParams, () => peg.apply(x));
    x.dispose();
  });
});

// ---------------------------------------------------------------------------------------------
// PyTorch parity.

type ReferenceCase = BlockCase;


const triplexReference = torchReference('torch_triplex_blocks_reference.py');

describe('TRIPLEX blocks match PyTorch, forward and backward (wasm)', { skip: torchSkip }, () => {
  let dir = '';
  let index: Record<string, ReferenceCase> = {};
  before(async () => {
    await useWasm();
    dir = triplexReference.dir();
    index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as Record<string, ReferenceCase>;
  });

  const read = (e: FileEntry): Float32Array => {
    const b = fs.readFileSync(path.join(dir, e.file));
    return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  };
  const tensorOf = (e: FileEntry) => tf.tensor(read(e), e.shape);

  /**
   * Loads the case's weights under `prefix`, runs `forward` (inference mode: dropout off) on the
   * inputs, and compares every output and the gradients of sum(output * probe) with respect to
   * every parameter and every float input.
   */
  async function checkCase(
    name: string, prefix: string, t: { diagnostic(message: string): void },
    build: (params: ParameterSet, c: ReferenceCase) => (inputs: Record<string, tf.Tensor>) => Record<string, tf.Tensor>,
  ): Promise<void> {
    const c = index[name];
    const params = new ParameterSet({ seed: 123 });
    const forward = build(params, c);
    const sd: StateDict = new Map(Object.entries(c.param).map(([k, e]) => [`${prefix}.${k}`, host(e.shape, read(e))]));
    params.loadStateDict(sd, path.join(dir, name));
    const inputs: Record<string, tf.Tensor> = {};
    const inputVars: Record<string, tf.Variable> = {};
    for (const [k, e] of Object.entries(c.input)) {
      if (c['grad/input'][k]) inputs[k] = inputVars[k] = tf.variable(tensorOf(e), true);
      else inputs[k] = tensorOf(e);
    }
    const probes = Object.fromEntries(Object.entries(c.probe).map(([k, e]) => [k, tensorOf(e)]));
    const errors: [string, number][] = [];

    const outputs = forward(inputs);
    for (const [k, e] of Object.entries(c.output)) {
      assert.deepEqual(outputs[k].shape, e.shape, `output ${k}`);
      errors.push([`output ${k}`, relativeError(await outputs[k].data(), read(e))]);
    }
    tf.dispose(Object.values(outputs));

    const { value, grads } = tf.variableGrads(() => tf.addN(Object.entries(forward(inputs)).map(([k, y]) => tf.sum(tf.mul(y, probes[k])))) as tf.Scalar,
      [...params.variables(), ...Object.values(inputVars)]);
    for (const [k, e] of Object.entries(c['grad/param'])) {
      const g = grads[params.get(`${prefix}.${k}`).name];
      errors.push([`d/d ${k}`, relativeError(params.toTorchLayout(`${prefix}.${k}`, (await g.data()) as Float32Array).data, read(e))]);
    }
    for (const [k, e] of Object.entries(c['grad/input'])) errors.push([`d/d input ${k}`, relativeError(await grads[inputVars[k].name].data(), read(e))]);
    tf.dispose([value, ...Object.values(grads), ...Object.values(inputs), ...Object.values(probes)]);
    params.dispose();

    const worst = errors.reduce((a, b) => (b[1] > a[1] ? b : a));
    t.diagnostic(`${name}: ${errors.length} tensors; worst relative error ${worst[1].toExponential(2)} (${worst[0]}); ` +
      errors.map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', '));
    for (const [k, e] of errors) assert.ok(e < 1e-4, `${name}: ${k} differs from PyTorch by ${e}`);
  }

  test('neighbor-encoder block with relative bias and mask', async (t) => {
    await checkCase('neighbor_block', 'neighbor.blocks.0', t, (params, c) => {
      const block = new TransformerBlock(params, 'neighbor.blocks.0', {
        dim: c.meta.dim, heads: c.meta.heads, mlpRatio: c.meta.mlpRatio ?? 4, dropout: 0.3, relativePositionBias: true,
      });
      return (i) => ({ y: block.apply(i.x as tf.Tensor3D, 'inference', i.mask as tf.Tensor2D) });
    });
  });

  test('global-encoder block over 400 spots (per-head products)', async (t) => {
    await checkCase('global_block', 'global.blocks.0', t, (params, c) => {
      const block = new TransformerBlock(params, 'global.blocks.0', { dim: c.meta.dim, heads: c.meta.heads, mlpRatio: c.meta.mlpRatio ?? 4, dropout: 0.1 });
      return (i) => ({ y: block.apply(i.x as tf.Tensor3D, 'inference') });
    });
  });

  test('fusion cross-attention block, shared by the target (49) and neighbor (25, masked) tokens', async (t) => {
    await checkCase('fusion_block', 'fusion.blocks.0', t, (params, c) => {
      const block = new CrossAttentionBlock(params, 'fusion.blocks.0', { dim: c.meta.dim, heads: c.meta.heads, mlpRatio: c.meta.mlpRatio ?? 4, dropout: 0.4 });
      return (i) => ({
        fromTarget: block.apply(i.query as tf.Tensor3D, i.target as tf.Tensor3D, 'inference'),
        fromNeighbor: block.apply(i.query as tf.Tensor3D, i.neighbor as tf.Tensor3D, 'inference', i.mask as tf.Tensor2D),
      });
    });
  });

  test('APEG on a grid with holes, spots in random order', async (t) => {
    await checkCase('apeg', 'global.apeg', t, (params, c) => {
      const apeg = new APEG(params, 'global.apeg', c.meta.dim, c.meta.kernelSize);
      const grid = spotGrid(c.meta.rows ?? [], c.meta.cols ?? []);
      return (i) => ({ y: apeg.apply(i.x as tf.Tensor2D, grid) });
    });
  });
});
