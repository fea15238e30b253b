import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../runtime/compute/backend';
import { createResNet18, normalizeImageNet } from '../runtime/model/resnet18';
import { loadStateDict } from '../runtime/weights';
import { hePatch, type Patch } from '../runtime/synthetic/patches';
import { computeOptions } from './options';

/**
 * The main job, end to end on embedded data. For now: the compute layer and the ResNet18 trunk
 * on seeded H&E-like patches (frozen features, then fine-tuning the whole trunk to read nuclear
 * density off the image). It grows into the full TRIPLEX story with the data and model layers.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the end-to-end demonstration on embedded synthetic H&E patches')
    .option('--weights <checkpoint>', 'ResNet18 weights (.pth, .ckpt or .safetensors), e.g. the histology-pretrained tenpercent_resnet18.ckpt')
    .option('--steps <n>', 'fine-tuning steps', (v) => Number.parseInt(v, 10), 6)
    .action(async (opts: { weights?: string; steps: number }, cmd: Command) => {
      const report = await initCompute(computeOptions(cmd));
      console.log(`compute: ${report.backend} ${report.version}, ${report.threads} thread(s)${report.fallbackReason ? ` (${report.fallbackReason})` : ''}`);

      const net = createResNet18({ seed: 0 });
      if (opts.weights) {
        net.loadStateDict(await loadStateDict(opts.weights), opts.weights);
        console.log(`weights: ${opts.weights}`);
      } else {
        console.log('weights: random initialisation (pass --weights <checkpoint> for pretrained ones)');
      }

      const patches = Array.from({ length: 16 }, (_, i) => hePatch(1000 + i, (i % 8) / 7));
      const batch = (ps: Patch[]) => tf.tidy(() => normalizeImageNet(
        tf.tensor4d(Float32Array.from(ps.flatMap((p) => Array.from(p.rgb))), [ps.length, 224, 224, 3])));
      const targets = (ps: Patch[]) => tf.tensor2d(ps.map((p) => p.nuclearFraction * 10), [ps.length, 1]);

      let t = performance.now();
      const x = batch(patches);
      const features = net.pooled(x, 'inference'); // [16, 512]
      const seconds = (performance.now() - t) / 1000;
      console.log(`frozen features: ${features.shape.join(' x ')} in ${seconds.toFixed(1)} s (${(patches.length / seconds).toFixed(1)} patches/s)`);
      features.dispose();

      // Fine-tune the whole trunk with a linear head to predict nuclear density, as the target
      // encoder of TRIPLEX is fine-tuned to predict expression.
      const train = patches.filter((_, i) => i % 2 === 0);
      const xTrain = batch(train);
      const yTrain = targets(train);
      const head = tf.variable(tf.zeros([512, 1]));
      const bias = tf.variable(tf.reshape(tf.mean(yTrain), [1]));
      const optimizer = tf.train.adam(1e-3);
      const vars = [...net.trainableVariables, head, bias];
      console.log(`fine-tuning the whole ResNet18 on ${train.length} patches, batch ${train.length}, Adam:`);
      t = performance.now();
      for (let step = 1; step <= opts.steps; step++) {
        const loss = optimizer.minimize(() => tf.losses.meanSquaredError(yTrain, tf.add(tf.matMul(net.pooled(xTrain, 'training'), head), bias)), true, vars);
        const value = (await (loss as tf.Scalar).data())[0];
        loss?.dispose();
        const elapsed = (performance.now() - t) / 1000;
        console.log(`  step ${step}/${opts.steps}  loss ${value.toFixed(4)}  ${((step * train.length) / elapsed).toFixed(2)} images/s`);
      }
      tf.dispose([x, xTrain, yTrain, head, bias]);
      optimizer.dispose();
      net.dispose();
      console.log('done: the compute layer trains ResNet18 end to end here. Next: spatial data, features as Arrow, TRIPLEX.');
    });
}
