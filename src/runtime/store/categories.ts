import * as fs from 'node:fs';
import * as path from 'node:path';
import { Utf8 } from 'apache-arrow';
import { writeFileAtomic } from './atomic';
import { buildTable, readArrowFile, stringColumn, writeArrowFile, type ColumnSpec } from './arrow';
import { openDatasetStore, recordStoreFile, type DatasetStore } from './datasetStore';
import { unsafeIdReason } from './identifiers';
import { withLock } from './lock';

/**
 * Categorical columns of a store's spots: those of spots.arrow (the pathologist's `label`, the
 * `patient`, any other text column) and the named categories saved from the viewer's selections,
 * kept apart in `categories.arrow` so that spots.arrow (which the features and runs were made
 * from) is never rewritten.
 *
 *   categories.arrow  section, spot_id, then one text column per category (null: not in it),
 *                     one row per spot of spots.arrow; read back by (section, spot_id), so a
 *                     store preprocessed again keeps the categories of the spots it still has
 *
 * Written atomically under the store's lock, its size and sha256 recorded in the manifest.
 */

export const CATEGORIES_FILE = 'categories.arrow';

/** Text columns of spots.arrow that are keys, not categories. */
const KEYS = ['section', 'spot_id'];
/** obs columns of an AnnData export (h5adExport.ts) that a saved category must not shadow. */
const OBS_NAMES = ['in_tissue', 'fold', '_index'];
/** The longest category label kept (a label is shown in a legend, not a document). */
const MAX_LABEL = 200;

export interface CategoryColumn {
  name: string;
  /** spots.arrow (given with the data) or categories.arrow (saved from a selection). */
  source: 'spots' | 'saved';
  /** One per requested row (null: the spot has no value). */
  values: (string | null)[];
}

const key = (section: string, spot: string) => `${section}\u0000${spot}`;

function textColumnNames(table: DatasetStore['spots']): string[] {
  return table.schema.fields.filter((f) => f.type instanceof Utf8 && !KEYS.includes(f.name)).map((f) => f.name);
}

/** The saved categories, by name, each a map from (section, spot_id) to its label. */
function readSaved(dir: string): Map<string, Map<string, string>> {
  const file = path.join(dir, CATEGORIES_FILE);
  const out = new Map<string, Map<string, string>>();
  if (!fs.existsSync(file)) return out;
  const table = readArrowFile(file);
  let sections: string[];
  let spots: string[];
  try {
    sections = stringColumn(table, 'section');
    spots = stringColumn(table, 'spot_id');
  } catch (cause) {
    throw new Error(`${file}: ${(cause as Error).message}; it is not a categories file this TRIPLEX wrote (remove it to start again)`, { cause });
  }
  for (const name of textColumnNames(table)) {
    const values = stringColumn(table, name);
    const labels = new Map<string, string>();
    values.forEach((v, i) => { if (v !== null) labels.set(key(sections[i], spots[i]), v); });
    out.set(name, labels);
  }
  return out;
}

/**
 * Every categorical column of the store for `rows` (row indices of spots.arrow; all rows when
 * omitted): spots.arrow's text columns first, then the saved categories in the order they were
 * first saved. A column with no value in these rows is left out.
 */
export function readCategoryColumns(store: DatasetStore, rows?: readonly number[]): CategoryColumn[] {
  const picked = rows ?? Array.from({ length: store.spots.numRows }, (_, i) => i);
  const out: CategoryColumn[] = [];
  for (const name of textColumnNames(store.spots)) {
    const all = stringColumn(store.spots, name);
    out.push({ name, source: 'spots', values: picked.map((r) => all[r] ?? null) });
  }
  const sections = stringColumn(store.spots, 'section');
  const spots = stringColumn(store.spots, 'spot_id');
  for (const [name, labels] of readSaved(store.dir)) {
    out.push({ name, source: 'saved', values: picked.map((r) => labels.get(key(sections[r], spots[r])) ?? null) });
  }
  return out.filter((c) => c.values.some((v) => v !== null));
}

