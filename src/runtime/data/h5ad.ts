/**
 * Reader for AnnData `.h5ad` files (what scanpy and squidpy users hand around), and the HDF5 and
 * sparse-matrix helpers the Visium reader shares.
 *
 * What is read:
 * - X: a dense 2-D dataset, or a group with encoding-type csr_matrix or csc_matrix (data,
 *   indices, indptr and the attribute `shape`; the older h5sparse_format/h5sparse_shape too).
 *   When X holds non-integer values (normalised) and layers['counts'] or raw.X holds integer
 *   counts, those are read instead (reported as a problem); otherwise values are kept as
 *   stored and the non-integer X is reported.
 * - Spot ids: the obs index (the column the obs attribute `_index` names, else `obs/_index`).
 * - Gene names: the var index; when it holds Ensembl ids (ENSG...) and var has a `gene_symbols`
 *   or `feature_name` column (scanpy's and CELLxGENE's conventions), that column instead, so that
 *   the genes match the symbols the HER2+ data uses. Duplicates are made unique (see
 *   `uniqueGeneNames`).
 * - Spot centres: obsm/spatial (n x 2, x then y in full-resolution pixels, as scanpy writes it).
 * - Grid: obs columns array_row and array_col; without them integer coordinates are derived from
 *   the pixel centres: d = the median nearest-neighbour distance, row = round(y / d) and
 *   col = round(x / d) (a square grid, as ST arrays), or row = round(y / (d sqrt(3)/2)) and
 *   col = round(x / (d / 2)) (a hexagonal grid, numbered as Visium numbers it), whichever puts
 *   every spot within 0.3 of a grid point and no two spots on one cell; the phase of the grid
 *   is estimated from all spots and the coordinates shifted to start at 0. A slide on which
 *   neither fits (rotated, irregular) is an error asking for array_row/array_col.
 * - Sections: the obs column `sample`, else `sample_id`, else `library_id` (text or categorical)
 *   splits the spots into sections named by its values; without one the file is a single
 *   section named by uns `sample`/`sample_id`, else after the file. Patient: opts.patient, else
 *   the obs column `patient`/`patient_id`, else uns `patient`/`patient_id`, else (unless
 *   opts.requirePatient) the section id.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as H5 from 'h5wasm';
import { byName, readImageSize, spotsOutsideImage } from './her2st';
import { listIds, uniqueGeneNames } from './names';
import { firstBadCount } from './numbers';
import { checkCompressed, csrRows, CsrBuilder, transposeCompressed, type CsrMatrix, type RawSparse } from './csr';
import { checkGridCells, deriveGrid } from './grid';
import { checkRegularFile } from './files';
import { encodeId, unsafeIdReason } from '../store/identifiers';
import { DataFileError, type ImageRef, type Problem, type Section, type SpatialDataset, type Spot } from './types';

export interface H5adOptions {
  /** Full-resolution H&E image; only for a file that holds one section. */
  image?: string;
  /** Patient of every section (default: the obs column `patient`/`patient_id` or uns `patient`/`patient_id`, else the section id). */
  patient?: string;
  /** When set, a file that names no patient is refused with this advice (instead of taking each section as its own patient). */
  requirePatient?: string;
}

/** obs columns that split a file into sections, and that name the patient, in order of preference. */
const SAMPLE_COLUMNS = ['sample', 'sample_id', 'library_id'];
const PATIENT_COLUMNS = ['patient', 'patient_id'];
/** Where raw counts are when X holds normalised values (scanpy's conventions). */
const RAW_COUNTS = [{ at: 'layers/counts', var: 'var', name: "layers['counts']" }, { at: 'raw/X', var: 'raw/var', name: 'raw.X' }] as const;

