/**
 * Reader for the HER2-positive breast cancer ST data as published (Andersson et al. 2021; the
 * paper's BC1 dataset), and the image-header helpers every reader uses.
 *
 *   ST-cnts/<section>.tsv.gz                      spots x genes, first column "<x>x<y>"
 *   ST-spotfiles/<section>_selection.tsv          x y new_x new_y pixel_x pixel_y selected
 *   ST-imgs/<patient>/<section>/*.jpg             full-resolution H&E (optional)
 *   ST-pat/lbl/<section>_labeled_coordinates.tsv  pathologist labels (optional)
 *
 * or the same files with the folder names of the Zenodo release (record 3957257):
 *
 *   count-matrices/<section>.tsv.gz
 *   spot-selections/<section>_selection.tsv(.gz)
 *   images/HE/<section>*.jpg
 *   meta/<section>_labeled_coordinates.tsv
 *
 * A spot is kept when the spot file selects it and the count file has it. Its grid cell is
 * (round(y), round(x)) of the spot file and its id round(x) "x" round(y), as the counts name it.
 * Count rows without a spot-file entry, and selected spots without counts, are reported as
 * problems; a section none of whose count rows is in its spot file is an error (the files do
 * not belong together). Any error stops the whole read: no half-read dataset is returned.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { unsafeIdReason } from '../store/identifiers';
import { CsrAppender } from './csr';
import { checkRegularFile } from './files';
import { readImageSize, spotsOutsideImage } from './imageSize';
import { listIds, uniqueGeneNames } from './names';
import { FLOAT32_MAX, parseCount, parseDecimal } from './numbers';
import { DataFileError, type ImageRef, type Problem, type Section, type SpatialDataset, type Spot } from './types';

export { listIds } from './names';
export { readImageSize, spotsOutsideImage } from './imageSize';

export interface Her2stOptions {
  /** Read only these sections (default: every ST-cnts/<section>.tsv.gz). */
  sections?: string[];
}

/** Where a HER2+ folder keeps each kind of file: the GitHub layout (ST-*) or the Zenodo one. */
interface Layout {
  counts: string;
  spots: string;
  labels: string;
  /** The folder of a section's images, and whether to take only files named after the section. */
  images: (patient: string, section: string) => { dir: string; named: boolean };
  imageHint: string;
}

const GITHUB: Layout = {
  counts: 'ST-cnts', spots: 'ST-spotfiles', labels: path.join('ST-pat', 'lbl'),
  images: (patient, section) => ({ dir: path.join('ST-imgs', patient, section), named: false }),
  imageHint: 'ST-imgs/<patient>/<section>/*.jpg',
};
const ZENODO: Layout = {
  counts: 'count-matrices', spots: 'spot-selections', labels: 'meta',
  images: () => ({ dir: path.join('images', 'HE'), named: true }),
  imageHint: 'images/HE/<section>.jpg',
};

/** The layout of a HER2+ folder, or undefined when it is none (no ST-cnts/ nor count-matrices/). */
export function her2stLayout(root: string): Layout | undefined {
  return [GITHUB, ZENODO].find((l) => fs.existsSync(path.join(root, l.counts)));
}

/** Sections are parsed this many at a time: gunzip runs on the thread pool, parsing here. */
const CONCURRENCY = 3;

