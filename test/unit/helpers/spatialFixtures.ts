/**
 * Small synthetic spatial datasets, and writers that store one in each layout users have
 * (HER2+ folder, Space Ranger folder, AnnData .h5ad), so that the readers can be checked
 * against the same truth. HDF5 files are written with h5wasm, as h5py would write them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import type * as H5 from 'h5wasm';
import { mulberry32 } from '../../../src/runtime/util/random';

export interface TruthSpot {
  barcode: string;
  row: number;
  col: number;
  x: number;
  y: number;
  label?: string;
}

/** One section as the readers should return it (counts dense, spots x genes). */
export interface TruthSection {
  id: string;
  genes: string[];
  spots: TruthSpot[];
  counts: number[][];
}

/** Deterministic numbers (mulberry32). */
const random = mulberry32;

const BASES = 'ACGT';

/**
 * A section on a square (ST) or hexagonal (Visium-numbered) grid with about half of the counts
 * zero. Spot centres are 290 px apart with sub-pixel jitter; grid coordinates start at 3, 5.
 */
export function truthSection(opts: { id?: string; rows?: number; cols?: number; genes?: number; seed?: number; grid?: 'square' | 'hex'; labels?: boolean } = {}): TruthSection {
  const { id = 'A1', rows = 4, cols = 5, genes = 7, seed = 1, grid = 'square', labels = false } = opts;
  const rnd = random(seed);
  const pitch = 290;
  const spots: TruthSpot[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const barcode = `${Array.from({ length: 16 }, () => BASES[Math.floor(rnd() * 4)]).join('')}-1`;
      const jitter = () => (rnd() - 0.5) * 6;
      if (grid === 'square') {
        spots.push({ barcode, row: 3 + r, col: 5 + c, x: 400 + c * pitch + jitter(), y: 700 + r * pitch + jitter() });
      } else {
        // Visium numbering: array_col steps by 2 along a row, odd rows shifted by one.
        const col = 2 * c + (r % 2);
        spots.push({ barcode, row: 3 + r, col: 5 + col, x: 400 + (col * pitch) / 2 + jitter(), y: 700 + (r * pitch * Math.sqrt(3)) / 2 + jitter() });
      }
      if (labels) spots[spots.length - 1].label = ['invasive cancer', 'connective tissue', 'immune infiltrate'][Math.floor(rnd() * 3)];
    }
  }
  const counts = spots.map(() => Array.from({ length: genes }, () => (rnd() < 0.5 ? 0 : 1 + Math.floor(rnd() * 40))));
  return { id, genes: Array.from({ length: genes }, (_, j) => `GENE${j + 1}`), spots, counts };
}

/** A fresh temporary folder, removed when the process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `triplex-${prefix}-`));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------------------------------------
// HER2+ layout.

export interface Her2stWriteOptions {
  /** Replace the count text of one cell (spot index, gene index). */
  badCount?: { spot: number; gene: number; text: string };
  /** Extra count rows whose ids are not in the spot file. */
  extraCountIds?: string[];
  /** Spot indices left out of the count file (present in the spot file only). */
  withoutCounts?: number[];
  /** Spot indices listed in the spot file with selected = 0. */
  unselected?: number[];
  /** Added to every spot file x (so that no count id matches). */
  shiftSpotFile?: number;
  /** Write ST-imgs/<patient>/<section>/<section>.jpg: a header-only JPEG of this size. */
  image?: { width: number; height: number };
}

