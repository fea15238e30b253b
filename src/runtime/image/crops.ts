import type { SlideImage } from './slideImage';

/**
 * The image views of a spot (spec: "Three views", "Precise details", "Data preprocessing" ->
 * Crops). All crops are centred on floor(pixel centre) and zero-padded outside the image.
 */

/** Side of the target crop and of each neighbour tile, in pixels. */
export const SPOT_SIZE = 224;
/** The neighbour view is a NEIGHBOR_GRID x NEIGHBOR_GRID grid of SPOT_SIZE tiles. */
export const NEIGHBOR_GRID = 5;
export const NEIGHBOR_TILES = NEIGHBOR_GRID * NEIGHBOR_GRID;
/** Index of the spot's own tile in the row-major grid. */
export const CENTER_TILE = (NEIGHBOR_TILES - 1) / 2;
const NEIGHBOR_SIZE = NEIGHBOR_GRID * SPOT_SIZE; // 1120
const TILE_BYTES = SPOT_SIZE * SPOT_SIZE * 3;

const IMAGENET_MEAN = [0.485, 0.456, 0.406];
const IMAGENET_STD = [0.229, 0.224, 0.225];

export interface NeighborView {
  /** [25, 224, 224, 3] uint8 RGB, row-major tiles: tile (r, c) covers rows y0 + 224r .. y0 + 224(r + 1). */
  tiles: Uint8Array;
  /** [25]: 1 = tile lies fully inside the image, 0 = masked; the centre tile is always 1. */
  mask: Uint8Array;
}

/** A spot centre in full-resolution pixels; `id` names it in errors. */
export interface SpotCentre { x: number; y: number; id?: string }

/** The 224 x 224 target crop [y-112, y+112) x [x-112, x+112) around floor(x, y): [size, size, 3]. */
export async function spotCrop(img: SlideImage, x: number, y: number, size = SPOT_SIZE): Promise<Uint8Array> {
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`crop size must be a positive integer, got ${size}`);
  const [cx, cy] = centreOf(img, { x, y });
  const half = Math.floor(size / 2);
  return img.region(cx - half, cy - half, size, size);
}

/** The 1120 x 1120 neighbourhood of the spot cut into 25 tiles of 224, with the validity mask. */
export async function neighborView(img: SlideImage, x: number, y: number): Promise<NeighborView> {
  const [cx, cy] = centreOf(img, { x, y });
  const x0 = cx - NEIGHBOR_SIZE / 2;
  const y0 = cy - NEIGHBOR_SIZE / 2;
  const view = await img.region(x0, y0, NEIGHBOR_SIZE, NEIGHBOR_SIZE); // [1120, 1120, 3]
  const tiles = new Uint8Array(NEIGHBOR_TILES * TILE_BYTES); // [25, 224, 224, 3]
  cutTiles(view, tiles, 0);
  const mask = new Uint8Array(NEIGHBOR_TILES);
  neighborMaskInto(img.width, img.height, x0, y0, mask, 0);
  return { tiles, mask };
}

/**
 * The neighbour-tile mask for a spot at floor centre (cx, cy) in a width x height image: 1 where
 * the tile lies fully inside, 0 elsewhere, the centre tile always 1 (spec). The reference's
 * make_masking_table tests each ring's outer edge and so never masks the centre row or column;
 * the two agree whenever the centre is at least 112 px from every edge. Nearer an edge, the
 * centre-row/column tiles that cross it are masked here and kept (zero-padded) there.
 */
export function neighborMask(width: number, height: number, cx: number, cy: number): Uint8Array {
  const mask = new Uint8Array(NEIGHBOR_TILES);
  neighborMaskInto(width, height, cx - NEIGHBOR_SIZE / 2, cy - NEIGHBOR_SIZE / 2, mask, 0);
  return mask;
}

function neighborMaskInto(width: number, height: number, x0: number, y0: number, mask: Uint8Array, at: number): void {
  for (let r = 0; r < NEIGHBOR_GRID; r++) {
    for (let c = 0; c < NEIGHBOR_GRID; c++) {
      const left = x0 + c * SPOT_SIZE;
      const top = y0 + r * SPOT_SIZE;
      const inside = left >= 0 && top >= 0 && left + SPOT_SIZE <= width && top + SPOT_SIZE <= height;
      mask[at + r * NEIGHBOR_GRID + c] = inside || r * NEIGHBOR_GRID + c === CENTER_TILE ? 1 : 0;
    }
  }
}

/** Rearranges a [1120, 1120, 3] view into [25, 224, 224, 3] tiles at tile offset `at` of `tiles`. */
function cutTiles(view: Uint8Array, tiles: Uint8Array, at: number): void {
  const viewRow = NEIGHBOR_SIZE * 3;
  const tileRow = SPOT_SIZE * 3;
  for (let r = 0; r < NEIGHBOR_GRID; r++) {
    for (let c = 0; c < NEIGHBOR_GRID; c++) {
      const dst = (at + r * NEIGHBOR_GRID + c) * TILE_BYTES;
      for (let y = 0; y < SPOT_SIZE; y++) {
        const src = (r * SPOT_SIZE + y) * viewRow + c * tileRow;
        tiles.set(view.subarray(src, src + tileRow), dst + y * tileRow);
      }
    }
  }
}