/** Reads a HER2+ folder (the one holding ST-cnts) into sections sorted by name. */
export async function readHer2st(root: string, opts: Her2stOptions = {}): Promise<SpatialDataset> {
  const source = path.resolve(root);
  const layout = her2stLayout(source) ?? GITHUB;
  const cntsDir = path.join(source, layout.counts);
  const available = (await listDir(cntsDir, source, 'a HER2+ folder holds ST-cnts/<section>.tsv.gz (or count-matrices/ as on Zenodo); give the folder above it'))
    .filter((f) => f.endsWith('.tsv.gz'))
    .map((f) => f.slice(0, -'.tsv.gz'.length))
    .sort(byName);
  if (available.length === 0) throw new DataFileError(cntsDir, undefined, 'holds no <section>.tsv.gz count files');
  const names = opts.sections ? [...opts.sections].sort(byName) : available;
  for (const name of names) {
    if (!available.includes(name)) {
      throw new DataFileError(path.join(cntsDir, `${name}.tsv.gz`), undefined, `no such section; the folder has ${available.join(', ')}`);
    }
    const reason = unsafeIdReason(name);
    if (reason) throw new DataFileError(path.join(cntsDir, `${name}.tsv.gz`), undefined, `the section name "${name}" ${reason}; rename the file (and its spot file and image folder)`);
  }

  const problems: Problem[] = [];
  const results = await mapLimit(names, CONCURRENCY, (name) => readSection(source, layout, name));
  for (const r of results) problems.push(...r.problems);
  const sections = results.map((r) => r.section);

  const noImage = sections.filter((s) => !s.image).map((s) => s.id);
  if (noImage.length > 0) {
    problems.push({
      file: path.join(source, layout.images('', '').dir),
      message: `sections without an image: ${noImage.join(', ')} (expected ${layout.imageHint})`,
    });
  }
  const lblDir = path.join(source, layout.labels);
  if (!opts.sections && fs.existsSync(lblDir)) {
    for (const f of (await fs.promises.readdir(lblDir)).sort(byName)) {
      const m = /^(.+)_labeled_coordinates\.tsv$/.exec(f);
      if (m && !available.includes(m[1])) {
        problems.push({ file: path.join(lblDir, f), message: `labels for a section without counts: ${m[1]} has no ${layout.counts}/${m[1]}.tsv.gz; its labels are not used` });
      }
    }
  }
  return { format: 'her2st', source, sections, problems };
}

/** "A1" -> "A", "BT23" -> "BT": the letters before the trailing number of a section name. */
export function her2stPatient(section: string): string | undefined {
  return /^([A-Za-z]+)\d+$/.exec(section)?.[1];
}

async function readSection(root: string, layout: Layout, name: string): Promise<{ section: Section; problems: Problem[] }> {
  const problems: Problem[] = [];
  const spotBase = path.join(root, layout.spots, `${name}_selection.tsv`);
  const spotFile = !fs.existsSync(spotBase) && fs.existsSync(`${spotBase}.gz`) ? `${spotBase}.gz` : spotBase;
  const countFile = path.join(root, layout.counts, `${name}.tsv.gz`);
  let patient = her2stPatient(name);
  if (!patient) {
    patient = name;
    problems.push({ file: countFile, section: name, message: `section name without a trailing number: ${name} is taken as its own patient` });
  }

  const places = await readSpotFile(spotFile);
  const counts = await readCounts(countFile, places);
  if (counts.spotIds.length === 0) {
    throw new DataFileError(countFile, 'column 1 (spot ids)',
      `none of its ${counts.unknownIds.length + counts.unselected} spots is selected in ${spotFile}; are the two files of the same section?`);
  }
  if (counts.unknownIds.length > 0) {
    problems.push({ file: countFile, section: name, message: `count spots missing from the spot file, dropped: ${listIds(counts.unknownIds)}` });
  }
  const counted = new Set(counts.spotIds);
  const uncounted = [...places.values()].filter((p) => p.selected && !counted.has(p.id)).map((p) => p.id);
  if (uncounted.length > 0) {
    problems.push({ file: spotFile, section: name, message: `selected spots without counts, dropped: ${listIds(uncounted)}` });
  }

  const labels = await readLabels(path.join(root, layout.labels, `${name}_labeled_coordinates.tsv`), name, new Set(places.keys()), problems);
  const spots: Spot[] = counts.spotIds.map((id) => {
    const p = places.get(id)!;
    const spot: Spot = { id, row: p.row, col: p.col, x: p.x, y: p.y };
    const label = labels.get(id);
    if (label !== undefined) spot.label = label;
    return spot;
  });

  const image = await findImage(root, layout, patient, name, problems);
  if (image) {
    const outside = spotsOutsideImage(spots, image);
    if (outside.length > 0) {
      problems.push({ file: spotFile, section: name, message: `spots whose pixel centre is outside the image (${image.width} x ${image.height}): ${listIds(outside.map((s) => s.id))}` });
    }
  }
  const section: Section = {
    id: name, patient, spots, genes: uniqueGeneNames(counts.genes, countFile, name, problems),
    counts: { nSpots: spots.length, nGenes: counts.genes.length, indptr: counts.indptr, indices: counts.indices, data: counts.data },
  };
  if (image) section.image = image;
  return { section, problems };
}

interface Place { id: string; row: number; col: number; x: number; y: number; selected: boolean }

