import * as fs from 'node:fs';
import * as path from 'node:path';
import { AnnDataWriter, type FrameColumn } from './annDataWriter';
import { readCategoryColumns } from './categories';
import { openDatasetStore, MANIFEST, type DatasetStore } from './datasetStore';
import { readArrowFile, stringColumn } from './arrow';
import { readPredictions } from './predictions';
import { fsFault } from './fsErrors';
import { downsampledImage } from '../image/slideImage';
import { SPOT_SIZE } from '../image/crops';

/**
 * `triplex export <run|store> --h5ad <file>`: one AnnData file for a set of sections, which
 * scanpy, squidpy and anndata >= 0.8 read as they read Space Ranger output:
 *
 *   X                 a store: its normalised expression; a run: the predictions (each spot by
 *                     the fold that held its section out), float32 [spots, genes]
 *   layers/truth      a run: the store's normalised expression (where the store has counts)
 *   layers/error      a run: prediction - truth
 *   layers/counts     the raw counts
 *   obs               index spot ids (section_spot when ids repeat across sections); spot_id,
 *                     section, patient (categorical), array_row, array_col (int32), in_tissue
 *                     (uint8 0/1: a store keeps in-tissue spots only), label (categorical; when
 *                     any spot has one), each category saved from the viewer (categorical),
 *                     fold (a run: categorical of fold numbers)
 *   var               index gene names; a run: pcc (the gene's test PCC, mean over folds),
 *                     mean_rank, highly_predictive (uint8 0/1: the genes of PCC(H))
 *   obsm/spatial      x, y of each spot centre in full-resolution pixels (float64 [spots, 2])
 *   uns/spatial/<section>/images/hires       the H&E shrunk to at most 2000 px (uint8 [h, w, 3])
 *   uns/spatial/<section>/scalefactors       tissue_hires_scalef (hires px per full-res px),
 *                     spot_diameter_fullres (224: the crop TRIPLEX cuts for a spot)
 *   uns/spatial/<section>/metadata           source_image_path, software_version
 *   uns/triplex       what the file holds: kind, store, run, variant, highly_predictive_genes
 *
 * The file is written under a temporary name in the target folder and renamed over the target
 * when complete: a failed export leaves the previous file (or none), never a partial one.
 */

export interface H5adExportOptions {
  /** Output file (.h5ad); its folder must exist. */
  out: string;
  /** Sections to export (default: all of the store, or all the run predicted). */
  sections?: readonly string[];
  /** The run's store, when not the one results.json names. */
  store?: string;
  /** Longest side of the hires image (default 2000, as Space Ranger's). */
  hiresMaxSide?: number;
  log?: (line: string) => void;
  /** Called with the temporary file once it exists, before HDF5 writes to it (tests fail the write here). */
  onPartial?: (partial: string) => void;
  /**
   * Stops the export (Ctrl-C, a cancelled notification): checked before each image and before the
   * HDF5 writing starts; the previous file stays as it was and no partial file is left.
   */
  signal?: AbortSignal;
}

export interface H5adExportSummary {
  file: string;
  kind: 'store' | 'run';
  spots: number;
  genes: number;
  sections: string[];
  layers: string[];
  images: number;
}

const HIRES_MAX_SIDE = 2000;
const VERSION = 'TRIPLEX (triplex export)';

function stopIfAborted(signal: AbortSignal | undefined, out: string): void {
  if (signal?.aborted) throw new Error(`${out}: the export was stopped on request; nothing was written`);
}

/** Exports a store (`triplex preprocess` output) or a run (`triplex cv` output) to an .h5ad file. */
export async function exportH5ad(source: string, o: H5adExportOptions): Promise<H5adExportSummary> {
  const src = path.resolve(source);
  const out = path.resolve(o.out);
  checkTarget(out);
  if (!fs.existsSync(src)) throw new Error(`${src}: not found; give a dataset store (triplex preprocess) or a run folder (triplex cv)`);
  if (fs.existsSync(path.join(src, MANIFEST))) {
    if (o.store) throw new Error(`${src} is a store; --store is for exporting a run`);
    return writeExport(out, gatherStore(openDatasetStore(src), o), o);
  }
  return writeExport(out, gatherRun(src, o), o);
}

/** What goes into the file, before any of it is written. */
interface Contents {
  kind: 'store' | 'run';
  store: DatasetStore;
  run?: string;
  variant?: string;
  rows: number[];
  genes: string[];
  x: Float32Array;
  layers: Array<[string, Float32Array]>;
  fold?: Int32Array;
  var: Array<[string, FrameColumn]>;
  highlyPredictive?: string[];
}

function checkTarget(out: string): void {
  const dir = path.dirname(out);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    throw new Error(`${out}: the folder ${dir} does not exist; create it first`);
  }
  if (!st.isDirectory()) throw new Error(`${out}: ${dir} is not a folder`);
  if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new Error(`${out} is a folder; give the .h5ad file to write`);
}

