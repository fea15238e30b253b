import type { Graph, Shape, Sym } from '../engine/graph';
import { sizeOf } from '../engine/graph';
import type { Mode, ParamTable } from '../engine/nn';
import { batchNorm2d } from '../engine/ops/batchnorm';
import { conv2d } from '../engine/ops/conv';
import { maxPool2d } from '../engine/ops/pool';
import { normal } from '../util/random';

/**
 * torchvision's DenseNet-BC feature trunk (`features`: conv0 .. norm5; no final ReLU, no pool, no
 * classifier) on the engine's op interface, NCHW: [B, 3, H, W] -> [B, C, H/32, W/32]. Names and
 * layouts are torchvision's (`features.denseblock2.denselayer3.conv1.weight`,
 * `features.transition1.norm.running_var`, ...), so a state dict maps one to one. Mode `train`
 * normalises by batch statistics and updates the running ones; `inference` uses the running ones.
 */

export interface DenseNetConfig {
  /** Channels each dense layer adds (k in the paper). */
  growthRate: number;
  /** Dense layers per block (four blocks, three transitions between them). */
  blockConfig: readonly number[];
  /** Channels of the stem's 7x7 convolution. */
  initFeatures: number;
  /** Bottleneck width of a dense layer, in multiples of the growth rate. */
  bnSize: number;
}

/** torchvision's densenet121. */
export const DENSENET121: DenseNetConfig = { growthRate: 32, blockConfig: [6, 12, 24, 16], initFeatures: 64, bnSize: 4 };

interface ConvSpec { name: string; inC: number; outC: number; k: number }

/** torchvision's old checkpoints name a dense layer's modules `norm.1`, `conv.2`, ...; the current ones `norm1`, `conv2`. */
const OLD_LAYER_KEY = /^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$/;

/** A key of an old torchvision DenseNet checkpoint under its current name (torchvision's `_load_state_dict` remap). */
export const currentDenseNetKey = (key: string): string => key.replace(OLD_LAYER_KEY, '$1$2');

export class DenseNetTrunk {
  private readonly convs: ConvSpec[] = [];
  /** Every batch norm and its channels, in torchvision's order. */
  private readonly norms: { name: string; channels: number }[] = [];
  /** Channels of the trunk's output (1024 for densenet121). */
  readonly outFeatures: number;

  /** `prefix` goes before every tensor's name (`features.`, as in torchvision's DenseNet). */
  constructor(readonly config: DenseNetConfig, readonly prefix = 'features.') {
    const { growthRate: k, blockConfig, initFeatures, bnSize } = config;
    const p = prefix;
    this.convs.push({ name: `${p}conv0`, inC: 3, outC: initFeatures, k: 7 });
    this.norms.push({ name: `${p}norm0`, channels: initFeatures });
    let c = initFeatures;
    blockConfig.forEach((layers, b) => {
      for (let i = 0; i < layers; i++) {
        const l = `${p}denseblock${b + 1}.denselayer${i + 1}`;
        this.norms.push({ name: `${l}.norm1`, channels: c + i * k });
        this.convs.push({ name: `${l}.conv1`, inC: c + i * k, outC: bnSize * k, k: 1 });
        this.norms.push({ name: `${l}.norm2`, channels: bnSize * k });
        this.convs.push({ name: `${l}.conv2`, inC: bnSize * k, outC: k, k: 3 });
      }
      c += layers * k;
      if (b < blockConfig.length - 1) {
        const t = `${p}transition${b + 1}`;
        this.norms.push({ name: `${t}.norm`, channels: c });
        this.convs.push({ name: `${t}.conv`, inC: c, outC: Math.floor(c / 2), k: 1 });
        c = Math.floor(c / 2);
      }
    });
    this.norms.push({ name: `${p}norm5`, channels: c });
    this.outFeatures = c;
  }

  /** Trainable tensors (conv weights, batch-norm weight and bias), torchvision's names and shapes, in its order. */
  parameterShapes(): Map<string, Shape> {
    const out = new Map<string, Shape>();
    for (const s of this.convs) out.set(`${s.name}.weight`, [s.outC, s.inC, s.k, s.k]);
    for (const n of this.norms) {
      out.set(`${n.name}.weight`, [n.channels]);
      out.set(`${n.name}.bias`, [n.channels]);
    }
    return out;
  }

  /** Running statistics: `<norm>.running_mean` and `<norm>.running_var`, [C] each. */
  bufferShapes(): Map<string, Shape> {
    return new Map(this.norms.flatMap((n) => [[`${n.name}.running_mean`, [n.channels]], [`${n.name}.running_var`, [n.channels]]] as const));
  }

