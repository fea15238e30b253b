/**
 * One entry point for every dataset users have: detect the format of a path, read it into the
 * in-memory model, and summarise what was read (`triplex dataset inspect`).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkImageData } from '../image/slideImage';
import { checkRegularFile } from './files';
import { readH5ad } from './h5ad';
import { readCohort, readH5adFolder } from './cohort';
import { byName, her2stLayout, readHer2st, spotsOutsideImage } from './her2st';
import { isSampleSheet } from './sampleSheet';
import { DataFileError, type DatasetFormat, type ImageRef, type Problem, type SpatialDataset } from './types';
import { readVisium, visiumFolder } from './visium';
import { resolveScales } from './scales';

export interface ReadOptions {
  /** Full-resolution H&E image of the one section of a Visium folder or .h5ad file. */
  image?: string;
  /** Patient of the section(s) of a Visium folder or .h5ad file. */
  patient?: string;
  /** Only these sections (an unknown name is an error listing the ones there are). */
  sections?: string[];
  /** A folder of .h5ad files whose files name no patient: each sample is its own patient. */
  patientPerSample?: boolean;
  /** Microns per pixel of the images (`--mpp`): checked against what the files and sheet say. */
  mpp?: number;
}

const EXPECTED = 'expected a HER2+ folder (holding ST-cnts/ or count-matrices/), a Space Ranger output folder (holding filtered_feature_bc_matrix.h5), an AnnData .h5ad file, a folder of .h5ad files or a sample sheet (.csv/.tsv)';

/**
 * her2st: a folder with ST-cnts (or count-matrices); visium: a folder (or its outs/) with
 * filtered_feature_bc_matrix.h5; h5ad: a .h5ad file; cohort: a sample sheet (.csv, .tsv) or a
 * folder of .h5ad files (HEST: one file per sample).
 */
export function detectFormat(p: string): DatasetFormat {
  const abs = path.resolve(p);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(abs);
  } catch (e) {
    throw new DataFileError(abs, undefined, `not found; ${EXPECTED}`, { cause: e });
  }
  if (stat.isFile()) {
    if (/\.h5ad$/i.test(abs)) return 'h5ad';
    if (isSampleSheet(abs)) return 'cohort';
    if (path.basename(abs) === 'filtered_feature_bc_matrix.h5') {
      throw new DataFileError(abs, undefined, 'give the Space Ranger folder holding this file and spatial/, not the file itself');
    }
    throw new DataFileError(abs, undefined, `not a dataset; ${EXPECTED}`);
  }
  // A named pipe, device or socket is neither a file nor a folder: say what it is (once called "not a dataset folder").
  if (!stat.isDirectory()) checkRegularFile(abs);
  if (her2stLayout(abs)) return 'her2st';
  if (visiumFolder(abs)) return 'visium';
  if (fs.readdirSync(abs).some((f) => /\.h5ad$/i.test(f))) return 'cohort';
  throw new DataFileError(abs, undefined, `not a dataset folder; ${EXPECTED}`);
}

/** Reads any supported dataset; errors are DataFileErrors naming the file and the row or field. */
export async function readDataset(p: string, opts: ReadOptions = {}): Promise<SpatialDataset> {
  const ds = await readFormat(p, opts);
  await resolveScales(ds, opts.mpp);
  return ds;
}

async function readFormat(p: string, opts: ReadOptions): Promise<SpatialDataset> {
  const format = detectFormat(p);
  switch (format) {
    case 'her2st':
      if (opts.image || opts.patient) {
        throw new DataFileError(path.resolve(p), opts.image ? '--image' : '--patient',
          'a HER2+ folder takes its images from ST-imgs/<patient>/<section>/ and its patients from the section names; leave the option out');
      }
      return readHer2st(p, { sections: opts.sections });
    case 'visium':
      return onlySections(await readVisium(p, opts), opts.sections);
    case 'h5ad':
      return onlySections(await readH5ad(p, opts), opts.sections);
    case 'cohort':
      if (opts.image || opts.patient) {
        throw new DataFileError(path.resolve(p), opts.image ? '--image' : '--patient',
          'a cohort names each section\'s image and patient itself (sample sheet columns image and patient, or each .h5ad file); leave the option out');
      }
      return onlySections(await (fs.statSync(p).isDirectory() ? readH5adFolder(p, opts) : readCohort(p)), opts.sections);
  }
}

function onlySections(ds: SpatialDataset, wanted: string[] | undefined): SpatialDataset {
  if (!wanted) return ds;
  const ids = ds.sections.map((s) => s.id);
  const unknown = wanted.filter((w) => !ids.includes(w));
  if (unknown.length) throw new DataFileError(ds.source, '--sections', `no section ${unknown.join(', ')}; there are ${ids.join(', ')}`);
  return { ...ds, sections: ds.sections.filter((s) => wanted.includes(s.id)) };
}

/** What `triplex dataset inspect` reports: plain data, printable as JSON. */
export interface InspectReport {
  format: DatasetFormat;
  source: string;
  patients: Array<{ id: string; sections: string[] }>;
  totals: {
    sections: number;
    spots: number;
    /** Genes in at least one section. */
    genesInAny: number;
    /** Genes present in every section (what preprocessing selects from). */
    genesInAll: number;
  };
  sections: SectionSummary[];
  /** Every problem the reader reported, in its order. */
  problems: Problem[];
}