/** Reads an AnnData file into one section per sample (or one for the file). */
export async function readH5ad(file: string, opts: H5adOptions = {}): Promise<SpatialDataset> {
  const source = path.resolve(file);
  const h = await openHdf5(source, 'an AnnData .h5ad file (anndata.write_h5ad / scanpy)');
  let parsed: ReturnType<typeof readAnnData>;
  try {
    parsed = readAnnData(h, source, opts);
  } catch (e) {
    throw damaged(e, source);
  } finally {
    h.close();
  }
  const { sections, problems } = parsed;
  if (opts.image) {
    if (sections.length !== 1) {
      throw new DataFileError(source, '--image', `holds ${sections.length} sections (${sections.map((s) => s.id).join(', ')}), so one --image cannot be matched to them; split the file by sample`);
    }
    const image: ImageRef = { path: path.resolve(opts.image), ...(await readImageSize(opts.image)) };
    sections[0].image = image;
    const outside = spotsOutsideImage(sections[0].spots, image);
    if (outside.length > 0) {
      problems.push({ file: image.path, section: sections[0].id, message: `spots whose pixel centre is outside the image (${image.width} x ${image.height}): ${listIds(outside.map((s) => s.id))}` });
    }
  } else {
    problems.push({ file: source, message: `sections without an image: ${sections.map((s) => s.id).join(', ')} (give the full-resolution H&E with --image)` });
  }
  return { format: 'h5ad', source, sections, problems };
}

function readAnnData(h: Hdf5, source: string, opts: H5adOptions): { sections: Section[]; problems: Problem[] } {
  const problems: Problem[] = [];
  for (const frame of ['obs', 'var']) {
    if (h.kind(frame) === 'dataset') {
      throw new DataFileError(source, frame, 'is a table written by anndata < 0.7, which this reader does not read; open and save the file again with anndata >= 0.8');
    }
  }
  const obsNames = frameIndex(h, 'obs');
  const nObs = obsNames.length;
  const { x, genes, field } = readCounts(h, nObs, problems);
  const nVar = genes.length;
  const bad = firstBadCount(x);
  if (bad) {
    throw new DataFileError(source, `${field}, row ${bad.row} (spot ${obsNames[bad.row]}), column ${bad.column} (gene ${genes[bad.column]})`,
      `holds ${bad.value}; counts must be finite, non-negative numbers`);
  }

  const spatial = h.dataset('obsm/spatial', 'the spot centres in full-resolution pixels (n x 2, x then y)');
  const shape = spatial.shape ?? [];
  if (shape.length !== 2 || shape[0] !== nObs || shape[1] < 2) {
    throw new DataFileError(source, 'obsm/spatial', `has shape [${shape.join(', ')}], expected [${nObs}, 2]: one x, y pair per obs`);
  }
  const xy = h.numbers(spatial, 'obsm/spatial');
  for (let i = 0; i < nObs * shape[1]; i++) {
    if (!Number.isFinite(xy[i])) throw new DataFileError(source, `obsm/spatial, row ${Math.floor(i / shape[1])}`, `holds ${xy[i]}; spot centres must be finite pixel coordinates`);
  }
  const hasRow = h.has('obs/array_row');
  if (hasRow !== h.has('obs/array_col')) {
    throw new DataFileError(source, hasRow ? 'obs/array_col' : 'obs/array_row', 'obs has only one of array_row and array_col; give both or neither');
  }
  const grid = hasRow ? { rows: numberColumn(h, 'obs', 'array_row'), cols: numberColumn(h, 'obs', 'array_col') } : undefined;

  const sectionColumn = SAMPLE_COLUMNS.find((c) => h.has(`obs/${c}`));
  const sectionOf = sectionColumn ? safeIds(textColumn(h, 'obs', sectionColumn), source, `obs/${sectionColumn}`, 'sample names', problems) : undefined;
  const patientColumn = PATIENT_COLUMNS.find((c) => h.has(`obs/${c}`));
  const patientOf = patientColumn ? safeIds(textColumn(h, 'obs', patientColumn), source, `obs/${patientColumn}`, 'patients', problems) : undefined;
  if (opts.patient !== undefined) {
    const reason = unsafeIdReason(opts.patient);
    if (reason) throw new DataFileError(source, '--patient', `"${opts.patient}" cannot name a patient: it ${reason}`);
  }
  const unsPatient = unsText(h, PATIENT_COLUMNS);
  const filePatient = unsPatient && safeIds([unsPatient.value], source, `uns/${unsPatient.name}`, 'the patient', problems)[0];
  if (opts.requirePatient && opts.patient === undefined && !patientOf && !filePatient) {
    throw new DataFileError(source, 'obs', `names no patient (no obs column ${PATIENT_COLUMNS.join(' or ')}, no uns ${PATIENT_COLUMNS.join(' or ')}); ${opts.requirePatient}`);
  }
  const unsSample = unsText(h, SAMPLE_COLUMNS.slice(0, 2));
  const fileSection = unsSample
    ? safeIds([unsSample.value], source, `uns/${unsSample.name}`, 'the sample name', problems)[0]
    : safeIds([path.basename(source).replace(/\.h5ad$/i, '')], source, 'file name', 'the section named after the file', problems)[0];
  const rowsBySection = new Map<string, number[]>();
  for (let i = 0; i < nObs; i++) {
    const id = sectionOf ? sectionOf[i] : fileSection;
    let rows = rowsBySection.get(id);
    if (!rows) rowsBySection.set(id, (rows = []));
    rows.push(i);
  }

  const sections: Section[] = [];
  for (const id of [...rowsBySection.keys()].sort(byName)) {
    const rows = rowsBySection.get(id)!;
    const seen = new Map<string, number>();
    const spots: Spot[] = rows.map((i) => {
      const name = obsNames[i];
      if (seen.has(name)) throw new DataFileError(source, `obs index, rows ${seen.get(name)} and ${i}`, `spot ${name} appears twice in section ${id}; make the obs names unique`);
      seen.set(name, i);
      return { id: name, row: 0, col: 0, x: xy[i * shape[1]], y: xy[i * shape[1] + 1] };
    });
    if (grid) {
      rows.forEach((i, k) => { spots[k].row = grid.rows[i]; spots[k].col = grid.cols[i]; });
    } else {
      deriveGrid(spots, source, id);
    }
    checkGridCells(spots, source, grid ? 'obs/array_row, obs/array_col' : 'obsm/spatial');
    let patient = opts.patient;
    if (!patient && patientOf) {
      const values = new Set(rows.map((i) => patientOf[i]));
      if (values.size > 1) throw new DataFileError(source, `obs/${patientColumn}`, `section ${id} has spots of several patients (${[...values].join(', ')}); a section comes from one patient`);
      patient = patientOf[rows[0]];
    }
    sections.push({ id, patient: patient ?? filePatient ?? id, spots, genes, counts: csrRows(x, rows, nVar) });
  }
  return { sections, problems };
}

