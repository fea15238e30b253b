/**
 * Image headers: the size of a JPEG (SOF marker), PNG (IHDR) or TIFF (first IFD), never
 * decoded; and the spots that fall outside an image of that size. Every reader uses them.
 */
import * as fs from 'node:fs';
import { checkRegularFile } from './files';
import { DataFileError, type ImageRef, type Spot } from './types';


/** Width and height of a JPEG, PNG or TIFF/BigTIFF image, read from its header bytes only. */
export async function readImageSize(file: string): Promise<{ width: number; height: number }> {
  let fh: fs.promises.FileHandle;
  checkRegularFile(file);
  try {
    fh = await fs.promises.open(file, 'r');
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT';
    throw new DataFileError(file, undefined, missing ? 'image not found; check the path' : `image cannot be read: ${(e as Error).message}`, { cause: e });
  }
  try {
    const reader = new HeaderReader(fh, file);
    const head = await reader.bytes(0, 8);
    if (head[0] === 0xff && head[1] === 0xd8) return await jpegSize(reader);
    if (head.readUInt32BE(0) === 0x89504e47) {
      const ihdr = await reader.bytes(16, 8);
      return { width: ihdr.readUInt32BE(0), height: ihdr.readUInt32BE(4) };
    }
    const order = head.toString('latin1', 0, 2);
    if (order === 'II' || order === 'MM') return await tiffSize(reader, order === 'II');
    throw new DataFileError(file, 'byte 0', 'not a JPEG, PNG or TIFF image; give the full-resolution H&E image');
  } finally {
    await fh.close();
  }
}

class HeaderReader {
  constructor(private readonly fh: fs.promises.FileHandle, readonly file: string) {}

  async bytes(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.alloc(length);
    const { bytesRead } = await this.fh.read(buf, 0, length, position);
    if (bytesRead < length) throw new DataFileError(this.file, `byte ${position}`, 'the image header ends early: the file is truncated or not an image');
    return buf;
  }
}

async function jpegSize(r: HeaderReader): Promise<{ width: number; height: number }> {
  let pos = 2;
  for (;;) {
    const m = await r.bytes(pos, 2);
    if (m[0] !== 0xff) throw new DataFileError(r.file, `byte ${pos}`, 'JPEG marker expected; the file is damaged');
    const marker = m[1];
    if (marker === 0xff) { pos++; continue; } // fill byte
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) { pos += 2; continue; }
    if (marker === 0xd9 || marker === 0xda) throw new DataFileError(r.file, `byte ${pos}`, 'JPEG without a frame header (SOF) before its data');
    const len = (await r.bytes(pos + 2, 2)).readUInt16BE(0);
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) {
      const sof = await r.bytes(pos + 4, 5); // precision, height, width
      const size = { width: sof.readUInt16BE(3), height: sof.readUInt16BE(1) };
      if (size.width === 0 || size.height === 0) throw new DataFileError(r.file, `byte ${pos}`, 'JPEG frame header gives a zero size');
      return size;
    }
    pos += 2 + len;
  }
}

async function tiffSize(r: HeaderReader, little: boolean): Promise<{ width: number; height: number }> {
  const u16 = (b: Buffer, o: number) => (little ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (little ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const u64 = (b: Buffer, o: number) => Number(little ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o));
  const head = await r.bytes(0, 16);
  const version = u16(head, 2);
  if (version !== 42 && version !== 43) throw new DataFileError(r.file, 'byte 2', 'not a TIFF file (bad version number)');
  const big = version === 43;
  const ifd = big ? u64(head, 8) : u32(head, 4);
  const count = big ? u64(await r.bytes(ifd, 8), 0) : u16(await r.bytes(ifd, 2), 0);
  const entrySize = big ? 20 : 12;
  const entries = await r.bytes(ifd + (big ? 8 : 2), count * entrySize);
  let width = 0;
  let height = 0;
  for (let i = 0; i < count; i++) {
    const o = i * entrySize;
    const tag = u16(entries, o);
    if (tag !== 256 && tag !== 257) continue;
    const type = u16(entries, o + 2);
    const valueAt = o + (big ? 12 : 8);
    const value = type === 3 ? u16(entries, valueAt) : type === 16 ? u64(entries, valueAt) : u32(entries, valueAt);
    if (tag === 256) width = value;
    else height = value;
  }
  if (!width || !height) throw new DataFileError(r.file, `byte ${ifd}`, 'TIFF without ImageWidth/ImageLength in its first directory');
  return { width, height };
}

/** Spots whose pixel centre is not inside [0, width) x [0, height); none when the size is unknown. */
export function spotsOutsideImage(spots: readonly Spot[], image: ImageRef | undefined): Spot[] {
  if (!image?.width || !image.height) return [];
  const { width, height } = image;
  return spots.filter((s) => !(s.x >= 0 && s.y >= 0 && s.x < width && s.y < height));
}