export interface SectionSummary {
  id: string;
  patient: string;
  spots: number;
  genes: number;
  /** Spots with a pathologist label. */
  labelled: number;
  image: ImageRef | 'none';
  /** Spots whose pixel centre is outside the image; null without an image or its size. */
  outsideImage: number | null;
  /** Problems that concern this section. */
  problems: number;
}

/**
 * Images whose data does not decode completely (a truncated JPEG whose header still gives the
 * full size), as problems: reading a dataset reads image headers only, so `dataset inspect`
 * decodes each image once (at 1/8 scale for JPEG) to find them before `extract` would.
 */
export async function imageDataProblems(ds: SpatialDataset): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const s of ds.sections) {
    if (!s.image) continue;
    try {
      await checkImageData(s.image.path);
    } catch (e) {
      problems.push({ file: s.image.path, section: s.id, message: (e as Error).message.replace(`${s.image.path}: `, '') });
    }
  }
  return problems;
}

/** Summarises a dataset: patients, sizes, images, spots outside them, and all problems. */
export function inspectDataset(ds: SpatialDataset): InspectReport {
  const patients = new Map<string, string[]>();
  for (const s of ds.sections) {
    const list = patients.get(s.patient) ?? [];
    list.push(s.id);
    patients.set(s.patient, list);
  }
  const any = new Set<string>();
  let all: Set<string> | undefined;
  for (const s of ds.sections) {
    for (const g of s.genes) any.add(g);
    all = all ? new Set(s.genes.filter((g) => all!.has(g))) : new Set(s.genes);
  }
  return {
    format: ds.format,
    source: ds.source,
    patients: [...patients.keys()].sort(byName).map((id) => ({ id, sections: patients.get(id)! })),
    totals: {
      sections: ds.sections.length,
      spots: ds.sections.reduce((n, s) => n + s.spots.length, 0),
      genesInAny: any.size,
      genesInAll: all?.size ?? 0,
    },
    sections: ds.sections.map((s) => ({
      id: s.id,
      patient: s.patient,
      spots: s.spots.length,
      genes: s.genes.length,
      labelled: s.spots.filter((p) => p.label !== undefined).length,
      image: s.image ?? 'none',
      outsideImage: s.image?.width && s.image.height ? spotsOutsideImage(s.spots, s.image).length : null,
      problems: ds.problems.filter((p) => p.section === s.id).length,
    })),
    problems: ds.problems,
  };
}

const FORMAT_NAMES: Record<DatasetFormat, string> = { her2st: 'HER2+ (ST)', visium: 'Visium (Space Ranger)', h5ad: 'AnnData (.h5ad)', cohort: 'cohort' };
const LINE_WIDTH = 150;

/**
 * A short text summary: totals, a table with one line per section, then the problems grouped by
 * kind (the text before the first ": " of their message; the readers write "<kind>: <details>"),
 * one line per kind, cut at the line width; `--json` gives every detail.
 */
export function formatInspectReport(r: InspectReport): string {
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = [
    `${FORMAT_NAMES[r.format]}  ${r.source}`,
    `${count(r.patients.length, 'patient')}, ${count(r.totals.sections, 'section')}, ${count(r.totals.spots, 'spot')}; genes: ${n(r.totals.genesInAny)} in any section, ${n(r.totals.genesInAll)} in all`,
    ...wrap(`patients: ${r.patients.map((p) => `${p.id} (${p.sections.length})`).join(', ')}`),
  ];
  const rows = [['section', 'patient', 'spots', 'genes', 'labelled', 'outside', 'image']];
  for (const s of r.sections) {
    const image = s.image === 'none' ? 'none' : `${s.image.width ?? '?'} x ${s.image.height ?? '?'}  ${shortPath(s.image.path, r.source)}`;
    rows.push([s.id, s.patient, n(s.spots), n(s.genes), n(s.labelled), s.outsideImage === null ? '-' : n(s.outsideImage), image]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const numeric = new Set([2, 3, 4, 5]);
  for (const row of rows) {
    lines.push(row.map((cell, c) => (c === row.length - 1 ? cell : numeric.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
  }
  if (r.problems.length === 0) {
    lines.push('problems: none');
    return lines.join('\n');
  }
  lines.push(`problems (${r.problems.length}):`);
  const groups = new Map<string, Problem[]>();
  for (const p of r.problems) {
    const kind = p.message.includes(': ') ? p.message.slice(0, p.message.indexOf(': ')) : p.message;
    groups.set(kind, [...(groups.get(kind) ?? []), p]);
  }
  for (const [kind, problems] of groups) {
    const details = problems.map((p) => {
      const detail = p.message.slice(kind.length + 2);
      return p.section ? `${p.section} ${detail}`.trim() : detail || path.basename(p.file);
    });
    lines.push(cut(`  ${kind}${problems.length > 1 ? ` (${problems.length})` : ''}: ${details.join('; ')}`));
  }
  return lines.join('\n');
}

function count(v: number, noun: string): string {
  return `${v.toLocaleString('en-US')} ${noun}${v === 1 ? '' : 's'}`;
}

function shortPath(file: string, source: string): string {
  const rel = path.relative(fs.statSync(source, { throwIfNoEntry: false })?.isDirectory() ? source : path.dirname(source), file);
  return rel.startsWith('..') || path.isAbsolute(rel) ? file : rel;
}

function cut(line: string): string {
  return line.length <= LINE_WIDTH ? line : `${line.slice(0, LINE_WIDTH - 25)} ... (--json for all)`;
}

function wrap(text: string): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + word.length + 1 > LINE_WIDTH) {
      out.push(line);
      line = `  ${word}`;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}
