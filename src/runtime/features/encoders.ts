import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { selectEngine, type EngineChoice } from '../engine/choice';
import type { Executor } from '../engine/executor';
import { createTfjsExecutor } from '../engine/tfjs';
import { seededResNet18StateDict } from '../models/resnet18Weights';
import { createOnnxEncoder, type ImageEncoder } from '../onnx/engine';
import { ensureCompute } from '../compute/backend';
import type { StateDict } from '../weights/stateDict';
import { loadStateDict } from '../weights';
import { DenseTrunk } from './dense';
import { DEFAULT_ENCODER_BATCH, ResNet18Encoder } from './resnet18Encoder';
import { DENSE_ENCODER, featuresKey as keyOf, SEEDED_RESNET18_WEIGHTS } from './featuresKey';

/** Which frozen encoder to extract features with. */
export interface EncoderChoice {
  /** 'resnet18' (the TRIPLEX trunk), or the path of a user's .onnx image encoder. */
  encoder: string;
  /** ResNet18 weights (.pth/.ckpt/.safetensors); without them the trunk keeps its seeded initialisation. */
  weights?: string;
  /**
   * Dense features (features/dense.ts): one fully convolutional pass of the built-in ResNet18
   * over the image, crops read from its map. A features folder of its own (encoder
   * `resnet18-dense` in the key), so dense and per-crop features never mix.
   */
  dense?: boolean;
}

export interface OpenedEncoder {
  encoder: ImageEncoder;
  /** What produced the features: encoder, weights (by content hash) and engine. */
  identity: { encoder: string; weights: string; engine: string };
  /** Short stable key of encoder + weights, naming the features folder. */
  key: string;
  dispose(): Promise<void>;
}

const sha256File = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/**
 * The engine frozen ResNet18 features run on: onnxruntime when it loads (the process's executor:
 * TRIPLEX_THREADS, the execution provider of `triplex info`), else the engine's TF.js interpreter
 * of the same graphs; `choice` as --engine (TRIPLEX_ENGINE wins). `engine` says which, and why
 * not onnxruntime, in one line.
 */
export async function resnet18Executor(choice?: EngineChoice): Promise<{ executor: Executor; engine: string }> {
  const selected = await selectEngine(choice);
  if (selected.executor) return { executor: selected.executor, engine: selected.executor.describe() };
  const report = await ensureCompute();
  return { executor: createTfjsExecutor(), engine: `tfjs-${report.backend} (${selected.reason})` };
}

/**
 * The built-in ResNet18 (models/resnet18.ts) as a frozen encoder on the engine: `weights` a
 * state dict or a checkpoint file (.pth/.ckpt/.safetensors), none for the seeded initialisation.
 */
export async function openResNet18Encoder(o: { weights?: string | StateDict; batch?: number } = {}): Promise<ResNet18Encoder> {
  const source = typeof o.weights === 'string' ? o.weights : o.weights ? 'the given state dict' : 'seeded initialisation';
  const stateDict = typeof o.weights === 'string' ? await loadStateDict(o.weights) : o.weights ?? seededResNet18StateDict(0);
  const { executor } = await resnet18Executor();
  return new ResNet18Encoder(executor, stateDict, source, o.batch ?? DEFAULT_ENCODER_BATCH);
}

/**
 * Opens the encoder: a user's .onnx on onnxruntime-node, or the built-in ResNet18's engine graph
 * on onnxruntime (TF.js where onnxruntime is missing; identity.engine says so in one line). Both
 * engines compute the same function (parity < 1e-4), so the engine is not part of the key.
 */
export async function openEncoder(choice: EncoderChoice): Promise<OpenedEncoder> {
  if (choice.encoder !== 'resnet18') {
    if (choice.dense) throw new Error(`--dense applies to the built-in resnet18 encoder (a fully convolutional trunk); ${choice.encoder} is encoded crop by crop`);
    if (choice.weights) throw new Error(`--weights applies to the built-in resnet18 encoder; ${choice.encoder} carries its own weights`);
    const encoder = await createOnnxEncoder(choice.encoder);
    const weights = `sha256:${sha256File(choice.encoder)}`;
    const identity = { encoder: path.basename(choice.encoder), weights, engine: 'onnxruntime-node' };
    return { encoder, identity, key: keyOf(identity), dispose: () => encoder.dispose() };
  }
  const { identity: weights } = resnet18FeaturesKey(choice.weights);
  const stateDict = choice.weights ? await loadStateDict(choice.weights) : seededResNet18StateDict(0);
  const { executor, engine } = await resnet18Executor();
  const trunk = new ResNet18Encoder(executor, stateDict, choice.weights ?? 'seeded initialisation');
  const encoder = choice.dense ? new DenseTrunk(trunk) : trunk;
  const identity = { encoder: choice.dense ? DENSE_ENCODER : 'resnet18', weights, engine };
  return { encoder, identity, key: keyOf(identity), dispose: () => encoder.dispose() };
}

/** The features folder's key, and the weights' identity, of the built-in ResNet18 with these weights (none: the seeded initialisation). */
export function resnet18FeaturesKey(weightsFile?: string): { key: string; identity: string } {
  if (weightsFile && !fs.existsSync(weightsFile)) throw new Error(`${weightsFile}: no such weights file`);
  const identity = weightsFile ? `sha256:${sha256File(weightsFile)}` : SEEDED_RESNET18_WEIGHTS;
  return { key: keyOf({ encoder: 'resnet18', weights: identity }), identity };
}
