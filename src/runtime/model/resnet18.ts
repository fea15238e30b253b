import * as tf from '@tensorflow/tfjs-core';
import type { HostTensor, StateDict } from '../weights/stateDict';
import { WeightFileError, stripKeyPrefixes } from '../weights/stateDict';
import { mulberry32, normal } from '../util/random';
import { batchNormTraining } from './batchNorm';

/**
 * The ResNet18 trunk of TRIPLEX (torchvision's resnet18 up to layer4: no avgpool, no fc), written
 * with tfjs-core ops in NHWC so that it trains on every backend. Parameters keep torchvision's
 * names, so checkpoints map one to one; convolution weights are stored as [kh, kw, in, out].
 */
export interface ResNet18 {
  /** The 7x7 token map of each image: [N, 224, 224, 3] (ImageNet-normalised) -> [N, 7, 7, 512]. */
  tokens(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D;
  /** Global-average-pooled features: [N, 224, 224, 3] -> [N, 512]. */
  pooled(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor2D;
  /** conv1 .. layer3: [N, 224, 224, 3] -> [N, 14, 14, 256] (what mode `layer4` caches). */
  upToLayer3(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D;
  /** layer4 alone: [N, 14, 14, 256] -> [N, 7, 7, 512]; tokens(x) = layer4(upToLayer3(x)). */
  layer4(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D;
  /** Weights and batch-norm affine parameters, in a stable order. */
  readonly trainableVariables: tf.Variable[];
  /** The part of trainableVariables that belongs to layer4 (what mode `layer4` fine-tunes). */
  readonly layer4Variables: tf.Variable[];
  /** Replaces every parameter from a torchvision-compatible state dict; all-or-nothing. */
  loadStateDict(sd: StateDict, source: string): void;
  /** The parameters and batch-norm statistics in torchvision's names and layouts. */
  stateDict(): Promise<StateDict>;
  dispose(): void;
}

/**
 * `training` uses batch statistics and updates the running ones (torchvision's train mode);
 * `inference` uses the running statistics, folded into the convolutions.
 */
export type ForwardMode = 'training' | 'inference';

export interface ResNet18Options {
  /** Seed of the initial weights (PyTorch's defaults: Kaiming-normal fan-out convs, BN 1/0). */
  seed?: number;
}

const BN_EPS = 1e-5;
const BN_MOMENTUM = 0.1;
/** Key prefixes put in front of the trunk's names by training wrappers (Lightning, DataParallel). */
export const RESNET_KEY_PREFIXES = ['model.', 'resnet.', 'module.', 'backbone.', 'encoder.'];

interface ConvSpec { name: string; k: number; cin: number; cout: number }
interface BlockSpec { prefix: string; cin: number; cout: number; stride: number; downsample: boolean }

const BLOCKS: BlockSpec[] = [];
{
  let cin = 64;
  for (const [stage, cout] of [[1, 64], [2, 128], [3, 256], [4, 512]] as const) {
    for (const i of [0, 1]) {
      const stride = stage > 1 && i === 0 ? 2 : 1;
      BLOCKS.push({ prefix: `layer${stage}.${i}`, cin, cout, stride, downsample: stride !== 1 || cin !== cout });
      cin = cout;
    }
  }
}

function convSpecs(): ConvSpec[] {
  const specs: ConvSpec[] = [{ name: 'conv1', k: 7, cin: 3, cout: 64 }];
  for (const b of BLOCKS) {
    specs.push({ name: `${b.prefix}.conv1`, k: 3, cin: b.cin, cout: b.cout });
    specs.push({ name: `${b.prefix}.conv2`, k: 3, cin: b.cout, cout: b.cout });
    if (b.downsample) specs.push({ name: `${b.prefix}.downsample.0`, k: 1, cin: b.cin, cout: b.cout });
  }
  return specs;
}

/** The batch norm that follows each convolution, by torchvision's naming. */
const bnOf = (conv: string): string =>
  conv === 'conv1' ? 'bn1' : conv.endsWith('downsample.0') ? conv.replace(/0$/, '1') : conv.replace(/conv(\d)$/, 'bn$1');

/** Expected torchvision shape of every tensor the trunk needs. */
export function resnet18ParameterShapes(): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const c of convSpecs()) {
    shapes.set(`${c.name}.weight`, [c.cout, c.cin, c.k, c.k]);
    for (const p of ['weight', 'bias', 'running_mean', 'running_var']) shapes.set(`${bnOf(c.name)}.${p}`, [c.cout]);
  }
  return shapes;
}

/** [out, in, kh, kw] (PyTorch) -> [kh, kw, in, out] (TF.js). */
function oihwToHwio(t: HostTensor): Float32Array {
  const [o, i, h, w] = t.shape;
  const out = new Float32Array(t.data.length);
  for (let oo = 0; oo < o; oo++) {
    for (let ii = 0; ii < i; ii++) {
      for (let hh = 0; hh < h; hh++) {
        for (let ww = 0; ww < w; ww++) out[((hh * w + ww) * i + ii) * o + oo] = t.data[((oo * i + ii) * h + hh) * w + ww];
      }
    }
  }
  return out;
}

function hwioToOihw(data: Float32Array, [h, w, i, o]: number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let hh = 0; hh < h; hh++) {
    for (let ww = 0; ww < w; ww++) {
      for (let ii = 0; ii < i; ii++) {
        for (let oo = 0; oo < o; oo++) out[((oo * i + ii) * h + hh) * w + ww] = data[((hh * w + ww) * i + ii) * o + oo];
      }
    }
  }
  return out;
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Picks the trunk's tensors out of a checkpoint's state dict: strips wrapper prefixes, keeps the
 * keys torchvision's resnet18 trunk has, and checks every shape, naming the file and the key.
 */
export function resnet18TensorsFrom(sd: StateDict, source: string): Map<string, HostTensor> {
  const shapes = resnet18ParameterShapes();
  // Only the candidates for trunk tensors: a checkpoint's other heads may collide once stripped.
  const candidates: StateDict = new Map([...sd].filter(([key]) => [...shapes.keys()].some((k) => key === k || key.endsWith(`.${k}`))));
  const stripped = stripKeyPrefixes(candidates, RESNET_KEY_PREFIXES, source);
  const missing = [...shapes.keys()].filter((k) => !stripped.has(k));
  if (missing.length) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
    const found = [...sd.keys()].slice(0, 3).join(', ');
    throw new WeightFileError(source, missing[0],
      `${source} lacks ${missing.length} of the ${shapes.size} ResNet18 trunk tensors (${shown}); its keys start ${found || '(none)'}. Expected a torchvision resnet18 state dict, possibly under model./resnet./module. prefixes.`);
  }
  const picked = new Map<string, HostTensor>();
  for (const [key, shape] of shapes) {
    const t = stripped.get(key) as HostTensor;
    if (!sameShape(t.shape, shape)) {
      throw new WeightFileError(source, key, `${source}: tensor ${key} has shape [${t.shape.join(', ')}], the ResNet18 trunk needs [${shape.join(', ')}]`);
    }
    picked.set(key, t);
  }
  return picked;
}

/**
 * PyTorch's initial ResNet18 weights (Kaiming-normal fan-out convolutions, batch norm 1/0, running
 * statistics 0/1), seeded, as a state dict: the TF.js trunk starts from it, and the ONNX graph
 * can be built from it without TF.js.
 */
export function seededResNet18StateDict(seed = 0): StateDict {
  const rand = mulberry32(seed);
  const sd: StateDict = new Map();
  const host = (shape: number[], data: Float32Array): HostTensor => ({ shape, data, sourceDtype: 'float32' });
  for (const c of convSpecs()) {
    const std = Math.sqrt(2 / (c.cout * c.k * c.k));
    const hwio = normal(rand, c.k * c.k * c.cin * c.cout, std); // drawn in [kh, kw, in, out] order
    sd.set(`${c.name}.weight`, host([c.cout, c.cin, c.k, c.k], hwioToOihw(hwio, [c.k, c.k, c.cin, c.cout])));
    const bn = bnOf(c.name);
    sd.set(`${bn}.weight`, host([c.cout], new Float32Array(c.cout).fill(1)));
    sd.set(`${bn}.bias`, host([c.cout], new Float32Array(c.cout)));
    sd.set(`${bn}.running_mean`, host([c.cout], new Float32Array(c.cout)));
    sd.set(`${bn}.running_var`, host([c.cout], new Float32Array(c.cout).fill(1)));
  }
  return sd;
}

interface BatchNormVars { gamma: tf.Variable; beta: tf.Variable; mean: tf.Variable; variance: tf.Variable }

class ResNet18Trunk implements ResNet18 {
  private static instances = 0;
  private readonly convs = new Map<string, tf.Variable<tf.Rank.R4>>();
  private readonly norms = new Map<string, BatchNormVars>();
  readonly trainableVariables: tf.Variable[] = [];
  readonly layer4Variables: tf.Variable[] = [];

