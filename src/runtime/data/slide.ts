import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { unsafeIdReason } from '../store/identifiers';
import { checkImageData } from '../image/slideImage';
import { fileScale } from '../image/cropScale';
import { agreeingScale, ScaleConflictError, type Scale } from '../image/scale';
import { isWholeSlideFile, openWholeSlide } from '../image/wsi';
import { resampledLevel } from '../image/wsiImage';
import { checkRegularFile } from './files';
import { parseDecimal } from './numbers';
import { readImageSize } from './her2st';
import { DataFileError, type ImageRef, type Spot } from './types';

/**
 * A slide without counts, for prediction only (`triplex slide`): an H&E image and where its
 * spots are. The spots come either from a spot table,
 *   - Space Ranger's spatial/tissue_positions.csv (or the headerless tissue_positions_list.csv
 *     of Space Ranger < 2.0): the in-tissue spots, with their array row and column;
 *   - or any CSV/TSV with a header naming spot_id, pixel_x, pixel_y and, optionally, array_row
 *     and array_col (without them the grid is recovered from the spot spacing);
 * or, without a table, from a square grid laid over the tissue: a spot every `spacing` px (224 by
 * default, the crop size, so that neighbour tiles coincide with spots) wherever at least
 * `minTissue` of the spot's square is tissue.
 */

export interface SlideOptions {
  /** A spot table (see above); without it, a grid over the tissue. */
  spots?: string;
  /** Section id (default: the image's file name without extension). */
  section?: string;
  /** Patient id (default: the section id). */
  patient?: string;
  /** Grid spacing in full-resolution pixels, when there is no spot table (default 224). */
  spacing?: number;
  /** Least tissue fraction of a grid spot's square (default 0.5). */
  minTissue?: number;
  /** Microns per pixel of the image (`--mpp`), checked against what the file says. */
  mpp?: number;
  /**
   * The model's scale (um/px): the grid spacing is then in the model's pixels (224 of them, a
   * crop, by default) and converted to the image's with the image's scale.
   */
  cropMpp?: number;
}

/** One section without counts: spots and image, ready for a store. */
export interface SlideSection {
  id: string;
  patient: string;
  spots: Spot[];
  image: ImageRef;
  /** How the spots were found, for the user. */
  origin: string;
  /** Microns per pixel of the image and where it was read, when known. */
  mpp?: number;
  mppSource?: string;
  /** Scales assumed, for the user. */
  warnings: string[];
}

export const DEFAULT_GRID_SPACING = 224;
const DEFAULT_MIN_TISSUE = 0.5;
/** Thumbnail pixels per grid step when measuring tissue. */
const CELL_PX = 8;

/** Reads the spots of a slide without counts (a spot table, or a grid over the tissue). */
export async function readSlide(image: string, o: SlideOptions = {}): Promise<SlideSection> {
  const file = path.resolve(image);
  const whole = isWholeSlideFile(file);
  const size = whole ? await wholeSlideSize(file) : await orientedSize(file);
  await checkImageData(file);
  const id = o.section ?? path.basename(file).replace(/\.[^.]+$/, '');
  const badId = unsafeIdReason(id);
  if (badId) throw new DataFileError(file, '--section', `"${id}" cannot name a section: it ${badId}; give one with --section`);
  const badPatient = o.patient === undefined ? undefined : unsafeIdReason(o.patient);
  if (badPatient) throw new DataFileError(file, '--patient', `"${o.patient}" cannot name a patient: it ${badPatient}`);
  const ref: ImageRef = { path: file, ...size };
  const scale = await slideScale(file, o.mpp);
  const known = scale ? { mpp: scale.mpp, mppSource: scale.source } : {};
  const warnings: string[] = [];
  if (o.spots) {
    const table = path.resolve(o.spots);
    const spots = readSpotTable(table);
    const outside = spots.filter((s) => !(s.x >= 0 && s.y >= 0 && s.x < size.width && s.y < size.height));
    if (outside.length) {
      const s = outside[0];
      throw new DataFileError(table, `spot ${s.id}`, `at (${s.x}, ${s.y}), outside the ${size.width} x ${size.height} px image ${file}` +
        `${outside.length > 1 ? ` (and ${outside.length - 1} more spots)` : ''}; are the positions in full-resolution pixels of this image?`);
    }
    return { id, patient: o.patient ?? id, spots, image: ref, origin: `${spots.length} spots from ${table}`, ...known, warnings };
  }
  const given = o.spacing ?? DEFAULT_GRID_SPACING;
  const minTissue = o.minTissue ?? DEFAULT_MIN_TISSUE;
  if (!(Number.isInteger(given) && given >= 16)) throw new RangeError(`the grid spacing must be a whole number of pixels, at least 16; got ${given}`);
  let spacing = given;
  let unit = '';
  if (o.cropMpp !== undefined && scale) {
    spacing = Math.max(16, Math.round(given * o.cropMpp / scale.mpp));
    unit = ` (${given} px at the model's ${o.cropMpp} um/px: ${(given * o.cropMpp).toFixed(1)} um)`;
  } else if (o.cropMpp !== undefined) {
    warnings.push(`${file}: its scale is unknown (the file states none; give --mpp); assumed to be the model's ${o.cropMpp} um/px, so the grid is ${given} of its own pixels`);
  }
  if (!(minTissue >= 0 && minTissue <= 1)) throw new RangeError(`the least tissue fraction must be between 0 and 1; got ${minTissue}`);
  const spots = whole ? await wholeSlideTissueGrid(file, spacing, minTissue) : await tissueGrid(file, size, spacing, minTissue);
  if (spots.length === 0) {
    throw new DataFileError(file, undefined, `no ${spacing} px square is ${Math.round(minTissue * 100)}% tissue; is this an H&E image (tissue on a light background)? Lower --min-tissue, or give the spots with --spots`);
  }
  return { id, patient: o.patient ?? id, spots, image: ref, origin: `${spots.length} spots on a ${spacing} px grid${unit} over the tissue${whole ? ' (found by Otsu on a reduced pyramid level)' : ''}`, ...known, warnings };
}

