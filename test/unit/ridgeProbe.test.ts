import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fitRidge, predictRidge } from '../../src/runtime/eval/ridgeProbe';
import { mulberry32, normal } from '../../src/runtime/util/random';

describe('ridge probe', () => {
  test('recovers a noise-free linear map (tiny penalty)', () => {
    const [n, d, g] = [200, 6, 3];
    const rand = mulberry32(1);
    const X = normal(rand, n * d);
    const W = normal(rand, d * g);
    const Y = new Float32Array(n * g);
    for (let i = 0; i < n; i++) for (let c = 0; c < g; c++) {
      let s = 0.5 * c;
      for (let j = 0; j < d; j++) s += X[i * d + j] * W[j * g + c];
      Y[i * g + c] = s;
    }
    const model = fitRidge(X, Y, n, d, g, 1e-6);
    const P = predictRidge(model, X, n);
    for (let k = 0; k < Y.length; k++) assert.ok(Math.abs(P[k] - Y[k]) < 1e-3, `${k}: ${P[k]} vs ${Y[k]}`);
  });
  test('a large penalty shrinks towards the mean', () => {
    const X = Float32Array.from([0, 1, 2, 3]);
    const Y = Float32Array.from([0, 2, 4, 6]);
    const P = predictRidge(fitRidge(X, Y, 4, 1, 1, 1e9), X, 4);
    for (const p of P) assert.ok(Math.abs(p - 3) < 1e-3);
  });
  test('with fewer spots than features, the dual system gives the primal weights', () => {
    const [n, d, g] = [30, 80, 4];
    const rand = mulberry32(2);
    const X = normal(rand, n * d);
    const Y = normal(rand, n * g);
    const primal = fitRidge(X, Y, n, d, g, 3, 'primal');
    const dual = fitRidge(X, Y, n, d, g, 3, 'dual');
    const auto = fitRidge(X, Y, n, d, g, 3);
    const worst = primal.weights.reduce((m, w, i) => Math.max(m, Math.abs(w - dual.weights[i])), 0);
    assert.ok(worst < 1e-9, `primal and dual weights differ by ${worst}`);
    assert.deepEqual([...auto.weights], [...dual.weights]);
  });
});