/**
 * Names AnnData allows to be any text (samples, patients) as ids that can name files, renamed
 * reversibly (encodeId) where needed; the renaming is reported as one problem, since the store
 * and its files then use the new names.
 */
function safeIds(names: readonly string[], file: string, field: string, what: string, problems: Problem[]): string[] {
  const ids = new Map<string, string>();
  for (const name of names) {
    if (ids.has(name)) continue;
    const id = encodeId(name);
    const reason = unsafeIdReason(id);
    if (reason) throw new DataFileError(file, field, `"${name}" cannot name a section or patient${id === name ? '' : ` (as ${id})`}: it ${reason}`);
    ids.set(name, id);
  }
  const renamed = [...ids].filter(([name, id]) => name !== id);
  if (renamed.length > 0) {
    problems.push({
      file,
      message: `${what} in ${field} renamed to ids that can name files (%XX is a byte in hex; the mapping is reversible): ${listIds(renamed.map(([name, id]) => `${JSON.stringify(name)} -> ${id}`))}`,
    });
  }
  return names.map((n) => ids.get(n)!);
}

function geneNames(h: Hdf5, frame: 'var' | 'raw/var'): string[] {
  const index = frameIndex(h, frame);
  if (!index.every((g) => /^ENS[A-Z]*G\d+/.test(g))) return index;
  const symbols = ['gene_symbols', 'feature_name'].find((c) => h.has(`${frame}/${c}`));
  return symbols ? textColumn(h, frame, symbols) : index;
}

function frameIndex(h: Hdf5, frame: 'obs' | 'var' | 'raw/var'): string[] {
  const declared = h.attr(frame, '_index');
  const name = typeof declared === 'string' ? declared : '_index';
  if (!h.has(`${frame}/${name}`)) {
    throw new DataFileError(h.file, `${frame}/${name}`, `no ${frame} index (the ${frame === 'obs' ? 'spot' : 'gene'} names); is this an AnnData file?`);
  }
  return h.strings(`${frame}/${name}`);
}

/**
 * The counts and their gene names: X, or (when X holds non-integer values, as after
 * normalisation) the integer counts of layers['counts'] or raw.X, saying which was read.
 */