/** Why `name` cannot name a saved category of `store`, or undefined when it can. */
export function categoryNameProblem(store: DatasetStore, name: string): string | undefined {
  const unsafe = unsafeIdReason(name);
  if (unsafe) return `the category name ${JSON.stringify(name)} ${unsafe}`;
  if (KEYS.includes(name) || OBS_NAMES.includes(name) || store.spots.schema.fields.some((f) => f.name === name)) {
    return `${JSON.stringify(name)} names a column of ${path.join(store.dir, 'spots.arrow')} or of its AnnData export; choose another name`;
  }
  return undefined;
}

export interface SaveCategoryRequest {
  /** The category (a column): letters, digits, '.', '_', '-' (identifiers.ts). */
  name: string;
  /** The value the spots get in it; the name when omitted (a category of one label). */
  label?: string;
  section: string;
  /** Spot ids of `section` to label. */
  spotIds: readonly string[];
}

export interface SaveCategorySummary {
  file: string;
  name: string;
  label: string;
  /** Spots of the section that hold the label now. */
  spots: number;
}

/**
 * Saves a selection as a named category: in `section`, the given spots get `label` in column
 * `name`; the section's other spots that held this label lose it (saving again replaces the
 * selection), and spots holding another label of the same category keep theirs, so a category of
 * several labels is built one selection at a time. Other sections and categories are unchanged.
 */
export async function saveCategory(dir: string, request: SaveCategoryRequest): Promise<SaveCategorySummary> {
  const label = request.label?.trim() || request.name;
  if (label.length > MAX_LABEL || /[\u0000-\u001f]/.test(label)) throw new Error(`the label ${JSON.stringify(label.slice(0, 40))} is longer than ${MAX_LABEL} characters or holds control characters; give a shorter, plain label`);
  return withLock(dir, 'triplex viewer (save category)', async () => {
    const store = openDatasetStore(dir);
    const problem = categoryNameProblem(store, request.name);
    if (problem) throw new Error(`${path.join(dir, CATEGORIES_FILE)}: ${problem}`);
    const rows = store.rowsOf(request.section);
    if (rows.length === 0) throw new Error(`${dir}: no section '${request.section}'; the sections are ${store.manifest.sections.map((s) => s.id).join(', ')}`);
    const sections = stringColumn(store.spots, 'section');
    const spots = stringColumn(store.spots, 'spot_id');
    const inSection = new Set(rows.map((r) => spots[r]));
    const unknown = request.spotIds.filter((id) => !inSection.has(id));
    if (unknown.length) throw new Error(`${dir}: section ${request.section} has no spot ${unknown.slice(0, 3).join(', ')}${unknown.length > 3 ? ` (and ${unknown.length - 3} more)` : ''}`);

    const saved = readSaved(dir);
    const labels = saved.get(request.name) ?? new Map<string, string>();
    for (const r of rows) if (labels.get(key(sections[r], spots[r])) === label) labels.delete(key(sections[r], spots[r]));
    for (const id of request.spotIds) labels.set(key(request.section, id), label);
    saved.set(request.name, labels);

    const columns: ColumnSpec[] = [
      { name: 'section', column: { kind: 'utf8', values: sections } },
      { name: 'spot_id', column: { kind: 'utf8', values: spots } },
      ...[...saved].map(([name, byKey]): ColumnSpec => ({ name, column: { kind: 'utf8', values: sections.map((s, i) => byKey.get(key(s, spots[i])) ?? null) } })),
    ];
    const file = path.join(dir, CATEGORIES_FILE);
    await writeArrowFile(file, buildTable(columns, { 'triplex:categories': '1' }));
    await recordStoreFile(dir, CATEGORIES_FILE);
    return { file, name: request.name, label, spots: new Set(request.spotIds).size };
  });
}

/** The spot ids of a selection as CSV: a `section,spot_id` header, then one row per spot. */
export function spotIdsCsv(section: string, spotIds: readonly string[]): string {
  const cell = (v: string) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return ['section,spot_id', ...spotIds.map((id) => `${cell(section)},${cell(id)}`)].join('\n') + '\n';
}

/** Writes a selection's spot ids as CSV to `file`, atomically (an existing file is replaced whole). */
export async function writeSpotIdsCsv(file: string, section: string, spotIds: readonly string[]): Promise<void> {
  await writeFileAtomic(file, spotIdsCsv(section, spotIds));
}