/** A HER2+ folder (ST-cnts, ST-spotfiles, optional ST-imgs and ST-pat/lbl) for the sections. */
export function writeHer2st(root: string, sections: TruthSection[], opts: Her2stWriteOptions = {}): string {
  for (const d of ['ST-cnts', 'ST-spotfiles', 'ST-pat/lbl']) fs.mkdirSync(path.join(root, d), { recursive: true });
  for (const s of sections) {
    const lines = [['', ...s.genes].join('\t')];
    s.spots.forEach((p, i) => {
      if (opts.withoutCounts?.includes(i)) return;
      const cells = s.counts[i].map(String);
      if (opts.badCount?.spot === i) cells[opts.badCount.gene] = opts.badCount.text;
      lines.push([`${p.col}x${p.row}`, ...cells].join('\t'));
    });
    for (const id of opts.extraCountIds ?? []) lines.push([id, ...s.genes.map(() => '1')].join('\t'));
    fs.writeFileSync(path.join(root, 'ST-cnts', `${s.id}.tsv.gz`), zlib.gzipSync(`${lines.join('\n')}\n`));

    const spotLines = ['x\ty\tnew_x\tnew_y\tpixel_x\tpixel_y\tselected'];
    s.spots.forEach((p, i) => {
      const x = p.col + (opts.shiftSpotFile ?? 0);
      spotLines.push([x, p.row, x + 0.04, p.row - 0.03, p.x, p.y, opts.unselected?.includes(i) ? 0 : 1].join('\t'));
    });
    fs.writeFileSync(path.join(root, 'ST-spotfiles', `${s.id}_selection.tsv`), `${spotLines.join('\n')}\n`);

    if (s.spots.some((p) => p.label !== undefined)) {
      const lbl = ['Row.names\tx\ty\tpixel_x\tpixel_y\tlabel'];
      for (const p of s.spots) {
        if (p.label !== undefined) lbl.push([`${Math.round(p.x / 6)}x${Math.round(p.y / 6)}`, p.col + 0.02, p.row - 0.04, p.x / 6, p.y / 6, p.label].join('\t'));
      }
      lbl.push('77x77\tNA\tNA\tNA\tNA\tadipose tissue');
      fs.writeFileSync(path.join(root, 'ST-pat', 'lbl', `${s.id}_labeled_coordinates.tsv`), `${lbl.join('\n')}\n`);
    }
    if (opts.image) {
      const dir = path.join(root, 'ST-imgs', s.id.replace(/\d+$/, ''), s.id);
      fs.mkdirSync(dir, { recursive: true });
      fs.writeFileSync(path.join(dir, `${s.id}.jpg`), imageHeader('jpeg', opts.image.width, opts.image.height));
    }
  }
  return root;
}

// ---------------------------------------------------------------------------------------------
// Image headers with a known size and no pixels (the readers never decode).

export type HeaderKind = 'jpeg' | 'jpeg-exif-progressive' | 'png' | 'tiff-le' | 'tiff-be' | 'bigtiff';

