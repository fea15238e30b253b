import type { Graph, Shape, Sym } from '../engine/graph';
import { sizeOf } from '../engine/graph';
import { dropout, LayerNorm, Linear, ParamTable, type DropoutLayer, type Mode } from '../engine/nn';
import { ResNet18Trunk } from '../models/resnet18';
import { stripKeyPrefixes, WeightFileError, type StateDict } from '../weights/index';
import { imagenetNCHW, need, type BaselineDims, type BaselineInputs, type BaselineNet } from './model';

/**
 * BLEEP (Xie et al. 2023) as TRIPLEX's authors re-implemented it (spec §6; NEXGEM/TRIPLEX
 * src/model/BLEEP/BLEEP.py): a torchvision ResNet18 (fc = Identity, fine-tuned) and two
 * ProjectionHeads map a spot's crop and its expression vector into one space, trained with the
 * in-batch soft-target CLIP loss; a test spot's prediction is the mean label of the k training
 * spots whose projected expression is most cosine-similar to its projected image (retrieval.ts).
 * Names are the PyTorch module's: `image_encoder.model.conv1.weight`, `image_projection.fc.bias`,
 * `spot_projection.layer_norm.weight`, ...
 */

export interface BleepConfig {
  /** Side of the square crops (the spec's 224; smaller for a CPU demo). */
  cropSize: number;
  /** Width P of both projections (T's projection_dim). */
  projectionDim: number;
  /** Dropout rate in both projection heads. */
  dropout: number;
  /** τ of the loss. */
  temperature: number;
  /** Retrieved reference spots averaged per prediction. */
  k: number;
}

export const BLEEP_PRESETS: { paper: BleepConfig; demo: BleepConfig } = {
  /** T's config/ST/*\/BLEEP.yaml and the spec's §10. */
  paper: { cropSize: 224, projectionDim: 512, dropout: 0.1, temperature: 1, k: 50 },
  /** The same trunk on 56-px crops (4x averaged) with narrow heads; k 50 as the paper (a demo fold has hundreds of training spots). */
  demo: { cropSize: 56, projectionDim: 64, dropout: 0.1, temperature: 1, k: 50 },
};

/** Prefix of the trunk's tensors: T's `image_encoder = ImageEncoder(..)` holding `self.model = resnet18`. */
export const BLEEP_TRUNK_PREFIX = 'image_encoder.model.';

/** Width of the ResNet18's pooled features (T's image_embedding). */
const IMAGE_FEATURES = 512;

/** Trainable tensors of a projection head d_in -> P: two Linears and a LayerNorm. */
const headParameters = (dIn: number, P: number) => dIn * P + P + P * P + P + 2 * P;

/** Trainable parameters of BLEEP for `genes` spot features, from shapes alone (spec §8: 12,095,040 for the paper preset, G = 250). */
export function bleepParameterCount(config: BleepConfig, genes: number): number {
  let trunk = 0;
  for (const s of new ResNet18Trunk().parameterShapes().values()) trunk += sizeOf(s);
  return trunk + headParameters(IMAGE_FEATURES, config.projectionDim) + headParameters(genes, config.projectionDim);
}

/** BLEEP's ProjectionHead: p = projection(x); LN(dropout(fc(GELU(p))) + p). */
class ProjectionHead {
  readonly projection: Linear;
  readonly fc: Linear;
  private readonly drop: DropoutLayer;
  readonly layerNorm: LayerNorm;

  constructor(t: ParamTable, name: string, dIn: number, P: number, rate: number) {
    this.projection = new Linear(t, `${name}.projection`, dIn, P);
    this.fc = new Linear(t, `${name}.fc`, P, P);
    this.drop = t.dropout(rate);
    this.layerNorm = new LayerNorm(t, `${name}.layer_norm`, P);
  }

