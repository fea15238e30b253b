import * as tf from '@tensorflow/tfjs-core';

/** Batch statistics of one training-mode batch norm, for the running-statistics update. */
export interface BatchStats {
  mean: tf.Tensor1D;
  /** Biased variance, as used to normalise. */
  variance: tf.Tensor1D;
  /** Values per channel (N * H * W). */
  count: number;
}

/**
 * Training-mode batch norm over [N, H, W] per channel, with its gradient in closed form.
 *
 * Composed from tf.moments and tf.batchNorm, autodiff walks back through the moments too and
 * spends about ten full-size passes per layer; the closed form needs two reductions and two
 * per-channel affine maps. With xhat = (x - mean) * rstd and m = N * H * W:
 *   dx = gamma * rstd / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))
 *      = a * dy + b * x + c, with per-channel a, b, c.
 * `onStats` receives the batch statistics (alive only during the call) for the running update.
 */
export function batchNormTraining(
  x: tf.Tensor4D, gamma: tf.Tensor1D, beta: tf.Tensor1D, eps: number, onStats: (s: BatchStats) => void,
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xx, g, bIn, save] = args as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.GradSaveFunc];
    const { mean, variance } = tf.moments(xx, [0, 1, 2]) as { mean: tf.Tensor1D; variance: tf.Tensor1D };
    const m = xx.shape[0] * xx.shape[1] * xx.shape[2];
    onStats({ mean, variance, count: m });
    const rstd = tf.rsqrt(tf.add(variance, eps)) as tf.Tensor1D;
    save([xx, g, mean, rstd]);
    const value = tf.batchNorm4d(xx, mean, variance, bIn, g, eps);
    const gradFunc = (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
      const d = dy as tf.Tensor4D;
      const [sx, sg, smean, srstd] = saved as [tf.Tensor4D, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D];
      const sumDy = tf.sum(d, [0, 1, 2]); // [C]
      // sum(dy * xhat) = rstd * (sum(dy * x) - mean * sum(dy))
      const sumDyXhat = tf.mul(srstd, tf.sub(tf.sum(tf.mul(d, sx), [0, 1, 2]), tf.mul(smean, sumDy))); // [C]
      const a = tf.mul(sg, srstd) as tf.Tensor1D; // [C]
      const b = tf.neg(tf.div(tf.mul(tf.mul(a, srstd), sumDyXhat), m)) as tf.Tensor1D;
      const c = tf.sub(tf.neg(tf.div(tf.mul(a, sumDy), m)), tf.mul(b, smean)) as tf.Tensor1D;
      // a * dy + (b * x + c), each a single per-channel affine kernel (batchNorm with mean 0, var 1).
      const zero = tf.zerosLike(a);
      const unit = tf.onesLike(a);
      const dx = tf.add(affine(d, a, zero, zero, unit), affine(sx, b, c, zero, unit));
      return [dx, sumDyXhat, sumDy];
    };
    return { value, gradFunc };
  });
  return op(x, gamma, beta) as tf.Tensor4D;
}

/** x * scale + offset per channel, through the fused batch-norm kernel (variance 1, eps 0). */
function affine(x: tf.Tensor4D, scale: tf.Tensor1D, offset: tf.Tensor1D, zero: tf.Tensor1D, unit: tf.Tensor1D): tf.Tensor4D {
  return tf.batchNorm4d(x, zero, unit, offset, scale, 0);
}
