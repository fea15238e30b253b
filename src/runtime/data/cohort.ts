/**
 * Cohorts: sections from several datasets read into ONE SpatialDataset with their patients, so
 * that preprocessing selects genes over all of them and cross-validation folds by patient.
 *
 * - A sample sheet (sampleSheet.ts): one row per section, each read with the reader of its
 *   format (Space Ranger folder, .h5ad file, or a HER2+ folder and its `section`), the row's
 *   patient, image, mpp and labels applied. An error in a row names the sheet and the line.
 * - A folder of .h5ad files (HEST: one file per sample): each file must name its patient (obs
 *   column or uns `patient`/`patient_id`), or the user says that every sample is its own
 *   patient (patientPerSample).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readH5ad } from './h5ad';
import { byName, her2stLayout, readHer2st, readImageSize, readLabels } from './her2st';
import { listIds } from './names';
import { readSampleSheet, type SheetRow } from './sampleSheet';
import { applyScale } from './scales';
import { DataFileError, type Problem, type Section, type SpatialDataset } from './types';
import { readVisium, visiumFolder } from './visium';

/** Reads every row of a sample sheet into one dataset (format 'cohort', source: the sheet). */
export async function readCohort(sheet: string): Promise<SpatialDataset> {
  const file = path.resolve(sheet);
  const rows = readSampleSheet(file);
  const sections: Section[] = [];
  const problems: Problem[] = [];
  const lineOf = new Map<string, number>();
  // One row at a time: a cohort can be large, and an error stops the read before anything is written.
  for (const row of rows) {
    let read: SpatialDataset;
    try {
      read = await readRow(row, file);
    } catch (e) {
      throw new DataFileError(file, `line ${row.line}`, e instanceof Error ? e.message : String(e), { cause: e });
    }
    for (const s of read.sections) {
      const other = lineOf.get(s.id);
      if (other !== undefined) {
        throw new DataFileError(file, `line ${row.line}`, `section ${s.id} is also read on line ${other}; every section needs its own id (set the column section)`);
      }
      lineOf.set(s.id, row.line);
      sections.push(s);
    }
    problems.push(...read.problems);
  }
  return { format: 'cohort', source: file, sections, problems };
}

/** One row's sections, with its patient, section id, image, mpp and labels applied. */
async function readRow(row: SheetRow, sheet: string): Promise<SpatialDataset> {
  let ds: SpatialDataset;
  const stat = fs.statSync(row.path);
  if (stat.isFile() && /\.h5ad$/i.test(row.path)) {
    ds = await readH5ad(row.path, { image: row.image, patient: row.patient });
  } else if (stat.isDirectory() && her2stLayout(row.path)) {
    if (!row.section) throw new DataFileError(row.path, undefined, 'a HER2+ folder holds several sections; name the one of this row in the column section');
    ds = await readHer2st(row.path, { sections: [row.section] });
    ds.sections[0].patient = row.patient;
    if (row.image) ds.sections[0].image = { path: row.image, ...(await readImageSize(row.image)) };
  } else if (stat.isDirectory() && visiumFolder(row.path)) {
    ds = await readVisium(row.path, { image: row.image, patient: row.patient });
  } else {
    throw new DataFileError(row.path, undefined, 'is not a dataset of a row: give a Space Ranger output folder, an .h5ad file, or a HER2+ folder with the column section');
  }
  if (row.section && ds.sections.length > 1) {
    const one = ds.sections.find((s) => s.id === row.section);
    if (!one) throw new DataFileError(row.path, undefined, `holds the sections ${ds.sections.map((s) => s.id).join(', ')}, not ${row.section}; name one of them in the column section`);
    ds = { ...ds, sections: [one], problems: ds.problems.filter((p) => !p.section || p.section === one.id) };
  } else if (row.section && ds.sections[0].id !== row.section) {
    const old = ds.sections[0].id;
    ds.sections[0].id = row.section;
    ds.problems = ds.problems.map((p) => (p.section === old ? { ...p, section: row.section } : p));
  }
  // The readers' advice names the command-line option; in a sheet it is the column, and the section its id there.
  const ids = ds.sections.map((s) => s.id).join(', ');
  ds.problems = ds.problems.map((p) => (p.message.startsWith('sections without an image:') && !row.image
    ? { ...p, message: `sections without an image: ${ids} (give the full-resolution H&E in the sheet's column image)` }
    : p));
  for (const s of ds.sections) {
    if (row.mpp) applyScale(s, { mpp: row.mpp, source: `the mpp of ${sheet} line ${row.line}` }, sheet, 'given');
    if (row.labels) await applyLabels(s, row.labels, ds.problems);
  }
  return ds;
}

/**
 * A label file (columns x, y, label, as the HER2+ layout's ST-pat/lbl files) matched to the
 * section's spots by grid position: x the array column, y the array row (rounded).
 */
async function applyLabels(section: Section, file: string, problems: Problem[]): Promise<void> {
  const key = (s: Section['spots'][number]) => `${s.col}x${s.row}`;
  const labels = await readLabels(file, section.id, new Set(section.spots.map(key)), problems);
  let matched = 0;
  for (const s of section.spots) {
    const label = labels.get(key(s));
    if (label === undefined) delete s.label;
    else { s.label = label; matched++; }
  }
  if (matched === 0) {
    throw new DataFileError(file, undefined, `labels none of the ${section.spots.length} spots of section ${section.id}; its x and y must be the spots' array column and row`);
  }
}

export interface H5adFolderOptions {
  /** Take each sample as its own patient when a file names none (said in the problems). */
  patientPerSample?: boolean;
}

/** A folder of .h5ad files (HEST: one per sample) as one dataset; every file must name its patient. */
export async function readH5adFolder(dir: string, opts: H5adFolderOptions = {}): Promise<SpatialDataset> {
  const source = path.resolve(dir);
  const files = fs.readdirSync(source).filter((f) => /\.h5ad$/i.test(f)).sort(byName);
  if (files.length === 0) throw new DataFileError(source, undefined, 'holds no .h5ad files');
  const advice = 'cross-validation holds out whole patients, so name them: give a sample sheet (`--samples sheet.csv` with columns path, patient), ' +
    'add an obs column or uns entry patient to the file, or pass --patient-per-sample to take each sample as its own patient';
  const sections: Section[] = [];
  const problems: Problem[] = [];
  const fileOf = new Map<string, string>();
  for (const f of files) {
    const file = path.join(source, f);
    const ds = await readH5ad(file, opts.patientPerSample ? {} : { requirePatient: advice });
    for (const s of ds.sections) {
      const other = fileOf.get(s.id);
      if (other) throw new DataFileError(file, undefined, `sample ${s.id} is also in ${other}; every sample needs its own name`);
      fileOf.set(s.id, file);
      sections.push(s);
    }
    problems.push(...ds.problems);
  }
  if (opts.patientPerSample) {
    const own = sections.filter((s) => s.patient === s.id).map((s) => s.id);
    if (own.length > 0) problems.push({ file: source, message: `samples taken as their own patient (--patient-per-sample): ${listIds(own)}` });
  }
  return { format: 'cohort', source, sections, problems };
}
