/**
 * The in-memory model every reader produces: patients, sections, spots, counts, image handles.
 * Readers for the published HER2+ layout, Visium Space Ranger folders and AnnData files all
 * return a SpatialDataset; preprocessing, crops and the Arrow store only see this model.
 */

/** One spot of a spatial transcriptomics array. */
export interface Spot {
  /** The id the counts use (HER2+: "<x>x<y>"; Visium: the barcode; h5ad: obs name). */
  id: string;
  /** Integer array coordinates: the APEG grid (HER2+: round(y), round(x); Visium: array_row, array_col). */
  row: number;
  col: number;
  /** Spot centre in full-resolution image pixels. */
  x: number;
  y: number;
  /** Pathologist annotation, when the dataset has one. */
  label?: string;
}

/**
 * Counts of one section, spots x genes, in compressed sparse row form (most entries are zero:
 * a HER2+ section is ~600 spots x ~15,000 genes). Row i holds the spot sections[].spots[i].
 */
export interface CountMatrix {
  nSpots: number;
  nGenes: number;
  /** Row pointers, length nSpots + 1. */
  indptr: Uint32Array;
  /** Gene index of each stored value. */
  indices: Uint32Array;
  /** Stored values: raw counts (integers as float32), or what the file holds. */
  data: Float32Array;
}

/** Where a section's full-resolution H&E image is, with its size when known without decoding. */
export interface ImageRef {
  path: string;
  width?: number;
  height?: number;
}

export interface Section {
  /** Section name, unique in the dataset (HER2+: "C2"). */
  id: string;
  /** Patient the section comes from (HER2+: the letter of the section name). */
  patient: string;
  spots: Spot[];
  /** Gene names, one per count column. */
  genes: string[];
  counts: CountMatrix;
  image?: ImageRef;
  /** Microns per pixel of the image, when known (see sectionScales). */
  mpp?: number;
  /** Where `mpp` was read, for messages. */
  mppSource?: string;
}

/** cohort: sections gathered from several datasets (a sample sheet, or a folder of .h5ad files). */
export type DatasetFormat = 'her2st' | 'visium' | 'h5ad' | 'cohort';

/** Something worth telling the user that does not stop reading (spots outside the image, ...). */
export interface Problem {
  file: string;
  /** Section it concerns, when one. */
  section?: string;
  message: string;
}

export interface SpatialDataset {
  format: DatasetFormat;
  /** The folder or file read. */
  source: string;
  sections: Section[];
  problems: Problem[];
}

/**
 * A file that cannot be read as the format requires. The message names the file and the row or
 * field at fault, and says what to do.
 */
export class DataFileError extends Error {
  constructor(readonly file: string, readonly where: string | undefined, message: string, options?: ErrorOptions) {
    super(`${file}${where ? ` (${where})` : ''}: ${message}`, options);
    this.name = 'DataFileError';
  }
}
