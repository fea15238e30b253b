import type { Graph, Sym } from '../engine/graph';
import type { Mode, ParamTable } from '../engine/nn';

/**
 * The five models the paper compares TRIPLEX with (../shared/docs/baselines-spec.md), each written
 * once against the engine's op interface and trained by the one trainer through BaselineLearner.
 * A model says what it needs (`needs`, `cropSize`, `unit`); the learner assembles those inputs
 * for a batch on the host, under the names below, and feeds them to the model's graphs.
 */

export type BaselineName = 'stnet' | 'histogene' | 'hist2st' | 'egn' | 'bleep';
export const BASELINES: readonly BaselineName[] = ['stnet', 'histogene', 'hist2st', 'egn', 'bleep'];

/** The inputs the learner can assemble for n spots, by graph-input name. */
export type InputName = 'crops' | 'truth' | 'rows' | 'cols' | 'counts' | 'sizeFactors' | 'adjacency' | 'own' | 'exemplars' | 'exemplarTargets';

/**
 * Graph inputs for a batch of n spots (a whole section for section models). Shapes:
 * - crops [n, S, S, 3] float: RGB 0..255 as read, NHWC, S = cropSize (spot models: augmented on the
 *   host in training with the spec's flips and 90-degree rotation); a model normalises them itself
 *   (imagenetNCHW, rawNCHW below);
 * - truth [n, G]: normalised, smoothed expression (the labels; BLEEP's spot encoder input);
 * - rows, cols int64 [n]: array coordinates, shifted so that the section's smallest is 0;
 * - counts [n, G]: raw counts of the genes; sizeFactors [n, 1]: panel total / section median;
 * - adjacency [n, n]: the 4-NN spot graph row-normalised (a row of an isolated spot all zero);
 * - own [n, D]: each spot's frozen global feature; exemplars [n, K, D] and exemplarTargets
 *   [n, K, G]: its K retrieved exemplars' features and labels (EGN).
 */
export type BaselineInputs = Partial<Record<InputName, Sym>>;

/** Sizes a model is built for: from the store (genes, frozen feature width). */
export interface BaselineDims {
  genes: number;
  /** Width of the store's frozen global features (EGN's exemplar features); 0 when none. */
  featureDim: number;
}

export interface BaselineNet {
  readonly name: BaselineName;
  /** The model's own settings (JSON, recorded in checkpoints). */
  readonly config: object;
  readonly dims: BaselineDims;
  /** Parameters, PyTorch's names and layouts, seeded initial values. */
  readonly table: ParamTable;
  /** Buffers (batch norm's running statistics) by name, with initial values; none when absent. */
  initialBuffers?(): Map<string, Float32Array>;
  /** 'spot': batches of single spots; 'section': one whole section per step and per prediction. */
  readonly unit: 'spot' | 'section';
  /** Side of the square crops it takes (224 or 112), 0 when it takes none. */
  readonly cropSize: number;
  /** The standard inputs its graphs read (besides the ones it declares itself, fed by trainingFeeds). */
  readonly needs: readonly InputName[];
  /** The output layer's bias [G], by parameter name (none for a retrieval model): `--init mean-bias` starts it at the training mean. */
  readonly headBias?: string;
  /** K, for EGN's exemplar inputs. */
  readonly exemplarCount?: number;
  /** Prediction [n, G] in inference mode (BLEEP: the projected image embedding [n, P]). */
  predict(g: Graph, inputs: BaselineInputs): Sym;
  /** The training loss (scalar), in training mode (dropout, batch statistics). */
  loss(g: Graph, inputs: BaselineInputs): Sym;
  /**
   * Feeds of the inputs the loss graph declares itself (Hist2ST's augmented copies), made on the
   * host for one step from the batch's (unaugmented) crops [n, S, S, 3] and the step's generator.
   */
  trainingFeeds?(crops: Float32Array, n: number, random: () => number): Record<string, Float32Array>;
  /** A retrieval model (BLEEP): predictions are the mean of the k most similar reference spots' labels. */
  readonly retrieval?: {
    k: number;
    /** Embeddings of reference labels truth [m, G] -> [m, P], inference mode. */
    embedSpots(g: Graph, truth: Sym): Sym;
  };
}

/** ImageNet's channel statistics (torchvision's Normalize). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** crops [n, S, S, 3] 0..255 -> ToTensor + Normalize(ImageNet), NCHW [n, 3, S, S]. */
export function imagenetNCHW(g: Graph, crops: Sym): Sym {
  const mean = g.constant(IMAGENET_MEAN.map((m) => m * 255), [3]);
  const inv = g.constant(IMAGENET_STD.map((s) => 1 / (255 * s)), [3]);
  return g.transpose(g.mul(g.sub(crops, mean), inv), [0, 3, 1, 2]);
}

/** crops [n, S, S, 3] 0..255 -> NCHW [n, 3, S, S], raw values (HisToGene and Hist2ST feed raw pixels, the spec's B12). */
export const rawNCHW = (g: Graph, crops: Sym): Sym => g.transpose(crops, [0, 3, 1, 2]);

/** Declares the standard inputs a model needs for n spots (names as InputName). */
export function declareInputs(g: Graph, net: BaselineNet, n: number): BaselineInputs {
  const { genes: G, featureDim: D } = net.dims;
  const K = net.exemplarCount ?? 0;
  const S = net.cropSize;
  const shapes: Record<InputName, { shape: number[]; int?: boolean }> = {
    crops: { shape: [n, S, S, 3] },
    truth: { shape: [n, G] },
    rows: { shape: [n], int: true },
    cols: { shape: [n], int: true },
    counts: { shape: [n, G] },
    sizeFactors: { shape: [n, 1] },
    adjacency: { shape: [n, n] },
    own: { shape: [n, D] },
    exemplars: { shape: [n, K, D] },
    exemplarTargets: { shape: [n, K, G] },
  };
  const out: BaselineInputs = {};
  for (const name of net.needs) out[name] = g.input(name, shapes[name].shape, shapes[name].int ? 'int64' : g.floatType);
  return out;
}

/** The named inputs, or an error naming the model and the missing one. */
export function need(net: { name: string }, inputs: BaselineInputs, ...names: InputName[]): Sym[] {
  return names.map((n) => {
    const s = inputs[n];
    if (!s) throw new Error(`${net.name}: the batch has no input '${n}'`);
    return s;
  });
}

/** Mean squared error over every entry. */
export const mseLoss = (g: Graph, a: Sym, b: Sym): Sym => g.mean(g.square(g.sub(a, b)), a.shape.map((_, i) => i));

/** max(x, min) as torch.clamp(x, min) (gradient 1 above the bound, 0 below); x itself where it is above, not x rounded through the bound. */
export const clampMin = (g: Graph, x: Sym, min: number): Sym => g.add(x, g.relu(g.sub(min, x)));

/** min(x, max) as torch.clamp(x, max=max), x itself where it is below. */
export const clampMax = (g: Graph, x: Sym, max: number): Sym => g.sub(x, g.relu(g.sub(x, max)));

export type { Mode };
