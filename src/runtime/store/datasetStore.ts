import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Table } from 'apache-arrow';
import type { PreprocessedDataset, PreprocessingRecord } from '../data/preprocess';
import { fileKind } from '../data/files';
import type { SlideSection } from '../data/slide';
import type { DatasetFormat, Section } from '../data/types';
import { buildTable, readArrowFile, stringColumn, vectorColumn, writeArrowFile } from './arrow';
import { writeFileAtomic } from './atomic';
import { makeDir } from './fsErrors';
import { unsafeIdReason } from './identifiers';

/**
 * A dataset store: a folder of Arrow IPC files plus a JSON manifest.
 *
 *   store.json        manifest: version, source, preprocessing record, sections (written last)
 *   spots.arrow       one row per spot: section, patient, spot_id, array_row, array_col,
 *                     pixel_x, pixel_y, label
 *   expressions.arrow one row per spot (same order): section, spot_id, counts and values as
 *                     fixed-size float32 lists of the selected genes, whose names are in the
 *                     schema metadata (`triplex:genes`) and in each list field's metadata
 *   categories.arrow  named categories of spots saved from the viewer (categories.ts), when any
 *   features/         frozen features, written by `triplex extract`
 *
 * A store made from slides without counts (`triplex slide`) has no expressions.arrow and says so
 * in its manifest (`counts: false`): it can be extracted and predicted, not trained on.
 *
 * Every file is written to a temporary name and renamed, so an interrupted run leaves the
 * previous complete file (or none), never a partial one.
 */

export const STORE_VERSION = 1;
export const MANIFEST = 'store.json';

export interface StoreSection {
  id: string;
  patient: string;
  spots: number;
  image?: { path: string; width?: number; height?: number };
  /**
   * Microns per pixel of the image, when known: from the image file (Aperio MPP, OME
   * PhysicalSizeX, TIFF resolution), Space Ranger's scale factors, a sample sheet's `mpp` or --mpp.
   */
  mpp?: number;
  /** Where `mpp` was read ("the Aperio MPP of slide.svs", "--mpp"), for messages. */
  mppSource?: string;
}

export interface StoreManifest {
  triplexStore: number;
  createdBy: string;
  source: { format: DatasetFormat | 'slide'; path: string };
  /** Absent in a store without counts. */
  preprocessing?: PreprocessingRecord;
  /** false: made from slides without counts (no expressions.arrow). */
  counts?: false;
  /**
   * Genes of a given list (`preprocess --genes <file>` / `--genes-from`) that the data lacks: not
   * in the store (never filled with zeros), so that scores, aligned by name, leave them out.
   */
  missingGenes?: string[];
  sections: StoreSection[];
  /**
   * Size and sha256 of spots.arrow and expressions.arrow as written. Checked before they are
   * decoded: apache-arrow loops without end on some damaged files (a few bytes flipped in
   * expressions.arrow hung \`triplex cv\`). Stores written before it have none and are not checked.
   */
  files?: Record<string, { bytes: number; sha256: string }>;
}

const STORE_FILES = ['spots.arrow', 'expressions.arrow', 'categories.arrow'];