/** The spot file: every spot's array position (x, y) and pixel centre, keyed by its count id. */
async function readSpotFile(file: string): Promise<Map<string, Place>> {
  const table = await readTsv(file, 'every HER2+ section needs ST-spotfiles/<section>_selection.tsv (spot-selections/ on Zenodo)');
  const col = columnsOf(table, file, ['x', 'y', 'pixel_x', 'pixel_y'], 'x y new_x new_y pixel_x pixel_y selected');
  const selectedCol = table.header.indexOf('selected');
  const places = new Map<string, Place>();
  for (const r of table.rows) {
    const x = numberAt(r, col.x, file, 'x');
    const y = numberAt(r, col.y, file, 'y');
    const id = `${Math.round(x)}x${Math.round(y)}`;
    const selected = selectedCol < 0 || numberAt(r, selectedCol, file, 'selected') === 1;
    const known = places.get(id);
    if (known) {
      throw new DataFileError(file, `line ${r.line}`, `spot ${id} is on the same array position as another spot; fix or remove one of the two rows`);
    }
    places.set(id, { id, row: Math.round(y), col: Math.round(x), x: numberAt(r, col.pixel_x, file, 'pixel_x'), y: numberAt(r, col.pixel_y, file, 'pixel_y'), selected });
  }
  return places;
}

/**
 * Labels by grid key round(x) "x" round(y) (a HER2+ spot's id; any section's `${col}x${row}`);
 * rows without coordinates ("NA") are skipped and reported, and keys not in `spotKeys` reported.
 */
export async function readLabels(file: string, section: string, spotKeys: ReadonlySet<string>, problems: Problem[]): Promise<Map<string, string>> {
  const labels = new Map<string, string>();
  if (!fs.existsSync(file)) return labels;
  const table = await readTsv(file, '');
  const col = columnsOf(table, file, ['x', 'y', 'label'], 'Row.names x y pixel_x pixel_y label');
  const noPlace: number[] = [];
  const unknown: string[] = [];
  for (const r of table.rows) {
    const x = Number(r.fields[col.x]);
    const y = Number(r.fields[col.y]);
    if (!isNumberText(r.fields[col.x]) || !isNumberText(r.fields[col.y])) {
      noPlace.push(r.line);
      continue;
    }
    const id = `${Math.round(x)}x${Math.round(y)}`;
    const label = r.fields[col.label] ?? '';
    const known = labels.get(id);
    if (known !== undefined && known !== label) {
      problems.push({ file, section, message: `conflicting labels for one spot: ${id} is "${known}" and "${label}" (line ${r.line}); the first is kept` });
      continue;
    }
    if (!spotKeys.has(id)) unknown.push(id);
    labels.set(id, label);
  }
  if (noPlace.length > 0) {
    problems.push({ file, section, message: `label rows without coordinates, skipped: line${noPlace.length > 1 ? 's' : ''} ${listIds(noPlace.map(String))}` });
  }
  if (unknown.length > 0) {
    problems.push({ file, section, message: `labels for spots not in the spot file: ${listIds(unknown)}` });
  }
  return labels;
}

async function findImage(root: string, layout: Layout, patient: string, section: string, problems: Problem[]): Promise<ImageRef | undefined> {
  const { dir: rel, named } = layout.images(patient, section);
  const dir = path.join(root, rel);
  if (!fs.existsSync(dir)) return undefined;
  // Zenodo's images/HE holds every section's image: A1.jpg, or A1_<suffix>.jpg.
  const ofSection = (f: string) => !named || f.replace(/\.jpe?g$/i, '') === section || f.startsWith(`${section}_`);
  const jpgs = (await fs.promises.readdir(dir)).filter((f) => /\.jpe?g$/i.test(f) && ofSection(f)).sort(byName);
  if (jpgs.length === 0) return undefined;
  for (const f of jpgs) checkRegularFile(path.join(dir, f));
  if (jpgs.length > 1) {
    problems.push({ file: dir, section, message: `several images for one section: ${jpgs.join(', ')}; ${jpgs[0]} is used` });
  }
  const file = path.join(dir, jpgs[0]);
  return { path: file, ...(await readImageSize(file)) };
}

// ---------------------------------------------------------------------------------------------
// Count matrix: streamed through gunzip and parsed from bytes, straight into CSR.

