import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import sharp from 'sharp';

/**
 * A small writer of tiled, multi-level TIFF and BigTIFF files, for tests and the bench: the
 * slides scanners write (Aperio SVS, pyramidal/OME TIFF) made from pixels the test chooses. Each
 * level is one IFD of the top-level chain (as SVS and libvips' `--pyramid` files store them), or,
 * with `subIfds`, the reduced levels are SubIFDs (tag 330) of the first (OME-TIFF since 2020,
 * as raw2ometiff and QuPath write them); tiles are RGB, deflate- (8), LZW- (5), JPEG- (7) or JPEG 2000- (33005 RGB, 33003 YCbCr) compressed. A tile given twice (the same Buffer) is
 * written once and referenced twice, so a 100,000 px slide of mostly empty glass stays small.
 */

export interface TiffLevelSpec {
  width: number;
  height: number;
  tileSize: number;
  /** Encoded tile (col, row), row-major; the same Buffer object may be returned for many tiles. */
  tile: (col: number, row: number) => Buffer;
  compression: 'deflate' | 'jpeg' | 'lzw' | 'jpeg2000' | 'jpeg2000-ycbcr';
  /** PhotometricInterpretation: 2 (RGB, default; what Aperio writes over JPEG) or 6 (YCbCr). */
  photometric?: 2 | 6;
  description?: string;
  /** XResolution (and YResolution, unless `perUnitY` differs: oblong pixels) in pixels per `unit`. */
  resolution?: { perUnit: number; perUnitY?: number; unit: 'cm' | 'inch' | 'none' };
  /** NewSubfileType: 0 for the full image, 1 for a reduced level (default: 0 first, then 1). */
  subfileType?: number;
  /** For tests of crafted headers: edits the level's directory entries (absurd sizes, counts beyond the values). */
  entries?: (entries: TiffEntry[]) => TiffEntry[];
}

/** Tile-grid size of a level. */
export function tileGrid(level: Pick<TiffLevelSpec, 'width' | 'height' | 'tileSize'>): { cols: number; rows: number } {
  return { cols: Math.ceil(level.width / level.tileSize), rows: Math.ceil(level.height / level.tileSize) };
}

/**
 * A JPEG 2000 codestream of RGB pixels [size, size, 3] (lossless), as Aperio stores tiles under
 * compression 33005; with `ycbcr`, as under 33003 (what Aperio's scanners write): the pixels
 * turned into full-range YCbCr (JFIF's BT.601 matrix, rounded to bytes) and the three components
 * coded as they are, with no multiple-component transform, so a reader must turn them back into
 * RGB itself. Encoded by OpenJPEG's opj_compress (Debian's libopenjp2-tools).
 */
export function jpeg2000Tile(rgb: Uint8Array, size: number, opts: { ycbcr?: boolean } = {}): Buffer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'j2k-'));
  try {
    const [ppm, j2k] = [path.join(dir, 'tile.ppm'), path.join(dir, 'tile.j2k')];
    fs.writeFileSync(ppm, Buffer.concat([Buffer.from(`P6\n${size} ${size}\n255\n`), opts.ycbcr ? rgbToYcbcr(rgb) : rgb]));
    const run = spawnSync('opj_compress', ['-i', ppm, '-o', j2k, ...(opts.ycbcr ? ['-mct', '0'] : [])], { encoding: 'utf8' });
    if (run.status !== 0) throw new Error(`opj_compress failed: ${run.error?.message ?? run.stderr}`);
    return fs.readFileSync(j2k);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Full-range YCbCr (JPEG/JFIF, ITU-R BT.601 coefficients) of RGB bytes, each component rounded to a byte. */
export function rgbToYcbcr(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgb.length);
  const byte = (v: number) => Math.min(255, Math.max(0, Math.round(v)));
  for (let i = 0; i < rgb.length; i += 3) {
    const [r, g, b] = [rgb[i], rgb[i + 1], rgb[i + 2]];
    out[i] = byte(0.299 * r + 0.587 * g + 0.114 * b);
    out[i + 1] = byte(128 - 0.168736 * r - 0.331264 * g + 0.5 * b);
    out[i + 2] = byte(128 + 0.5 * r - 0.418688 * g - 0.081312 * b);
  }
  return out;
}

/** Deflate-compressed tile of RGB pixels [size, size, 3]. */
export function deflateTile(rgb: Uint8Array): Buffer {
  return deflateSync(rgb);
}

/**
 * TIFF LZW (codes MSB first, 9 to 12 bits, the width growing one code early as TIFF decoders
 * expect, a clear code when the table fills) of `data`: a tile as TIFF writers store it.
 */