function readCounts(h: Hdf5, nObs: number, problems: Problem[]): { x: CsrMatrix; genes: string[]; field: string } {
  const genes = uniqueGeneNames(geneNames(h, 'var'), h.file, undefined, problems);
  const x = readX(h, nObs, genes.length);
  const nonInteger = firstNonInteger(x.data);
  if (nonInteger === undefined) return { x, genes, field: 'X' };
  for (const raw of RAW_COUNTS) {
    if (!h.has(raw.at)) continue;
    const rawGenes = raw.var === 'var' ? genes : uniqueGeneNames(geneNames(h, raw.var), h.file, undefined, []);
    const counts = readX(h, nObs, rawGenes.length, raw.at);
    if (firstNonInteger(counts.data) !== undefined) continue;
    problems.push({ file: h.file, message: `X holds normalised values (e.g. ${nonInteger}): raw counts read from ${raw.name} instead, as TRIPLEX normalises raw counts itself` });
    return { x: counts, genes: rawGenes, field: raw.at };
  }
  problems.push({ file: h.file, message: `X holds non-integer values: e.g. ${nonInteger}; TRIPLEX normalises raw counts itself, so give a file whose X holds raw counts (or that keeps them in layers['counts'] or raw)` });
  return { x, genes, field: 'X' };
}

/** A text value of uns (the first of `names` there), when it is a single value. */
function unsText(h: Hdf5, names: readonly string[]): { name: string; value: string } | undefined {
  for (const name of names) {
    if (h.kind(`uns/${name}`) !== 'dataset') continue;
    const values = h.values(`uns/${name}`);
    if (values.length === 1) return { name, value: String(values[0]) };
  }
  return undefined;
}

/** X (or the matrix at `at`, same layout) as canonical CSR over all obs. */
function readX(h: Hdf5, nObs: number, nVar: number, at = 'X'): CsrMatrix {
  const kind = h.kind(at);
  if (kind === 'dataset') {
    const ds = h.dataset(at, '');
    const shape = ds.shape ?? [];
    if (shape.length !== 2 || shape[0] !== nObs || shape[1] !== nVar) {
      throw new DataFileError(h.file, at, `has shape [${shape.join(', ')}] but obs and var give [${nObs}, ${nVar}]`);
    }
    const builder = new CsrBuilder(nVar);
    const block = Math.max(1, Math.floor((1 << 22) / Math.max(1, nVar))); // about 4M values at a time
    for (let r0 = 0; r0 < nObs; r0 += block) {
      const r1 = Math.min(nObs, r0 + block);
      const values = asNumbers(ds.slice([[r0, r1], []]), h.file, at, 'counts'); // [r1 - r0, nVar]
      for (let r = 0; r < r1 - r0; r++) builder.denseRow(values, r * nVar, nVar);
    }
    return builder.finish();
  }
  if (kind !== 'group') throw new DataFileError(h.file, at, 'missing: an AnnData file stores its matrix in X');
  const legacy = h.attr(at, 'h5sparse_format');
  const encoding = h.attr(at, 'encoding-type') ?? (typeof legacy === 'string' ? `${legacy}_matrix` : undefined);
  if (encoding !== 'csr_matrix' && encoding !== 'csc_matrix') {
    throw new DataFileError(h.file, at, `is a group with encoding-type "${String(encoding)}"; expected csr_matrix or csc_matrix`);
  }
  const shapeAttr = h.attr(at, 'shape') ?? h.attr(at, 'h5sparse_shape');
  const shape = shapeAttr && typeof shapeAttr === 'object' && 'length' in shapeAttr ? Array.from(shapeAttr as ArrayLike<number | bigint>, Number) : [];
  if (shape.length !== 2 || shape[0] !== nObs || shape[1] !== nVar) {
    throw new DataFileError(h.file, `${at} (attribute shape)`, `is [${shape.join(', ')}] but obs and var give [${nObs}, ${nVar}]`);
  }
  const raw = readCompressed(h, at);
  if (encoding === 'csr_matrix') {
    checkCompressed(raw, nObs, nVar, h.file, at);
    return csrRows(raw, range(nObs), nVar);
  }
  checkCompressed(raw, nVar, nObs, h.file, at);
  return csrRows(transposeCompressed(raw, nVar, nObs), range(nObs), nVar);
}

/** data, indices and indptr of a compressed sparse group. */
export function readCompressed(h: Hdf5, group: string): RawSparse {
  return {
    data: h.numbers(`${group}/data`, 'the stored values of a sparse matrix'),
    indices: h.numbers(`${group}/indices`, 'the minor index of each stored value'),
    indptr: h.numbers(`${group}/indptr`, 'the start of each major slice'),
  };
}