interface ParsedCounts {
  genes: string[];
  /** Kept rows, in file order. */
  spotIds: string[];
  indptr: Uint32Array;
  indices: Uint32Array;
  data: Float32Array;
  /** Count rows whose id is not in the spot file. */
  unknownIds: string[];
  /** Count rows whose spot the spot file lists but does not select. */
  unselected: number;
}

async function readCounts(file: string, places: Map<string, Place>): Promise<ParsedCounts> {
  checkRegularFile(file);
  const parser = new CountParser(file, places);
  // A parse error thrown in the last stage reaches pipeline()'s caller as an AbortError; keep it.
  let parseError: unknown;
  try {
    await pipeline(fs.createReadStream(file, { highWaterMark: 1 << 18 }), zlib.createGunzip({ chunkSize: 1 << 18 }), async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) {
        try {
          parser.push(chunk);
        } catch (e) {
          parseError = e;
          throw e;
        }
      }
    });
  } catch (e) {
    if (parseError) throw parseError;
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') throw new DataFileError(file, undefined, 'not found', { cause: e });
    if (err.code === 'Z_BUF_ERROR') {
      throw new DataFileError(file, `after line ${parser.lineNo}`, 'the compressed file ends early (truncated); copy or download it again', { cause: e });
    }
    if (err.code?.startsWith('Z_')) {
      throw new DataFileError(file, `after line ${parser.lineNo}`, `not a valid gzip file (${err.message}); it must be the published <section>.tsv.gz`, { cause: e });
    }
    throw new DataFileError(file, undefined, `cannot be read: ${err.message}`, { cause: e });
  }
  return parser.finish();
}

/** Splits decompressed chunks into lines and parses each row's counts without making strings. */
class CountParser {
  lineNo = 0;
  private genes: string[] | undefined;
  private carry: Buffer[] = [];
  private readonly spotIds: string[] = [];
  private readonly seen = new Map<string, number>();
  private readonly unknownIds: string[] = [];
  private unselected = 0;
  private readonly csr = new CsrAppender(1 << 16);

  constructor(private readonly file: string, private readonly places: Map<string, Place>) {}

  push(chunk: Buffer): void {
    let start = 0;
    if (this.carry.length > 0) {
      const nl = chunk.indexOf(10);
      if (nl < 0) {
        this.carry.push(chunk);
        return;
      }
      const line = Buffer.concat([...this.carry, chunk.subarray(0, nl)]);
      this.carry = [];
      this.line(line, 0, line.length);
      start = nl + 1;
    }
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      this.line(chunk, start, nl);
      start = nl + 1;
    }
    if (start < chunk.length) this.carry.push(chunk.subarray(start));
  }

  finish(): ParsedCounts {
    if (this.carry.length > 0) {
      const line = Buffer.concat(this.carry);
      this.carry = [];
      this.line(line, 0, line.length);
    }
    if (!this.genes) throw new DataFileError(this.file, undefined, 'is empty: expected a header line of gene names, then one line per spot');
    return {
      genes: this.genes,
      spotIds: this.spotIds,
      ...this.csr.finish(),
      unknownIds: this.unknownIds,
      unselected: this.unselected,
    };
  }

  private line(buf: Buffer, start: number, end: number): void {
    this.lineNo++;
    if (end > start && buf[end - 1] === 13) end--;
    if (end === start) return;
    if (!this.genes) {
      this.genes = this.header(buf.toString('utf8', start, end));
      return;
    }
    const tab = buf.indexOf(9, start);
    const idEnd = tab < 0 || tab > end ? end : tab;
    const id = buf.toString('latin1', start, idEnd);
    const firstLine = this.seen.get(id);
    if (firstLine !== undefined) {
      throw new DataFileError(this.file, `line ${this.lineNo}`, `spot ${id} appears twice (also line ${firstLine}); remove one of the rows`);
    }
    this.seen.set(id, this.lineNo);
    const place = this.places.get(id);
    if (!place) {
      this.unknownIds.push(id);
      return;
    }
    if (!place.selected) {
      this.unselected++;
      return;
    }
    this.row(buf, idEnd + 1, end, id);
    this.spotIds.push(id);
    this.csr.endRow();
  }

  private header(text: string): string[] {
    const genes = text.split('\t').slice(1);
    const blank = genes.findIndex((g) => g.trim() === '');
    if (genes.length === 0 || blank >= 0) {
      throw new DataFileError(this.file, `line ${this.lineNo}${blank >= 0 ? `, column ${blank + 2}` : ''}`,
        'the header must be a blank cell, then one gene name per column, separated by tabs');
    }
    return genes;
  }

  /** Counts from `start` (just after the id's tab) to `end`: digits fast, anything else by Number(). */
  private row(buf: Buffer, start: number, end: number, id: string): void {
    const genes = this.genes!;
    let col = 0;
    let p = start;
    while (p <= end) {
      let v = 0;
      let q = p;
      let plain = true;
      for (; q < end; q++) {
        const c = buf[q];
        if (c === 9) break;
        const d = c - 48;
        if (d >= 0 && d <= 9) v = v * 10 + d;
        else plain = false;
      }
      if (col >= genes.length) {
        throw new DataFileError(this.file, `line ${this.lineNo}, spot ${id}`, `has more than the header's ${genes.length} gene columns`);
      }
      if (!plain || q === p || v > FLOAT32_MAX) {
        const text = buf.toString('latin1', p, q);
        const parsed = parseCount(text);
        if (parsed === undefined) {
          throw new DataFileError(this.file, `line ${this.lineNo}, spot ${id}, column ${col + 2} (gene ${genes[col]})`,
            `count "${text.length > 40 ? `${text.slice(0, 40)}...` : text}" is not a non-negative decimal number within float32 range; counts must be numbers such as 0 or 12`);
        }
        v = parsed;
      }
      if (v !== 0) this.csr.push(col, v);
      col++;
      p = q + 1;
    }
    if (col !== genes.length) {
      throw new DataFileError(this.file, `line ${this.lineNo}, spot ${id}`, `has ${col} count columns but the header names ${genes.length} genes; is the line cut short?`);
    }
  }

}

