import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createResNet18, seededResNet18StateDict } from '../model/resnet18';
import { buildResNet18Onnx } from '../onnx/resnet18Graph';
import { createOnnxEncoder, loadOnnxRuntime, onnxRuntimeStatus, type ImageEncoder } from '../onnx/engine';
import { createTfjsResNet18Encoder } from '../onnx/tfjsEncoder';
import { ensureCompute } from '../compute/backend';
import { loadStateDict } from '../weights';
import { DenseTrunk } from './dense';
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
 * Opens the encoder on the fastest engine: our ResNet18 graph on onnxruntime-node when it loads,
 * else the TF.js trunk on the active backend. Both compute the same function (parity < 1e-4).
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
  if (choice.dense) {
    const ort = await loadOnnxRuntime();
    if (!ort) throw new Error(`--dense runs ResNet18 on onnxruntime-node, which is ${onnxRuntimeStatus().reason ?? 'not available'}; extract without --dense (per-crop features on TF.js)`);
    const encoder = await DenseTrunk.open(ort, buildResNet18Onnx(stateDict, { source: choice.weights ?? 'seeded initialisation', anySize: true }));
    const identity = { encoder: DENSE_ENCODER, weights, engine: 'onnxruntime-node' };
    return { encoder, identity, key: keyOf(identity), dispose: () => encoder.dispose() };
  }
  if (await loadOnnxRuntime()) {
    // Straight from the state dict: TF.js (its backend, threads and heap) is not started at all.
    const graph = buildResNet18Onnx(stateDict, { source: choice.weights ?? 'seeded initialisation' });
    const encoder = await createOnnxEncoder(graph, { name: 'resnet18' });
    const identity = { encoder: 'resnet18', weights, engine: 'onnxruntime-node' };
    return { encoder, identity, key: keyOf(identity), dispose: () => encoder.dispose() };
  }
  const report = await ensureCompute();
  const net = createResNet18({ seed: 0 });
  if (choice.weights) net.loadStateDict(stateDict, choice.weights);
  const encoder = createTfjsResNet18Encoder(net);
  const identity = { encoder: 'resnet18', weights, engine: `tfjs-${report.backend} (${onnxRuntimeStatus().reason ?? 'onnxruntime-node unavailable'})` };
  return {
    encoder, identity, key: keyOf(identity),
    dispose: async () => {
      await encoder.dispose();
      net.dispose();
    },
  };
}

/** The features folder's key, and the weights' identity, of the built-in ResNet18 with these weights (none: the seeded initialisation). */
export function resnet18FeaturesKey(weightsFile?: string): { key: string; identity: string } {
  if (weightsFile && !fs.existsSync(weightsFile)) throw new Error(`${weightsFile}: no such weights file`);
  const identity = weightsFile ? `sha256:${sha256File(weightsFile)}` : SEEDED_RESNET18_WEIGHTS;
  return { key: keyOf({ encoder: 'resnet18', weights: identity }), identity };
}
