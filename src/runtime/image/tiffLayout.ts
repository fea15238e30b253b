import * as fs from 'node:fs';

/**
 * The directories of a (Big)TIFF read from its bytes before any decoder sees them: the main IFD
 * chain and the SubIFDs (tag 330) each lists, where OME-TIFF keeps its reduced levels since 2020
 * (bioformats2raw/raw2ometiff, QuPath). Every directory and every tag's values must lie inside
 * the file, and a chain must not loop, so that a crafted header is refused by name before
 * anything is allocated for it (geotiff.js allocates each array tag's declared length as it
 * parses a directory, and follows a looping chain for ever).
 */

export interface TiffEntry {
  type: number;
  count: number;
  /** File offset of the values (inside the entry when they fit there). */
  at: number;
  /** The values, for numeric tags of at most MAX_READ values. */
  values?: number[];
}

export interface TiffDirectory {
  offset: number;
  entries: Map<number, TiffEntry>;
  /** The directories its SubIFDs tag lists (reduced levels of an OME-TIFF pyramid). */
  subIfds: TiffDirectory[];
}

export interface TiffLayout {
  littleEndian: boolean;
  bigTiff: boolean;
  /** The main chain's directories, in file order (with a problem: those read, a damaged one last). */
  directories: TiffDirectory[];
  /** What is wrong with the structure (the walk stopped there); undefined when it is sound. */
  problem?: string;
}

/** Bytes per value of each TIFF field type. */
const TYPE_SIZE: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8 };
/** Numeric values read with the directory (widths, tile sizes, SubIFD offsets). */
const MAX_READ = 256;
/** Directories walked at most (chain and SubIFDs together). */
const MAX_DIRECTORIES = 10_000;

export const TAG = { width: 256, height: 257, samples: 277, planar: 284, tileWidth: 322, tileHeight: 323, tileOffsets: 324, tileByteCounts: 325, subIfds: 330 } as const;

/** The layout of the TIFF open as `fd` (`size` bytes); undefined when it is not a TIFF. */
export function readTiffLayout(fd: number, size: number): TiffLayout | undefined {
  const head = Buffer.alloc(16);
  if (fs.readSync(fd, head, 0, 16, 0) < 8) return undefined;
  const order = head.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return undefined;
  const le = order === 'II';
  const magic = le ? head.readUInt16LE(2) : head.readUInt16BE(2);
  if (magic !== 42 && magic !== 43) return undefined;
  const big = magic === 43;
  const r = new Reader(fd, size, le, big);
  const layout: TiffLayout = { littleEndian: le, bigTiff: big, directories: [] };
  const seen = new Set<number>();
  const visit = (offset: number, what: string): TiffDirectory => {
    if (offset < (big ? 16 : 8)) throw new LayoutProblem(`${what} is said to be at byte ${offset}, inside the file's header`);
    if (seen.has(offset)) throw new LayoutProblem(`its directories loop (${what} at byte ${offset} was read before)`);
    if (seen.size >= MAX_DIRECTORIES) throw new LayoutProblem(`it has more than ${MAX_DIRECTORIES} directories`);
    seen.add(offset);
    return r.directory(offset, what);
  };
  try {
    let next = big ? r.word(head, 8) : r.word(head, 4);
    while (next !== 0) {
      const dir = visit(next, `directory ${layout.directories.length}`);
      layout.directories.push(dir);
      const after = r.next; // reading the SubIFDs below moves r.next to theirs
      const subs = dir.entries.get(TAG.subIfds);
      if (subs) {
        if (!subs.values) throw new LayoutProblem(`directory ${layout.directories.length - 1} lists ${subs.count} SubIFDs; more than ${MAX_READ} is not a pyramid`);
        dir.subIfds = subs.values.map((o, k) => visit(o, `SubIFD ${k} of directory ${layout.directories.length - 1}`));
      }
      next = after;
    }
  } catch (e) {
    if (!(e instanceof LayoutProblem)) throw e;
    layout.problem = e.message;
    if (e.directory) layout.directories.push(e.directory);
  }
  return layout;
}

