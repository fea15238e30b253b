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
