import type { Graph, Sym } from '../engine/graph';
import { sizeOf } from '../engine/graph';
import { Linear, ParamTable, type Mode } from '../engine/nn';
import { currentDenseNetKey, DENSENET121, DenseNetTrunk, type DenseNetConfig } from '../models/densenet121';
import { stripKeyPrefixes, WeightFileError, type StateDict } from '../weights/stateDict';
import { clampMin, imagenetNCHW, mseLoss, need, type BaselineDims, type BaselineInputs, type BaselineNet, type InputName } from './model';

/**
 * ST-Net (He et al. 2020) as TRIPLEX's re-implementation has it (spec §2, T:src/model/st_net):
 * one ImageNet-normalised crop per spot -> torchvision's DenseNet trunk (`features.*`) -> ReLU ->
 * global average pool -> `classifier` Linear(C -> G). T's state dict holds the same names under
 * `model.`. One deliberate change (the spec's bug B4): T clamps the output at 0 before the loss,
 * which leaves a gene whose output drifts negative without gradient; here the loss is the MSE of
 * the unclamped output and only the prediction is clamped.
 */

export interface StNetConfig extends DenseNetConfig {
  /** Side of the square crops (the learner averages the store's 224-px crops down by an integer factor). */
  cropSize: number;
}

export const STNET_PRESETS: { paper: StNetConfig; demo: StNetConfig } = {
  // DenseNet-121 on 224-px crops, as T (spec §10).
  paper: { ...DENSENET121, blockConfig: [...DENSENET121.blockConfig], cropSize: 224 },
  // DenseNet-121's shape at a fraction of its width and depth (growth 12, 16 dense layers instead
  // of 58, 32 stem channels): 0.15 M trunk parameters instead of 6.95 M, 0.17 M with 250 genes.
  // 112-px crops (the 224-px crop averaged 2x2: the same field of view) keep the last block at 3x3
  // rather than the 1x1 of 56 px, where batch statistics would be over the batch alone, and cost
  // a quarter of 224 px: a 32-spot Adam step took 0.3-1.3 s on one onnxruntime thread of a busy
  // 2-core machine, so an epoch of ~600 spots takes 10-25 s.
  demo: { growthRate: 12, blockConfig: [2, 4, 6, 4], initFeatures: 32, bnSize: 4, cropSize: 112 },
};

/** Trainable values of ST-Net for `genes` outputs, from the shapes (7,210,106 for the paper preset and 250 genes). */
export function stnetParameterCount(config: StNetConfig, genes: number): number {
  const trunk = new DenseNetTrunk(config);
  return trunk.parameterCount() + trunk.outFeatures * genes + genes;
}

export class StNet implements BaselineNet {
  readonly name = 'stnet' as const;
  readonly headBias = 'classifier.bias';
  readonly unit = 'spot' as const;
  readonly needs: readonly InputName[] = ['crops', 'truth'];
  readonly cropSize: number;
  readonly table: ParamTable;
  readonly trunk: DenseNetTrunk;
  private readonly classifier: Linear;

  constructor(readonly config: StNetConfig, readonly dims: BaselineDims, seed = 0) {
    this.cropSize = config.cropSize;
    this.table = new ParamTable(seed);
    this.trunk = new DenseNetTrunk(config, 'features.');
    this.trunk.declare(this.table);
    // T replaces torchvision's classifier by a fresh nn.Linear: PyTorch's default initialisation.
    this.classifier = new Linear(this.table, 'classifier', this.trunk.outFeatures, dims.genes);
  }

  initialBuffers(): Map<string, Float32Array> {
    return this.trunk.initialBuffers();
  }

  /** crops [n, S, S, 3] 0..255 -> the unclamped regression output [n, G]. */
  output(g: Graph, crops: Sym, mode: Mode): Sym {
    const features = this.trunk.apply(g, imagenetNCHW(g, crops), mode); // [n, C, S/32, S/32]
    const pooled = g.mean(g.relu(features), [2, 3]); // [n, C]
    return this.classifier.apply(g, pooled); // [n, G]
  }

  predict(g: Graph, inputs: BaselineInputs): Sym {
    const [crops] = need(this, inputs, 'crops');
    return clampMin(g, this.output(g, crops, 'inference'), 0);
  }

  loss(g: Graph, inputs: BaselineInputs): Sym {
    const [crops, truth] = need(this, inputs, 'crops', 'truth');
    return mseLoss(g, this.output(g, crops, 'train'), truth);
  }
}

/** Wrappers' key prefixes: Lightning's `model.` (T's StNet adds another `model.`), `net.`, DataParallel's `module.`. */
const WRAPPER_PREFIXES = ['model.', 'net.', 'module.'];

/**
 * The trunk's parameters and running statistics (ST-Net's names: `features.*`) from a torchvision
 * DenseNet state dict as users have it: a plain `.pth`, a Lightning checkpoint under `model.` or
 * `net.` (loadStateDict already opens its `state_dict`), or safetensors; old torchvision key names
 * (`denselayer1.norm.1.weight`) are remapped as torchvision does. The classifier is not taken: it
 * has other outputs (ImageNet's 1000 classes), and ST-Net starts it from PyTorch's default init.
 * Returns parameters and running statistics in one map (the `running_*` names are the buffers).
 * Throws a WeightFileError naming `file` and the first missing or misshapen tensor.
 */
export function stnetPretrainedWeights(sd: StateDict, file: string, trunkConfig: DenseNetConfig = DENSENET121): Map<string, Float32Array> {
  const trunk = new DenseNetTrunk(trunkConfig, 'features.');
  const shapes = new Map([...trunk.parameterShapes(), ...trunk.bufferShapes()]);
  const renamed: StateDict = new Map([...sd].filter(([k]) => k.includes('features.')).map(([k, t]) => [currentDenseNetKey(k), t]));
  const stripped = stripKeyPrefixes(renamed, WRAPPER_PREFIXES, file);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of shapes) {
    const t = stripped.get(name);
    if (!t) {
      const found = [...sd.keys()].slice(0, 3).join(', ') || '(none)';
      throw new WeightFileError(file, name, `missing: expected a torchvision DenseNet (growth ${trunkConfig.growthRate}, blocks ${trunkConfig.blockConfig.join('-')}) state dict, possibly under model./net./module. prefixes; the file's keys start ${found}`);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== sizeOf(shape)) {
      throw new WeightFileError(file, name, `has shape [${t.shape.join(', ')}], ST-Net's trunk needs [${shape.join(', ')}]`);
    }
    out.set(name, t.data);
  }
  return out;
}
