import * as tf from '@tensorflow/tfjs-core';
import type { StateDict } from '../weights/stateDict';

/**
 * Adam as torch.optim.Adam (betas 0.9 / 0.999, eps 1e-8 added to sqrt(v_hat), bias-corrected,
 * no weight decay), with its moments readable and writable so that a checkpoint can resume a run
 * exactly. (tf.train.adam's epsilon defaults to the backend's 1e-7 and its state is keyed by
 * variable names that differ between processes.)
 */
export class Adam {
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];
  /** Steps taken so far. */
  step = 0;

  constructor(private readonly variables: tf.Variable[], readonly names: string[], public learningRate = 1e-4,
    readonly beta1 = 0.9, readonly beta2 = 0.999, readonly epsilon = 1e-8) {
    if (names.length !== variables.length) throw new Error(`Adam: ${variables.length} variables but ${names.length} names`);
    // tf.variable keeps its initial tensor alive; the tidy disposes the zeros and keeps the variables.
    this.m = tf.tidy(() => variables.map((x) => tf.variable(tf.zerosLike(x), false)));
    this.v = tf.tidy(() => variables.map((x) => tf.variable(tf.zerosLike(x), false)));
  }

  /** One update from gradients given in the variables' order. */
  apply(grads: tf.Tensor[]): void {
    if (grads.length !== this.variables.length) throw new Error(`Adam: ${grads.length} gradients for ${this.variables.length} variables`);
    this.step++;
    const correction1 = 1 - this.beta1 ** this.step;
    const correction2 = 1 - this.beta2 ** this.step;
    // p -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps), PyTorch's arithmetic.
    const stepSize = this.learningRate / correction1;
    const sqrtC2 = Math.sqrt(correction2);
    tf.tidy(() => {
      this.variables.forEach((p, i) => {
        const g = grads[i];
        const m = tf.add(tf.mul(this.m[i], this.beta1), tf.mul(g, 1 - this.beta1));
        const v = tf.add(tf.mul(this.v[i], this.beta2), tf.mul(tf.square(g), 1 - this.beta2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        p.assign(tf.sub(p, tf.mul(tf.div(m, tf.add(tf.div(tf.sqrt(v), sqrtC2), this.epsilon)), stepSize)));
      });
    });
  }

  /** The moments as `optimizer.exp_avg.<name>` / `optimizer.exp_avg_sq.<name>` ([flat] each). */
  async state(): Promise<StateDict> {
    const sd: StateDict = new Map();
    for (let i = 0; i < this.names.length; i++) {
      sd.set(`optimizer.exp_avg.${this.names[i]}`, { shape: [this.m[i].size], data: (await this.m[i].data()) as Float32Array, sourceDtype: 'float32' });
      sd.set(`optimizer.exp_avg_sq.${this.names[i]}`, { shape: [this.v[i].size], data: (await this.v[i].data()) as Float32Array, sourceDtype: 'float32' });
    }
    return sd;
  }

  /** Restores moments written by state(), and the step count. */
  load(sd: StateDict, step: number, source: string): void {
    const take = (kind: string, i: number) => {
      const key = `optimizer.${kind}.${this.names[i]}`;
      const t = sd.get(key);
      if (!t || t.data.length !== this.variables[i].size) throw new Error(`${source}: optimizer state ${key} is missing or has the wrong size; the checkpoint is from another configuration`);
      return t.data;
    };
    const values = this.names.map((_, i) => [take('exp_avg', i), take('exp_avg_sq', i)]);
    tf.tidy(() => values.forEach(([m, v], i) => {
      this.m[i].assign(tf.tensor(m, this.m[i].shape));
      this.v[i].assign(tf.tensor(v, this.v[i].shape));
    }));
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** torch.optim.lr_scheduler.StepLR: lr * gamma^floor(epoch / stepSize), epochs from 0. */
export const stepLR = (base: number, epoch: number, stepSize = 50, gamma = 0.9): number => base * gamma ** Math.floor(epoch / stepSize);