export function imageHeader(kind: HeaderKind, width: number, height: number): Buffer {
  const u16be = (v: number) => [(v >> 8) & 255, v & 255];
  switch (kind) {
    case 'jpeg':
    case 'jpeg-exif-progressive': {
      const app0 = [0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00];
      const exif = kind === 'jpeg' ? [] : [0xff, 0xe1, ...u16be(2 + 300), ...new Array<number>(300).fill(0xc0)]; // payload full of 0xC0 bytes
      const sof = [0xff, kind === 'jpeg' ? 0xc0 : 0xc2, 0x00, 0x11, 0x08, ...u16be(height), ...u16be(width), 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01];
      return Buffer.from([0xff, 0xd8, ...app0, ...exif, 0xff, 0xff, ...sof, 0xff, 0xd9]);
    }
    case 'png': {
      const b = Buffer.alloc(33);
      Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
      b.writeUInt32BE(13, 8);
      b.write('IHDR', 12, 'latin1');
      b.writeUInt32BE(width, 16);
      b.writeUInt32BE(height, 20);
      b.set([8, 2, 0, 0, 0], 24);
      return b;
    }
    case 'tiff-le':
    case 'tiff-be': {
      const le = kind === 'tiff-le';
      const b = Buffer.alloc(8 + 2 + 3 * 12 + 4);
      b.write(le ? 'II' : 'MM', 0, 'latin1');
      const w16 = (v: number, o: number) => (le ? b.writeUInt16LE(v, o) : b.writeUInt16BE(v, o));
      const w32 = (v: number, o: number) => (le ? b.writeUInt32LE(v, o) : b.writeUInt32BE(v, o));
      w16(42, 2);
      w32(8, 4);
      w16(3, 8);
      const entries: Array<[number, number, number]> = [[254, 4, 0], [256, 3, width], [257, 4, height]];
      entries.forEach(([tag, type, value], i) => {
        const o = 10 + i * 12;
        w16(tag, o);
        w16(type, o + 2);
        w32(1, o + 4);
        if (type === 3) w16(value, o + 8);
        else w32(value, o + 8);
      });
      return b;
    }
    case 'bigtiff': {
      const b = Buffer.alloc(16 + 8 + 2 * 20 + 8);
      b.write('II', 0, 'latin1');
      b.writeUInt16LE(43, 2);
      b.writeUInt16LE(8, 4);
      b.writeBigUInt64LE(16n, 8);
      b.writeBigUInt64LE(2n, 16);
      [[256, width], [257, height]].forEach(([tag, value], i) => {
        const o = 24 + i * 20;
        b.writeUInt16LE(tag, o);
        b.writeUInt16LE(16, o + 2); // LONG8
        b.writeBigUInt64LE(1n, o + 4);
        b.writeBigUInt64LE(BigInt(value), o + 12);
      });
      return b;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HDF5 (Space Ranger matrix, AnnData).

type H5Module = typeof H5;
let h5: Promise<H5Module> | undefined;

/** h5wasm, loaded as the readers load it (ESM-only package, dynamic import from the CJS bundle). */
export function loadH5(): Promise<H5Module> {
  h5 ??= (async () => {
    const mod = (await import('h5wasm/node' as string)) as H5Module;
    await mod.ready;
    return mod;
  })();
  return h5;
}

/** Writes an HDF5 file through `fill` and closes it. */
export async function writeHdf5(file: string, fill: (root: H5.File) => void): Promise<string> {
  const { File } = await loadH5();
  const f = new File(file, 'w');
  try {
    fill(f);
  } finally {
    f.close();
  }
  return file;
}

/** Compressed sparse form of a dense matrix, by rows (CSR) or by columns (CSC). */
export function compress(dense: number[][], by: 'rows' | 'cols'): { indptr: number[]; indices: number[]; data: number[] } {
  const nRows = dense.length;
  const nCols = dense[0]?.length ?? 0;
  const [nMajor, nMinor] = by === 'rows' ? [nRows, nCols] : [nCols, nRows];
  const indptr = [0];
  const indices: number[] = [];
  const data: number[] = [];
  for (let i = 0; i < nMajor; i++) {
    for (let j = 0; j < nMinor; j++) {
      const v = by === 'rows' ? dense[i][j] : dense[j][i];
      if (v !== 0) { indices.push(j); data.push(v); }
    }
    indptr.push(indices.length);
  }
  return { indptr, indices, data };
}

export interface VisiumWriteOptions {
  positions: 'tissue_positions.csv' | 'tissue_positions_list.csv';
  /** Drop this column from the header (tissue_positions.csv) or the last field of every line. */
  dropColumn?: string;
  /** An in-tissue barcode in the positions that the matrix lacks. */
  extraInTissue?: boolean;
  /** Spot indices marked out of tissue in the positions (but kept in the matrix). */
  outOfTissue?: number[];
  /** Extra features: an antibody-capture feature and a second feature named like GENE1. */
  extraFeatures?: boolean;
  /** Leave out matrix/indptr (not a Space Ranger matrix). */
  withoutIndptr?: boolean;
}

/** A Space Ranger output folder for the section. */
export async function writeVisium(dir: string, s: TruthSection, opts: VisiumWriteOptions): Promise<string> {
  fs.mkdirSync(path.join(dir, 'spatial'), { recursive: true });
  const genes = [...s.genes];
  const types = genes.map(() => 'Gene Expression');
  const dense = s.counts.map((r) => [...r]);
  if (opts.extraFeatures) {
    genes.push('CD3_TotalSeqB', s.genes[0]);
    types.push('Antibody Capture', 'Gene Expression');
    dense.forEach((r, i) => r.push(i + 1, i % 3));
  }
  const csc = compress(dense, 'rows'); // genes x barcodes in CSC = barcodes x genes by rows
  await writeHdf5(path.join(dir, 'filtered_feature_bc_matrix.h5'), (f) => {
    const m = f.create_group('matrix');
    m.create_dataset({ name: 'barcodes', data: s.spots.map((p) => p.barcode), dtype: 'S18' });
    m.create_dataset({ name: 'data', data: Int32Array.from(csc.data) });
    m.create_dataset({ name: 'indices', data: BigInt64Array.from(csc.indices, BigInt) });
    if (!opts.withoutIndptr) m.create_dataset({ name: 'indptr', data: BigInt64Array.from(csc.indptr, BigInt) });
    m.create_dataset({ name: 'shape', data: Int32Array.from([genes.length, s.spots.length]) });
    const feat = m.create_group('features');
    feat.create_dataset({ name: 'id', data: genes.map((_, j) => `ENSG${String(j).padStart(11, '0')}`), dtype: 'S15' });
    feat.create_dataset({ name: 'name', data: genes, dtype: 'S20' });
    feat.create_dataset({ name: 'feature_type', data: types, dtype: 'S16' });
    feat.create_dataset({ name: 'genome', data: genes.map(() => 'GRCh38'), dtype: 'S6' });
  });
  const header = ['barcode', 'in_tissue', 'array_row', 'array_col', 'pxl_row_in_fullres', 'pxl_col_in_fullres'];
  const rows = s.spots.map((p, i) => [p.barcode, opts.outOfTissue?.includes(i) ? 0 : 1, p.row, p.col, p.y, p.x]);
  rows.push(['TTTTTTTTTTTTTTTT-1', 0, 0, 0, 10, 10]); // out of tissue, not in the filtered matrix: normal
  if (opts.extraInTissue) rows.push(['GGGGGGGGGGGGGGGG-1', 1, 1, 1, 20, 20]);
  rows.reverse(); // the positions' order is not the matrix order
  const drop = opts.dropColumn ? header.indexOf(opts.dropColumn) : -1;
  const keep = <T>(r: T[]) => (drop < 0 ? r : r.filter((_, i) => i !== drop));
  const lines = rows.map((r) => keep(r).join(','));
  if (opts.positions === 'tissue_positions.csv') lines.unshift(keep(header).join(','));
  fs.writeFileSync(path.join(dir, 'spatial', opts.positions), `${lines.join('\n')}\n`);
  fs.writeFileSync(path.join(dir, 'spatial', 'scalefactors_json.json'), JSON.stringify({ spot_diameter_fullres: 89.4, tissue_hires_scalef: 0.1, fiducial_diameter_fullres: 144.4, tissue_lowres_scalef: 0.03 }));
  return dir;
}

export interface H5adWriteOptions {
  x: 'dense' | 'csr' | 'csc';
  /** Store explicit zeros and unsorted indices in a sparse X (valid for scipy, not canonical). */
  messy?: boolean;
  /** Write obs array_row/array_col (default true). */
  arrayCoords?: boolean;
  /** Spots split into samples: obs `sample` as a categorical column, one category per section. */
  samples?: boolean;
  /** var index as Ensembl ids with a feature_name column holding the symbols (CELLxGENE style). */
  ensemblIndex?: boolean;
  /** Leave out obsm/spatial. */
  withoutSpatial?: boolean;
  /** Text obs columns holding one value for every spot (e.g. { patient_id: 'P1' }). */
  obs?: Record<string, string>;
  /** Text values in uns (e.g. { patient: 'P1' }). */
  uns?: Record<string, string>;
  /** X normalised (non-integer) and the raw counts kept in layers['counts'] or raw.X (CSR). */
  countsIn?: 'layers' | 'raw';
}

/** A CSR matrix group (anndata's encoding) at `name` in `parent`. */
function csrGroup(parent: H5.Group, name: string, dense: number[][]): void {
  const m = compress(dense, 'rows');
  const x = parent.create_group(name);
  x.create_attribute('encoding-type', 'csr_matrix');
  x.create_attribute('encoding-version', '0.1.0');
  x.create_attribute('shape', BigInt64Array.from([BigInt(dense.length), BigInt(dense[0].length)]));
  x.create_dataset({ name: 'data', data: Float32Array.from(m.data) });
  x.create_dataset({ name: 'indices', data: Int32Array.from(m.indices) });
  x.create_dataset({ name: 'indptr', data: BigInt64Array.from(m.indptr, BigInt) });
}

/** An AnnData file holding the sections one after another (obs in section order). */
export async function writeH5ad(file: string, sections: TruthSection[], opts: H5adWriteOptions): Promise<string> {
  const spots = sections.flatMap((s) => s.spots);
  const counts = sections.flatMap((s) => s.counts);
  // Normalised as scanpy's normalize_total(target_sum=10) would, then log1p: non-integer.
  const dense = opts.countsIn ? counts.map((r) => { const t = r.reduce((a, b) => a + b, 0) || 1; return r.map((v) => Math.log1p((10 * v) / t)); }) : counts;
  const genes = sections[0].genes;
  const n = spots.length;
  await writeHdf5(file, (f) => {
    f.create_attribute('encoding-type', 'anndata');
    f.create_attribute('encoding-version', '0.1.0');
    if (opts.x === 'dense') {
      f.create_dataset({ name: 'X', data: Float32Array.from(dense.flat()), shape: [n, genes.length] });
    } else {
      const m = compress(dense, opts.x === 'csr' ? 'rows' : 'cols');
      let { indices, data } = m;
      if (opts.messy) {
        // Reverse every slice and store a zero in it.
        const ind: number[] = [];
        const dat: number[] = [];
        const indptr = [0];
        for (let i = 0; i + 1 < m.indptr.length; i++) {
          for (let k = m.indptr[i + 1] - 1; k >= m.indptr[i]; k--) { ind.push(m.indices[k]); dat.push(m.data[k]); }
          if (m.indptr[i + 1] > m.indptr[i]) { ind.push(m.indices[m.indptr[i]]); dat.push(0); }
          indptr.push(ind.length);
        }
        indices = ind;
        data = dat;
        m.indptr = indptr;
      }
      const x = f.create_group('X');
      x.create_attribute('encoding-type', opts.x === 'csr' ? 'csr_matrix' : 'csc_matrix');
      x.create_attribute('encoding-version', '0.1.0');
      x.create_attribute('shape', BigInt64Array.from([BigInt(n), BigInt(genes.length)]));
      x.create_dataset({ name: 'data', data: Float32Array.from(data) });
      x.create_dataset({ name: 'indices', data: Int32Array.from(indices) });
      x.create_dataset({ name: 'indptr', data: BigInt64Array.from(m.indptr, BigInt) });
    }
    const obs = f.create_group('obs');
    obs.create_attribute('encoding-type', 'dataframe');
    obs.create_attribute('encoding-version', '0.2.0');
    obs.create_attribute('_index', '_index');
    const columns: string[] = [];
    obs.create_dataset({ name: '_index', data: spots.map((p) => p.barcode) });
    if (opts.arrayCoords !== false) {
      obs.create_dataset({ name: 'array_row', data: BigInt64Array.from(spots, (p) => BigInt(p.row)) });
      obs.create_dataset({ name: 'array_col', data: BigInt64Array.from(spots, (p) => BigInt(p.col)) });
      columns.push('array_row', 'array_col');
    }
    if (opts.samples) {
      const sample = obs.create_group('sample');
      sample.create_attribute('encoding-type', 'categorical');
      sample.create_attribute('encoding-version', '0.2.0');
      sample.create_attribute('ordered', 0);
      // Categories in reverse order, so that codes differ from section order.
      const categories = sections.map((s) => s.id).reverse();
      sample.create_dataset({ name: 'categories', data: categories });
      sample.create_dataset({ name: 'codes', data: Int8Array.from(sections.flatMap((s) => s.spots.map(() => categories.indexOf(s.id)))) });
      columns.push('sample');
    }
    for (const [name, value] of Object.entries(opts.obs ?? {})) {
      obs.create_dataset({ name, data: spots.map(() => value) });
      columns.push(name);
    }
    if (columns.length > 0) obs.create_attribute('column-order', columns);
    if (opts.uns) {
      const uns = f.create_group('uns');
      for (const [name, value] of Object.entries(opts.uns)) uns.create_dataset({ name, data: value });
    }
    if (opts.countsIn === 'layers') csrGroup(f.create_group('layers'), 'counts', counts);
    if (opts.countsIn === 'raw') {
      const raw = f.create_group('raw');
      csrGroup(raw, 'X', counts);
      const rv = raw.create_group('var');
      rv.create_attribute('_index', '_index');
      rv.create_dataset({ name: '_index', data: genes });
    }
    const v = f.create_group('var');
    v.create_attribute('encoding-type', 'dataframe');
    v.create_attribute('encoding-version', '0.2.0');
    v.create_attribute('_index', '_index');
    if (opts.ensemblIndex) {
      v.create_dataset({ name: '_index', data: genes.map((_, j) => `ENSG${String(j).padStart(11, '0')}`) });
      const fn = v.create_group('feature_name');
      fn.create_attribute('encoding-type', 'categorical');
      fn.create_dataset({ name: 'categories', data: [...genes].reverse() });
      fn.create_dataset({ name: 'codes', data: Int16Array.from(genes, (_, j) => genes.length - 1 - j) });
    } else {
      v.create_dataset({ name: '_index', data: genes });
    }
    if (!opts.withoutSpatial) {
      const obsm = f.create_group('obsm');
      obsm.create_dataset({ name: 'spatial', data: Float64Array.from(spots.flatMap((p) => [p.x, p.y])), shape: [n, 2] });
    }
  });
  return file;
}