  /** Trainable values, counted from the shapes (nothing allocated): 6,953,856 for densenet121. */
  parameterCount(): number {
    return [...this.parameterShapes().values()].reduce((n, s) => n + sizeOf(s), 0);
  }

  /**
   * Adds the parameters to `t` with torchvision's initialisation: kaiming_normal_ convolutions
   * (fan-in, gain sqrt 2: std sqrt(2 / (in k k))), batch norm weight 1 and bias 0.
   */
  declare(t: ParamTable): void {
    for (const [name, shape] of this.parameterShapes()) {
      if (shape.length === 4) t.add(name, shape, normal(t.random, sizeOf(shape), Math.sqrt(2 / (shape[1] * shape[2] * shape[3]))));
      else t.constant(name, shape, name.endsWith('.weight') ? 1 : 0);
    }
  }

  /** Running statistics as a fresh nn.BatchNorm2d has them: means 0, variances 1. */
  initialBuffers(): Map<string, Float32Array> {
    return new Map([...this.bufferShapes()].map(([n, s]) => [n, new Float32Array(sizeOf(s)).fill(n.endsWith('running_var') ? 1 : 0)]));
  }

  /** x [B, 3, H, W] (ImageNet-normalised) -> features after norm5 [B, C, H', W'] (H' = H/32 for H a multiple of 32). */
  apply(g: Graph, x: Sym, mode: Mode): Sym {
    const shapes = this.parameterShapes();
    const conv = (name: string, input: Sym, stride = 1, pad = 0): Sym => {
      const w = g.param(`${name}.weight`, shapes.get(`${name}.weight`) as Shape);
      return conv2d(g, input, w, { stride, pad });
    };
    const norm = (name: string, input: Sym): Sym => {
      const C = input.shape[1];
      const stats = { runningMean: `${name}.running_mean`, runningVar: `${name}.running_var` };
      return batchNorm2d(g, input, {
        weight: g.param(`${name}.weight`, [C]),
        bias: g.param(`${name}.bias`, [C]),
        runningMean: g.buffer(stats.runningMean, [C]),
        runningVar: g.buffer(stats.runningVar, [C]),
      }, mode, { update: mode === 'train' ? stats : undefined });
    };
    const p = this.prefix;
    let h = maxPool2d(g, g.relu(norm(`${p}norm0`, conv(`${p}conv0`, x, 2, 3))), { kernel: 3, stride: 2, pad: 1 }); // [B, init, H/4, W/4]
    this.config.blockConfig.forEach((layers, b) => {
      for (let i = 0; i < layers; i++) {
        const l = `${p}denseblock${b + 1}.denselayer${i + 1}`;
        const bottleneck = conv(`${l}.conv1`, g.relu(norm(`${l}.norm1`, h))); // [B, bn k, h, w]
        const added = conv(`${l}.conv2`, g.relu(norm(`${l}.norm2`, bottleneck)), 1, 1); // [B, k, h, w]
        h = g.concat([h, added], 1); // dense connectivity: [B, c + (i+1) k, h, w]
      }
      if (b < this.config.blockConfig.length - 1) {
        const t = `${p}transition${b + 1}`;
        // A 1x1 convolution without bias commutes with average pooling: pooling first is the same
        // map (up to rounding) at a quarter of the convolution's work.
        h = conv(`${t}.conv`, avgPool2x2(g, g.relu(norm(`${t}.norm`, h)))); // [B, c/2, h/2, w/2]
      }
    });
    return norm(`${p}norm5`, h);
  }
}

/** nn.AvgPool2d(2, 2): [N, C, H, W] -> [N, C, floor(H/2), floor(W/2)]; an odd last row or column is dropped, as PyTorch floors. */
export function avgPool2x2(g: Graph, x: Sym): Sym {
  const [N, C, H, W] = x.shape;
  const [Ho, Wo] = [Math.floor(H / 2), Math.floor(W / 2)];
  if (Ho < 1 || Wo < 1) throw new Error(`avgPool2x2: input [${x.shape.join(', ')}] is smaller than the 2x2 window`);
  const even = g.slice(g.slice(x, 2, 0, 2 * Ho), 3, 0, 2 * Wo); // [N, C, 2 Ho, 2 Wo]
  return g.mean(g.reshape(even, [N, C, Ho, 2, Wo, 2]), [3, 5]); // [N, C, Ho, Wo]
}
