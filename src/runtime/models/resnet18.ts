import type { Graph, Shape, Sym } from '../engine/graph';
import { sizeOf } from '../engine/graph';
import type { Mode } from '../engine/nn';
import { batchNorm2d } from '../engine/ops/batchnorm';
import { conv2d } from '../engine/ops/conv';
import { maxPool2d } from '../engine/ops/pool';
import { mulberry32, normal } from '../util/random';

/**
 * torchvision's resnet18 trunk (conv1 .. layer4; no avgpool, no fc) on the engine's op interface,
 * NCHW: [B, 3, H, W] -> [B, 512, H/32, W/32]. Names and layouts are torchvision's
 * (`conv1.weight` [64, 3, 7, 7], `layer2.0.downsample.1.running_var`, ...), so a state dict maps
 * one to one. Mode `train` normalises by batch statistics and updates the running ones (TRIPLEX's
 * `full`); `inference` uses the running statistics (`frozen`, `layer4`, predict). Tensors whose
 * name `trainable` rejects are declared as buffers (fed, never differentiated), which is how mode
 * `layer4` keeps conv1 .. layer3 fixed inside one graph.
 */

export type Stage = 'stem' | 'layer1' | 'layer2' | 'layer3' | 'layer4';
export const STAGES: readonly Stage[] = ['stem', 'layer1', 'layer2', 'layer3', 'layer4'];

/** One convolution of the trunk and the batch norm after it (torchvision's names). */
export interface ConvSpec { name: string; inC: number; outC: number; k: number; stride: number; pad: number; bn: string; stage: Stage }

const WIDTHS = [64, 128, 256, 512];

/** Every convolution and the batch norm after it, in torchvision's order. */
function convSpecs(): ConvSpec[] {
  const specs: ConvSpec[] = [{ name: 'conv1', inC: 3, outC: 64, k: 7, stride: 2, pad: 3, bn: 'bn1', stage: 'stem' }];
  let inC = 64;
  WIDTHS.forEach((w, li) => {
    const stage = `layer${li + 1}` as Stage;
    for (let b = 0; b < 2; b++) {
      const p = `${stage}.${b}`;
      const stride = li > 0 && b === 0 ? 2 : 1;
      specs.push({ name: `${p}.conv1`, inC, outC: w, k: 3, stride, pad: 1, bn: `${p}.bn1`, stage });
      specs.push({ name: `${p}.conv2`, inC: w, outC: w, k: 3, stride: 1, pad: 1, bn: `${p}.bn2`, stage });
      if (stride !== 1 || inC !== w) specs.push({ name: `${p}.downsample.0`, inC, outC: w, k: 1, stride, pad: 0, bn: `${p}.downsample.1`, stage });
      inC = w;
    }
  });
  return specs;
}

export interface ResNet18ApplyOptions {
  /** The stages to run, in order (default all): ['layer4'] takes layer3's output [B, 256, H/16, W/16]. */
  stages?: readonly Stage[];
  /** Which weights and batch-norm affines (by torchvision name, without the prefix) are trained (g.param); the rest are buffers. Default all. */
  trainable?: (name: string) => boolean;
  /**
   * Frozen weights held in the graph as constants (by torchvision name, every tensor of the
   * stages run): nothing is fed, and onnxruntime folds each inference-mode batch norm into its
   * convolution when it builds the session. Frozen features and layer3 maps run so.
   */
  constants?: ReadonlyMap<string, Float32Array>;
}

export class ResNet18Trunk {
  /** `prefix` goes before every tensor's name in the graph (TRIPLEX's trunk is `target_encoder.`). */
  constructor(readonly prefix = '') {}

  private readonly specs = convSpecs();
  private readonly byName = new Map(this.specs.map((s) => [s.name, s]));

  /** Every convolution with its batch norm, in torchvision's order. */
  convolutions(): readonly ConvSpec[] {
    return this.specs;
  }