  constructor(options: ResNet18Options) {
    const initial = seededResNet18StateDict(options.seed ?? 0);
    // Variable names are global in TF.js: number each trunk.
    const scope = `resnet18_${++ResNet18Trunk.instances}`;
    // tf.variable keeps its initial tensor alive; tidy disposes those and keeps the variables.
    tf.tidy(() => this.initialise(initial, scope));
  }

  private initialise(initial: StateDict, scope: string): void {
    const get = (key: string) => initial.get(key) as HostTensor;
    for (const c of convSpecs()) {
      const w = tf.variable(tf.tensor4d(oihwToHwio(get(`${c.name}.weight`)), [c.k, c.k, c.cin, c.cout]), true, `${scope}/${c.name}.weight`);
      const bn = bnOf(c.name);
      const norm: BatchNormVars = {
        gamma: tf.variable(tf.tensor1d(get(`${bn}.weight`).data), true, `${scope}/${bn}.weight`),
        beta: tf.variable(tf.tensor1d(get(`${bn}.bias`).data), true, `${scope}/${bn}.bias`),
        mean: tf.variable(tf.tensor1d(get(`${bn}.running_mean`).data), false, `${scope}/${bn}.running_mean`),
        variance: tf.variable(tf.tensor1d(get(`${bn}.running_var`).data), false, `${scope}/${bn}.running_var`),
      };
      this.convs.set(c.name, w);
      this.norms.set(bn, norm);
      this.trainableVariables.push(w, norm.gamma, norm.beta);
      if (c.name.startsWith('layer4.')) this.layer4Variables.push(w, norm.gamma, norm.beta);
    }
  }

