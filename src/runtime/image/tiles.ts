import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp, { type Metadata } from 'sharp';
import { buildPyramidDir } from './pyramidDir';
import { writeSlideTilePyramid } from './slideTiles';
import { isWholeSlideFile } from './wsi';

/**
 * A Deep Zoom tile pyramid of a slide image, for the slide viewer: 256 px JPEG tiles at every
 * power-of-two scale (sharp's `tile()`, libvips' dzsave), so that a 10,000 x 10,000 px image opens
 * with a handful of small tiles and zooms without decoding the whole image in the browser.
 * EXIF orientation is applied first, as the crops see the image.
 */

export interface TilePyramid {
  /** Folder holding slide.dzi and slide_files/<level>/<col>_<row>.jpeg */
  dir: string;
  width: number;
  height: number;
  tileSize: number;
  overlap: number;
  format: 'jpeg';
  /** Level of the full-resolution tiles (level 0 is 1 x 1 px). */
  maxLevel: number;
  /** A whole slide's pyramid: levels above `writtenLevels` are cut on demand (`triplex tiles --tile`). */
  onDemand?: true;
  writtenLevels?: number;
}

const TILE_SIZE = 256;

interface Source { image: string; size: number; mtimeMs: number }

/** Writes (or reuses, when made from the same file) the pyramid of `image` into `dir`. */
export async function writeTilePyramid(image: string, dir: string): Promise<TilePyramid> {
  if (!fs.existsSync(image)) throw new Error(`${image}: no such image file`);
  const stat = fs.statSync(image);
  const source: Source = { image: path.resolve(image), size: stat.size, mtimeMs: stat.mtimeMs };
  const sourceFile = path.join(dir, 'source.json');
  const pyramidFile = path.join(dir, 'pyramid.json');
  if (fs.existsSync(pyramidFile) && fs.existsSync(sourceFile)) {
    const old = JSON.parse(fs.readFileSync(sourceFile, 'utf8')) as Source;
    if (old.image === source.image && old.size === source.size && old.mtimeMs === source.mtimeMs) {
      return { ...(JSON.parse(fs.readFileSync(pyramidFile, 'utf8')) as TilePyramid), dir };
    }
  }
  // Built beside the target and renamed at the end (buildPyramidDir): an interrupted run leaves no half pyramid.
  // A whole slide (pyramidal TIFF, SVS) is never re-tiled: its overview now, the rest on demand.
  if (isWholeSlideFile(image)) return writeSlideTilePyramid(image, dir, source);
  return buildPyramidDir(dir, source, async (partial) => {
    let meta: Metadata;
    try {
      meta = await sharp(image, { limitInputPixels: false }).metadata();
    } catch (err) {
      throw new Error(`${image}: not an image sharp can read (${(err as Error).message})`, { cause: err });
    }
    const oriented = (meta.orientation ?? 1) >= 5;
    const width = (oriented ? meta.height : meta.width) ?? 0;
    const height = (oriented ? meta.width : meta.height) ?? 0;
    await sharp(image, { limitInputPixels: false }).rotate().jpeg({ quality: 80 }).tile({ size: TILE_SIZE, overlap: 0, layout: 'dz' }).toFile(path.join(partial, 'slide.dz'));
    const pyramid: TilePyramid = { dir, width, height, tileSize: TILE_SIZE, overlap: 0, format: 'jpeg', maxLevel: Math.ceil(Math.log2(Math.max(width, height))) };
    return pyramid;
  });
}
