import * as fs from 'node:fs';
import { fromFile, GeoTIFFImage, type GeoTIFF } from 'geotiff';
import './tiffDecoders'; // Deflate and LZW tiles decoded no larger than a tile
import sharp from 'sharp';
import { ImageFileError } from './imageError';
import { levelForDownsample, startRegion } from './slideRegion';
import { scaleFromTiff, type Scale } from './scale';
import { openSlideLibrary, openWithOpenSlide } from './openslide';
import { channelPyramids, omeSeparateRgb } from './omeChannels';
import { isTiledDirectory, levelHeader, pyramidDirectories, readTiffLayout, soundTiffLayout, TAG, tagValue, type TiffDirectory } from './tiffLayout';

/**
 * A whole-slide image read by region and pyramid level (geotiff.js, plain JS): tiled and
 * pyramidal TIFF, BigTIFF, OME-TIFF and JPEG-tiled Aperio SVS; what geotiff.js cannot decode
 * (NDPI, MRXS, JPEG 2000 SVS, ...) goes to the system's OpenSlide when it is installed (openslide.ts). Only the tiles a region covers are
 * read and decoded, and decoded tiles are kept in a small least-recently-used cache, so memory
 * stays bounded whatever the slide's size. Levels are the tiled images of the file's IFD chain, or
 * the first one and its SubIFDs (OME-TIFF), largest first; level 0 is full resolution. The
 * file's structure is checked from its bytes before geotiff.js parses it (tiffLayout.ts).
 */

export interface SlideLevel {
  width: number;
  height: number;
  tileWidth: number;
  tileHeight: number;
  /** Full-resolution pixels per pixel of this level (1 for level 0). */
  downsample: number;
}

export interface WholeSlide {
  readonly path: string;
  /** 'openslide': a vendor format (NDPI, MRXS, ...) read by OpenSlide. */
  readonly format: 'svs' | 'ome-tiff' | 'tiff' | 'openslide';
  readonly levels: readonly SlideLevel[];
  /** Microns per full-resolution pixel, and where it was read, when the file says (and its pixels are square). */
  readonly scale: Scale | undefined;
  /** When the file states pixels that are not square: the problem in words (see fileScale), and `scale` is undefined. */
  readonly nonSquare?: string;
  /** RGB uint8 [h, w, 3] of [x, x+w) x [y, y+h) in `level`'s pixels; zero outside the slide. */
  readRegion(level: number, x: number, y: number, w: number, h: number): Promise<Uint8Array>;
  /** The smallest level whose downsample is at most `downsample` (level 0 if none is larger). */
  levelFor(downsample: number): number;
  /** Tiles decoded so far and decoded bytes held in the cache now. */
  stats(): { decodes: number; residentBytes: number };
  close(): void;
}

export interface WholeSlideOptions {
  /** Most decoded tile bytes to keep (default 64 MiB). */
  cacheBytes?: number;
  /** Most pixels one readRegion may return (default REGION_PIXELS). */
  regionPixels?: number;
  /** Whether OpenSlide may read what geotiff.js cannot, when it is installed (default true). */
  openSlide?: boolean;
}

/** Most pixels one region read returns by default: 8192 x 8192 (192 MiB of RGB). */
export const REGION_PIXELS = 8192 * 8192;

/** Compression codes geotiff.js cannot decode, and what they are. */
const NEEDS_OPENSLIDE: Record<number, string> = { 33003: 'JPEG 2000 (Aperio YCbCr)', 33005: 'JPEG 2000 (Aperio RGB)', 34712: 'JPEG 2000' };

/** Extensions OpenSlide reads and geotiff.js does not. */
const OPENSLIDE_ONLY = /\.(ndpi|mrxs|vms|vmu|scn|bif|svslide)$/i;

/** The README section on slide formats, named in errors. */
const INSTALL_OPENSLIDE = 'install OpenSlide (Debian/Ubuntu: apt-get install openslide-tools) to read it directly, or convert the slide to a pyramidal TIFF ' +
  '(e.g. `vips tiffsave slide.ndpi slide.tif --tile --pyramid --compression jpeg`), or export it as OME-TIFF from the scanner\'s software';

