import * as tf from '@tensorflow/tfjs-core';
import { createResNet18, type ResNet18 } from '../src/runtime/model/resnet18';
import { backendMemoryBytes } from '../src/runtime/compute/backend';
import { mulberry32, normal } from '../src/runtime/util/random';

export interface ThroughputResult {
  /** Images per second, mean over the timed iterations. */
  imagesPerSecond: number;
  best: number;
  /** Memory held by the backend afterwards (the wasm heap never shrinks, so this is its peak). */
  backendBytes: number;
  /** Tensors added by the timed iterations (after the warm-up): 0 unless something leaks. */
  tensorsLeaked: number;
}

const now = () => performance.now();

function timeIterations(batch: number, iterations: number, step: () => void): { mean: number; best: number; tensorsLeaked: number } {
  step(); // warm-up: kernel set-up, memory growth, optimizer state
  const tensors = tf.memory().numTensors;
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t = now();
    step();
    times.push(now() - t);
  }
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  return { mean: (batch * 1000) / mean, best: (batch * 1000) / Math.min(...times), tensorsLeaked: tf.memory().numTensors - tensors };
}

function randomBatch(batch: number, size: number, seed: number): tf.Tensor4D {
  return tf.tensor4d(normal(mulberry32(seed), batch * size * size * 3), [batch, size, size, 3]);
}

/** Inference-mode forward of the trunk with pooled output, as feature extraction runs it. */
export function benchForward(net: ResNet18, batch: number, size: number, iterations: number): ThroughputResult {
  const x = randomBatch(batch, size, 1);
  const r = timeIterations(batch, iterations, () => {
    const y = net.pooled(x, 'inference');
    y.dataSync();
    y.dispose();
  });
  x.dispose();
  return { imagesPerSecond: r.mean, best: r.best, backendBytes: backendMemoryBytes(), tensorsLeaked: r.tensorsLeaked };
}

/**
 * One fine-tuning step as the target encoder trains: batch-statistics forward, a linear head
 * (512 -> 250 genes), MSE, backward through every layer, Adam.
 */
export function benchTrainingStep(net: ResNet18, batch: number, size: number, iterations: number): ThroughputResult {
  const x = randomBatch(batch, size, 2);
  const target = tf.randomNormal([batch, 250], 0, 1, 'float32', 3);
  const head = tf.variable(tf.randomNormal([512, 250], 0, 0.02, 'float32', 4));
  const optimizer = tf.train.adam(1e-4);
  const vars = [...net.trainableVariables, head];
  const r = timeIterations(batch, iterations, () => {
    const loss = optimizer.minimize(() => tf.losses.meanSquaredError(target, tf.matMul(net.pooled(x, 'training'), head)), true, vars);
    loss?.dataSync();
    loss?.dispose();
  });
  const bytes = backendMemoryBytes();
  tf.dispose([x, target, head]);
  optimizer.dispose();
  return { imagesPerSecond: r.mean, best: r.best, backendBytes: bytes, tensorsLeaked: r.tensorsLeaked };
}

export { createResNet18 };
