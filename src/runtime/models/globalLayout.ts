import { MASKED_LOGIT } from '../engine/nn';

/**
 * How the slides of a batch meet the global encoder in one graph of fixed shape (a shape bucket):
 * their spots concatenated into one sequence padded to a bucketed length, attention confined to
 * each slide by a block-diagonal logit bias (exactly the per-slide attention: a masked logit's
 * weight underflows to 0), and the position encoding's grid holding the slides side by side, one
 * empty column apart so that a 3x3 convolution never mixes two slides, padded to bucketed sides.
 * Padding tokens are zeroed before the position encoding and never gathered: the result for every
 * real spot is the per-slide computation's.
 */

export interface LayoutSlide {
  /** Spots of the slide. */
  n: number;
  /** The slide's grid: height, width and each spot's cell (row * width + col), as spotGrid gives. */
  grid: { height: number; width: number; cellOfSpot: ArrayLike<number> };
}

export interface GlobalLayout {
  /** Sequence length with padding. */
  tokens: number;
  /** Grid of the position encoding (both 1 when there is none). */
  height: number;
  width: number;
  /** Where each slide's spots start in the sequence. */
  offsets: number[];
  /** Each token's grid cell (padding: cell 0, with a zero token), int64 [tokens]. */
  cells: BigInt64Array;
  /** 1 for a spot, 0 for padding, [tokens, 1]. */
  valid: Float32Array;
  /** 0 within a slide, MASKED_LOGIT elsewhere, [tokens, tokens]; absent for a single slide (keep masks its padding). */
  bias?: Float32Array;
  /** 1 for a spot's key, 0 for padding, [1, tokens]. */
  keep: Float32Array;
  /** Shape key of the graph this layout needs. */
  key: string;
}

/** The smallest bucket >= n: multiples of 2^(k-2) within [2^k, 2^(k+1)), so padding stays under 25%. */
export function bucket(n: number, min = 16): number {
  if (n <= min) return min;
  const step = 2 ** Math.max(0, Math.floor(Math.log2(n)) - 2);
  return Math.ceil(n / step) * step;
}

/** The side of the square PEG fills n tokens into, row by row. */
export const pegSide = (n: number): number => Math.ceil(Math.sqrt(n) - 1e-9);

/**
 * The layout of `slides` for position encoding `pe` (kernel side `kernel`). `exact` skips the
 * bucketing (tests comparing with per-slide references use it too; results are the same).
 */
export function globalLayout(slides: readonly LayoutSlide[], pe: 'apeg' | 'peg' | 'none', kernel = 3, exact = false): GlobalLayout {
  const total = slides.reduce((n, s) => n + s.n, 0);
  const tokens = exact ? total : bucket(total);
  const gap = (kernel - 1) / 2;
  const cells = new BigInt64Array(tokens);
  const valid = new Float32Array(tokens);
  const offsets: number[] = [];
  // Each slide's own grid, then placed at a column offset on the shared grid.
  const grids = slides.map((s) => {
    if (pe === 'peg') {
      const side = pegSide(s.n);
      return { height: side, width: side, cell: (i: number) => i };
    }
    return { height: s.grid.height, width: s.grid.width, cell: (i: number) => s.grid.cellOfSpot[i] };
  });
  const rawHeight = pe === 'none' ? 1 : Math.max(...grids.map((g) => g.height));
  const rawWidth = pe === 'none' ? 1 : grids.reduce((w, g) => w + g.width, 0) + gap * (grids.length - 1);
  const height = exact || pe === 'none' ? rawHeight : Math.ceil(rawHeight / 8) * 8;
  const width = exact || pe === 'none' ? rawWidth : Math.ceil(rawWidth / 8) * 8;
  let at = 0;
  let column = 0;
  slides.forEach((s, k) => {
    offsets.push(at);
    const g = grids[k];
    for (let i = 0; i < s.n; i++) {
      const cell = g.cell(i);
      const row = Math.floor(cell / g.width);
      cells[at + i] = pe === 'none' ? 0n : BigInt(row * width + column + (cell % g.width));
      valid[at + i] = 1;
    }
    at += s.n;
    column += g.width + gap;
  });
  let bias: Float32Array | undefined;
  if (slides.length > 1) {
    bias = new Float32Array(tokens * tokens).fill(MASKED_LOGIT);
    slides.forEach((s, k) => {
      for (let i = 0; i < s.n; i++) bias!.fill(0, (offsets[k] + i) * tokens + offsets[k], (offsets[k] + i) * tokens + offsets[k] + s.n);
    });
  }
  return { tokens, height, width, offsets, cells, valid, keep: valid, bias, key: `${tokens}x${height}x${width}${bias ? 'b' : ''}` };
}
