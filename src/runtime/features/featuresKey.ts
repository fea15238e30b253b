import { createHash } from 'node:crypto';

/**
 * The name of a store's features folder: the encoder and its weights' identity, hashed. Kept
 * apart from the encoders (no TF.js, no onnxruntime) so that the editor can read a store's
 * folders without loading either.
 */

/** The weights' identity of the built-in ResNet18 without a weights file. */
export const SEEDED_RESNET18_WEIGHTS = 'seeded-initialisation:0';

/** The encoder name of dense features (features/dense.ts): its own key, never mixed with per-crop features. */
export const DENSE_ENCODER = 'resnet18-dense';

/** The engine does not change the features (parity tests hold them equal), so it is not in the key. */
export function featuresKey(identity: { encoder: string; weights: string }): string {
  const digest = createHash('sha256').update(`${identity.encoder}\n${identity.weights}`).digest('hex').slice(0, 12);
  return `${identity.encoder.replace(/[^A-Za-z0-9_.-]/g, '_')}-${digest}`;
}