  /** conv -> batch norm (-> ReLU) in the given mode. */
  private convBn(x: tf.Tensor4D, conv: string, stride: number, pad: number, relu: boolean, mode: ForwardMode): tf.Tensor4D {
    const w = this.convs.get(conv) as tf.Variable<tf.Rank.R4>;
    const bn = this.norms.get(bnOf(conv)) as BatchNormVars;
    const padding: [[number, number], [number, number], [number, number], [number, number]] = [[0, 0], [pad, pad], [pad, pad], [0, 0]];
    if (mode === 'inference') {
      // Fold the running statistics into the convolution: one fused kernel per layer.
      const scale = tf.mul(bn.gamma, tf.rsqrt(tf.add(bn.variance, BN_EPS))); // [Cout]
      const filter = tf.mul<tf.Tensor4D>(w, scale); // broadcasts over the last (output) axis
      const bias = tf.sub(bn.beta, tf.mul(bn.mean, scale));
      return tf.fused.conv2d({ x, filter, strides: stride, pad: pad === 0 ? 'valid' : padding, bias, activation: relu ? 'relu' : 'linear' });
    }
    const y = tf.conv2d(x, w, stride, pad === 0 ? 'valid' : padding);
    const out = batchNormTraining(y, bn.gamma as tf.Tensor1D, bn.beta as tf.Tensor1D, BN_EPS,
      (s) => this.updateRunningStats(bn, s.mean, s.variance, s.count));
    return relu ? tf.relu(out) : out;
  }

