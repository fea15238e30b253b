import { SPOT_SIZE, toNormalizedFloat } from '../image/crops';
import type { SlideImage } from '../image/slideImage';
import type { ImageEncoder } from '../onnx/engine';
import type { ResNet18Encoder } from './resnet18Encoder';

/**
 * Dense features, the fast path (issue 16 item 4): ResNet18 run fully convolutionally over the
 * image in large overlapping tiles, giving one layer4 map of 512-wide cells, each 32 x 32 px
 * (the trunk's stride). A 224 px crop is then a 7 x 7 window of that map, read instead of
 * encoded: its target tokens are the window, its pooled feature the window's mean (exactly the
 * per-crop path's global average pool). Every crop origin snaps to the 32 px grid (a shift of at
 * most 16 px), and a window's cells see the tissue around the crop instead of the crop's zero
 * padding: the features differ from the per-crop path's; how much it costs is measured (README,
 * "Dense features"). One pass costs about the image's area instead of 26 crops per spot.
 *
 * Tiles: a core of TILE_CELLS x TILE_CELLS cells, computed on an input MARGIN_CELLS cells wider
 * on every side (the receptive field's context), the margin's outputs dropped. Pixels outside the
 * image are black (RGB 0), as the per-crop path pads them.
 */

/** The trunk's stride: one map cell per 32 x 32 px. */
export const CELL = 32;
const WINDOW = SPOT_SIZE / CELL; // 7
const WIDTH = 512;
export const TILE_CELLS = 32;
export const MARGIN_CELLS = 4;

/** What the features' section key records of the dense path. */
export const DENSE_SETTINGS = { cell: CELL, tileCells: TILE_CELLS, marginCells: MARGIN_CELLS, snap: 'round(crop origin / 32)' };

/**
 * The built-in ResNet18 (the engine's graph, resnet18Encoder.ts) run fully convolutionally: an
 * ImageEncoder of 224 px crops (the masked tiles' all-zero input), and the map of a tile. Tiles
 * all have one side, so the engine builds one program for them.
 */
export class DenseTrunk implements ImageEncoder {
  readonly name = 'resnet18-dense';
  readonly embeddingWidth = WIDTH;
  readonly inputSize = SPOT_SIZE;
  readonly providesTokens = true;

  constructor(private readonly trunk: ResNet18Encoder) {}

  /** The layer4 map [side/32, side/32, 512] of one normalised NHWC image [side, side, 3]. */
  map(image: Float32Array, side: number): Promise<Float32Array> {
    return this.trunk.map(image, side);
  }

  /** Crops encoded whole: tokens the crop's 7 x 7 map, pooled its mean (global average pooling). */
  encode(batch: Float32Array, n: number): Promise<{ pooled: Float32Array; tokens: Float32Array }> {
    return this.trunk.encode(batch, n);
  }

  dispose(): Promise<void> {
    return this.trunk.dispose();
  }
}

/** The mean of `cells` 512-wide cells laid one after another. */
function meanOfCells(cells: Float32Array, n: number): Float32Array {
  const acc = new Float64Array(WIDTH);
  for (let k = 0; k < n; k++) for (let j = 0; j < WIDTH; j++) acc[j] += cells[k * WIDTH + j];
  return Float32Array.from(acc, (v) => v / n);
}

/**
 * The dense map of one image, computed tile by tile as crops ask for windows of it; the same
 * interface as the per-crop path's tile cache (extract.ts), so extraction writes either alike.
 */
export class DenseFeatures {
  private readonly tiles = new Map<string, Float32Array>(); // `${row},${col}` of the tile -> [T, T, 512]
  private zero?: Float32Array;
  private input?: Float32Array;

  constructor(private readonly trunk: DenseTrunk) {}

  /** The window of the 224 px crop whose top-left corner is (x, y): its first cell. */
  private static firstCell(x: number, y: number): [number, number] {
    return [Math.round(y / CELL), Math.round(x / CELL)];
  }

  /** Computes the map tiles under every crop at `origins` (top-left corners); returns how many tiles it ran. */
  async ensure(img: SlideImage, origins: (readonly [number, number])[], _withTokens: (readonly [number, number])[], signal?: AbortSignal): Promise<number> {
    const todo = new Map<string, [number, number]>();
    for (const [x, y] of origins) {
      const [r0, c0] = DenseFeatures.firstCell(x, y);
      for (const r of [r0, r0 + WINDOW - 1]) {
        for (const c of [c0, c0 + WINDOW - 1]) {
          const t: [number, number] = [Math.floor(r / TILE_CELLS), Math.floor(c / TILE_CELLS)];
          const k = `${t[0]},${t[1]}`;
          if (!this.tiles.has(k)) todo.set(k, t);
        }
      }
    }
    const side = (TILE_CELLS + 2 * MARGIN_CELLS) * CELL;
    for (const [k, [tr, tc]] of [...todo].sort((a, b) => a[1][0] - b[1][0] || a[1][1] - b[1][1])) {
      if (signal?.aborted) throw new Error('feature extraction was cancelled; run it again to resume');
      const rgb = await img.region((tc * TILE_CELLS - MARGIN_CELLS) * CELL, (tr * TILE_CELLS - MARGIN_CELLS) * CELL, side, side);
      this.input = toNormalizedFloat(rgb, 1, side, undefined, this.input);
      const map = await this.trunk.map(this.input, side); // [T + 2M, T + 2M, 512]
      const full = TILE_CELLS + 2 * MARGIN_CELLS;
      const core = new Float32Array(TILE_CELLS * TILE_CELLS * WIDTH);
      for (let r = 0; r < TILE_CELLS; r++) core.set(map.subarray(((r + MARGIN_CELLS) * full + MARGIN_CELLS) * WIDTH, ((r + MARGIN_CELLS) * full + MARGIN_CELLS + TILE_CELLS) * WIDTH), r * TILE_CELLS * WIDTH);
      this.tiles.set(k, core);
    }
    return todo.size;
  }

  /** The 7 x 7 window [49 * 512] (row-major cells, NHWC like the per-crop tokens) of the crop at (x, y). */
  tokens(x: number, y: number): Float32Array {
    const [r0, c0] = DenseFeatures.firstCell(x, y);
    const out = new Float32Array(WINDOW * WINDOW * WIDTH);
    for (let i = 0; i < WINDOW; i++) {
      for (let j = 0; j < WINDOW; j++) {
        const r = r0 + i;
        const c = c0 + j;
        const tile = this.tiles.get(`${Math.floor(r / TILE_CELLS)},${Math.floor(c / TILE_CELLS)}`);
        if (!tile) throw new Error(`internal: the dense map's tile under cell ${r},${c} was not computed`);
        const at = ((r - Math.floor(r / TILE_CELLS) * TILE_CELLS) * TILE_CELLS + (c - Math.floor(c / TILE_CELLS) * TILE_CELLS)) * WIDTH;
        out.set(tile.subarray(at, at + WIDTH), (i * WINDOW + j) * WIDTH);
      }
    }
    return out;
  }

  /** The pooled feature [512] of the crop at (x, y): its window's mean. */
  pooled(x: number, y: number): Float32Array {
    return meanOfCells(this.tokens(x, y), WINDOW * WINDOW);
  }

  /** The per-crop path's feature of an all-zero normalised input (masked neighbour tiles). */
  async zeroInput(): Promise<Float32Array> {
    this.zero ??= (await this.trunk.encode(new Float32Array(SPOT_SIZE * SPOT_SIZE * 3), 1)).pooled;
    return this.zero;
  }

  /** Windows are read from the map; nothing per spot to forget. */
  forgetTokens(): void {}
}
