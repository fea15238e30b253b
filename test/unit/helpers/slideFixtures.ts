import { deflateTile, jpeg2000Tile, jpegTile, tileGrid, writeTiledTiff, type TiffLevelSpec } from './tiffWriter';

/**
 * Whole-slide files made by the tests, in the formats scanners write: a pyramidal (Big)TIFF, an
 * OME-TIFF and an Aperio SVS with JPEG tiles. Level k of a slide has pixel (x, y) =
 * pixel(x * d, y * d) for its downsample d (nearest sampling), so a test knows every pixel.
 */

export type Pixel = (x: number, y: number) => readonly [number, number, number];

export interface SlideSpec {
  width: number;
  height: number;
  pixel: Pixel;
  /** Downsample of each level after the first (default [4, 16]). */
  downsamples?: readonly number[];
  tileSize?: number;
  kind: 'tiff' | 'bigtiff' | 'ome-tiff' | 'svs';
  /** Microns per pixel stated in the file (Aperio MPP, OME PhysicalSizeX, or resolution tags). */
  mpp?: number;
  /** PhysicalSizeY (OME-TIFF) or YResolution (TIFF) when it is not `mpp` (non-square pixels). */
  mppY?: number;
  /** OME-TIFF: reduced levels as SubIFDs of the full-resolution image (OME's layout since 2020). */
  subIfds?: boolean;
  /** BigTIFF or classic TIFF (default: BigTIFF for 'bigtiff' and 'ome-tiff'). */
  bigTiff?: boolean;
  /**
   * SVS: JPEG 2000 tiles (lossless; needs opj_compress) instead of JPEG: RGB (Aperio's compression
   * 33005) for `true`, YCbCr (33003, what Aperio's scanners write) for 'ycbcr'.
   */
  jpeg2000?: boolean | 'ycbcr';
}

/** Pixels [size, size, 3] of tile (col, row) of a level with downsample d; outside is white. */
function tilePixels(spec: SlideSpec, d: number, width: number, height: number, size: number, col: number, row: number): Uint8Array {
  const out = new Uint8Array(size * size * 3).fill(255);
  for (let y = 0; y < size; y++) {
    const ly = row * size + y;
    if (ly >= height) break;
    for (let x = 0; x < size; x++) {
      const lx = col * size + x;
      if (lx >= width) break;
      out.set(spec.pixel(lx * d, ly * d), (y * size + x) * 3);
    }
  }
  return out;
}

/** Writes the slide; returns its file. */
export async function writeSlide(file: string, spec: SlideSpec): Promise<string> {
  const size = spec.tileSize ?? 256;
  const jpeg = spec.kind === 'svs' && !spec.jpeg2000;
  const j2k = spec.kind === 'svs' && spec.jpeg2000 !== undefined && spec.jpeg2000 !== false;
  const ycbcr = spec.jpeg2000 === 'ycbcr';
  const levels: TiffLevelSpec[] = [];
  for (const d of [1, ...(spec.downsamples ?? [4, 16])]) {
    const width = Math.ceil(spec.width / d);
    const height = Math.ceil(spec.height / d);
    const { cols, rows } = tileGrid({ width, height, tileSize: size });
    const tiles: Buffer[] = [];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const rgb = tilePixels(spec, d, width, height, size, c, r);
        tiles.push(jpeg ? await jpegTile(rgb, size) : j2k ? jpeg2000Tile(rgb, size, { ycbcr }) : deflateTile(rgb));
      }
    }
    levels.push({ width, height, tileSize: size, tile: (c, r) => tiles[r * cols + c], compression: jpeg ? 'jpeg' : ycbcr ? 'jpeg2000-ycbcr' : j2k ? 'jpeg2000' : 'deflate', ...(jpeg ? { photometric: 6 as const } : {}) });
  }
  levels[0].description = describe(spec);
  if (spec.kind !== 'svs' && spec.kind !== 'ome-tiff' && spec.mpp) levels[0].resolution = { perUnit: 1e4 / spec.mpp, perUnitY: 1e4 / (spec.mppY ?? spec.mpp), unit: 'cm' };
  writeTiledTiff(file, levels, { bigTiff: spec.bigTiff ?? (spec.kind === 'bigtiff' || spec.kind === 'ome-tiff'), subIfds: spec.subIfds ?? false });
  return file;
}

function describe(spec: SlideSpec): string | undefined {
  if (spec.kind === 'svs') {
    return `Aperio Image Library v12.0.15 \r\n${spec.width}x${spec.height} [0,0 ${spec.width}x${spec.height}] (256x256) ${spec.jpeg2000 ? 'J2K/KDU Q=70' : 'JPEG/RGB Q=90'}` +
      `|AppMag = 40${spec.mpp ? `|MPP = ${spec.mpp.toFixed(4)}` : ''}|ScanScope ID = SS1234`;
  }
  if (spec.kind === 'ome-tiff') {
    const size = spec.mpp ? ` PhysicalSizeX="${spec.mpp}" PhysicalSizeXUnit="µm" PhysicalSizeY="${spec.mppY ?? spec.mpp}" PhysicalSizeYUnit="µm"` : '';
    return `<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="${spec.width}" SizeY="${spec.height}" SizeC="3" SizeZ="1" SizeT="1"${size}><Channel ID="Channel:0:0" SamplesPerPixel="3"/></Pixels></Image></OME>`;
  }
  return undefined;
}

/** A pattern that tells apart every shift a region read could get wrong (1 px, a tile, axes). */
export const pattern: Pixel = (x, y) => [(x * 7 + y * 3) & 255, (x + y * 11 + 1) & 255, ((x >> 4) * 13 + (y >> 4) * 17 + 5) & 255];

/** The pixels a region [x0, x0+w) x [y0, y0+h) of a level (downsample d, lw x lh px) of a `writeSlide` slide must hold; zero outside. */
export function expected(f: Pixel, d: number, lw: number, lh: number, x0: number, y0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [lx, ly] = [x0 + x, y0 + y];
      if (lx >= 0 && ly >= 0 && lx < lw && ly < lh) out.set(f(lx * d, ly * d), (y * w + x) * 3);
    }
  }
  return out;
}

/** Largest absolute difference of two equally long byte arrays (throws if their lengths differ). */
export function maxDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} and ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
