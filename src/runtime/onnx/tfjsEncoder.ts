import * as tf from '@tensorflow/tfjs-core';
import type { ResNet18 } from '../model/resnet18';
import type { ImageEncoder } from './engine';

const SIZE = 224;

/**
 * The ImageEncoder interface on the TF.js ResNet18 trunk (inference mode, on the active backend):
 * the fallback when onnxruntime-node is missing. The encoder borrows `net`: dispose() releases
 * nothing of it, so the caller keeps the trunk for fine-tuning or disposes it.
 */
export function createTfjsResNet18Encoder(net: ResNet18, opts: { name?: string } = {}): ImageEncoder {
  let disposed = false;
  return {
    name: opts.name ?? `tfjs-${tf.getBackend()}:resnet18`,
    embeddingWidth: 512,
    inputSize: SIZE,
    providesTokens: true,
    async encode(batch: Float32Array, n: number) {
      if (disposed) throw new Error('the TF.js ResNet18 encoder was disposed');
      if (!Number.isInteger(n) || n < 1 || batch.length !== n * SIZE * SIZE * 3) {
        throw new Error(`tfjs ResNet18 encode: expected ${n} NHWC images of ${SIZE}x${SIZE}x3 (${n * SIZE * SIZE * 3} values), got ${batch.length} values`);
      }
      const [tokens, pooled] = tf.tidy(() => {
        const t = net.tokens(tf.tensor4d(batch, [n, SIZE, SIZE, 3]), 'inference'); // [n, 7, 7, 512]
        return [t, tf.mean(t, [1, 2])]; // [n, 512]
      });
      try {
        const [tokenData, pooledData] = await Promise.all([tokens.data(), pooled.data()]);
        return { pooled: pooledData as Float32Array, tokens: tokenData as Float32Array };
      } finally {
        tf.dispose([tokens, pooled]);
      }
    },
    async dispose() {
      disposed = true;
      return Promise.resolve();
    },
  };
}
