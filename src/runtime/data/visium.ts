/**
 * Reader for a Space Ranger output folder (10x Visium): one section per folder.
 *
 *   filtered_feature_bc_matrix.h5     HDF5 group `matrix`: genes x barcodes in CSC form
 *   spatial/tissue_positions.csv      barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres
 *     (or the headerless spatial/tissue_positions_list.csv of Space Ranger < 2.0)
 *   spatial/scalefactors_json.json    used only to check that the image given is the slide's
 *
 * A column of the CSC matrix is one barcode's counts, so the kept barcodes' columns are our
 * spots x genes rows as they stand. Spots: the matrix barcodes, in matrix order, that the
 * positions file marks in tissue (x = pxl_col_in_fullres, y = pxl_row_in_fullres; grid =
 * array_row, array_col). A matrix barcode missing from the positions, or an in-tissue barcode
 * missing from the matrix, means the files are from different runs: an error. Features that are
 * not "Gene Expression" (antibody capture, ...) are left out; gene names are the feature names
 * (symbols), made unique as scanpy does.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unsafeIdReason } from '../store/identifiers';
import { checkCompressed, checkGridCells, csrRows, damaged, openHdf5, readCompressed, uniqueGeneNames, type Hdf5 } from './h5ad';
import { readImageSize, spotsOutsideImage } from './her2st';
import { listIds } from './names';
import { visiumScale } from './scales';
import { firstBadCount, parseDecimal } from './numbers';
import { checkRegularFile } from './files';
import { DataFileError, type ImageRef, type Problem, type Section, type SpatialDataset, type Spot } from './types';

export interface VisiumOptions {
  /** The full-resolution H&E image the run was made from (TIFF or JPEG). */
  image?: string;
  /** Patient of the section (default: the section id). */
  patient?: string;
}

const MATRIX = 'filtered_feature_bc_matrix.h5';
const POSITION_COLUMNS = ['barcode', 'in_tissue', 'array_row', 'array_col', 'pxl_row_in_fullres', 'pxl_col_in_fullres'] as const;

/** The Space Ranger folder to read: the one given, or its `outs` subfolder. */
export function visiumFolder(dir: string): string | undefined {
  const abs = path.resolve(dir);
  if (fs.existsSync(path.join(abs, MATRIX))) return abs;
  if (fs.existsSync(path.join(abs, 'outs', MATRIX))) return path.join(abs, 'outs');
  return undefined;
}

