import type { Graph, Sym } from '../engine/graph';

/** Hist2ST's zero-inflated negative binomial loss (spec 4, "Losses") and the lgamma it needs. */

/**
 * ln Gamma(z) for z > 0 from log and division (ONNX has no lgamma): Gamma(z) = Gamma(z + 6) /
 * (z (z+1) ... (z+5)), then Stirling's series at w = z + 6 >= 6 to the w^-7 term (truncation
 * below 1e-10). Its derivative, through autodiff, is digamma's series to the same order.
 */
export function lgamma(g: Graph, z: Sym): Sym {
  let logProduct = g.log(z);
  for (let k = 1; k < 6; k++) logProduct = g.add(logProduct, g.log(g.add(z, k)));
  const w = g.add(z, 6);
  const inv = g.div(1, w);
  const inv2 = g.mul(inv, inv);
  const series = g.mul(inv, g.sub(1 / 12, g.mul(inv2, g.sub(1 / 360, g.mul(inv2, g.sub(1 / 1260, g.mul(inv2, 1 / 1680)))))));
  const stirling = g.add(g.sub(g.mul(g.sub(w, 0.5), g.log(w)), w), g.add(series, 0.5 * Math.log(2 * Math.PI)));
  return g.sub(stirling, logProduct);
}

/**
 * NB_module.ZINB_loss, ridge 0: counts x [n, G], mean mu (already times the size factors),
 * dispersion theta, dropout pi, all [n, G]; the mean over entries of the negative log-likelihood,
 * the zero case where x <= 1e-8.
 */
export function zinbLoss(g: Graph, x: Sym, mu: Sym, theta: Sym, pi: Sym): Sym {
  const eps = 1e-10;
  const thetaEps = g.add(theta, eps);
  const t1 = g.sub(g.add(lgamma(g, thetaEps), lgamma(g, g.add(x, 1))), lgamma(g, g.add(x, thetaEps)));
  const t2 = g.add(
    g.mul(g.add(theta, x), g.log(g.add(1, g.div(mu, thetaEps)))),
    g.mul(x, g.sub(g.log(thetaEps), g.log(g.add(mu, eps)))),
  );
  const nbCase = g.sub(g.add(t1, t2), g.log(g.add(g.sub(1, pi), eps)));
  const zeroNb = g.exp(g.mul(theta, g.log(g.div(theta, g.add(g.add(theta, mu), eps))))); // (theta / (theta + mu + eps))^theta
  const zeroCase = g.neg(g.log(g.add(g.add(pi, g.mul(g.sub(1, pi), zeroNb)), eps)));
  const zero = g.sub(1, g.positive(g.sub(x, 1e-8))); // 1 where x <= 1e-8
  const result = g.add(g.mul(zero, zeroCase), g.mul(g.sub(1, zero), nbCase));
  return g.mean(result, [0, 1]);
}

