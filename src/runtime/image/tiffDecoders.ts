import * as zlib from 'node:zlib';
import { addDecoder, BaseDecoder, getDecoder } from 'geotiff';

/**
 * geotiff.js inflates Deflate tiles (pako) and LZW tiles (JavaScript arrays) to whatever size
 * their streams expand to: a crafted tile of a few kB can ask for gigabytes (a "compression
 * bomb") and take the process down before any check of the result. These decoders stop at the
 * tile's own size: Deflate through Node's zlib with `maxOutputLength`, LZW by counting the
 * stream's output (code lengths only, no bytes) before geotiff.js' decoder runs. The error
 * reaches wsi.ts, which names the file, level and tile.
 */

interface Parameters { tileWidth: number; tileHeight: number; bitsPerSample: number | ArrayLike<number>; planarConfiguration: number }

/** Bytes one decoded tile (or strip) holds: every sample of a pixel when interleaved, one when planar. */
export function tileBytes(p: Parameters): number {
  const bits = typeof p.bitsPerSample === 'number' ? [p.bitsPerSample] : Array.from(p.bitsPerSample);
  const perPixel = p.planarConfiguration === 2 ? bits[0] : bits.reduce((a, b) => a + b, 0);
  return Math.ceil((p.tileWidth * p.tileHeight * perPixel) / 8);
}

const tooLarge = (what: string, limit: number): Error => new Error(`its ${what} stream expands past the ${limit} bytes of one tile (a corrupt or crafted tile)`);

class BoundedDeflateDecoder extends BaseDecoder {
  override decodeBlock(buffer: ArrayBuffer): ArrayBuffer {
    const limit = tileBytes(this.parameters as Parameters);
    let out: Buffer;
    try {
      out = zlib.inflateSync(new Uint8Array(buffer), { maxOutputLength: limit });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw tooLarge('Deflate', limit);
      throw e;
    }
    return out.buffer.slice(out.byteOffset, out.byteOffset + out.length) as ArrayBuffer;
  }
}

const CLEAR = 256;
const EOI = 257;

/**
 * The number of bytes a TIFF LZW stream decodes to (codes MSB first, 9 to 12 bits, early change),
 * stopping as soon as it passes `limit`: each dictionary entry's length is its prefix's plus one.
 */
export function lzwOutputLength(stream: Uint8Array, limit: number): number {
  const lengths = new Uint16Array(4096).fill(1, 0, 256);
  let size = 258;
  let width = 9;
  let position = 0;
  let previous = -1;
  let total = 0;
  const next = (): number => {
    if (position + width > stream.length * 8) return EOI; // as geotiff.js: a stream without its end code ends
    let code = 0;
    for (let i = 0; i < width; i++, position++) code = (code << 1) | ((stream[position >> 3] >> (7 - (position & 7))) & 1);
    return code;
  };
  for (let code = next(); code !== EOI; code = next()) {
    if (code === CLEAR) {
      size = 258;
      width = 9;
      previous = -1;
      continue;
    }
    const length = code < size ? lengths[code] : previous >= 0 ? lengths[previous] + 1 : 0; // the second: a code defined by this very step
    if (length === 0) throw new Error(`its LZW stream holds code ${code} before it is defined (a corrupt tile)`);
    total += length;
    if (total > limit) throw tooLarge('LZW', limit);
    if (previous >= 0 && size < 4096) lengths[size++] = lengths[previous] + 1;
    previous = code;
    if (size + 1 >= 1 << width) {
      if (width === 12) previous = -1;
      else width++;
    }
  }
  return total;
}

class BoundedLzwDecoder extends BaseDecoder {
  override async decodeBlock(buffer: ArrayBuffer): Promise<ArrayBufferLike> {
    lzwOutputLength(new Uint8Array(buffer), tileBytes(this.parameters as Parameters));
    return (await lzw).decodeBlock(buffer);
  }
}

// geotiff.js' own LZW decoder, taken before ours replaces it in the registry.
const lzw = getDecoder(5, { tileWidth: 1, tileHeight: 1, bitsPerSample: 8, planarConfiguration: 1, predictor: 1 } as never);
addDecoder([8, 32946], () => Promise.resolve(BoundedDeflateDecoder as never), undefined, false);
addDecoder(5, () => Promise.resolve(BoundedLzwDecoder as never), undefined, false);