/**
 * Whether `path` should be read as a whole slide: an Aperio SVS, an OpenSlide-only format, a tiled
 * BigTIFF, or a TIFF with several tiled images (a pyramid). Ordinary JPEG/PNG and single-level or
 * stripped (Big)TIFF stay with sharp.
 */
export function isWholeSlideFile(path: string): boolean {
  // Not a regular file (a named pipe would block the open below for ever): not a slide; the image
  // readers refuse it with what it is.
  try {
    if (!fs.statSync(path).isFile()) return false;
  } catch {
    return false;
  }
  if (OPENSLIDE_ONLY.test(path) || /\.svs$/i.test(path)) return true;
  let fd: number | undefined;
  try {
    fd = fs.openSync(path, 'r');
    const layout = readTiffLayout(fd, fs.fstatSync(fd).size);
    if (!layout) return false;
    const tiled = layout.directories.reduce((n, d) => n + (isTiledDirectory(d) ? 1 : 0) + d.subIfds.filter(isTiledDirectory).length, 0);
    // A damaged or crafted tiled TIFF is a whole slide still: openWholeSlide says what is wrong.
    return tiled > (layout.bigTiff || layout.problem ? 0 : 1);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Opens a whole slide; reads its IFDs, levels and scale, and checks its tiles lie inside the file. */
export async function openWholeSlide(path: string, opts: WholeSlideOptions = {}): Promise<WholeSlide> {
  let size: number;
  try {
    const stat = fs.statSync(path);
    if (!stat.isFile()) throw new Error('not a regular file');
    size = stat.size;
  } catch (e) {
    throw new ImageFileError(path, `cannot be read: ${messageOf(e)}`, { cause: e });
  }
  if (OPENSLIDE_ONLY.test(path)) return viaOpenSlide(path, opts, 'is a slide format only OpenSlide reads');
  // The structure and every level's sizes are checked from the file's bytes first: geotiff.js
  // allocates what a header declares, so a crafted one is refused before it parses anything.
  const fail = (problem: string) => new ImageFileError(path, problem);
  const layout = soundTiffLayout(path, fail);
  const dirs = pyramidDirectories(layout).sort((a, b) => (tagValue(b, TAG.width) ?? 0) - (tagValue(a, TAG.width) ?? 0));
  if (dirs.length === 0) throw new ImageFileError(path, 'has no tiled image: not a whole-slide TIFF; give it as an ordinary image');
  dirs.forEach((d, k) => levelHeader(d, k, fail));
  let tiff: GeoTIFF;
  let first: GeoTIFFImage;
  let description: string;
  /** Each level's images: one RGB image, or an OME-TIFF's three channels. */
  let planes: GeoTIFFImage[][];
  try {
    tiff = await fromFile(path);
  } catch (e) {
    throw new ImageFileError(path, `cannot be read as a TIFF slide (${messageOf(e)}); is the file complete?`, { cause: e });
  }
  try {
    const t = tiff;
    const parse = async (d: TiffDirectory) => new GeoTIFFImage(await t.parser.parseFileDirectoryAt(d.offset), t.littleEndian, t.cache, t.source);
    first = await parse(dirs[0]);
    description = first.fileDirectory.hasTag('ImageDescription') ? String(await first.fileDirectory.loadValue('ImageDescription')) : '';
    const channels = first.getSamplesPerPixel() === 1 && omeSeparateRgb(description) ? channelPyramids(layout, fail) : undefined;
    channels?.forEach((p) => p.forEach((d, k) => levelHeader(d, k, fail)));
    const byChannel = await Promise.all((channels ?? [dirs]).map((p) => Promise.all(p.map(parse))));
    planes = byChannel[0].map((_, k) => byChannel.map((p) => p[k]));
  } catch (e) {
    closeQuietly(tiff);
    if (e instanceof ImageFileError) throw e;
    throw new ImageFileError(path, `cannot be read as a TIFF slide (${messageOf(e)}); is the file complete?`, { cause: e });
  }
  const format = /^Aperio/.test(description) ? 'svs' : /<OME[\s>]/.test(description) ? 'ome-tiff' : 'tiff';
  const levels: SlideLevel[] = [];
  const codecs: TileCodec[] = [];
  try {
    for (const [k, [im, ...others]] of planes.entries()) {
      const compression = Number(im.fileDirectory.getValue('Compression') ?? 1);
      if (NEEDS_OPENSLIDE[compression]) throw new NeedsOpenSlide(`level ${k} is compressed with ${NEEDS_OPENSLIDE[compression]}, which this reader cannot decode`);
      const samples = im.getSamplesPerPixel() * (others.length + 1);
      const bits = im.getBitsPerSample(0);
      if (bits !== 8 || samples < 3) {
        throw new ImageFileError(path, `level ${k} has ${samples} sample(s) of ${bits} bits per pixel; an H&E slide is 8-bit RGB`);
      }
      const level: SlideLevel = { width: im.getWidth(), height: im.getHeight(), tileWidth: im.getTileWidth(), tileHeight: im.getTileHeight(), downsample: 1 };
      level.downsample = (levels[0]?.width ?? level.width) / level.width;
      if (levels.length > 0) checkAspect(path, levels[0], level, k);
      codecs.push(await tileCodec(path, im, k, size));
      for (const other of others) await tileCodec(path, other, k, size); // its tiles must lie inside the file too
      levels.push(level);
    }
    const { scale, nonSquare } = await scaleFromTiff(path, first);
    const slide = new TiffSlide(path, format, levels, planes, codecs, scale, { tiff, cacheBytes: opts.cacheBytes ?? 64 * 2 ** 20, regionPixels: opts.regionPixels ?? REGION_PIXELS });
    if (nonSquare) slide.nonSquare = nonSquare;
    return slide;
  } catch (e) {
    closeQuietly(tiff);
    if (e instanceof NeedsOpenSlide) return viaOpenSlide(path, opts, e.message);
    throw e;
  }
}

/** A slide geotiff.js cannot decode, for OpenSlide when it is installed. */
class NeedsOpenSlide extends Error {}

/** The slide read by OpenSlide, or (not installed, or `opts.openSlide` false) why it cannot be read and what to install. */
function viaOpenSlide(path: string, opts: WholeSlideOptions, why: string): WholeSlide {
  const { lib, missing } = opts.openSlide === false ? { lib: undefined, missing: undefined } : openSlideLibrary();
  if (!lib) throw new ImageFileError(path, `${why}; ${INSTALL_OPENSLIDE}${missing ? ` (OpenSlide is not usable here: ${missing})` : ''}`);
  return openWithOpenSlide(lib, path, opts.regionPixels ?? REGION_PIXELS);
}

/** A reduced level must have level 0's aspect (within a pixel of rounding, and 1%). */
function checkAspect(path: string, base: SlideLevel, level: SlideLevel, k: number): void {
  const expected = base.height * level.width / base.width;
  if (Math.abs(level.height - expected) > 1 + 0.01 * expected) {
    throw new ImageFileError(path, `its pyramid levels disagree in aspect: level 0 is ${base.width} x ${base.height} px, level ${k} is ` +
      `${level.width} x ${level.height} px (a ${level.width} px wide level of this slide would be about ${Math.round(expected)} px high); the file is damaged or not one slide`);
  }
}

/**
 * How a level's tiles are read: where each lies, and whether libjpeg-turbo (through sharp) can
 * decode them, which is some 30x faster than geotiff.js' JavaScript JPEG decoder; other
 * compressions go through geotiff.js. Every tile must lie inside the file: a truncated copy
 * fails here, naming the tile.
 */
interface TileCodec {
  offsets: Float64Array;
  counts: Float64Array;
  /** JPEGTables (tag 347) to put before an abbreviated tile stream, without its EOI. */
  jpegTables?: Uint8Array;
  native: boolean;
}

async function tileCodec(path: string, im: GeoTIFFImage, k: number, fileSize: number): Promise<TileCodec> {
  const offsets = Float64Array.from(await im.fileDirectory.loadValue('TileOffsets') as ArrayLike<number | bigint>, Number);
  const counts = Float64Array.from(await im.fileDirectory.loadValue('TileByteCounts') as ArrayLike<number | bigint>, Number);
  const cols = Math.ceil(im.getWidth() / im.getTileWidth());
  for (let i = 0; i < offsets.length; i++) {
    const end = offsets[i] + counts[i];
    if (end > fileSize) {
      throw new ImageFileError(path, `level ${k}, tile (column ${i % cols}, row ${Math.floor(i / cols)}) ends at byte ${end} but the file has ${fileSize} bytes: ` +
        'the file is truncated; copy it again');
    }
  }
  const d = im.fileDirectory;
  const jpeg = Number(d.getValue('Compression')) === 7 && Number(d.getValue('PlanarConfiguration') ?? 1) === 1 && im.getSamplesPerPixel() === 3;
  const tables = jpeg && d.hasTag('JPEGTables') ? new Uint8Array(await d.loadValue('JPEGTables') as ArrayLike<number>) : undefined;
  return { offsets, counts, ...(tables && tables.length > 4 ? { jpegTables: tables.subarray(0, tables.length - 2) } : {}), native: jpeg };
}

class TiffSlide implements WholeSlide {
  private readonly cache = new Map<string, Uint8Array>();
  private cachedBytes = 0;
  private decodes = 0;
  private closed = false;
  nonSquare?: string;

  constructor(readonly path: string, readonly format: WholeSlide['format'], readonly levels: readonly SlideLevel[],
    private readonly planes: readonly (readonly GeoTIFFImage[])[], private readonly codecs: readonly TileCodec[], readonly scale: Scale | undefined,
    private readonly limits: { tiff: GeoTIFF; cacheBytes: number; regionPixels: number }) {}

  levelFor(downsample: number): number {
    return levelForDownsample(this.levels, downsample);
  }

  async readRegion(level: number, x: number, y: number, w: number, h: number): Promise<Uint8Array> {
    const { L, out, inside } = startRegion(this.path, this.closed, this.levels, this.limits.regionPixels, level, x, y, w, h);
    if (!inside) return out;
    const { left, top, right, bottom } = inside;
    for (let ty = Math.floor(top / L.tileHeight); ty * L.tileHeight < bottom; ty++) {
      for (let tx = Math.floor(left / L.tileWidth); tx * L.tileWidth < right; tx++) {
        const tile = await this.tile(level, tx, ty);
        const tileLeft = tx * L.tileWidth;
        const tileTop = ty * L.tileHeight;
        const tw = Math.min(L.tileWidth, L.width - tileLeft); // edge tiles are clipped by geotiff
        const x0 = Math.max(left, tileLeft);
        const x1 = Math.min(right, tileLeft + tw);
        for (let row = Math.max(top, tileTop); row < Math.min(bottom, tileTop + L.tileHeight); row++) {
          const src = ((row - tileTop) * tw + (x0 - tileLeft)) * 3;
          out.set(tile.subarray(src, src + (x1 - x0) * 3), ((row - y) * w + (x0 - x)) * 3);
        }
      }
    }
    return out;
  }

  stats(): { decodes: number; residentBytes: number } {
    return { decodes: this.decodes, residentBytes: this.cachedBytes };
  }

  close(): void {
    this.closed = true;
    closeQuietly(this.limits.tiff);
    void this.handle?.then((h) => h.close(), () => undefined);
    this.handle = undefined;
    this.cache.clear();
    this.cachedBytes = 0;
  }

  /** A JPEG tile's bytes (with the level's JPEGTables when its stream is abbreviated), decoded by libjpeg-turbo. */
  private async jpegTile(level: number, index: number, w: number, h: number): Promise<Uint8Array> {
    const { offsets, counts, jpegTables } = this.codecs[level];
    const bytes = Buffer.alloc(counts[index]);
    const handle = await this.file();
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, offsets[index]);
    if (bytesRead !== bytes.length) throw new Error(`read ${bytesRead} of its ${bytes.length} bytes`);
    // An abbreviated stream takes the level's tables; tables of its own, if any, come later and win.
    const L = this.levels[level];
    return decodeJpegTile(jpegTables ? Buffer.concat([jpegTables, bytes.subarray(2)]) : bytes, w, h, L.tileWidth * L.tileHeight);
  }

  private handle: Promise<fs.promises.FileHandle> | undefined;

  private file(): Promise<fs.promises.FileHandle> {
    this.handle ??= fs.promises.open(this.path, 'r');
    return this.handle;
  }

  /** Tile (tx, ty) of a level as RGB [rows, cols, 3], clipped to the level's edge. */
  private async tile(level: number, tx: number, ty: number): Promise<Uint8Array> {
    const key = `${level}/${tx}/${ty}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const L = this.levels[level];
    const window = [tx * L.tileWidth, ty * L.tileHeight, Math.min(L.width, (tx + 1) * L.tileWidth), Math.min(L.height, (ty + 1) * L.tileHeight)];
    let rgb: Uint8Array;
    try {
      if (this.codecs[level].native) {
        rgb = await this.jpegTile(level, ty * Math.ceil(L.width / L.tileWidth) + tx, window[2] - window[0], window[3] - window[1]);
      } else if (this.planes[level].length === 3) {
        rgb = interleave(await Promise.all(this.planes[level].map((im) => im.readRasters({ window, samples: [0], interleave: true }).then(bytesOf))));
      } else {
        rgb = bytesOf(await this.planes[level][0].readRGB({ window, interleave: true }));
      }
      const expected = (window[2] - window[0]) * (window[3] - window[1]) * 3;
      if (rgb.length !== expected) throw new Error(`decoded to ${rgb.length} bytes, not ${expected}`);
    } catch (e) {
      throw new ImageFileError(this.path, `level ${level}, tile (column ${tx}, row ${ty}) cannot be decoded (${messageOf(e)}); the file is damaged or truncated, copy it again`, { cause: e });
    }
    this.decodes++;
    this.cache.set(key, rgb);
    this.cachedBytes += rgb.length;
    for (const [k, v] of this.cache) {
      if (this.cachedBytes <= this.limits.cacheBytes || this.cache.size <= 1) break;
      this.cache.delete(k);
      this.cachedBytes -= v.length;
    }
    return rgb;
  }
}

/**
 * Decodes a JPEG stream to RGB [h, w, 3], the top-left w x h of its pixels (edge tiles are
 * padded). A stream declaring more than the level's `tilePixels` is refused before it is decoded.
 */
async function decodeJpegTile(stream: Uint8Array, w: number, h: number, tilePixels: number): Promise<Uint8Array> {
  const { data, info } = await sharp(stream, { failOn: 'truncated', limitInputPixels: tilePixels }).extract({ left: 0, top: 0, width: w, height: h })
    .removeAlpha().toColourspace('srgb').raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  if (info.width !== w || info.height !== h || info.channels !== 3) throw new Error(`decoded to ${info.width} x ${info.height} x ${info.channels}, not ${w} x ${h} x 3`);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The bytes of a decoded 8-bit raster (geotiff.js' typed array). */
function bytesOf(data: unknown): Uint8Array {
  if (!(data instanceof Uint8Array) && !(data instanceof Uint8ClampedArray)) throw new Error('decoded to a non-8-bit array');
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** RGB [n, 3] of three channels [n] each. */
function interleave([r, g, b]: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(r.length * 3);
  for (let i = 0; i < r.length; i++) {
    out[i * 3] = r[i];
    out[i * 3 + 1] = g[i];
    out[i * 3 + 2] = b[i];
  }
  return out;
}

/** Reads a region of a level (see WholeSlide.readRegion): the API other components call. */
export function readRegion(slide: WholeSlide, level: number, x: number, y: number, w: number, h: number): Promise<Uint8Array> {
  return slide.readRegion(level, x, y, w, h);
}

/** Closes geotiff.js' own file handle (it has one only when it opened a file). */
function closeQuietly(tiff: GeoTIFF): void {
  void Promise.resolve(tiff.close()).catch(() => undefined);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