/** The image's scale: the file's and --mpp's, which must agree. */
async function slideScale(file: string, mpp: number | undefined): Promise<Scale | undefined> {
  try {
    return agreeingScale([await fileScale(file, mpp !== undefined), mpp === undefined ? undefined : { mpp, source: '--mpp' }]);
  } catch (e) {
    if (e instanceof ScaleConflictError) throw new DataFileError(file, '--mpp', e.message, { cause: e });
    throw e;
  }
}

async function wholeSlideSize(file: string): Promise<{ width: number; height: number }> {
  const slide = await openWholeSlide(file);
  slide.close();
  return { width: slide.levels[0].width, height: slide.levels[0].height };
}

/**
 * The tissue grid of a whole slide: the grid area read from the pyramid level nearest above
 * CELL_PX px per grid square (never the full resolution of a large slide), then Otsu's threshold
 * on colourfulness (max - min channel) separating stained tissue from glass.
 */
async function wholeSlideTissueGrid(file: string, spacing: number, minTissue: number): Promise<Spot[]> {
  const slide = await openWholeSlide(file);
  try {
    const { width, height } = slide.levels[0];
    const cols = Math.floor(width / spacing);
    const rows = Math.floor(height / spacing);
    if (cols === 0 || rows === 0) return [];
    const level = slide.levelFor(spacing / CELL_PX);
    const ds = slide.levels[level].downsample;
    const g = spacing / CELL_PX / ds; // level pixels per thumbnail pixel
    const sw = Math.ceil(cols * spacing / ds) + 1;
    const sh = Math.ceil(rows * spacing / ds) + 1;
    const thumb = await resampledLevel(slide, level, sw, sh, g, cols * CELL_PX, rows * CELL_PX);
    const colour = new Uint8Array(thumb.length / 3);
    for (let i = 0; i < colour.length; i++) {
      const [r, gg, b] = [thumb[i * 3], thumb[i * 3 + 1], thumb[i * 3 + 2]];
      colour[i] = Math.max(r, gg, b) >= 60 ? Math.max(r, gg, b) - Math.min(r, gg, b) : 0;
    }
    // Otsu can split glass from glass when there is no tissue: demand the usual least colour too.
    const threshold = Math.max(otsuThreshold(colour), 15);
    return gridSpots(cols, rows, spacing, minTissue, (x, y) => colour[y * cols * CELL_PX + x] >= threshold);
  } finally {
    slide.close();
  }
}

/** Otsu's threshold of 8-bit values: the t maximising the between-class variance of v < t, v >= t. */
export function otsuThreshold(values: Uint8Array): number {
  const hist = new Float64Array(256);
  for (const v of values) hist[v]++;
  const total = values.length;
  let sumAll = 0;
  for (let t = 0; t < 256; t++) sumAll += t * hist[t];
  let best = 0;
  let bestT = 0;
  let below = 0;
  let sumBelow = 0;
  for (let t = 1; t < 256; t++) {
    below += hist[t - 1];
    sumBelow += (t - 1) * hist[t - 1];
    const above = total - below;
    if (below === 0 || above === 0) continue;
    const between = below * above * (sumBelow / below - (sumAll - sumBelow) / above) ** 2;
    if (between > best) {
      best = between;
      bestT = t;
    }
  }
  return bestT;
}