function chooseSections(available: readonly string[], wanted: readonly string[] | undefined, where: string): string[] {
  if (!wanted) return [...available];
  const unknown = wanted.filter((s) => !available.includes(s));
  if (unknown.length) throw new Error(`${where}: no section ${unknown.join(', ')}; it has ${available.join(', ')}`);
  return available.filter((s) => wanted.includes(s));
}

function gatherStore(store: DatasetStore, o: H5adExportOptions): Contents {
  if (!store.hasCounts) throw new Error(`${store.dir} has no expression (made by \`triplex slide\`): export the run that predicted it instead`);
  const sections = chooseSections(store.manifest.sections.map((s) => s.id), o.sections, store.dir);
  const rows = sections.flatMap((s) => store.rowsOf(s));
  const G = store.genes.length;
  return {
    kind: 'store', store, rows, genes: store.genes,
    x: pickRows(store.values(), rows, G),
    layers: [['counts', pickRows(store.counts(), rows, G)]],
    var: [],
  };
}

function gatherRun(run: string, o: H5adExportOptions): Contents {
  if (!fs.statSync(run).isDirectory()) throw new Error(`${run}: not a folder; give a dataset store or a run folder (triplex cv --out)`);
  const foldDirs = fs.readdirSync(run).filter((n) => /^fold-\d+$/.test(n)).sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)));
  const files = foldDirs.map((d) => path.join(run, d, 'predictions.arrow')).filter((f) => fs.existsSync(f));
  if (files.length === 0) {
    throw new Error(`${run}: no predictions (fold-<k>/predictions.arrow) and no ${MANIFEST}; give a dataset store or a finished run folder of \`triplex cv\``);
  }
  const resultsFile = path.join(run, 'results.json');
  let results: { store?: string; variant?: string; highlyPredictiveGenes?: string[] } = {};
  if (fs.existsSync(resultsFile)) {
    try {
      results = JSON.parse(fs.readFileSync(resultsFile, 'utf8')) as typeof results;
    } catch (e) {
      throw new Error(`${resultsFile}: not readable JSON (${(e as Error).message})`, { cause: e });
    }
  }
  const storeDir = o.store ?? results.store;
  if (!storeDir) throw new Error(`${run}: ${fs.existsSync(resultsFile) ? `${resultsFile} names no store` : 'no results.json'}; give the store with --store`);
  if (!fs.existsSync(path.join(storeDir, MANIFEST))) {
    throw new Error(`${path.resolve(storeDir)}: the run's store is not there (no ${MANIFEST})${o.store ? '' : `; ${resultsFile} names it: give the store with --store`}`);
  }
  const store = openDatasetStore(storeDir);

  // Each section from the fold that predicted it (held it out).
  const bySection = new Map<string, { fold: number; file: string; spotIds: string[]; values: Float32Array }>();
  let genes: string[] | undefined;
  for (const file of files) {
    const fold = Number(path.basename(path.dirname(file)).slice(5));
    const p = readPredictions(file);
    if (genes && p.genes.join('\0') !== genes.join('\0')) throw new Error(`${file}: its genes differ from those of the other folds' predictions`);
    genes = p.genes;
    for (const [section, s] of p.sections) {
      const seen = bySection.get(section);
      if (seen) throw new Error(`${file}: section ${section} is predicted by fold ${seen.fold} too; a run predicts each section once`);
      bySection.set(section, { fold, file, ...s });
    }
  }
  genes ??= [];
  const storeSections = store.manifest.sections.map((s) => s.id);
  const missing = [...bySection.keys()].filter((s) => !storeSections.includes(s));
  if (missing.length) throw new Error(`${store.dir}: no section ${missing.join(', ')}, which the run predicted; is it the run's store? (--store)`);
  const sections = chooseSections(storeSections.filter((s) => bySection.has(s)), o.sections, run);
  const ids = stringColumn(store.spots, 'spot_id');
  const G = genes.length;
  const rows: number[] = [];
  const x = new Float32Array(sections.reduce((n, s) => n + store.rowsOf(s).length, 0) * G);
  const fold = new Int32Array(x.length / Math.max(G, 1));
  for (const section of sections) {
    const p = bySection.get(section)!;
    const at = new Map(p.spotIds.map((id, i) => [id, i]));
    for (const r of store.rowsOf(section)) {
      const i = at.get(ids[r]);
      if (i === undefined) throw new Error(`${p.file}: no prediction for spot '${ids[r]}' of section '${section}'; was the run made from another store? (--store)`);
      x.set(p.values.subarray(i * G, (i + 1) * G), rows.length * G);
      fold[rows.length] = p.fold;
      rows.push(r);
    }
  }

  const layers: Array<[string, Float32Array]> = [];
  if (store.hasCounts) {
    const col = new Map(store.genes.map((g, j) => [g, j]));
    const absent = genes.filter((g) => !col.has(g));
    if (absent.length) throw new Error(`${store.dir}: no gene ${absent.slice(0, 5).join(', ')}${absent.length > 5 ? ` (and ${absent.length - 5} more)` : ''}, which the run predicted; is it the run's store? (--store)`);
    const cols = genes.map((g) => col.get(g)!);
    const truth = pickRows(store.values(), rows, store.genes.length, cols);
    const error = Float32Array.from(x, (v, k) => v - truth[k]);
    layers.push(['truth', truth], ['error', error], ['counts', pickRows(store.counts(), rows, store.genes.length, cols)]);
  }
  return {
    kind: 'run', store, run, variant: results.variant, rows, genes, x, layers, fold,
    var: geneMetrics(run, genes, results.highlyPredictiveGenes),
    highlyPredictive: results.highlyPredictiveGenes,
  };
}