/** Reads one Space Ranger output folder (or the run folder holding `outs/`) as one section. */
export async function readVisium(dir: string, opts: VisiumOptions = {}): Promise<SpatialDataset> {
  const source = path.resolve(dir);
  const folder = visiumFolder(source);
  if (!folder) throw new DataFileError(path.join(source, MATRIX), undefined, 'not found; give a Space Ranger output folder (the one holding filtered_feature_bc_matrix.h5 and spatial/)');
  const sectionId = path.basename(folder) === 'outs' ? path.basename(path.dirname(folder)) : path.basename(folder);
  const problems: Problem[] = [];
  const badId = unsafeIdReason(sectionId);
  if (badId) throw new DataFileError(folder, undefined, `the folder name "${sectionId}" names the section, and it ${badId}; rename the folder`);
  const badPatient = opts.patient === undefined ? undefined : unsafeIdReason(opts.patient);
  if (badPatient) throw new DataFileError(folder, '--patient', `"${opts.patient}" cannot name a patient: it ${badPatient}`);

  const matrixFile = path.join(folder, MATRIX);
  const h = await openHdf5(matrixFile, 'a Space Ranger feature-barcode matrix (filtered_feature_bc_matrix.h5)');
  let matrix: ReturnType<typeof readMatrix>;
  try {
    matrix = readMatrix(h, sectionId, problems);
  } catch (e) {
    throw damaged(e, matrixFile);
  } finally {
    h.close();
  }
  const positions = readPositions(folder);

  const spots: Spot[] = [];
  const rows: number[] = [];
  const outOfTissue: string[] = [];
  const inMatrix = new Set(matrix.barcodes);
  matrix.barcodes.forEach((barcode, column) => {
    const p = positions.byBarcode.get(barcode);
    if (!p) {
      throw new DataFileError(positions.file, `barcode ${barcode}`, `is in ${MATRIX} but has no row here; are both files from the same Space Ranger run?`);
    }
    if (!p.inTissue) {
      outOfTissue.push(barcode);
      return;
    }
    spots.push({ id: barcode, row: p.arrayRow, col: p.arrayCol, x: p.x, y: p.y });
    rows.push(column);
  });
  for (const p of positions.byBarcode.values()) {
    if (p.inTissue && !inMatrix.has(p.barcode)) {
      throw new DataFileError(positions.file, `line ${p.line}, barcode ${p.barcode}`, `is in tissue but not in ${MATRIX}; are both files from the same Space Ranger run?`);
    }
  }
  if (outOfTissue.length > 0) {
    problems.push({ file: matrixFile, section: sectionId, message: `matrix barcodes outside the tissue, dropped: ${listIds(outOfTissue)}` });
  }
  if (spots.length === 0) throw new DataFileError(positions.file, undefined, `marks none of the ${matrix.barcodes.length} matrix barcodes as in tissue`);
  checkGridCells(spots, positions.file, 'array_row, array_col');

  const section: Section = {
    id: sectionId,
    patient: opts.patient ?? sectionId,
    spots,
    genes: matrix.genes,
    counts: csrRows(matrix.raw, rows, matrix.genes.length, matrix.geneMap),
  };
  const bad = firstBadCount(section.counts);
  if (bad) {
    throw new DataFileError(matrixFile, `matrix/data, barcode ${spots[bad.row].id}, feature ${section.genes[bad.column]}`, `holds ${bad.value}; counts must be finite, non-negative numbers`);
  }
  if (opts.image) {
    const image: ImageRef = { path: path.resolve(opts.image), ...(await readImageSize(opts.image)) };
    section.image = image;
    const outside = spotsOutsideImage(spots, image);
    if (outside.length > 0) {
      problems.push({ file: image.path, section: sectionId, message: `spots whose pixel centre is outside the image (${image.width} x ${image.height}): ${listIds(outside.map((s) => s.id))}` });
    }
    const scale = visiumScale(folder); // spot_diameter_fullres is in this image's pixels
    if (scale) {
      section.mpp = scale.mpp;
      section.mppSource = scale.source;
    }
    const expected = await expectedImageSize(folder, problems, sectionId);
    if (expected && (Math.abs(image.width! - expected.width) > 0.02 * expected.width || Math.abs(image.height! - expected.height) > 0.02 * expected.height)) {
      problems.push({
        file: image.path, section: sectionId,
        message: `image size unlike the run's: ${image.width} x ${image.height}, but spatial/tissue_hires_image.png and tissue_hires_scalef imply about ${expected.width} x ${expected.height}; is it the image Space Ranger was given?`,
      });
    }
  } else {
    problems.push({ file: folder, message: `sections without an image: ${sectionId} (give the full-resolution H&E the run was made from with --image)` });
  }
  return { format: 'visium', source, sections: [section], problems };
}

interface Matrix {
  barcodes: string[];
  genes: string[];
  /** Old feature index -> kept gene index, or -1 for features left out. */
  geneMap: Int32Array;
  raw: { indptr: ArrayLike<number>; indices: ArrayLike<number>; data: ArrayLike<number> };
}

function readMatrix(h: Hdf5, section: string, problems: Problem[]): Matrix {
  if (h.kind('matrix') !== 'group') {
    throw new DataFileError(h.file, 'matrix', 'no HDF5 group "matrix": not a Space Ranger feature-barcode matrix (give filtered_feature_bc_matrix.h5 from outs/)');
  }
  const shape = Array.from(h.numbers('matrix/shape', 'the matrix shape [genes, barcodes]'));
  if (shape.length !== 2) throw new DataFileError(h.file, 'matrix/shape', `is [${shape.join(', ')}], expected [genes, barcodes]`);
  const [nFeatures, nBarcodes] = shape;
  const barcodes = h.strings('matrix/barcodes');
  if (barcodes.length !== nBarcodes) throw new DataFileError(h.file, 'matrix/barcodes', `has ${barcodes.length} barcodes but matrix/shape says ${nBarcodes}`);
  const names = h.strings('matrix/features/name');
  if (names.length !== nFeatures) throw new DataFileError(h.file, 'matrix/features/name', `has ${names.length} names but matrix/shape says ${nFeatures} features`);
  const raw = readCompressed(h, 'matrix');
  checkCompressed(raw, nBarcodes, nFeatures, h.file, 'matrix');

  const types = h.has('matrix/features/feature_type') ? h.strings('matrix/features/feature_type') : undefined;
  const geneMap = new Int32Array(nFeatures);
  const kept: string[] = [];
  const other = new Map<string, number>();
  for (let j = 0; j < nFeatures; j++) {
    if (types && types[j] !== 'Gene Expression') {
      geneMap[j] = -1;
      other.set(types[j], (other.get(types[j]) ?? 0) + 1);
    } else {
      geneMap[j] = kept.length;
      kept.push(names[j]);
    }
  }
  if (other.size > 0) {
    problems.push({ file: h.file, section, message: `features that are not Gene Expression, left out: ${[...other].map(([t, n]) => `${n} ${t}`).join(', ')}` });
  }
  return { barcodes, genes: uniqueGeneNames(kept, h.file, section, problems), geneMap, raw };
}

