import * as path from 'node:path';
import { cropSpots, SPOT_SIZE, toNormalizedFloat } from '../image/crops';
import { cropScalePlan } from '../image/cropScale';
import { openSlideImage, type SlideImage } from '../image/slideImage';
import { resampledImage } from '../image/wsiImage';
import { resnet18TensorsFrom, seededResNet18StateDict } from '../models/resnet18Weights';
import { resnet18Executor, resnet18FeaturesKey } from '../features/encoders';
import { ResNet18Encoder } from '../features/resnet18Encoder';
import { openDatasetStore, type DatasetStore } from '../store/datasetStore';
import type { EngineChoice } from '../engine/choice';
import type { Executor } from '../engine/executor';
import { loadStateDict } from '../weights';
import type { StateDict } from '../weights/stateDict';
import { LAYER3_CHANNELS, LAYER3_SIDE } from './batches';
import type { SectionInputs, TrainingData } from './data';

/**
 * The target view's inputs when the ResNet18 trunk itself is trained (modes `full` and
 * `layer4`): the spots' 224 px crops cut from the sections' images at the run's training scale,
 * and for `layer4` those crops once through the frozen conv1..layer3. Frozen mode needs neither:
 * it reads the cached token maps.
 *
 * Memory: a crop is 147 KB (uint8) and a layer3 map 196 KB (float32) per spot, held for every
 * section of the run (about 0.35 GB per 1,000 spots in mode layer4).
 */

/** The sections among `ids` whose store records no image: no crops can be cut for them. */
export function sectionsWithoutImage(storeDir: string, ids: Iterable<string>): string[] {
  const wanted = new Set(ids);
  return openDatasetStore(storeDir).manifest.sections.filter((s) => wanted.has(s.id) && !s.image?.path).map((s) => s.id);
}

/**
 * Cuts the 224 px target crop of every spot of the sections not yet cut (held in `section.crops`),
 * at the run's training scale (`data.cropMpp`, the scale its features were extracted at): a
 * section scanned at another scale is resampled by the plan and helper extraction uses, and
 * `say` is told so in one line.
 */
export async function loadTargetCrops(data: TrainingData, sections: readonly SectionInputs[], why = 'modes layer4 and full train the target encoder on the spots\' crops',
  say?: (line: string) => void): Promise<void> {
  const todo = sections.filter((s) => !s.crops);
  if (todo.length === 0) return;
  const store = openDatasetStore(data.storeDir);
  for (const section of todo) {
    const source = await targetCropSource(data, section, why, say, store);
    try {
      section.crops = await source.read(0, section.n);
    } finally {
      source.close();
    }
  }
}

/**
 * A section's target crops cut by spot range, at the run's training scale (as loadTargetCrops):
 * for prediction over a section too large to hold every crop (147 kB a spot: 7.4 GB at 50,000
 * spots). The image is opened at the first read and held until `close` (a read after it opens it
 * again).
 */
export interface CropSource {
  read(from: number, count: number): Promise<Uint8Array>;
  close(): void;
}

export async function targetCropSource(data: TrainingData, section: SectionInputs, why = 'modes layer4 and full train the target encoder on the spots\' crops',
  say?: (line: string) => void, store: DatasetStore = openDatasetStore(data.storeDir)): Promise<CropSource> {
  const record = store.manifest.sections.find((s) => s.id === section.id);
  const image = record?.image?.path;
  if (!record || !image) throw new Error(`${data.storeDir}: section ${section.id} has no image, and ${why} (re-run preprocess with --with-images${why.startsWith('modes') ? ', or train in mode frozen' : ''})`);
  const scale = await cropScalePlan(data.storeDir, record, data.cropMpp);
  if (scale.note) say?.(scale.note);
  if (scale.warning) say?.(`warning: ${scale.warning}`);
  const xs = store.spots.getChild('pixel_x')?.toArray() as Float64Array;
  const ys = store.spots.getChild('pixel_y')?.toArray() as Float64Array;
  // Spot centres in the resampled image's pixels, as extraction has them.
  const spots = section.storeRows.map((r, i) => ({ x: xs[r] / scale.factor, y: ys[r] / scale.factor, id: section.spotIds[i] }));
  let img: SlideImage | undefined;
  return {
    async read(from, count) {
      if (!img) {
        const opened = await openSlideImage(image);
        img = scale.factor === 1 ? opened : resampledImage(opened, scale.factor);
      }
      return (await cropSpots(img, spots.slice(from, from + count), { target: true, neighbor: false })).target!;
    },
    close() {
      img?.close();
      img = undefined;
    },
  };
}

/**
 * The trunk a target-training run starts from: the weights the store's features were extracted
 * with (spec: the same frozen ResNet18 initialises the target encoder), checked against the
 * features folder's key, so that the three views start from one encoder.
 */
export async function initialTrunk(featuresDir: string, weights?: string): Promise<TrunkWeights> {
  const { key, identity } = resnet18FeaturesKey(weights);
  const features = path.basename(featuresDir);
  if (features !== key) {
    throw new Error(weights
      ? `the store's features (${features}) were not extracted with ${weights} (that would be ${key}); pass the --weights the features were extracted with, or extract with these`
      : `the store's features (${features}) come from a ResNet18 with weights; pass the same file with --weights, so that the target encoder starts from the encoder of the other views`);
  }
  const source = weights ?? 'seeded initialisation';
  // torchvision's names, wrapper prefixes stripped, every shape checked (naming the file).
  const picked = resnet18TensorsFrom(weights ? await loadStateDict(weights) : seededResNet18StateDict(0), source);
  return { weights: picked, identity, source };
}

/** The trunk's starting weights (torchvision names) and their identity (the features folder's). */
export interface TrunkWeights {
  weights: StateDict;
  identity: string;
  /** The file they came from, or the seeded initialisation, for messages. */
  source: string;
}

/**
 * Runs every section's crops through the trunk's frozen conv1..layer3 (inference mode, as frozen
 * encoders run; the engine's graph of models/resnet18.ts) into `section.layer3`, [n, 14, 14, 256];
 * kept across folds while the weights are the same. Only layer4 is fine-tuned in mode layer4, so
 * these maps stay valid all run long.
 */
export async function cacheLayer3(start: TrunkWeights, sections: readonly SectionInputs[], o: { batch?: number; engine?: EngineChoice; executor?: Executor } = {}): Promise<void> {
  const batch = o.batch ?? 16;
  const todo = sections.filter((s) => !(s.layer3 && s.layer3Weights === start.identity));
  if (todo.length === 0) return;
  const per = LAYER3_SIDE * LAYER3_SIDE * LAYER3_CHANNELS;
  const crop = SPOT_SIZE * SPOT_SIZE * 3;
  // The run's own executor when it was given one (a test's, or the CPU after a lost GPU), else the engine choice's.
  const encoder = new ResNet18Encoder(o.executor ?? (await resnet18Executor(o.engine)).executor, start.weights, start.source, batch);
  try {
    for (const s of todo) {
      if (!s.crops) throw new Error(`section ${s.id}: crops are not loaded`);
      const maps = new Float32Array(s.n * per);
      for (let from = 0; from < s.n; from += batch) {
        const n = Math.min(batch, s.n - from);
        maps.set(await encoder.layer3(toNormalizedFloat(s.crops.subarray(from * crop, (from + n) * crop), n, SPOT_SIZE), n), from * per);
      }
      s.layer3 = maps;
      s.layer3Weights = start.identity;
    }
  } finally {
    await encoder.dispose();
  }
}