// ---------------------------------------------------------------------------------------------
// obs/var columns: plain datasets, categoricals (anndata >= 0.8 groups; 0.7's __categories),
// nullable integers.

function textColumn(h: Hdf5, frame: string, name: string): string[] {
  const p = `${frame}/${name}`;
  const categorical = categoricalOf(h, frame, name);
  if (categorical) {
    return Array.from(categorical.codes, (c, i) => {
      if (c < 0 || c >= categorical.categories.length) throw new DataFileError(h.file, `${p}, row ${i}`, `has no value (category code ${c}); every spot needs one`);
      return String(categorical.categories[c]);
    });
  }
  const values = h.values(h.kind(p) === 'group' ? `${p}/values` : p);
  return Array.from(values as ArrayLike<string | number>, String);
}

function numberColumn(h: Hdf5, frame: string, name: string): Float64Array {
  const p = `${frame}/${name}`;
  const categorical = categoricalOf(h, frame, name);
  const values = categorical
    ? Float64Array.from(categorical.codes, (c) => Number(categorical.categories[c]))
    : Float64Array.from(h.numbers(h.kind(p) === 'group' ? `${p}/values` : p, 'integer array coordinates'));
  if (h.kind(p) === 'group' && h.has(`${p}/mask`)) {
    const mask = h.numbers(`${p}/mask`, '');
    const missing = Array.prototype.findIndex.call(mask, (m: number) => m !== 0);
    if (missing >= 0) throw new DataFileError(h.file, `${p}, row ${missing}`, 'has no value; every spot needs one');
  }
  const bad = values.findIndex((v) => !Number.isInteger(v));
  if (bad >= 0) throw new DataFileError(h.file, `${p}, row ${bad}`, `"${values[bad]}" is not an integer array coordinate`);
  return values;
}

function categoricalOf(h: Hdf5, frame: string, name: string): { categories: ArrayLike<string | number>; codes: ArrayLike<number> } | undefined {
  const p = `${frame}/${name}`;
  if (h.kind(p) === 'group' && h.attr(p, 'encoding-type') === 'categorical') {
    return { categories: h.values(`${p}/categories`), codes: h.numbers(`${p}/codes`, 'category codes') };
  }
  const legacy = `${frame}/__categories/${name}`;
  if (h.kind(p) === 'dataset' && h.has(legacy)) return { categories: h.values(legacy), codes: h.numbers(p, 'category codes') };
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Gene names.

export { uniqueGeneNames } from './names';
export { checkGridCells } from './grid';

export { checkCompressed, csrRows, transposeCompressed, type CsrMatrix, type RawSparse } from './csr';

function firstNonInteger(data: Float32Array): number | undefined {
  for (let k = 0; k < data.length; k++) if (!Number.isInteger(data[k])) return data[k];
  return undefined;
}

function range(n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => i);
}

// ---------------------------------------------------------------------------------------------
// HDF5 through h5wasm (ESM-only, loaded once with a dynamic import that the CommonJS bundle keeps).

type H5Module = typeof H5;
let h5wasm: Promise<H5Module> | undefined;

/** h5wasm, loaded once (also used by the writer in store/h5adExport.ts). */
export function loadH5wasm(): Promise<H5Module> {
  h5wasm ??= (async () => {
    // The specifier is cast so that tsc (node10 resolution) does not resolve it; esbuild keeps it.
    const mod = (await import('h5wasm/node' as string)) as H5Module;
    await mod.ready;
    return mod;
  })();
  return h5wasm;
}

/** HDF5 files start with this signature at byte 0 (or 512, 1024, ... after a user block). */
const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Opens an HDF5 file for reading; a missing or non-HDF5 file is a DataFileError saying what was expected. */
export async function openHdf5(file: string, expected: string): Promise<Hdf5> {
  const abs = path.resolve(file);
  let size: number;
  try {
    size = (await fs.promises.stat(abs)).size;
  } catch (e) {
    throw new DataFileError(abs, undefined, `not found; expected ${expected}`, { cause: e });
  }
  checkRegularFile(abs);
  // Checked here so that a wrong file gets our message, not the HDF5 library's trace on stderr.
  const fh = await fs.promises.open(abs, 'r');
  let found = false;
  try {
    const sig = Buffer.alloc(8);
    for (let at = 0; at + 8 <= size && at <= 1 << 20 && !found; at = at === 0 ? 512 : at * 2) {
      await fh.read(sig, 0, 8, at);
      found = sig.equals(HDF5_SIGNATURE);
    }
  } finally {
    await fh.close();
  }
  if (!found) throw new DataFileError(abs, 'byte 0', `not an HDF5 file (no HDF5 signature); expected ${expected}`);
  const h5 = await loadH5wasm();
  let handle: H5.File;
  try {
    handle = new h5.File(abs, 'r');
  } catch (e) {
    throw damaged(e, abs);
  }
  if (handle.file_id < 0n) throw new DataFileError(abs, undefined, `the HDF5 library cannot open it (damaged or truncated?); expected ${expected}`);
  return new Hdf5(h5, handle, abs);
}