  /** [n, d_in] -> [n, P]. */
  apply(g: Graph, x: Sym, mode: Mode): Sym {
    const projected = this.projection.apply(g, x); // [n, P]
    const h = dropout(g, this.fc.apply(g, g.gelu(projected)), this.drop, mode); // [n, P]
    return this.layerNorm.apply(g, g.add(h, projected));
  }
}

export class BleepNet implements BaselineNet {
  readonly name = 'bleep' as const;
  readonly unit = 'spot' as const;
  readonly needs = ['crops', 'truth'] as const;
  readonly table: ParamTable;
  readonly cropSize: number;
  readonly trunk = new ResNet18Trunk(BLEEP_TRUNK_PREFIX);
  readonly imageProjection: ProjectionHead;
  readonly spotProjection: ProjectionHead;
  private readonly trunkBuffers: Map<string, Float32Array>;
  readonly retrieval: { k: number; embedSpots(g: Graph, truth: Sym): Sym };

  constructor(readonly config: BleepConfig, readonly dims: BaselineDims, seed = 0) {
    if (!Number.isInteger(config.cropSize) || config.cropSize < 32) throw new Error(`bleep: cropSize ${config.cropSize} must be an integer >= 32 (the ResNet18 halves it five times)`);
    this.cropSize = config.cropSize;
    this.table = new ParamTable(seed);
    // torchvision's initialisation for the trunk (replaced by the Ciga weights when a file is given).
    const trunkInit = this.trunk.initialValues(seed);
    for (const [n, v] of trunkInit.params) this.table.add(BLEEP_TRUNK_PREFIX + n, this.trunk.parameterShapes().get(n) as Shape, v);
    this.trunkBuffers = new Map([...trunkInit.buffers].map(([n, v]) => [BLEEP_TRUNK_PREFIX + n, v]));
    const P = config.projectionDim;
    this.imageProjection = new ProjectionHead(this.table, 'image_projection', IMAGE_FEATURES, P, config.dropout);
    this.spotProjection = new ProjectionHead(this.table, 'spot_projection', dims.genes, P, config.dropout);
    this.retrieval = { k: config.k, embedSpots: (g, truth) => this.spotProjection.apply(g, truth, 'inference') };
  }

  initialBuffers(): Map<string, Float32Array> {
    return new Map([...this.trunkBuffers].map(([n, v]) => [n, v.slice()]));
  }

  /** crops [n, S, S, 3] 0..255 -> image_projection(avgpool(resnet18(x))) [n, P]. */
  imageEmbedding(g: Graph, crops: Sym, mode: Mode): Sym {
    const maps = this.trunk.apply(g, imagenetNCHW(g, crops), mode); // [n, 512, S/32, S/32]
    return this.imageProjection.apply(g, g.mean(maps, [2, 3]), mode); // [n, P]
  }

  /** The projected image embedding [n, P] (the query; not T's unprojected features, bug B2). */
  predict(g: Graph, inputs: BaselineInputs): Sym {
    const [crops] = need(this, inputs, 'crops');
    return this.imageEmbedding(g, crops, 'inference');
  }

  loss(g: Graph, inputs: BaselineInputs): Sym {
    const [crops, truth] = need(this, inputs, 'crops', 'truth');
    return this.contrastiveLoss(g, this.imageEmbedding(g, crops, 'train'), this.spotProjection.apply(g, truth, 'train'));
  }