/** var columns of a run: each gene's PCC (mean over folds), mean rank and highly-predictive flag, from metrics_genes.arrow. */
function geneMetrics(run: string, genes: readonly string[], highlyPredictive: readonly string[] | undefined): Array<[string, FrameColumn]> {
  const file = path.join(run, 'metrics_genes.arrow');
  const cols: Array<[string, FrameColumn]> = [];
  const at = new Map(genes.map((g, j) => [g, j]));
  if (fs.existsSync(file)) {
    const t = readArrowFile(file);
    const gene = stringColumn(t, 'gene');
    const num = (name: string) => Array.from(t.getChild(name)?.toArray() as ArrayLike<number> ?? [], Number);
    const pcc = num('pcc');
    const meanRank = num('mean_rank');
    const sum = new Float64Array(genes.length);
    const n = new Float64Array(genes.length);
    const rank = new Float64Array(genes.length).fill(NaN);
    gene.forEach((g, i) => {
      const j = at.get(g);
      if (j === undefined) return;
      if (Number.isFinite(pcc[i])) {
        sum[j] += pcc[i];
        n[j] += 1;
      }
      if (meanRank.length) rank[j] = meanRank[i];
    });
    cols.push(['pcc', { kind: 'numbers', values: Float64Array.from(sum, (s, j) => (n[j] > 0 ? s / n[j] : NaN)) }]);
    if (meanRank.length) cols.push(['mean_rank', { kind: 'numbers', values: rank }]);
  }
  if (highlyPredictive) {
    const hp = new Set(highlyPredictive);
    cols.push(['highly_predictive', { kind: 'numbers', values: Uint8Array.from(genes, (g) => (hp.has(g) ? 1 : 0)) }]);
  }
  return cols;
}

/** Rows (and optionally columns) of a row-major [*, width] matrix. */
function pickRows(m: Float32Array, rows: readonly number[], width: number, cols?: readonly number[]): Float32Array {
  const w = cols ? cols.length : width;
  const out = new Float32Array(rows.length * w);
  rows.forEach((r, k) => {
    if (cols) for (let j = 0; j < w; j++) out[k * w + j] = m[r * width + cols[j]];
    else out.set(m.subarray(r * width, (r + 1) * width), k * w);
  });
  return out;
}