/** A spot at the centre of every grid square whose tissue fraction (of CELL_PX^2 cells) reaches `minTissue`. */
function gridSpots(cols: number, rows: number, spacing: number, minTissue: number, tissueAt: (x: number, y: number) => boolean): Spot[] {
  const spots: Spot[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      let tissue = 0;
      for (let y = r * CELL_PX; y < (r + 1) * CELL_PX; y++) {
        for (let x = c * CELL_PX; x < (c + 1) * CELL_PX; x++) if (tissueAt(x, y)) tissue++;
      }
      if (tissue / (CELL_PX * CELL_PX) < minTissue) continue;
      spots.push({ id: `r${r}c${c}`, row: r, col: c, x: c * spacing + spacing / 2, y: r * spacing + spacing / 2 });
    }
  }
  return spots;
}

/**
 * Width and height as crops see them (EXIF orientation applied, as openSlideImage does by
 * default); a missing or unreadable file is a DataFileError naming it.
 */
async function orientedSize(file: string): Promise<{ width: number; height: number }> {
  const stored = await readImageSize(file);
  try {
    const meta = await sharp(file, { limitInputPixels: false }).metadata();
    return meta.autoOrient ?? stored;
  } catch (e) {
    throw new DataFileError(file, undefined, `cannot be read as an image (JPEG, PNG or TIFF expected): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Whether a pixel is tissue: stained (its channels differ, as eosin pink and haematoxylin purple
 * do) and not dark (scanner borders, pen marks). Glass and background are white or grey.
 */
const isTissue = (r: number, g: number, b: number): boolean => {
  const hi = Math.max(r, g, b);
  return hi - Math.min(r, g, b) >= 15 && hi >= 60;
};

/** A spot at the centre of every grid square whose tissue fraction reaches `minTissue`. */
async function tissueGrid(file: string, size: { width: number; height: number }, spacing: number, minTissue: number): Promise<Spot[]> {
  const cols = Math.floor(size.width / spacing);
  const rows = Math.floor(size.height / spacing);
  const tw = cols * CELL_PX;
  const th = rows * CELL_PX;
  if (cols === 0 || rows === 0) return [];
  let data: Buffer;
  try {
    // The area the grid covers, shrunk so that each grid square is CELL_PX x CELL_PX pixels.
    data = await sharp(file, { limitInputPixels: false, failOn: 'error', autoOrient: true })
      .extract({ left: 0, top: 0, width: cols * spacing, height: rows * spacing })
      .resize(tw, th, { fit: 'fill' })
      .removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer();
  } catch (e) {
    throw new DataFileError(file, undefined, `cannot be decoded to find the tissue (${(e as Error).message}); is the file complete and a JPEG, PNG or TIFF?`, { cause: e });
  }
  return gridSpots(cols, rows, spacing, minTissue, (x, y) => {
    const o = (y * tw + x) * 3;
    return isTissue(data[o], data[o + 1], data[o + 2]);
  });
}

/** Column names accepted for each field of a spot table, first match wins. */
const ALIASES = {
  id: ['spot_id', 'barcode', 'id', 'spot'],
  x: ['pixel_x', 'pxl_col_in_fullres', 'x'],
  y: ['pixel_y', 'pxl_row_in_fullres', 'y'],
  row: ['array_row', 'row'],
  col: ['array_col', 'col'],
  inTissue: ['in_tissue'],
} as const;
/** Space Ranger < 2.0's headerless tissue_positions_list.csv. */
const VISIUM_COLUMNS = ['barcode', 'in_tissue', 'array_row', 'array_col', 'pxl_row_in_fullres', 'pxl_col_in_fullres'];

/** Spots of a spot table (Space Ranger positions, or a CSV/TSV with named columns). */
export function readSpotTable(file: string): Spot[] {
  let text: string;
  checkRegularFile(file);
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new DataFileError(file, undefined, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'spot table not found' : `cannot be read: ${(e as Error).message}`, { cause: e });
  }
  const lines = text.split(/\r?\n/);
  const sep = lines[0].includes('\t') ? '\t' : ',';
  const first = lines[0].split(sep).map((c) => c.trim().replace(/^"|"$/g, ''));
  // Headerless Space Ranger positions: six fields, the second being in_tissue (0 or 1).
  const headerless = first.length === 6 && /^[01]$/.test(first[1]) && Number.isFinite(Number(first[4]));
  const header = headerless ? VISIUM_COLUMNS : first.map((c) => c.toLowerCase());
  const find = (names: readonly string[]) => names.map((n) => header.indexOf(n)).find((i) => i >= 0) ?? -1;
  const at = { id: find(ALIASES.id), x: find(ALIASES.x), y: find(ALIASES.y), row: find(ALIASES.row), col: find(ALIASES.col), inTissue: find(ALIASES.inTissue) };
  for (const field of ['id', 'x', 'y'] as const) {
    if (at[field] < 0) {
      throw new DataFileError(file, 'line 1', `no ${ALIASES[field].join(' / ')} column in the header (${first.join(sep === '\t' ? ' ' : ',')}); ` +
        'a spot table needs spot_id, pixel_x, pixel_y (full-resolution pixels) and may give array_row, array_col');
    }
  }
  if ((at.row < 0) !== (at.col < 0)) throw new DataFileError(file, 'line 1', 'has only one of array_row and array_col; give both, or neither');
  const spots: Spot[] = [];
  const seen = new Map<string, number>();
  for (let i = headerless ? 0 : 1; i < lines.length; i++) {
    if (lines[i].trim() === '') continue;
    const f = lines[i].split(sep).map((c) => c.trim().replace(/^"|"$/g, ''));
    const need = Math.max(...Object.values(at)) + 1;
    if (f.length < need) throw new DataFileError(file, `line ${i + 1}`, `has ${f.length} fields, the header ${need}`);
    const num = (k: keyof typeof at): number => {
      const v = parseDecimal(f[at[k]]);
      if (v === undefined) throw new DataFileError(file, `line ${i + 1}, column ${header[at[k]]}`, `"${f[at[k]]}" is not a decimal number`);
      return v;
    };
    if (at.inTissue >= 0 && num('inTissue') !== 1) continue;
    const id = f[at.id];
    if (!id) throw new DataFileError(file, `line ${i + 1}`, 'empty spot id');
    if (seen.has(id)) throw new DataFileError(file, `line ${i + 1}`, `spot ${id} appears twice (also line ${seen.get(id)})`);
    seen.set(id, i + 1);
    const row = at.row >= 0 ? num('row') : NaN;
    const col = at.col >= 0 ? num('col') : NaN;
    if (at.row >= 0 && !(Number.isInteger(row) && Number.isInteger(col))) throw new DataFileError(file, `line ${i + 1}`, `array_row and array_col must be whole numbers, got ${row}, ${col}`);
    spots.push({ id, row, col, x: num('x'), y: num('y') });
  }
  if (spots.length === 0) throw new DataFileError(file, undefined, at.inTissue >= 0 ? 'no spot is in the tissue (in_tissue = 1)' : 'no spots');
  if (at.row < 0) gridFromPositions(spots, file);
  return spots;
}

/**
 * Array rows and columns recovered from pixel positions on a square grid: the spacing is the
 * median distance to the nearest other spot. Two spots falling on one grid cell is an error.
 */
function gridFromPositions(spots: Spot[], file: string): void {
  if (spots.length === 1) {
    spots[0].row = 0;
    spots[0].col = 0;
    return;
  }
  const nearest = spots.map((s, i) => {
    let best = Infinity;
    for (let j = 0; j < spots.length; j++) if (j !== i) best = Math.min(best, Math.hypot(spots[j].x - s.x, spots[j].y - s.y));
    return best;
  }).sort((a, b) => a - b);
  const spacing = nearest[Math.floor(nearest.length / 2)];
  if (!(spacing > 0)) throw new DataFileError(file, undefined, 'spots share positions; give array_row and array_col columns');
  const x0 = Math.min(...spots.map((s) => s.x));
  const y0 = Math.min(...spots.map((s) => s.y));
  const cells = new Map<string, string>();
  for (const s of spots) {
    s.row = Math.round((s.y - y0) / spacing);
    s.col = Math.round((s.x - x0) / spacing);
    const key = `${s.row},${s.col}`;
    const other = cells.get(key);
    if (other) {
      throw new DataFileError(file, `spot ${s.id}`, `falls on the grid cell of spot ${other} (spacing ${spacing.toFixed(1)} px, taken from the positions); ` +
        'the spots are not on a square grid: give array_row and array_col columns');
    }
    cells.set(key, s.id);
  }
}
