import type { Problem } from './types';

/** Problems list at most this many ids; the count is always given. */
const MAX_IDS = 8;

/** "17x14, 18x20" or "17x14, ... (12 in all)": ids for a problem message. */
export function listIds(ids: readonly string[]): string {
  if (ids.length <= MAX_IDS) return ids.join(', ');
  return `${ids.slice(0, MAX_IDS).join(', ')}, ... (${ids.length} in all)`;
}

/**
 * Gene names made unique the way scanpy's var_names_make_unique does: the second and later
 * occurrences of a name get "-1", "-2", ...; reported as one problem that says the first column
 * keeps the name (and so is the one preprocessing selects by that name).
 */
export function uniqueGeneNames(names: readonly string[], file: string, section: string | undefined, problems: Problem[]): string[] {
  const taken = new Set(names);
  if (taken.size === names.length) return [...names];
  const seen = new Map<string, number>();
  const renamed: string[] = [];
  const out = names.map((n) => {
    const k = seen.get(n);
    if (k === undefined) { seen.set(n, 0); return n; }
    let i = k + 1;
    while (taken.has(`${n}-${i}`)) i++;
    seen.set(n, i);
    taken.add(`${n}-${i}`);
    renamed.push(`${n}-${i}`);
    return `${n}-${i}`;
  });
  problems.push({ file, ...(section ? { section } : {}), message: `duplicate gene names made unique: ${listIds(renamed)} (the first column of a name keeps it; later columns are renamed, not summed)` });
  return out;
}