  /**
   * T's calculate_loss, image embeddings I and spot embeddings S [n, P]:
   *   logits = S I^T / τ,  targets = softmax_row((I I^T + S S^T) / 2 · τ),
   *   L = mean_i ½ [CE(logits_i, targets_i) + CE(logits^T_i, targets^T_i)].
   * The targets are not detached, as in T and in the original (bowang-lab/BLEEP models.py):
   * the gradient flows through them too.
   */
  contrastiveLoss(g: Graph, images: Sym, spots: Sym): Sym {
    const tau = this.config.temperature;
    const logits = g.mul(g.matmul(spots, images, false, true), 1 / tau); // [n, n]
    const similarity = g.add(g.matmul(images, images, false, true), g.matmul(spots, spots, false, true)); // [n, n]
    const targets = g.softmax(g.mul(similarity, tau / 2)); // [n, n]
    const spotsLoss = g.sum(g.mul(targets, g.logSoftmax(logits)), [1]); // [n]: -CE per row
    const imagesLoss = g.sum(g.mul(g.transpose(targets, [1, 0]), g.logSoftmax(g.transpose(logits, [1, 0]))), [1]); // [n]
    return g.mul(g.mean(g.add(spotsLoss, imagesLoss), [0]), -0.5);
  }
}

/**
 * The retrieval prediction: for each query the unweighted mean of its k neighbours' labels (T's
 * `average` method). neighbours [nq, k] row-major (row indices into the reference),
 * referenceLabels [m, G] -> [nq, G]. k is given because a flat [nq, k] array does not say it.
 */
export function bleepPredictFromRetrieval(neighbours: Int32Array, referenceLabels: Float32Array, G: number, k: number): Float32Array {
  const m = referenceLabels.length / G;
  if (!Number.isInteger(m)) throw new Error(`bleep: ${referenceLabels.length} reference values are not rows of ${G} genes`);
  if (!(k >= 1) || neighbours.length % k !== 0) throw new Error(`bleep: ${neighbours.length} neighbour indices are not rows of k = ${k}`);
  const nq = neighbours.length / k;
  const out = new Float32Array(nq * G);
  const sum = new Float64Array(G);
  for (let q = 0; q < nq; q++) {
    sum.fill(0);
    for (let j = 0; j < k; j++) {
      const r = neighbours[q * k + j];
      if (r < 0 || r >= m) throw new Error(`bleep: neighbour ${r} of query ${q} is outside the ${m} reference spots`);
      for (let c = 0; c < G; c++) sum[c] += referenceLabels[r * G + c];
    }
    for (let c = 0; c < G; c++) out[q * G + c] = sum[c] / k;
  }
  return out;
}

/**
 * The trunk's parameters and running statistics, under BLEEP's names, from a state dict: the
 * Ciga et al. `tenpercent_resnet18.ckpt` as users have it (keys `model.resnet.conv1.weight`, ...,
 * which T strips of `model.` and `resnet.`), a plain torchvision resnet18 state dict, or a
 * trained BLEEP's (`image_encoder.model.` ...). Other tensors (fc, projection heads) are ignored.
 * Throws a WeightFileError naming `file` and the first trunk tensor it lacks or whose shape differs.
 */
export function bleepPretrainedWeights(sd: StateDict, file: string): Map<string, Float32Array> {
  const trunk = new ResNet18Trunk();
  const wanted = new Map([...trunk.parameterShapes(), ...trunk.bufferShapes()]);
  // Only keys that end in a trunk tensor's name: unrelated keys may collide once stripped (the
  // original's dict overwrite would hide that; here only a real ambiguity is an error).
  const names = [...wanted.keys()];
  const candidates: StateDict = new Map([...sd].filter(([k]) => names.some((n) => k === n || k.endsWith(`.${n}`))));
  const stripped = stripKeyPrefixes(candidates, ['image_encoder.', 'model.', 'resnet.'], file);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of wanted) {
    const t = stripped.get(name);
    if (!t) throw new WeightFileError(file, name, `has no ResNet18 tensor '${name}' (after stripping the prefixes 'model.' and 'resnet.'); expected the Ciga et al. tenpercent_resnet18.ckpt or a torchvision resnet18 state dict`);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw new WeightFileError(file, name, `has shape [${t.shape.join(', ')}], ResNet18 needs [${shape.join(', ')}]`);
    out.set(BLEEP_TRUNK_PREFIX + name, t.data);
  }
  return out;
}