/**
 * An error of the HDF5 library itself while reading (a file damaged past its signature throws
 * bare messages such as "error - name not defined!"), as a DataFileError naming the file.
 */
export function damaged(e: unknown, file: string): unknown {
  if (e instanceof DataFileError) return e;
  return new DataFileError(file, undefined, `the HDF5 library cannot read it (${e instanceof Error ? e.message : String(e)}); is the file damaged or truncated? copy or download it again`, { cause: e });
}

/** Read-only access by path, with errors naming the file and the HDF5 path. */
export class Hdf5 {
  constructor(private readonly h5: H5Module, private readonly handle: H5.File, readonly file: string) {}

  close(): void {
    this.handle.close();
  }

  /** 'group', 'dataset', or undefined when nothing is at the path. Walks the path one link at a time. */
  kind(p: string): 'group' | 'dataset' | 'other' | undefined {
    const e = this.entity(p);
    if (!e) return undefined;
    return e instanceof this.h5.Group ? 'group' : e instanceof this.h5.Dataset ? 'dataset' : 'other';
  }

  has(p: string): boolean {
    return this.entity(p) !== undefined;
  }

  dataset(p: string, what: string): H5.Dataset {
    const e = this.entity(p);
    if (!(e instanceof this.h5.Dataset)) {
      throw new DataFileError(this.file, p, `${e ? 'is not a dataset' : 'missing'}${what ? `: expected ${what}` : ''}`);
    }
    return e;
  }

  /** A numeric dataset's values as plain numbers (64-bit integers converted), flat in row-major order. */
  numbers(src: string | H5.Dataset, what: string): ArrayLike<number> {
    const ds = typeof src === 'string' ? this.dataset(src, what) : src;
    return asNumbers(ds.value, this.file, ds.path.replace(/^\//, ''), what);
  }

  /** Text (or numbers) of a 1-D dataset. */
  values(p: string): ArrayLike<string | number> {
    const value = this.dataset(p, '').value;
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
    if (typeof value === 'string') return [value];
    return asNumbers(value, this.file, p, '');
  }

  strings(p: string): string[] {
    const value = this.dataset(p, 'names').value;
    if (typeof value === 'string') return [value];
    if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return value as string[];
    throw new DataFileError(this.file, p, `holds ${describe(value)}, expected text (names)`);
  }

  attr(p: string, name: string): H5.OutputData | undefined {
    const e = this.entity(p);
    if (!e || !('attrs' in e) || !(name in e.attrs)) return undefined;
    return e.get_attribute(name, false) ?? undefined;
  }

  private entity(p: string): H5.Group | H5.Dataset | undefined {
    let at: H5.Group = this.handle;
    const parts = p.split('/').filter(Boolean);
    for (let i = 0; i < parts.length; i++) {
      if (!at.keys().includes(parts[i])) return undefined;
      const e = at.get(parts[i]);
      if (i === parts.length - 1) return e instanceof this.h5.Group || e instanceof this.h5.Dataset ? e : undefined;
      if (!(e instanceof this.h5.Group)) return undefined;
      at = e;
    }
    return at;
  }
}

/** Values from h5wasm as plain numbers; 64-bit integers become doubles (exact below 2^53). */
export function asNumbers(value: H5.OutputData | null, file: string, field: string, what: string): ArrayLike<number> {
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) return Float64Array.from(value, Number);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) return value as Exclude<typeof value, BigInt64Array | BigUint64Array>;
  if (typeof value === 'number') return [value];
  throw new DataFileError(file, field, `holds ${describe(value)}, expected numbers${what ? ` (${what})` : ''}`);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return `a list of ${typeof value[0]}`;
  return typeof value === 'object' ? (value.constructor?.name ?? 'an object') : `a ${typeof value}`;
}