function fileEntry(file: string): { bytes: number; sha256: string } {
  const bytes = fs.readFileSync(file);
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** The `files` record of a store's Arrow files that exist in `dir`. */
function fileRecord(dir: string): Record<string, { bytes: number; sha256: string }> {
  const out: Record<string, { bytes: number; sha256: string }> = {};
  for (const name of STORE_FILES) {
    const file = path.join(dir, name);
    if (fs.existsSync(file)) out[name] = fileEntry(file);
  }
  return out;
}

/**
 * Records the size and sha256 of `name` (one of the store's files, just rewritten) in the
 * manifest, rewritten atomically; the other entries stay as they were. The caller holds the
 * store's lock.
 */
export async function recordStoreFile(dir: string, name: string): Promise<void> {
  if (!STORE_FILES.includes(name)) throw new Error(`${name} is not one of a store's checked files (${STORE_FILES.join(', ')})`);
  const manifestFile = path.join(dir, MANIFEST);
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as StoreManifest;
  manifest.files = { ...(manifest.files ?? {}), [name]: fileEntry(path.join(dir, name)) };
  await writeFileAtomic(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
}

/** Refuses a store file that is not what the manifest recorded (damaged, cut short or replaced). */
function checkStoreFiles(dir: string, manifestFile: string, manifest: StoreManifest): void {
  if (manifest.files === undefined) return;
  if (typeof manifest.files !== 'object' || manifest.files === null) throw new Error(`${manifestFile}: "files" is not an object; re-run \`triplex preprocess\``);
  for (const [name, want] of Object.entries(manifest.files)) {
    if (!STORE_FILES.includes(name)) continue;
    const file = path.join(dir, name);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      throw new Error(`${file}: not found, though ${manifestFile} lists it; re-run \`triplex preprocess\``);
    }
    if (!stat.isFile()) throw new Error(`${file} is ${fileKind(stat)}, not a regular file; re-run \`triplex preprocess\``);
    const sha256 = stat.size === want?.bytes ? createHash('sha256').update(fs.readFileSync(file)).digest('hex') : undefined;
    if (sha256 !== want?.sha256) {
      throw new Error(`${file} is not the file that was written (${stat.size === want?.bytes ? 'its sha256 differs' : `${stat.size} bytes, ${manifestFile} records ${want?.bytes}`}): ` +
        'damaged, cut short or replaced; re-run `triplex preprocess`');
    }
  }
}

type SpotRow = { section: Pick<Section, 'id' | 'patient'>; spot: Section['spots'][number] };

/** spots.arrow: one row per spot, in section order. */
function spotsTable(rows: readonly SpotRow[]): Table {
  return buildTable([
    { name: 'section', column: { kind: 'utf8', values: rows.map((r) => r.section.id) } },
    { name: 'patient', column: { kind: 'utf8', values: rows.map((r) => r.section.patient) } },
    { name: 'spot_id', column: { kind: 'utf8', values: rows.map((r) => r.spot.id) } },
    { name: 'array_row', column: { kind: 'int32', values: Int32Array.from(rows, (r) => r.spot.row) } },
    { name: 'array_col', column: { kind: 'int32', values: Int32Array.from(rows, (r) => r.spot.col) } },
    { name: 'pixel_x', column: { kind: 'float64', values: Float64Array.from(rows, (r) => r.spot.x) } },
    { name: 'pixel_y', column: { kind: 'float64', values: Float64Array.from(rows, (r) => r.spot.y) } },
    { name: 'label', column: { kind: 'utf8', values: rows.map((r) => r.spot.label ?? null) } },
  ]);
}

const storeSection = (s: Pick<Section, 'id' | 'patient' | 'spots' | 'image' | 'mpp' | 'mppSource'>): StoreSection => ({
  id: s.id, patient: s.patient, spots: s.spots.length,
  ...(s.image ? { image: { path: path.resolve(s.image.path), width: s.image.width, height: s.image.height } } : {}),
  ...(s.mpp ? { mpp: s.mpp, ...(s.mppSource ? { mppSource: s.mppSource } : {}) } : {}),
});

/** Writes spots, expressions and the manifest of a preprocessed dataset into `dir`. */
export async function writeDatasetStore(dir: string, source: { format: DatasetFormat; path: string }, pre: PreprocessedDataset): Promise<StoreManifest> {
  const genes = pre.record.genes;
  const G = genes.length;
  const rows = pre.sections.flatMap((p) => p.section.spots.map((spot) => ({ section: p.section, spot })));
  const concat = (pick: (p: PreprocessedDataset['sections'][number]) => Float32Array) => {
    const out = new Float32Array(rows.length * G);
    let offset = 0;
    for (const p of pre.sections) {
      out.set(pick(p), offset);
      offset += pick(p).length;
    }
    return out;
  };
  const geneMeta = { 'triplex:genes': JSON.stringify(genes) };
  const spots = spotsTable(rows);
  const expressions = buildTable([
    { name: 'section', column: { kind: 'utf8', values: rows.map((r) => r.section.id) } },
    { name: 'spot_id', column: { kind: 'utf8', values: rows.map((r) => r.spot.id) } },
    { name: 'counts', column: { kind: 'vector', values: concat((p) => p.counts), width: G }, metadata: geneMeta },
    { name: 'values', column: { kind: 'vector', values: concat((p) => p.values), width: G }, metadata: geneMeta },
  ], { ...geneMeta, 'triplex:preprocessing': JSON.stringify(pre.record) });

  const manifest: StoreManifest = {
    triplexStore: STORE_VERSION,
    createdBy: 'triplex preprocess',
    source,
    preprocessing: pre.record,
    ...('missingGenes' in pre.record.selection && pre.record.selection.missingGenes?.length ? { missingGenes: pre.record.selection.missingGenes } : {}),
    sections: pre.sections.map(({ section: s }) => storeSection(s)),
  };
  checkManifestIds(path.join(dir, MANIFEST), manifest);
  await writeArrowFile(path.join(dir, 'spots.arrow'), spots);
  await writeArrowFile(path.join(dir, 'expressions.arrow'), expressions);
  manifest.files = fileRecord(dir);
  await writeFileAtomic(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/**
 * Writes the spots and manifest of slides without counts into `dir` (no expressions.arrow). A
 * store already there is replaced only when it is one without counts too.
 */
export async function writeSpotStore(dir: string, source: { path: string }, sections: readonly SlideSection[]): Promise<StoreManifest> {
  const manifestFile = path.join(dir, MANIFEST);
  if (fs.existsSync(manifestFile) && (JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as StoreManifest).counts !== false) {
    throw new Error(`${dir} holds a dataset store with counts; write the slide's store to another folder`);
  }
  const ids = sections.map((s) => s.id);
  const twice = ids.find((id, i) => ids.indexOf(id) !== i);
  if (twice) throw new Error(`two slides are named ${twice}; name them apart (--section)`);
  const manifest: StoreManifest = {
    triplexStore: STORE_VERSION,
    createdBy: 'triplex slide',
    source: { format: 'slide', path: path.resolve(source.path) },
    counts: false,
    sections: sections.map(storeSection),
  };
  checkManifestIds(manifestFile, manifest);
  makeDir(dir);
  // A replaced store's old expressions would contradict the manifest: gone before it is written.
  fs.rmSync(path.join(dir, 'expressions.arrow'), { force: true });
  await writeArrowFile(path.join(dir, 'spots.arrow'), spotsTable(sections.flatMap((section) => section.spots.map((spot) => ({ section, spot })))));
  manifest.files = fileRecord(dir);
  await writeFileAtomic(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
  return manifest;
}

/** An opened store: its manifest and tables, with typed accessors. */
export interface DatasetStore {
  dir: string;
  manifest: StoreManifest;
  spots: Table;
  /** Absent in a store without counts. */
  expressions?: Table;
  /** Whether the store has expression (false: made from slides without counts). */
  hasCounts: boolean;
  /** The store's genes; none in a store without counts. */
  genes: string[];
  /** Normalised values [spots, genes] of every spot, in spots.arrow order. */
  values(): Float32Array;
  /** Raw counts [spots, genes]. */
  counts(): Float32Array;
  /** Row indices of a section's spots. */
  rowsOf(section: string): number[];
}

/**
 * Section ids and patients name files (features/<section>.arrow): a hand-edited manifest with
 * an id such as `../../x` is refused before anything is read or written.
 */
function checkManifestIds(file: string, manifest: StoreManifest): void {
  if (!Array.isArray(manifest.sections)) throw new Error(`${file}: "sections" is not a list; re-run \`triplex preprocess\``);
  const seen = new Set<string>();
  manifest.sections.forEach((s, i) => {
    for (const field of ['id', 'patient'] as const) {
      const reason = unsafeIdReason(s?.[field]);
      if (reason) throw new Error(`${file}: sections[${i}].${field} ${JSON.stringify(s?.[field])} ${reason}; a store's section ids and patients name files, so they must be safe names (re-run \`triplex preprocess\`)`);
    }
    if (seen.has(s.id)) throw new Error(`${file}: section ${s.id} is listed twice`);
    seen.add(s.id);
  });
}

/** Opens a store written by writeDatasetStore, checking that its files agree. */
export function openDatasetStore(dir: string): DatasetStore {
  const manifestFile = path.join(dir, MANIFEST);
  if (!fs.existsSync(manifestFile)) {
    throw new Error(`${dir} is not a TRIPLEX dataset store (no ${MANIFEST}); create one with \`triplex preprocess <dataset> --out ${dir}\``);
  }
  let manifest: StoreManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8')) as StoreManifest;
  } catch (e) {
    throw new Error(`${manifestFile}: not a readable store manifest (${(e as Error).message}); re-run \`triplex preprocess\``, { cause: e });
  }
  if (manifest.triplexStore !== STORE_VERSION) {
    throw new Error(`${manifestFile}: store version ${manifest.triplexStore}, this TRIPLEX reads version ${STORE_VERSION}; re-run \`triplex preprocess\``);
  }
  checkManifestIds(manifestFile, manifest);
  checkStoreFiles(dir, manifestFile, manifest);
  const spots = readArrowFile(path.join(dir, 'spots.arrow'));
  const total = manifest.sections.reduce((n, s) => n + s.spots, 0);
  const sectionOfRow = stringColumn(spots, 'section');
  const rowsOf = (section: string) => sectionOfRow.flatMap((s, i) => (s === section ? [i] : []));
  if (manifest.counts === false) {
    if (spots.numRows !== total) throw new Error(`${dir}: the manifest lists ${total} spots, spots.arrow has ${spots.numRows}; re-run \`triplex slide\``);
    const none = () => {
      throw new Error(`${dir} has no counts (it was made by \`triplex slide\` from ${manifest.source.path}): it can be predicted, not trained on or scored`);
    };
    return { dir, manifest, spots, hasCounts: false, genes: [], values: none, counts: none, rowsOf };
  }
  const expressions = readArrowFile(path.join(dir, 'expressions.arrow'));
  if (spots.numRows !== total || expressions.numRows !== total) {
    throw new Error(`${dir}: the manifest lists ${total} spots, spots.arrow has ${spots.numRows} and expressions.arrow ${expressions.numRows}; re-run \`triplex preprocess\``);
  }
  const genes = JSON.parse(expressions.schema.metadata.get('triplex:genes') ?? '[]') as string[];
  return {
    dir, manifest, spots, expressions, hasCounts: true, genes,
    values: () => vectorColumn(expressions, 'values').values,
    counts: () => vectorColumn(expressions, 'counts').values,
    rowsOf,
  };
}