  /** Trainable tensors (conv weights, batch-norm weight and bias), torchvision's names and shapes. */
  parameterShapes(): Map<string, Shape> {
    const out = new Map<string, Shape>();
    for (const s of this.specs) {
      out.set(`${s.name}.weight`, [s.outC, s.inC, s.k, s.k]);
      out.set(`${s.bn}.weight`, [s.outC]);
      out.set(`${s.bn}.bias`, [s.outC]);
    }
    return out;
  }

  /** Running statistics: `<bn>.running_mean` and `<bn>.running_var`, [C] each. */
  bufferShapes(): Map<string, Shape> {
    return new Map(this.specs.flatMap((s) => [[`${s.bn}.running_mean`, [s.outC]], [`${s.bn}.running_var`, [s.outC]]] as const));
  }

  /** torchvision's initialisation: Kaiming-normal (fan-out, ReLU) convolutions, BN 1 and 0, stats 0 and 1. */
  initialValues(seed = 0): { params: Map<string, Float32Array>; buffers: Map<string, Float32Array> } {
    const random = mulberry32(seed);
    const params = new Map<string, Float32Array>();
    for (const [name, shape] of this.parameterShapes()) {
      if (name.endsWith('.weight') && shape.length === 4) params.set(name, normal(random, sizeOf(shape), Math.sqrt(2 / (shape[0] * shape[2] * shape[3]))));
      else params.set(name, new Float32Array(sizeOf(shape)).fill(name.endsWith('.weight') ? 1 : 0));
    }
    const buffers = new Map([...this.bufferShapes()].map(([n, s]) => [n, new Float32Array(sizeOf(s)).fill(n.endsWith('running_var') ? 1 : 0)]));
    return { params, buffers };
  }

  /** x [B, 3, H, W] (ImageNet-normalised) -> [B, 512, H/32, W/32], or the asked stages' output. */
  apply(g: Graph, x: Sym, mode: Mode, o: ResNet18ApplyOptions = {}): Sym {
    const stages = o.stages ?? STAGES;
    const trainable = o.trainable ?? (() => true);
    const pre = this.prefix;
    const held = o.constants;
    if (held && mode === 'train') throw new Error('ResNet18Trunk: constant weights are frozen; a training-mode forward updates running statistics');
    const constant = (name: string, shape: Shape): Sym => {
      const v = held?.get(name);
      if (!v) throw new Error(`ResNet18Trunk: no value for ${name} among the constant weights`);
      return g.constant(v, shape);
    };
    const tensor = (name: string, shape: Shape) => (held ? constant(name, shape) : trainable(name) ? g.param(pre + name, shape) : g.buffer(pre + name, shape));
    const stat = (name: string, shape: Shape) => (held ? constant(name, shape) : g.buffer(pre + name, shape));
    const convBn = (name: string, input: Sym): Sym => {
      const s = this.byName.get(name) as ConvSpec;
      const w = tensor(`${name}.weight`, [s.outC, s.inC, s.k, s.k]);
      const y = conv2d(g, input, w, { stride: s.stride, pad: s.pad }); // [B, outC, Ho, Wo]
      const stats = { runningMean: `${pre}${s.bn}.running_mean`, runningVar: `${pre}${s.bn}.running_var` };
      return batchNorm2d(g, y, {
        weight: tensor(`${s.bn}.weight`, [s.outC]),
        bias: tensor(`${s.bn}.bias`, [s.outC]),
        runningMean: stat(`${s.bn}.running_mean`, [s.outC]),
        runningVar: stat(`${s.bn}.running_var`, [s.outC]),
      }, mode, { update: mode === 'train' ? stats : undefined });
    };
    let h = x;
    for (const stage of stages) {
      if (stage === 'stem') {
        h = maxPool2d(g, g.relu(convBn('conv1', h)), { kernel: 3, stride: 2, pad: 1 }); // [B, 64, H/4, W/4]
        continue;
      }
      for (let b = 0; b < 2; b++) {
        const p = `${stage}.${b}`;
        const out = convBn(`${p}.conv2`, g.relu(convBn(`${p}.conv1`, h)));
        const skip = this.byName.has(`${p}.downsample.0`) ? convBn(`${p}.downsample.0`, h) : h;
        h = g.relu(g.add(out, skip)); // [B, C, H', W']
      }
    }
    return h;
  }
}
