/**
 * A linear probe: ridge regression from frozen features to gene values, fitted in closed form.
 * Not a TRIPLEX model; a quick measure of how much expression the frozen features carry, used
 * by the demo and as a sanity check of extracted features.
 */

/** Solves (A) x = b for symmetric positive definite A [n, n] in place (Cholesky); b is [n, m]. */
function choleskySolve(A: Float64Array, n: number, b: Float64Array, m: number): Float64Array {
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j];
    for (let k = 0; k < j; k++) d -= A[j * n + k] ** 2;
    if (d <= 0) throw new Error('ridge system is not positive definite; increase lambda');
    const ljj = Math.sqrt(d);
    A[j * n + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      let s = A[i * n + j];
      for (let k = 0; k < j; k++) s -= A[i * n + k] * A[j * n + k];
      A[i * n + j] = s / ljj;
    }
  }
  const x = Float64Array.from(b);
  for (let c = 0; c < m; c++) {
    for (let i = 0; i < n; i++) {
      let s = x[i * m + c];
      for (let k = 0; k < i; k++) s -= A[i * n + k] * x[k * m + c];
      x[i * m + c] = s / A[i * n + i];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = x[i * m + c];
      for (let k = i + 1; k < n; k++) s -= A[k * n + i] * x[k * m + c];
      x[i * m + c] = s / A[i * n + i];
    }
  }
  return x;
}

export interface RidgeModel {
  /** [d + 1, g]: weights, then the intercept row. */
  weights: Float64Array;
  d: number;
  g: number;
}

/**
 * Fits Y [n, g] ~ X [n, d] with L2 penalty `lambda` on centred features. With fewer spots than
 * features it solves the dual (n x n) system, W = Xc^T (Xc Xc^T + lambda I)^-1 Yc, the same
 * weights as the primal (d x d) one at a fraction of the work; `form` forces one (for tests).
 */
export function fitRidge(X: Float32Array, Y: Float32Array, n: number, d: number, g: number, lambda = 1, form: 'auto' | 'primal' | 'dual' = 'auto'): RidgeModel {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += X[i * d + j] / n;
  const ym = new Float64Array(g);
  for (let i = 0; i < n; i++) for (let c = 0; c < g; c++) ym[c] += Y[i * g + c] / n;
  const Xc = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) Xc[i * d + j] = X[i * d + j] - mean[j];
  const Yc = new Float64Array(n * g);
  for (let i = 0; i < n; i++) for (let c = 0; c < g; c++) Yc[i * g + c] = Y[i * g + c] - ym[c];
  const W = (form === 'auto' ? n < d : form === 'dual') ? dualWeights(Xc, Yc, n, d, g, lambda) : primalWeights(Xc, Yc, n, d, g, lambda);
  const weights = new Float64Array((d + 1) * g);
  weights.set(W);
  for (let c = 0; c < g; c++) {
    let b = ym[c];
    for (let j = 0; j < d; j++) b -= mean[j] * W[j * g + c];
    weights[d * g + c] = b;
  }
  return { weights, d, g };
}

/** (Xc^T Xc + lambda I)^-1 Xc^T Yc, [d, g]. */
function primalWeights(Xc: Float64Array, Yc: Float64Array, n: number, d: number, g: number, lambda: number): Float64Array {
  const A = new Float64Array(d * d);
  const B = new Float64Array(d * g);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const rj = Xc[i * d + j];
      if (rj === 0) continue;
      for (let k = 0; k <= j; k++) A[j * d + k] += rj * Xc[i * d + k];
      for (let c = 0; c < g; c++) B[j * g + c] += rj * Yc[i * g + c];
    }
  }
  for (let j = 0; j < d; j++) {
    for (let k = 0; k < j; k++) A[k * d + j] = A[j * d + k];
    A[j * d + j] += lambda;
  }
  return choleskySolve(A, d, B, g);
}

/** Xc^T (Xc Xc^T + lambda I)^-1 Yc, [d, g]. */
function dualWeights(Xc: Float64Array, Yc: Float64Array, n: number, d: number, g: number, lambda: number): Float64Array {
  const K = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k <= i; k++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += Xc[i * d + j] * Xc[k * d + j];
      K[i * n + k] = s;
      K[k * n + i] = s;
    }
    K[i * n + i] += lambda;
  }
  const alpha = choleskySolve(K, n, Yc, g); // [n, g]
  const W = new Float64Array(d * g);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      const x = Xc[i * d + j];
      if (x === 0) continue;
      for (let c = 0; c < g; c++) W[j * g + c] += x * alpha[i * g + c];
    }
  }
  return W;
}

/** Predictions [n, g] of a fitted probe. */
export function predictRidge(m: RidgeModel, X: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * m.g);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < m.g; c++) {
      let s = m.weights[m.d * m.g + c];
      for (let j = 0; j < m.d; j++) s += X[i * m.d + j] * m.weights[j * m.g + c];
      out[i * m.g + c] = s;
    }
  }
  return out;
}
