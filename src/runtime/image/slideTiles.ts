import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import type { TilePyramid } from './tiles';
import { buildPyramidDir } from './pyramidDir';
import { openWholeSlide, type WholeSlide } from './wsi';
import { resampleRgb } from './wsiImage';

/**
 * The viewer's Deep Zoom tiles of a whole slide, cut from the slide's own pyramid: Deep Zoom
 * level L (2^(maxLevel - L) full-resolution px per tile px) is read from the slide level whose
 * downsample is nearest below that, so no tile ever decodes more than a few of the slide's
 * tiles. Nothing re-tiles the whole slide: `triplex tiles` writes the overview levels (at most
 * OVERVIEW_TILES tiles each) and the rest are cut on demand (`triplex tiles --tile L/C_R`), into
 * the same slide_files/<level>/<col>_<row>.jpeg layout.
 */

const TILE_SIZE = 256;
/** Levels with at most this many tiles are written up front (a 100,000 px slide: levels 0-10). */
export const OVERVIEW_TILES = 64;

export interface SlideTilePyramid extends TilePyramid {
  /** Tiles of levels above this are cut on demand. */
  writtenLevels: number;
  onDemand: true;
}

const tileCount = (width: number, height: number, maxLevel: number, level: number): { cols: number; rows: number } => {
  const scale = 2 ** (maxLevel - level);
  return { cols: Math.ceil(Math.ceil(width / scale) / TILE_SIZE), rows: Math.ceil(Math.ceil(height / scale) / TILE_SIZE) };
};

/** One Deep Zoom tile (JPEG) of the slide: level `level` of a pyramid whose top is `maxLevel`. */
export async function deepZoomTile(slide: WholeSlide, maxLevel: number, level: number, col: number, row: number): Promise<Buffer> {
  const { width, height } = slide.levels[0];
  const scale = 2 ** (maxLevel - level); // full-resolution px per tile px
  const lw = Math.ceil(width / scale);
  const lh = Math.ceil(height / scale);
  const { cols, rows } = tileCount(width, height, maxLevel, level);
  if (!(Number.isInteger(level) && level >= 0 && level <= maxLevel && Number.isInteger(col) && Number.isInteger(row) && col >= 0 && row >= 0 && col < cols && row < rows)) {
    throw new RangeError(`${slide.path}: no Deep Zoom tile ${level}/${col}_${row} (levels 0..${maxLevel}; level ${level} has ${cols} x ${rows} tiles)`);
  }
  const w = Math.min(TILE_SIZE, lw - col * TILE_SIZE);
  const h = Math.min(TILE_SIZE, lh - row * TILE_SIZE);
  const k = slide.levelFor(scale);
  const g = scale / slide.levels[k].downsample; // slide-level px per tile px
  const left = Math.floor(col * TILE_SIZE * g);
  const top = Math.floor(row * TILE_SIZE * g);
  const sw = Math.ceil((col * TILE_SIZE + w) * g) - left + 1;
  const sh = Math.ceil((row * TILE_SIZE + h) * g) - top + 1;
  const src = await slide.readRegion(k, left, top, sw, sh);
  const rgb = resampleRgb(src, sw, sh, col * TILE_SIZE * g - left, row * TILE_SIZE * g - top, g, w, h);
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 80 }).toBuffer();
}

/** Writes a tile file atomically (another viewer request may be writing the same tile). */
function writeTile(file: string, jpeg: Buffer): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const partial = `${file}.partial-${process.pid}`;
  fs.writeFileSync(partial, jpeg);
  fs.renameSync(partial, file);
}

/** The pyramid of a whole slide: pyramid.json and the overview levels, built beside `dir` and renamed in. */
export async function writeSlideTilePyramid(image: string, dir: string, source: object, overviewTiles = OVERVIEW_TILES): Promise<SlideTilePyramid> {
  const slide = await openWholeSlide(image);
  try {
    return await buildPyramidDir(dir, source, async (partial) => {
      const { width, height } = slide.levels[0];
      const maxLevel = Math.ceil(Math.log2(Math.max(width, height)));
      let writtenLevels = 0;
      for (let level = 0; level <= maxLevel; level++) {
        const { cols, rows } = tileCount(width, height, maxLevel, level);
        if (cols * rows > overviewTiles) break;
        for (let r = 0; r < rows; r++) {
          for (let c = 0; c < cols; c++) writeTile(path.join(partial, 'slide_files', String(level), `${c}_${r}.jpeg`), await deepZoomTile(slide, maxLevel, level, c, r));
        }
        writtenLevels = level;
      }
      const pyramid: SlideTilePyramid = { dir, width, height, tileSize: TILE_SIZE, overlap: 0, format: 'jpeg', maxLevel, writtenLevels, onDemand: true };
      return pyramid;
    });
  } finally {
    slide.close();
  }
}

/** A Deep Zoom tile's name as the viewer and `triplex tiles --tile` write it: `level/col_row`. */
export function parseTileName(name: string): { level: number; col: number; row: number } | undefined {
  const m = /^(\d{1,2})\/(\d{1,7})_(\d{1,7})$/.exec(name);
  return m ? { level: Number(m[1]), col: Number(m[2]), row: Number(m[3]) } : undefined;
}

/**
 * Cuts a whole slide's Deep Zoom tiles on demand into its pyramid folder, the slide opened once
 * (its decoded-tile cache shared by every tile asked for); tiles already on disk are reused.
 */
export class SlideTileCutter {
  private slide: Promise<WholeSlide> | undefined;

  constructor(readonly image: string, readonly pyramid: TilePyramid) {}

  /** The file of tile `name` (`level/col_row`), cut now if missing; errors name the slide, the level and the tile. */
  async file(name: string): Promise<string> {
    const t = parseTileName(name);
    if (!t) throw new RangeError(`${this.image}: '${name.slice(0, 80)}' is not a Deep Zoom tile name (expected <level>/<col>_<row>, e.g. 14/3_5)`);
    const file = path.join(this.pyramid.dir, 'slide_files', String(t.level), `${t.col}_${t.row}.jpeg`);
    if (fs.existsSync(file)) return file;
    if (!this.pyramid.onDemand) throw new RangeError(`${this.image}: no Deep Zoom tile ${name} (levels 0..${this.pyramid.maxLevel})`);
    const slide = await this.open();
    try {
      writeTile(file, await deepZoomTile(slide, this.pyramid.maxLevel, t.level, t.col, t.row));
    } catch (err) {
      if (err instanceof RangeError) throw err;
      throw new Error(`Deep Zoom tile ${name}: ${(err as Error).message}`, { cause: err });
    }
    return file;
  }

  /** Opens the slide (once; the first tile cut does it otherwise). */
  open(): Promise<WholeSlide> {
    if (!this.slide) {
      this.slide = openWholeSlide(this.image);
      this.slide.catch(() => undefined); // reported by the tiles that need it
    }
    return this.slide;
  }

  close(): void {
    void this.slide?.then((s) => s.close(), () => undefined);
    this.slide = undefined;
  }
}

/** The file of Deep Zoom tile `level`/`col`_`row` of a whole slide's pyramid in `dir`, cut now if missing. */
export async function ensureSlideTile(image: string, pyramid: TilePyramid, level: number, col: number, row: number): Promise<string> {
  const cutter = new SlideTileCutter(image, pyramid);
  try {
    return await cutter.file(`${level}/${col}_${row}`);
  } finally {
    cutter.close();
  }
}