/**
 * ImageNet normalisation of n RGB images [n, size, size, 3] uint8 into NHWC float32, the layout
 * the encoders take: (v / 255 - mean) / std per channel. With `valid` (one entry per image, e.g.
 * a neighbour mask), images marked 0 become all zeros instead: the reference feeds masked
 * neighbour tiles to the frozen encoder as zero tensors, which matters because the NEM mean
 * includes their features.
 */
export function toNormalizedFloat(rgb: Uint8Array, n: number, size: number, valid?: Uint8Array, into?: Float32Array): Float32Array {
  const perImage = size * size * 3;
  if (rgb.length !== n * perImage) {
    throw new RangeError(`toNormalizedFloat: ${rgb.length} bytes is not ${n} images of ${size} x ${size} x 3`);
  }
  if (valid && valid.length !== n) {
    throw new RangeError(`toNormalizedFloat: the mask has ${valid.length} entries for ${n} images`);
  }
  if (into && into.length !== n * perImage) throw new RangeError(`toNormalizedFloat: the output holds ${into.length} values, not ${n * perImage}`);
  const out = into ?? new Float32Array(n * perImage); // [n, size, size, 3]
  for (let i = 0; i < n; i++) {
    if (valid && valid[i] === 0) {
      out.fill(0, i * perImage, (i + 1) * perImage);
      continue;
    }
    for (let p = i * perImage, end = p + perImage; p < end; p += 3) {
      out[p] = NORMALIZED[rgb[p]];
      out[p + 1] = NORMALIZED[256 + rgb[p + 1]];
      out[p + 2] = NORMALIZED[512 + rgb[p + 2]];
    }
  }
  return out;
}

/** Channel c, value v -> NORMALIZED[256c + v]; computed in double, rounded once to float32. */
const NORMALIZED = Float32Array.from({ length: 768 }, (_, i) => {
  const c = Math.floor(i / 256);
  return (i % 256 / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
});

export interface CropSpotsOptions {
  /** Cut the target crop of each spot. */
  target: boolean;
  /** Cut the 25-tile neighbour view of each spot. */
  neighbor: boolean;
  /** Side of the target crop (default 224). */
  targetSize?: number;
}

/** Crops of n spots, in the order the spots were given. */
export interface SpotCrops {
  n: number;
  /** [n, size, size, 3] uint8, when asked for. */
  target?: Uint8Array;
  /** tiles [n, 25, 224, 224, 3] uint8 and mask [n, 25], when asked for. */
  neighbor?: NeighborView;
}

/**
 * Crops a batch of spots, visiting them sorted by y so that a band-decoded image decodes each band
 * once; results come back in input order. A neighbour view holds 3.8 MB, so batch a slide (in y
 * order) rather than cropping all its spots at once. Throws, naming the image and the spot, when a
 * centre lies outside the image (a spot file for another image or another scale).
 */
export async function cropSpots(img: SlideImage, spots: readonly SpotCentre[], opts: CropSpotsOptions): Promise<SpotCrops> {
  const n = spots.length;
  const size = opts.targetSize ?? SPOT_SIZE;
  if (!Number.isSafeInteger(size) || size <= 0) throw new RangeError(`targetSize must be a positive integer, got ${size}`);
  const centres = spots.map((s, i) => centreOf(img, s, i));
  const order = centres.map((_, i) => i).sort((a, b) => centres[a][1] - centres[b][1] || centres[a][0] - centres[b][0]);

  const result: SpotCrops = { n };
  const target = opts.target ? new Uint8Array(n * size * size * 3) : undefined; // [n, size, size, 3]
  const tiles = opts.neighbor ? new Uint8Array(n * NEIGHBOR_TILES * TILE_BYTES) : undefined; // [n, 25, 224, 224, 3]
  const mask = opts.neighbor ? new Uint8Array(n * NEIGHBOR_TILES) : undefined; // [n, 25]
  for (const i of order) {
    const [cx, cy] = centres[i];
    if (tiles && mask) {
      const x0 = cx - NEIGHBOR_SIZE / 2;
      const y0 = cy - NEIGHBOR_SIZE / 2;
      cutTiles(await img.region(x0, y0, NEIGHBOR_SIZE, NEIGHBOR_SIZE), tiles, i * NEIGHBOR_TILES);
      neighborMaskInto(img.width, img.height, x0, y0, mask, i * NEIGHBOR_TILES);
    }
    if (!target) continue;
    if (tiles && size === SPOT_SIZE) { // the target crop is the centre tile: no second read
      const centre = (i * NEIGHBOR_TILES + CENTER_TILE) * TILE_BYTES;
      target.set(tiles.subarray(centre, centre + TILE_BYTES), i * TILE_BYTES);
    } else {
      const half = Math.floor(size / 2);
      target.set(await img.region(cx - half, cy - half, size, size), i * size * size * 3);
    }
  }
  if (target) result.target = target;
  if (tiles && mask) result.neighbor = { tiles, mask };
  return result;
}

/** floor(x), floor(y), checked to lie inside the image. */
function centreOf(img: SlideImage, spot: SpotCentre, index?: number): [number, number] {
  const cx = Math.floor(spot.x);
  const cy = Math.floor(spot.y);
  if (!(cx >= 0 && cx < img.width && cy >= 0 && cy < img.height)) {
    const name = spot.id ?? (index === undefined ? '' : `#${index}`);
    throw new RangeError(`${img.path} is ${img.width} x ${img.height} px but spot ${name ? `${name} ` : ''}is at ` +
      `(${spot.x}, ${spot.y}); are the spot coordinates for this image, at full resolution?`);
  }
  return [cx, cy];
}
