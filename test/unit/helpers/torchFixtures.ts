import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TriplexConfig } from '../../../src/runtime/models/triplexConfig';

/**
 * The index of the PyTorch reference fixtures (scripts/fixtures/torch_triplex_blocks_reference.py
 * and torch_triplex_reference.py): every tensor a little-endian float32 file with its shape.
 */

export interface FileEntry { file: string; shape: number[] }

/** A building-block case: parameters, inputs, outputs, the probe weights of the scalar, and gradients. */
export interface BlockCase {
  meta: { dim: number; heads: number; mlpRatio?: number; relativePositionBias?: boolean; kernelSize?: number; rows?: number[]; cols?: number[] };
  param: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  probe: Record<string, FileEntry>;
  'grad/input': Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
}

/** A whole-model case: its configuration, the batch's slides, heads, loss and gradients. */
export interface ModelCase {
  config: TriplexConfig;
  meta: { batch: number; slides?: { spots: number; rows: number[]; cols: number[] }[]; batchSlide?: number[]; batchSpot?: number[] };
  param: Record<string, FileEntry>;
  input: Record<string, FileEntry>;
  output: Record<string, FileEntry>;
  'grad/param': Record<string, FileEntry>;
  'grad/input'?: Record<string, FileEntry>;
}

/** The cases of a fixture folder's index.json. */
export const readIndex = <T>(dir: string): Record<string, T> => JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as Record<string, T>;

/** One tensor of a fixture folder. */
export function readTensor(dir: string, e: FileEntry): Float32Array {
  const b = fs.readFileSync(path.join(dir, e.file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