// ---------------------------------------------------------------------------------------------
// Small tab-separated tables (spot and label files).

interface TsvRow { line: number; fields: string[] }
interface Tsv { header: string[]; rows: TsvRow[] }

async function readTsv(file: string, whatIfMissing: string): Promise<Tsv> {
  let text: string;
  checkRegularFile(file);
  try {
    const bytes = await fs.promises.readFile(file);
    text = (file.endsWith('.gz') ? zlib.gunzipSync(bytes) : bytes).toString('utf8');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DataFileError(file, undefined, missing ? `not found${whatIfMissing ? `; ${whatIfMissing}` : ''}` : `cannot be read: ${(e as Error).message}`, { cause: e });
  }
  const lines = text.split(/\r?\n/);
  const header = (lines[0] ?? '').split('\t').map((h) => h.trim());
  const rows: TsvRow[] = [];
  for (let i = 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const fields = lines[i].split('\t');
    // R's write.table leaves the row-name column without a header cell.
    const shifted = fields.length === header.length + 1 ? fields.slice(1) : fields;
    if (shifted.length !== header.length) {
      throw new DataFileError(file, `line ${i + 1}`, `has ${fields.length} fields but the header has ${header.length}; the file must be tab-separated`);
    }
    rows.push({ line: i + 1, fields: shifted });
  }
  return { header, rows };
}

function columnsOf<K extends string>(table: Tsv, file: string, names: K[], expected: string): Record<K, number> {
  const out = {} as Record<K, number>;
  for (const n of names) {
    const i = table.header.indexOf(n);
    if (i < 0) throw new DataFileError(file, 'line 1', `no column "${n}" in the header (${table.header.join(' ')}); expected the columns ${expected}`);
    out[n] = i;
  }
  return out;
}

function numberAt(r: TsvRow, i: number, file: string, column: string): number {
  const v = parseDecimal(r.fields[i]);
  if (v === undefined) throw new DataFileError(file, `line ${r.line}, column ${column}`, `"${r.fields[i]}" is not a decimal number`);
  return v;
}

function isNumberText(text: string | undefined): boolean {
  return parseDecimal(text) !== undefined;
}

// ---------------------------------------------------------------------------------------------

/** Natural order: A2 before A10. */
export function byName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

async function listDir(dir: string, root: string, hint: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch (e) {
    throw new DataFileError(root, undefined, `no ${path.basename(dir)} folder (${(e as Error).message}); ${hint}`, { cause: e });
  }
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false; // after one failure, start no more work: the whole read is rejected anyway
  const worker = async (): Promise<void> => {
    while (next < items.length && !failed) {
      const i = next++;
      try {
        out[i] = await fn(items[i]);
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