export function lzwTile(data: Uint8Array): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  let width = 9;
  const put = (code: number): void => {
    for (let i = width - 1; i >= 0; i--) {
      acc = (acc << 1) | ((code >> i) & 1);
      if (++bits === 8) { out.push(acc); acc = 0; bits = 0; }
    }
  };
  let table = new Map<number, number>();
  let size = 258;
  const added = (): void => { // the decoder widens its codes once its table is one short of the width's limit
    size++;
    if (size >= 1 << width && width < 12) width++;
  };
  put(256);
  let prefix = data[0];
  for (let i = 1; i < data.length; i++) {
    const key = prefix * 256 + data[i];
    const known = table.get(key);
    if (known !== undefined) { prefix = known; continue; }
    put(prefix);
    table.set(key, size);
    added();
    if (size >= 4093) { put(256); table = new Map(); size = 258; width = 9; }
    prefix = data[i];
  }
  put(prefix);
  added();
  put(257);
  if (bits) out.push(acc << (8 - bits));
  return Buffer.from(out);
}

/**
 * An LZW stream that expands quadratically (a "compression bomb"): after each clear code, a byte
 * and then every code the decoder is about to define, so that code c outputs c - 256 bytes;
 * `runs` tables of that are about 7.4 MB each from 5.7 kB.
 */
export function lzwBomb(runs: number): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  const put = (code: number, width: number): void => {
    for (let i = width - 1; i >= 0; i--) {
      acc = (acc << 1) | ((code >> i) & 1);
      if (++bits === 8) { out.push(acc); acc = 0; bits = 0; }
    }
  };
  let width = 9;
  for (let r = 0; r < runs; r++) {
    put(256, width);
    width = 9;
    put(0, width);
    for (let size = 258; size < 4092; size++) {
      put(size, width);
      if (size + 2 >= 1 << width && width < 12) width++; // the decoder's table is size + 1 long after this code
    }
  }
  put(257, width);
  if (bits) out.push(acc << (8 - bits));
  return Buffer.from(out);
}

/** Baseline JPEG tile (a whole JFIF stream, as Aperio stores them) of RGB pixels [size, size, 3]. */
export async function jpegTile(rgb: Uint8Array, size: number, quality = 90): Promise<Buffer> {
  return sharp(Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength), { raw: { width: size, height: size, channels: 3 } })
    .jpeg({ quality, chromaSubsampling: '4:4:4' }).toBuffer();
}

/** A size x size tile of one colour. */
export function solidTile(size: number, rgb: readonly [number, number, number]): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < out.length; i += 3) out.set(rgb, i);
  return out;
}

const T = { SHORT: 3, LONG: 4, RATIONAL: 5, ASCII: 2, IFD: 13, LONG8: 16, IFD8: 18 } as const;
/** A directory entry; `count` overrides the count its values give (a crafted header). */
export interface TiffEntry { tag: number; type: number; values: number[] | string; count?: number }
type Entry = TiffEntry;

/**
 * Writes the levels to `file` (BigTIFF when `bigTiff`); returns the file's size in bytes. The
 * IFDs come first and the tile data last, so a copy cut short loses tiles, not the directory.
 */
export function writeTiledTiff(file: string, levels: readonly TiffLevelSpec[], opts: { bigTiff?: boolean; subIfds?: boolean } = {}): number {
  const big = opts.bigTiff ?? false;
  const subIfds = (opts.subIfds ?? false) && levels.length > 1;
  // Pass 1: every level's tiles, each distinct Buffer once.
  const unique = new Map<Buffer, number>(); // tile -> index into `data`
  const data: Buffer[] = [];
  const refs = levels.map((level) => {
    const { cols, rows } = tileGrid(level);
    const ids = new Int32Array(cols * rows);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const tile = level.tile(c, r);
        let id = unique.get(tile);
        if (id === undefined) {
          id = data.length;
          unique.set(tile, id);
          data.push(tile);
        }
        ids[r * cols + c] = id;
      }
    }
    return ids;
  });
  const entriesOf = (level: TiffLevelSpec, li: number, where: readonly number[], ifds: readonly number[]): Entry[] => {
    const ids = refs[li];
    const entries: Entry[] = [
      { tag: 254, type: T.LONG, values: [level.subfileType ?? (li === 0 ? 0 : 1)] },
      { tag: 256, type: T.LONG, values: [level.width] },
      { tag: 257, type: T.LONG, values: [level.height] },
      { tag: 258, type: T.SHORT, values: [8, 8, 8] },
      { tag: 259, type: T.SHORT, values: [{ deflate: 8, jpeg: 7, lzw: 5, jpeg2000: 33005, 'jpeg2000-ycbcr': 33003 }[level.compression]] },
      { tag: 262, type: T.SHORT, values: [level.photometric ?? 2] },
      { tag: 277, type: T.SHORT, values: [3] },
      { tag: 284, type: T.SHORT, values: [1] },
      { tag: 322, type: T.LONG, values: [level.tileSize] },
      { tag: 323, type: T.LONG, values: [level.tileSize] },
      { tag: 324, type: big ? T.LONG8 : T.LONG, values: Array.from(ids, (id) => where[id]) },
      { tag: 325, type: T.LONG, values: Array.from(ids, (id) => data[id].length) },
    ];
    if (level.description !== undefined) entries.push({ tag: 270, type: T.ASCII, values: level.description });
    if (subIfds && li === 0) entries.push({ tag: 330, type: big ? T.IFD8 : T.IFD, values: ifds.slice(1) });
    if (level.resolution) {
      const { perUnit, perUnitY = perUnit } = level.resolution;
      entries.push({ tag: 282, type: T.RATIONAL, values: rational(perUnit) }, { tag: 283, type: T.RATIONAL, values: rational(perUnitY) });
      entries.push({ tag: 296, type: T.SHORT, values: [{ none: 1, inch: 2, cm: 3 }[level.resolution.unit]] });
    }
    return (level.entries ? level.entries(entries) : entries).sort((a, b) => a.tag - b.tag);
  };
  // Pass 2: IFD sizes do not depend on the offsets they hold, so lay out IFDs, then tile data.
  const even = (n: number) => n + (n % 2);
  const zeros = data.map(() => 0);
  const ifdAt: number[] = [];
  let at = big ? 16 : 8;
  levels.forEach((level, li) => {
    ifdAt.push(at);
    const { ifd, values } = encodeIfd(entriesOf(level, li, zeros, levels.map(() => 0)), at, big);
    at = even(at + ifd.length + values.length);
  });
  const where = data.map((tile) => {
    const w = at;
    at = even(at + tile.length);
    return w;
  });
  const fd = fs.openSync(file, 'w');
  try {
    const header = Buffer.alloc(big ? 16 : 8);
    header.write('II', 0, 'latin1');
    if (big) {
      header.writeUInt16LE(43, 2);
      header.writeUInt16LE(8, 4);
      header.writeBigUInt64LE(BigInt(ifdAt[0]), 8);
    } else {
      header.writeUInt16LE(42, 2);
      header.writeUInt32LE(ifdAt[0], 4);
    }
    fs.writeSync(fd, header, 0, header.length, 0);
    levels.forEach((level, li) => {
      const { ifd, values, nextAt } = encodeIfd(entriesOf(level, li, where, ifdAt), ifdAt[li], big);
      const next = subIfds ? 0 : ifdAt[li + 1] ?? 0; // SubIFDs are listed by level 0, not chained
      if (big) ifd.writeBigUInt64LE(BigInt(next), nextAt); else ifd.writeUInt32LE(next, nextAt);
      const block = Buffer.concat([ifd, values]);
      fs.writeSync(fd, block, 0, block.length, ifdAt[li]);
    });
    data.forEach((tile, i) => fs.writeSync(fd, tile, 0, tile.length, where[i]));
    return at;
  } finally {
    fs.closeSync(fd);
  }
}

