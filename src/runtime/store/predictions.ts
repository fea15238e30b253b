import { readArrowFile, stringColumn, vectorColumn } from './arrow';

/** Reads a predictions file back: per section, [n, genes]. */
export function readPredictions(file: string): { genes: string[]; sections: Map<string, { spotIds: string[]; values: Float32Array }> } {
  const t = readArrowFile(file);
  const genes = JSON.parse(t.schema.metadata.get('triplex:genes') ?? '[]') as string[];
  const section = stringColumn(t, 'section');
  const ids = stringColumn(t, 'spot_id');
  const { values, width } = vectorColumn(t, 'prediction');
  const out = new Map<string, { spotIds: string[]; values: Float32Array }>();
  section.forEach((s, i) => {
    const entry = out.get(s) ?? { spotIds: [], values: new Float32Array(0) };
    entry.spotIds.push(ids[i]);
    out.set(s, entry);
  });
  let row = 0;
  for (const [, entry] of out) {
    entry.values = values.slice(row * width, (row + entry.spotIds.length) * width);
    row += entry.spotIds.length;
  }
  return { genes, sections: out };
}

/**
 * A predictions file's values for one section, in the order of `spotIds` (the store's rows of
 * that section): [spots, genes]. Errors name the file, the section and the first spot missing.
 */
export function sectionPredictions(file: string, section: string, spotIds: readonly string[]): { genes: string[]; values: Float32Array } {
  const p = readPredictions(file);
  const s = p.sections.get(section);
  if (!s) throw new Error(`${file}: no predictions for section '${section}'; it has ${[...p.sections.keys()].join(', ')}`);
  const at = new Map(s.spotIds.map((id, i) => [id, i]));
  const G = p.genes.length;
  const values = new Float32Array(spotIds.length * G);
  spotIds.forEach((id, k) => {
    const i = at.get(id);
    if (i === undefined) throw new Error(`${file}: no prediction for spot '${id}' of section '${section}'; were they made from another store?`);
    values.set(s.values.subarray(i * G, (i + 1) * G), k * G);
  });
  return { genes: p.genes, values };
}