/** The layout of `file`, refused (throwing `fail(problem)`) when it is unsound or not a TIFF. */
export function soundTiffLayout(file: string, fail: (problem: string) => Error): TiffLayout {
  const fd = fs.openSync(file, 'r');
  try {
    const layout = readTiffLayout(fd, fs.fstatSync(fd).size);
    if (!layout) throw fail('is not a TIFF (no II/MM header)');
    if (layout.problem) throw fail(`${layout.problem}: the file is damaged or not a slide; copy it again, or convert it with the scanner's software`);
    return layout;
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether a directory holds a tiled image. */
export function isTiledDirectory(d: TiffDirectory): boolean {
  return d.entries.has(TAG.tileWidth) && d.entries.has(TAG.tileOffsets);
}

/**
 * The directories that make one slide's pyramid: the first tiled image and its tiled SubIFDs
 * when it has any (OME-TIFF), else every tiled image of the main chain (Aperio, libvips).
 */
export function pyramidDirectories(layout: TiffLayout): TiffDirectory[] {
  const first = layout.directories.find(isTiledDirectory);
  const subs = first?.subIfds.filter(isTiledDirectory) ?? [];
  return first && subs.length > 0 ? [first, ...subs] : layout.directories.filter(isTiledDirectory);
}

/** A tag's first value (undefined when absent or not read). */
export function tagValue(d: TiffDirectory, tag: number): number | undefined {
  return d.entries.get(tag)?.values?.[0];
}

/** Largest side of a level: a 75 mm slide at 0.075 um/px, ten times any scanner's slide. */
export const MAX_SIDE = 1_000_000;
/** Largest tile, in pixels (48 MiB decoded). */
export const MAX_TILE_PIXELS = 4096 * 4096;

export interface LevelHeader { width: number; height: number; tileWidth: number; tileHeight: number }

/**
 * A pyramid level's sizes, checked before anything is read or allocated for it: sides within
 * MAX_SIDE, tiles within MAX_TILE_PIXELS, and as many tile offsets and byte counts as its tile
 * grid has tiles. Throws `fail(problem)` naming the level.
 */
export function levelHeader(d: TiffDirectory, k: number, fail: (problem: string) => Error): LevelHeader {
  const [width, height, tileWidth, tileHeight] = [TAG.width, TAG.height, TAG.tileWidth, TAG.tileHeight].map((t) => tagValue(d, t) ?? 0);
  if (!(width >= 1 && height >= 1)) throw fail(`level ${k} states no size (ImageWidth/ImageLength): the file is damaged`);
  if (width > MAX_SIDE || height > MAX_SIDE) {
    throw fail(`level ${k} claims ${width} x ${height} px, more than the ${MAX_SIDE} px a side of any slide (75 mm at 0.075 um/px): the header is damaged or crafted`);
  }
  if (!(tileWidth >= 1 && tileHeight >= 1) || tileWidth * tileHeight > MAX_TILE_PIXELS) {
    throw fail(`level ${k} has tiles of ${tileWidth} x ${tileHeight} px; a tile must be 1 to ${MAX_TILE_PIXELS} px (4096 x 4096): the header is damaged or crafted`);
  }
  const planes = tagValue(d, TAG.planar) === 2 ? tagValue(d, TAG.samples) ?? 1 : 1;
  const tiles = Math.ceil(width / tileWidth) * Math.ceil(height / tileHeight) * planes;
  for (const [tag, name] of [[TAG.tileOffsets, 'tile offsets'], [TAG.tileByteCounts, 'tile byte counts']] as const) {
    const count = d.entries.get(tag)?.count ?? 0;
    if (count !== tiles) {
      throw fail(`level ${k} lists ${count} ${name}, but ${width} x ${height} px in ${tileWidth} x ${tileHeight} px tiles make ${tiles}: the header is damaged or crafted`);
    }
  }
  return { width, height, tileWidth, tileHeight };
}

class LayoutProblem extends Error {
  /** The directory whose values are at fault, its entries read. */
  directory?: TiffDirectory;
}

/** Reads directories and small values with bounds checks against the file's size. */
class Reader {
  /** The next-directory offset of the directory read last. */
  next = 0;

  constructor(private readonly fd: number, private readonly size: number, private readonly le: boolean, private readonly big: boolean) {}

  /** An offset or count: 4 bytes in a TIFF, 8 in a BigTIFF. */
  word(b: Buffer, o: number): number {
    return this.big ? this.u64(b, o) : this.le ? b.readUInt32LE(o) : b.readUInt32BE(o);
  }

  private u64(b: Buffer, o: number): number {
    const v = this.le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);
  }

  directory(offset: number, what: string): TiffDirectory {
    const [countSize, entrySize, wordSize] = this.big ? [8, 20, 8] : [2, 12, 4];
    const head = this.read(offset, countSize, () => `${what} at byte ${offset} lies past the end of the file (${this.size} bytes)`);
    const n = this.big ? this.word(head, 0) : this.u16(head, 0);
    const bytes = n * entrySize + wordSize;
    const body = this.read(offset + countSize, bytes, () => `${what} at byte ${offset} declares ${n} entries, which run past the end of the file (${this.size} bytes)`);
    const entries = new Map<number, TiffEntry>();
    let problem: string | undefined;
    for (let e = 0; e < n; e++) {
      const o = e * entrySize;
      const tag = this.u16(body, o);
      const type = this.u16(body, o + 2);
      const count = this.big ? this.word(body, o + 4) : this.le ? body.readUInt32LE(o + 4) : body.readUInt32BE(o + 4);
      const size = TYPE_SIZE[type];
      if (size === undefined) throw new LayoutProblem(`${what} at byte ${offset}: tag ${tag} has field type ${type}, which TIFF does not define`);
      const inline = count * size <= wordSize;
      const at = inline ? offset + countSize + o + (this.big ? 12 : 8) : this.word(body, o + (this.big ? 12 : 8));
      if (at + count * size > this.size) {
        problem ??= `${what} at byte ${offset}: tag ${tag} declares ${count} values (${count * size} bytes) at byte ${at}, past the end of the file (${this.size} bytes)`;
        entries.set(tag, { type, count, at });
        continue;
      }
      entries.set(tag, { type, count, at, ...(count <= MAX_READ && type !== 2 && type !== 7 ? { values: this.values(at, type, count) } : {}) });
    }
    this.next = this.word(body, n * entrySize);
    const dir = { offset, entries, subIfds: [] };
    if (problem) throw Object.assign(new LayoutProblem(problem), { directory: dir });
    return dir;
  }

  private u16(b: Buffer, o: number): number {
    return this.le ? b.readUInt16LE(o) : b.readUInt16BE(o);
  }

  private read(at: number, length: number, problem: () => string): Buffer {
    if (at + length > this.size) throw new LayoutProblem(problem());
    const b = Buffer.alloc(length);
    if (fs.readSync(this.fd, b, 0, length, at) < length) throw new LayoutProblem(problem());
    return b;
  }

  private values(at: number, type: number, count: number): number[] {
    const size = TYPE_SIZE[type];
    const b = this.read(at, count * size, () => `values at byte ${at} lie past the end of the file`);
    const le = this.le;
    const one = (o: number): number => {
      switch (type) {
        case 1: return b[o];
        case 6: return b.readInt8(o);
        case 3: return le ? b.readUInt16LE(o) : b.readUInt16BE(o);
        case 8: return le ? b.readInt16LE(o) : b.readInt16BE(o);
        case 4: case 13: return le ? b.readUInt32LE(o) : b.readUInt32BE(o);
        case 9: return le ? b.readInt32LE(o) : b.readInt32BE(o);
        case 11: return le ? b.readFloatLE(o) : b.readFloatBE(o);
        case 12: return le ? b.readDoubleLE(o) : b.readDoubleBE(o);
        case 5: case 10: return (le ? b.readUInt32LE(o) : b.readUInt32BE(o)) / ((le ? b.readUInt32LE(o + 4) : b.readUInt32BE(o + 4)) || 1);
        default: return this.u64(b, o); // 16, 17, 18: 8-byte words
      }
    };
    return Array.from({ length: count }, (_, i) => one(i * size));
  }
}
