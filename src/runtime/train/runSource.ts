import * as fs from 'node:fs';
import * as path from 'node:path';
import { MANIFEST, type StoreManifest } from '../store/datasetStore';
import { readCheckpoint } from './checkpoints';

/**
 * What a trained model is on disk: a cv run folder (fold-<k>/best.safetensors) or one checkpoint
 * file. Read by `preprocess --genes-from` and `triplex evaluate`.
 */

/** A cv run folder's fold checkpoints (`fold-<k>/best.safetensors`), in fold order. */
export function runCheckpoints(dir: string): { fold: number; file: string }[] {
  return fs.readdirSync(dir)
    .map((name) => ({ name, fold: /^fold-(\d+)$/.exec(name)?.[1] }))
    .filter((e) => e.fold !== undefined && fs.existsSync(path.join(dir, e.name, 'best.safetensors')))
    .map((e) => ({ fold: Number(e.fold), file: path.join(dir, e.name, 'best.safetensors') }))
    .sort((a, b) => a.fold - b.fold);
}

/**
 * The genes of a store (its manifest), of a cv run folder (its folds' checkpoints, which must
 * agree) or of one checkpoint file, in their order.
 */
export async function genesFrom(source: string): Promise<string[]> {
  if (!fs.existsSync(source)) throw new Error(`${source}: not found; --genes-from takes a dataset store, a cv run folder or a checkpoint (best.safetensors)`);
  if (fs.statSync(source).isFile()) return (await readCheckpoint(source)).info.genes;
  const manifestFile = path.join(source, MANIFEST);
  if (fs.existsSync(manifestFile)) {
    let manifest: StoreManifest;
    try {
      manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as StoreManifest;
    } catch (e) {
      throw new Error(`${manifestFile}: not a readable store manifest (${(e as Error).message})`, { cause: e });
    }
    const genes = manifest.preprocessing?.genes;
    if (!Array.isArray(genes) || genes.length === 0) throw new Error(`${manifestFile}: the store records no genes (made from slides without counts?); give a store with counts, a cv run or a checkpoint`);
    return genes;
  }
  const folds = runCheckpoints(source);
  if (folds.length === 0) throw new Error(`${source} is neither a dataset store (no ${MANIFEST}) nor a cv run folder (no fold-<k>/best.safetensors)`);
  let first: string[] | undefined;
  for (const { file } of folds) {
    const genes = (await readCheckpoint(file)).info.genes;
    first ??= genes;
    if (genes.length !== first.length || genes.some((g, i) => g !== first![i])) throw new Error(`${file} predicts other genes than ${folds[0].file}; the folds of one run must share their genes`);
  }
  return first!;
}