function rational(v: number): [number, number] {
  const den = 10000;
  return [Math.round(v * den), den];
}

const SIZE: Record<number, number> = { [T.SHORT]: 2, [T.LONG]: 4, [T.RATIONAL]: 8, [T.ASCII]: 1, [T.IFD]: 4, [T.LONG8]: 8, [T.IFD8]: 8 };

/** One IFD written at file offset `base`: the directory, then the values that do not fit inline. */
function encodeIfd(entries: Entry[], base: number, big: boolean): { ifd: Buffer; values: Buffer; nextAt: number } {
  const entrySize = big ? 20 : 12;
  const countSize = big ? 8 : 2;
  const inline = big ? 8 : 4;
  const ifd = Buffer.alloc(countSize + entries.length * entrySize + (big ? 8 : 4));
  if (big) ifd.writeBigUInt64LE(BigInt(entries.length), 0); else ifd.writeUInt16LE(entries.length, 0);
  const extra: Buffer[] = [];
  let extraAt = base + ifd.length;
  entries.forEach((e, i) => {
    const data = encodeValues(e);
    const count = e.count ?? (typeof e.values === 'string' ? data.length : e.type === T.RATIONAL ? e.values.length / 2 : e.values.length);
    const o = countSize + i * entrySize;
    ifd.writeUInt16LE(e.tag, o);
    ifd.writeUInt16LE(e.type, o + 2);
    if (big) ifd.writeBigUInt64LE(BigInt(count), o + 4); else ifd.writeUInt32LE(count, o + 4);
    const valueAt = o + (big ? 12 : 8);
    if (data.length <= inline) {
      data.copy(ifd, valueAt);
    } else {
      if (big) ifd.writeBigUInt64LE(BigInt(extraAt), valueAt); else ifd.writeUInt32LE(extraAt, valueAt);
      const padded = data.length % 2 ? Buffer.concat([data, Buffer.alloc(1)]) : data;
      extra.push(padded);
      extraAt += padded.length;
    }
  });
  return { ifd, values: Buffer.concat(extra), nextAt: countSize + entries.length * entrySize };
}

function encodeValues(e: Entry): Buffer {
  if (typeof e.values === 'string') return Buffer.from(`${e.values}\0`, 'utf8'); // OME-XML is UTF-8
  const size = SIZE[e.type];
  const n = e.values.length;
  const out = Buffer.alloc(e.type === T.RATIONAL ? n * 4 : n * size);
  e.values.forEach((v, i) => {
    if (e.type === T.SHORT) out.writeUInt16LE(v, i * 2);
    else if (e.type === T.LONG8 || e.type === T.IFD8) out.writeBigUInt64LE(BigInt(v), i * 8);
    else out.writeUInt32LE(v, i * 4); // LONG, and each half of a RATIONAL
  });
  return out;
}
