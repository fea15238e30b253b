/**
 * A sample sheet: one row per section of a cohort, for `triplex preprocess --samples` and
 * `triplex dataset inspect <sheet>`. CSV (`.csv`) or tab-separated (`.tsv`, `.txt`), a header
 * line, then one row per section. Columns (header names case-insensitive, any order):
 *
 *   path     a Space Ranger folder, an .h5ad file, or a HER2+ folder (with `section`)   required
 *   patient  the patient the section comes from (folds hold out whole patients)        required
 *   section  the section id (default: the sample's own name)                           optional
 *   image    the full-resolution H&E (optional where the format carries one)           optional
 *   mpp      microns per pixel of that image, recorded in the store manifest          optional
 *   labels   a pathologist label file as the HER2+ layout has (x y ... label)         optional
 *
 * Relative paths resolve against the sheet's folder. Every problem is an error naming the sheet,
 * the line and the column, found before any dataset is read.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unsafeIdReason } from '../store/identifiers';
import { checkRegularFile } from './files';
import { parseDecimal } from './numbers';
import { DataFileError } from './types';

export const SHEET_COLUMNS = ['path', 'patient', 'section', 'image', 'mpp', 'labels'] as const;
type Column = (typeof SHEET_COLUMNS)[number];

export interface SheetRow {
  /** 1-based line of the sheet, for messages. */
  line: number;
  /** Absolute path of the dataset. */
  path: string;
  patient: string;
  section?: string;
  image?: string;
  mpp?: number;
  labels?: string;
}

/** Whether a path names a sample sheet (by its extension). */
export function isSampleSheet(p: string): boolean {
  return /\.(csv|tsv|txt)$/i.test(p);
}

/** Reads and checks a sample sheet; nothing it names is opened beyond checking that it exists. */
export function readSampleSheet(sheet: string): SheetRow[] {
  const file = path.resolve(sheet);
  if (!fs.existsSync(file)) throw new DataFileError(file, undefined, `not found; give a sample sheet (CSV or TSV with the columns ${SHEET_COLUMNS.join(', ')})`);
  checkRegularFile(file);
  const text = fs.readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  const first = lines.findIndex((l) => l.trim() !== '' && !l.startsWith('#'));
  if (first < 0) throw new DataFileError(file, undefined, `is empty; a sample sheet has a header line (${SHEET_COLUMNS.join(',')}) and one row per section`);
  const tab = /\.tsv$/i.test(file) || (!/\.csv$/i.test(file) && lines[first].includes('\t'));
  const header = splitLine(lines[first], tab, file, first + 1).map((h) => h.trim().toLowerCase());
  const at = new Map<Column, number>();
  header.forEach((name, i) => {
    if (!(SHEET_COLUMNS as readonly string[]).includes(name)) {
      throw new DataFileError(file, `line ${first + 1}, column ${i + 1}`, `unknown column "${name}"; the columns are ${SHEET_COLUMNS.join(', ')}${tab ? '' : ' (a .csv is comma-separated, a .tsv tab-separated)'}`);
    }
    if (at.has(name as Column)) throw new DataFileError(file, `line ${first + 1}`, `column "${name}" appears twice`);
    at.set(name as Column, i);
  });
  for (const need of ['path', 'patient'] as const) {
    if (!at.has(need)) throw new DataFileError(file, `line ${first + 1}`, `no column "${need}" (the header is ${header.join(', ')}); every row needs a ${need}`);
  }
  const dir = path.dirname(file);
  const rows: SheetRow[] = [];
  const sectionLine = new Map<string, number>();
  for (let i = first + 1; i < lines.length; i++) {
    if (lines[i].trim() === '' || lines[i].startsWith('#')) continue;
    const line = i + 1;
    const fields = splitLine(lines[i], tab, file, line);
    if (fields.length !== header.length) {
      throw new DataFileError(file, `line ${line}`, `has ${fields.length} fields but the header has ${header.length}; the sheet must be ${tab ? 'tab' : 'comma'}-separated, one row per section`);
    }
    const cell = (c: Column) => (at.has(c) ? fields[at.get(c)!].trim() : '') || undefined;
    const where = (c: Column) => `line ${line}, column ${c}`;
    const existing = (c: Column, what: string): string | undefined => {
      const v = cell(c);
      if (v === undefined) return undefined;
      const abs = path.resolve(dir, v);
      if (!fs.existsSync(abs)) throw new DataFileError(file, where(c), `${abs} not found; give ${what} (relative paths are taken from the sheet's folder)`);
      return abs;
    };
    const p = existing('path', 'a Space Ranger folder, an .h5ad file or a HER2+ folder');
    if (!p) throw new DataFileError(file, where('path'), 'is empty; every row names its dataset');
    const section = cell('section');
    const patient = cell('patient');
    if (!patient) throw new DataFileError(file, where('patient'), `${section ? `section ${section}` : `the row of ${path.basename(p)}`} has no patient; every row needs one (cross-validation holds out whole patients)`);
    for (const [c, id] of [['section', section], ['patient', patient]] as const) {
      const reason = id === undefined ? undefined : unsafeIdReason(id);
      if (reason) throw new DataFileError(file, where(c), `"${id}" cannot name a ${c}: it ${reason}; ids name files in the store`);
    }
    if (section !== undefined) {
      if (sectionLine.has(section)) throw new DataFileError(file, where('section'), `section ${section} is also on line ${sectionLine.get(section)}; every section needs its own id`);
      sectionLine.set(section, line);
    }
    const mppText = cell('mpp');
    const mpp = mppText === undefined ? undefined : parseDecimal(mppText);
    if (mppText !== undefined && !(mpp !== undefined && mpp > 0)) throw new DataFileError(file, where('mpp'), `"${mppText}" is not a positive number of microns per pixel`);
    const image = existing('image', 'the full-resolution H&E image of the section');
    const labels = existing('labels', 'a label file (columns x, y and label, as ST-pat/lbl/<section>_labeled_coordinates.tsv)');
    rows.push({ line, path: p, patient, ...(section ? { section } : {}), ...(image ? { image } : {}), ...(mpp ? { mpp } : {}), ...(labels ? { labels } : {}) });
  }
  if (rows.length === 0) throw new DataFileError(file, undefined, 'has a header but no rows; add one row per section');
  return rows;
}

/** The fields of one line: split at tabs, or at commas outside double quotes ("" is a quote). */
function splitLine(text: string, tab: boolean, file: string, line: number): string[] {
  if (tab) return text.split('\t');
  const out: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"' && field.trim() === '') {
      quoted = true;
      field = '';
    } else if (ch === ',') {
      out.push(field);
      field = '';
    } else {
      field += ch;
    }
  }
  if (quoted) throw new DataFileError(file, `line ${line}`, 'a quoted field is not closed');
  out.push(field);
  return out;
}
