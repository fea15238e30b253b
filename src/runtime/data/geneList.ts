import * as fs from 'node:fs';
import { fileKind } from './files';

/**
 * Gene lists for `preprocess --genes <file>` and `--genes-from <store|run>` (train/runSource.ts): a new dataset
 * preprocessed onto the genes of a trained model, for external validation (the paper's Table 2).
 *
 * A listed gene the data lacks is never filled with zeros: the store leaves it out (its genes are
 * the listed ones that the data has, in the list's order) and names it in the manifest's
 * `missingGenes`, so that metrics, which align genes by name, leave it out too.
 */

/** Reads a file of gene names: one a line, blank lines and `#` comments ignored, no name twice. */
export function readGeneListFile(file: string): string[] {
  let text: string;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new Error(`is ${fileKind(stat)}`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${file}: not a readable gene list (${(e as Error).message}); give a text file of gene names, one a line`, { cause: e });
  }
  const genes: string[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const name = raw.replace(/#.*/, '').trim();
    if (!name) return;
    if (/\s/.test(name)) throw new Error(`${file}, line ${i + 1}: '${name}' is not one gene name (one name a line; # starts a comment)`);
    const before = seen.get(name);
    if (before !== undefined) throw new Error(`${file}, line ${i + 1}: gene ${name} is listed again (first on line ${before}); list each gene once`);
    seen.set(name, i + 1);
    genes.push(name);
  });
  if (genes.length === 0) throw new Error(`${file}: no gene names in it (one a line; # starts a comment)`);
  return genes;
}

export interface GeneAlignment {
  /** The wanted genes the data has, in the wanted order. */
  shared: string[];
  /** The wanted genes the data lacks, in the wanted order. */
  missing: string[];
}

/**
 * Which of the `wanted` genes (a model's) the data has. Fewer than half shared is refused: the
 * scores of such a model would say little about it. `what` names the data in the message.
 */
export function alignGenes(wanted: readonly string[], available: Iterable<string>, what: string): GeneAlignment {
  const have = new Set(available);
  const shared = wanted.filter((g) => have.has(g));
  const missing = wanted.filter((g) => !have.has(g));
  if (shared.length * 2 < wanted.length) {
    throw new Error(`${what} has only ${shared.length} of the ${wanted.length} genes asked for (fewer than half; missing e.g. ${missing.slice(0, 5).join(', ')}); ` +
      'use a model trained on genes this data measures, or data that measures the model\'s genes');
  }
  return { shared, missing };
}
