import { deflateTile, jpegTile, tileGrid, writeTiledTiff, type TiffLevelSpec } from './tiffWriter';

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
  const jpeg = spec.kind === 'svs';
  const levels: TiffLevelSpec[] = [];
  for (const d of [1, ...(spec.downsamples ?? [4, 16])]) {
    const width = Math.ceil(spec.width / d);
    const height = Math.ceil(spec.height / d);
    const { cols, rows } = tileGrid({ width, height, tileSize: size });
    const tiles: Buffer[] = [];
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const rgb = tilePixels(spec, d, width, height, size, c, r);
        tiles.push(jpeg ? await jpegTile(rgb, size) : deflateTile(rgb));
      }
    }
    levels.push({ width, height, tileSize: size, tile: (c, r) => tiles[r * cols + c], compression: jpeg ? 'jpeg' : 'deflate', ...(jpeg ? { photometric: 6 as const } : {}) });
  }
  levels[0].description = describe(spec);
  if (spec.kind !== 'svs' && spec.kind !== 'ome-tiff' && spec.mpp) levels[0].resolution = { perUnit: 1e4 / spec.mpp, unit: 'cm' };
  writeTiledTiff(file, levels, { bigTiff: spec.kind === 'bigtiff' || spec.kind === 'ome-tiff' });
  return file;
}

function describe(spec: SlideSpec): string | undefined {
  if (spec.kind === 'svs') {
    return `Aperio Image Library v12.0.15 \r\n${spec.width}x${spec.height} [0,0 ${spec.width}x${spec.height}] (256x256) JPEG/RGB Q=90` +
      `|AppMag = 40${spec.mpp ? `|MPP = ${spec.mpp.toFixed(4)}` : ''}|ScanScope ID = SS1234`;
  }
  if (spec.kind === 'ome-tiff') {
    const size = spec.mpp ? ` PhysicalSizeX="${spec.mpp}" PhysicalSizeXUnit="µm" PhysicalSizeY="${spec.mpp}" PhysicalSizeYUnit="µm"` : '';
    return `<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="${spec.width}" SizeY="${spec.height}" SizeC="3" SizeZ="1" SizeT="1"${size}><Channel ID="Channel:0:0" SamplesPerPixel="3"/></Pixels></Image></OME>`;
  }
  return undefined;
}
