import * as tf from '@tensorflow/tfjs-core';

/**
 * The fusion loss of TRIPLEX: the fused prediction q_F is fitted to the truth y, and each
 * single-view head q_j both to y and, as distillation, to q_F:
 *   L = MSE(q_F, y) + sum over j of [(1 - alpha) MSE(q_j, y) + alpha MSE(q_j, q_F)], alpha = 0.3.
 * As in the reference, q_F is not detached: the distillation term also pulls q_F towards q_j.
 */

/** The reference's weight of the distillation terms. */
export const FUSION_LOSS_ALPHA = 0.3;

/** Predictions [B, m] of the heads for one batch; single-view heads of views left out stay undefined. */
export interface HeadPredictions {
  /** The prediction: the head on the fusion token. */
  fusion: tf.Tensor2D;
  /** TEM: the head on the mean of the target tokens. */
  target?: tf.Tensor2D;
  /** NEM: the head on the mean of the neighbor tokens. */
  neighbor?: tf.Tensor2D;
  /** GEM: the head on the spot's global token. */
  global?: tf.Tensor2D;
}

/**
 * - 'fusion': the loss above (the default).
 * - 'noDistillation': alpha = 0, the plain sum MSE(q_F, y) + sum_j MSE(q_j, y): every head
 *   supervised, none distilled from q_F.
 * - 'predictionOnly': MSE(q_F, y) alone, the single-view heads untrained. This is what we take
 *   the paper's "without the fusion loss" ablation to mean (the spec does not say).
 */
export type FusionLossVariant = 'fusion' | 'noDistillation' | 'predictionOnly';

export interface FusionLossOptions {
  variant?: FusionLossVariant;
  /** Weight of the distillation terms in the 'fusion' variant; 0.3 unless told. */
  alpha?: number;
}

/** Mean squared error over all values: [B, m] x [B, m] -> scalar (nn.MSELoss, reduction 'mean'). */
export function mse(prediction: tf.Tensor, target: tf.Tensor): tf.Scalar {
  if (prediction.shape.join() !== target.shape.join()) {
    throw new Error(`MSE of tensors of different shapes: [${prediction.shape.join(', ')}] and [${target.shape.join(', ')}]`);
  }
  return tf.tidy(() => tf.mean(tf.squaredDifference(prediction, target)));
}

/** The training loss of TRIPLEX and its ablations, as a scalar. */
export function fusionLoss(predictions: HeadPredictions, truth: tf.Tensor2D, options: FusionLossOptions = {}): tf.Scalar {
  const variant = options.variant ?? 'fusion';
  const alpha = variant === 'fusion' ? options.alpha ?? FUSION_LOSS_ALPHA : 0;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`fusion loss: alpha must be in [0, 1], got ${alpha}`);
  return tf.tidy(() => {
    let loss = mse(predictions.fusion, truth); // []
    if (variant === 'predictionOnly') return loss;
    for (const view of [predictions.target, predictions.neighbor, predictions.global]) {
      if (!view) continue;
      loss = tf.add(loss, tf.mul(mse(view, truth), 1 - alpha));
      if (alpha > 0) loss = tf.add(loss, tf.mul(mse(view, predictions.fusion), alpha));
    }
    return loss;
  });
}