async function writeExport(out: string, c: Contents, o: H5adExportOptions): Promise<H5adExportSummary> {
  const log = o.log ?? (() => undefined);
  const { store, rows } = c;
  const n = rows.length;
  const G = c.genes.length;
  const spots = store.spots;
  const column = (name: string) => spots.getChild(name);
  const section = stringColumn(spots, 'section');
  const spotId = stringColumn(spots, 'spot_id');
  const patientOf = new Map(store.manifest.sections.map((s) => [s.id, s.patient]));
  const nums = (name: string) => {
    const col = column(name);
    if (!col) throw new Error(`${store.dir}: spots.arrow has no column ${name}; re-run \`triplex preprocess\``);
    return rows.map((r) => Number(col.get(r)));
  };
  const sectionIds = [...new Set(rows.map((r) => section[r]))];
  const ids = rows.map((r) => spotId[r]);
  const obsNames = new Set(ids).size === ids.length ? ids : rows.map((r) => `${section[r]}_${spotId[r]}`);

  const labelCol = column('label');
  const labels = rows.map((r) => (labelCol?.get(r) as string | null | undefined) ?? null);
  const inTissueCol = column('in_tissue');
  const obs: Array<[string, FrameColumn]> = [
    ['spot_id', { kind: 'text', values: ids }],
    ['section', { kind: 'categorical', values: rows.map((r) => section[r]) }],
    ['patient', { kind: 'categorical', values: rows.map((r) => patientOf.get(section[r]) ?? section[r]) }],
    ['array_row', { kind: 'numbers', values: Int32Array.from(nums('array_row')) }],
    ['array_col', { kind: 'numbers', values: Int32Array.from(nums('array_col')) }],
    ['in_tissue', { kind: 'numbers', values: Uint8Array.from(rows, (r) => (inTissueCol ? (Number(inTissueCol.get(r)) ? 1 : 0) : 1)) }],
  ];
  if (labels.some((l) => l !== null)) obs.push(['label', { kind: 'categorical', values: labels }]);
  // Categories saved from the viewer's selections (categories.arrow), after the data's own columns.
  for (const saved of readCategoryColumns(store, rows)) if (saved.source === 'saved') obs.push([saved.name, { kind: 'categorical', values: saved.values }]);
  if (c.fold) obs.push(['fold', { kind: 'numberCategorical', values: c.fold }]);
  const xy = new Float64Array(n * 2);
  const px = nums('pixel_x');
  const py = nums('pixel_y');
  for (let k = 0; k < n; k++) {
    xy[2 * k] = px[k];
    xy[2 * k + 1] = py[k];
  }

  // Images first: a missing or broken image fails before anything is written.
  const images = new Map<string, Awaited<ReturnType<typeof downsampledImage>>>();
  for (const s of sectionIds) {
    const meta = store.manifest.sections.find((m) => m.id === s);
    if (!meta?.image) continue;
    stopIfAborted(o.signal, out);
    log(`${s}: shrinking ${meta.image.path}`);
    images.set(s, await downsampledImage(meta.image.path, o.hiresMaxSide ?? HIRES_MAX_SIDE));
  }

  const partial = `${out}.partial-${process.pid}-${Date.now()}`;
  try {
    fs.closeSync(fs.openSync(partial, 'wx'));
  } catch (e) {
    throw fsFault(e, out);
  }
  try {
    o.onPartial?.(partial);
    const w = await AnnDataWriter.create(partial);
    try {
      stopIfAborted(o.signal, out);
      w.array('/X', c.x, [n, G]);
      w.dict('/layers');
      for (const [name, m] of c.layers) w.array(`/layers/${name}`, m, [n, G]);
      w.dataframe('/obs', obsNames, obs);
      w.dataframe('/var', c.genes, c.var);
      w.dict('/obsm');
      w.array('/obsm/spatial', xy, [n, 2]);
      for (const g of ['varm', 'obsp', 'varp']) w.dict(`/${g}`);
      w.dict('/uns');
      w.dict('/uns/spatial');
      for (const s of sectionIds) {
        const at = `/uns/spatial/${s}`;
        w.dict(at);
        const img = images.get(s);
        w.dict(`${at}/images`);
        if (img) w.array(`${at}/images/hires`, img.rgb, [img.height, img.width, 3]);
        w.dict(`${at}/scalefactors`);
        if (img) w.scalar(`${at}/scalefactors/tissue_hires_scalef`, img.scale);
        w.scalar(`${at}/scalefactors/spot_diameter_fullres`, SPOT_SIZE);
        w.dict(`${at}/metadata`);
        const meta = store.manifest.sections.find((m) => m.id === s);
        if (meta?.image) w.string(`${at}/metadata/source_image_path`, meta.image.path);
        w.string(`${at}/metadata/software_version`, VERSION);
        w.string(`${at}/metadata/patient`, patientOf.get(s) ?? s);
      }
      w.dict('/uns/triplex');
      w.string('/uns/triplex/kind', c.kind === 'run' ? 'predictions' : 'expression');
      w.string('/uns/triplex/store', path.resolve(store.dir));
      if (c.run) w.string('/uns/triplex/run', c.run);
      if (c.variant) w.string('/uns/triplex/variant', c.variant);
      if (c.highlyPredictive?.length) w.strings('/uns/triplex/highly_predictive_genes', c.highlyPredictive);
      w.string('/uns/triplex/spot_diameter_fullres', `the ${SPOT_SIZE} px crop TRIPLEX cuts around each spot centre`);
    } finally {
      w.close();
    }
    const fd = fs.openSync(partial, 'r+');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(partial, out);
  } catch (e) {
    fs.rmSync(partial, { force: true });
    if (o.signal?.aborted) throw e;
    if ((e as NodeJS.ErrnoException).code) throw fsFault(e, out);
    throw new Error(`${out}: cannot write the AnnData file (${(e as Error).message ?? String(e)}); nothing was written`, { cause: e });
  }
  log(`${out}: ${n} spots x ${G} genes, ${sectionIds.length} section(s), layers ${c.layers.map(([l]) => l).join(', ') || 'none'}`);
  return { file: out, kind: c.kind, spots: n, genes: G, sections: sectionIds, layers: c.layers.map(([l]) => l), images: images.size };
}