  /** PyTorch's update: momentum 0.1, with the unbiased batch variance. */
  private updateRunningStats(bn: BatchNormVars, mean: tf.Tensor, variance: tf.Tensor, count: number): void {
    tf.tidy(() => {
      const v = tf.mul(variance, count / Math.max(count - 1, 1));
      bn.mean.assign(tf.add(tf.mul(bn.mean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
      bn.variance.assign(tf.add(tf.mul(bn.variance, 1 - BN_MOMENTUM), tf.mul(v, BN_MOMENTUM)));
    });
  }

  private blocks(y: tf.Tensor4D, blocks: readonly BlockSpec[], mode: ForwardMode): tf.Tensor4D {
    for (const b of blocks) {
      const h: tf.Tensor4D = this.convBn(this.convBn(y, `${b.prefix}.conv1`, b.stride, 1, true, mode), `${b.prefix}.conv2`, 1, 1, false, mode);
      const shortcut = b.downsample ? this.convBn(y, `${b.prefix}.downsample.0`, b.stride, 0, false, mode) : y;
      y = tf.relu(tf.add<tf.Tensor4D>(h, shortcut));
    }
    return y;
  }

  upToLayer3(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D {
    return tf.tidy(() => {
      let y = this.convBn(x, 'conv1', 2, 3, true, mode); // [N, 112, 112, 64]
      y = tf.maxPool(y, 3, 2, [[0, 0], [1, 1], [1, 1], [0, 0]]); // [N, 56, 56, 64]
      return this.blocks(y, BLOCKS.filter((b) => !b.prefix.startsWith('layer4.')), mode); // [N, 14, 14, 256]
    });
  }

  layer4(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D {
    return tf.tidy(() => this.blocks(x, BLOCKS.filter((b) => b.prefix.startsWith('layer4.')), mode)); // [N, 7, 7, 512]
  }

  tokens(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor4D {
    return tf.tidy(() => this.layer4(this.upToLayer3(x, mode), mode));
  }

  pooled(x: tf.Tensor4D, mode: ForwardMode): tf.Tensor2D {
    return tf.tidy(() => tf.mean(this.tokens(x, mode), [1, 2])); // [N, 512]
  }

  loadStateDict(sd: StateDict, source: string): void {
    const picked = resnet18TensorsFrom(sd, source);
    // Everything is validated above; only now are variables touched.
    tf.tidy(() => {
      for (const [name, w] of this.convs) w.assign(tf.tensor4d(oihwToHwio(picked.get(`${name}.weight`) as HostTensor), w.shape));
      for (const [name, bn] of this.norms) {
        const get = (p: string) => tf.tensor1d((picked.get(`${name}.${p}`) as HostTensor).data);
        bn.gamma.assign(get('weight'));
        bn.beta.assign(get('bias'));
        bn.mean.assign(get('running_mean'));
        bn.variance.assign(get('running_var'));
      }
    });
  }

  async stateDict(): Promise<StateDict> {
    const sd: StateDict = new Map();
    const host = async (t: tf.Tensor, shape: number[], data?: (d: Float32Array) => Float32Array): Promise<HostTensor> => {
      const d = (await t.data()) as Float32Array;
      return { shape, data: data ? data(d) : d, sourceDtype: 'float32' };
    };
    for (const [name, w] of this.convs) {
      const [h, k, i, o] = w.shape;
      sd.set(`${name}.weight`, await host(w, [o, i, h, k], (d) => hwioToOihw(d, w.shape)));
    }
    for (const [name, bn] of this.norms) {
      const n = bn.gamma.shape;
      sd.set(`${name}.weight`, await host(bn.gamma, n));
      sd.set(`${name}.bias`, await host(bn.beta, n));
      sd.set(`${name}.running_mean`, await host(bn.mean, n));
      sd.set(`${name}.running_var`, await host(bn.variance, n));
    }
    return sd;
  }

  dispose(): void {
    for (const w of this.convs.values()) w.dispose();
    for (const bn of this.norms.values()) for (const v of Object.values(bn)) (v as tf.Variable).dispose();
  }
}

/** A ResNet18 trunk with PyTorch-default initial weights; load a checkpoint with loadStateDict. */
export function createResNet18(options: ResNet18Options = {}): ResNet18 {
  return new ResNet18Trunk(options);
}

/** ImageNet normalisation of RGB values in [0, 255]: [N, H, W, 3] -> [N, H, W, 3]. */
export function normalizeImageNet(rgb255: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const mean = tf.tensor1d([0.485 * 255, 0.456 * 255, 0.406 * 255]);
    const std = tf.tensor1d([0.229 * 255, 0.224 * 255, 0.225 * 255]);
    return tf.div(tf.sub(rgb255, mean), std);
  });
}