interface Position { barcode: string; line: number; inTissue: boolean; arrayRow: number; arrayCol: number; x: number; y: number }

function readPositions(folder: string): { file: string; byBarcode: Map<string, Position> } {
  const withHeader = path.join(folder, 'spatial', 'tissue_positions.csv');
  const headerless = path.join(folder, 'spatial', 'tissue_positions_list.csv');
  const file = fs.existsSync(withHeader) ? withHeader : fs.existsSync(headerless) ? headerless : undefined;
  if (!file) throw new DataFileError(withHeader, undefined, 'not found (nor tissue_positions_list.csv); the spot positions are in the spatial/ folder of the Space Ranger output');
  checkRegularFile(file);
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/);
  // Space Ranger >= 2.0 writes a header; older versions the same columns without one.
  const first = lines[0].split(',').map((c) => c.trim());
  const hasHeader = first.includes('barcode') || !Number.isFinite(Number(first[1]));
  const col: number[] = POSITION_COLUMNS.map((name, i) => {
    if (!hasHeader) return i;
    const at = first.indexOf(name);
    if (at < 0) throw new DataFileError(file, `line 1, column ${name}`, `missing from the header (${first.join(',')}); expected ${POSITION_COLUMNS.join(',')}`);
    return at;
  });
  const byBarcode = new Map<string, Position>();
  for (let i = hasHeader ? 1 : 0; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const f = lines[i].split(',');
    const need = Math.max(...col) + 1;
    if (f.length < need) {
      throw new DataFileError(file, `line ${i + 1}`, `has ${f.length} fields, expected ${need}: ${POSITION_COLUMNS.join(',')}`);
    }
    const num = (k: number): number => {
      const text = f[col[k]].trim();
      const v = parseDecimal(text);
      if (v === undefined) throw new DataFileError(file, `line ${i + 1}, column ${POSITION_COLUMNS[k]}`, `"${text}" is not a decimal number`);
      return v;
    };
    const barcode = f[col[0]].trim();
    if (byBarcode.has(barcode)) throw new DataFileError(file, `line ${i + 1}`, `barcode ${barcode} appears twice (also line ${byBarcode.get(barcode)!.line})`);
    byBarcode.set(barcode, { barcode, line: i + 1, inTissue: num(1) === 1, arrayRow: num(2), arrayCol: num(3), y: num(4), x: num(5) });
  }
  return { file, byBarcode };
}

/** Full-resolution size implied by the high-resolution PNG and its scale factor, when both are there. */
async function expectedImageSize(folder: string, problems: Problem[], section: string): Promise<{ width: number; height: number } | undefined> {
  const json = path.join(folder, 'spatial', 'scalefactors_json.json');
  const png = path.join(folder, 'spatial', 'tissue_hires_image.png');
  if (!fs.existsSync(json) || !fs.existsSync(png)) return undefined;
  let scale: unknown;
  checkRegularFile(json);
  try {
    scale = (JSON.parse(await fs.promises.readFile(json, 'utf8')) as { tissue_hires_scalef?: unknown }).tissue_hires_scalef;
  } catch (e) {
    problems.push({ file: json, section, message: `unreadable scale factors: ${(e as Error).message}; the image size was not checked` });
    return undefined;
  }
  if (typeof scale !== 'number' || !(scale > 0)) return undefined;
  let hires: { width: number; height: number };
  try {
    hires = await readImageSize(png);
  } catch (e) {
    problems.push({ file: png, section, message: `unreadable high-resolution image: ${(e as Error).message}; the image size was not checked` });
    return undefined;
  }
  return { width: Math.round(hires.width / scale), height: Math.round(hires.height / scale) };
}
