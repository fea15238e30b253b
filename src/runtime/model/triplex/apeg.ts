import * as tf from '@tensorflow/tfjs-core';
import type { ParameterSet } from './layers';

/**
 * Position encodings of the global encoder. APEG (TRIPLEX, CVPR version): the spot tokens are
 * scattered onto the ST array grid, convolved depthwise, and gathered back by index. PEG (Chu et
 * al. 2021), for the ablation: the token sequence filled row by row into a square.
 *
 * Scatter and gather are both injective row selections, so each one's gradient is the other with
 * the roles swapped: a gather again (tf.gather's own gradient needs UnsortedSegmentSum, which
 * wasm lacks; tf.scatterND and tf.gatherND have no gradient at all).
 */

/** Grids larger than this are refused: at d = 512 one would take 512 MiB. */
const MAX_GRID_CELLS = 1 << 18;

/** Where each spot lies on its section's array grid. */
export interface SpotGrid {
  /** Rows and columns of the grid, after shifting the coordinates so that their minimum is 0. */
  readonly height: number;
  readonly width: number;
  /** The cell (row * width + col) of each spot, in the spots' order. */
  readonly cellOfSpot: Int32Array;
  /** The spot on each cell, -1 where there is none. */
  readonly spotOfCell: Int32Array;
}

/**
 * The grid of one section from its spots' integer array coordinates (HER2+: round(y), round(x)
 * of the spot file; Visium: array_row, array_col). Two spots on one cell are an input error;
 * `spotIds` names them in the message.
 */
export function spotGrid(rows: ArrayLike<number>, cols: ArrayLike<number>, spotIds?: readonly string[]): SpotGrid {
  const n = rows.length;
  if (cols.length !== n) throw new Error(`spot grid: ${n} array rows but ${cols.length} array columns`);
  if (n === 0) throw new Error('spot grid: a section without spots');
  const name = (i: number) => (spotIds?.[i] !== undefined ? `spot ${i} (${spotIds[i]})` : `spot ${i}`);
  let [minRow, minCol, maxRow, maxCol] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; i++) {
    if (!Number.isInteger(rows[i]) || !Number.isInteger(cols[i])) {
      throw new Error(`spot grid: ${name(i)} has array position (${rows[i]}, ${cols[i]}); APEG needs integer array coordinates, not pixel positions`);
    }
    minRow = Math.min(minRow, rows[i]);
    maxRow = Math.max(maxRow, rows[i]);
    minCol = Math.min(minCol, cols[i]);
    maxCol = Math.max(maxCol, cols[i]);
  }
  const height = maxRow - minRow + 1;
  const width = maxCol - minCol + 1;
  if (height * width > MAX_GRID_CELLS) {
    throw new Error(`spot grid: the array coordinates span ${height} x ${width} cells (more than ${MAX_GRID_CELLS}); are they pixel positions rather than array rows and columns?`);
  }
  const cellOfSpot = new Int32Array(n);
  const spotOfCell = new Int32Array(height * width).fill(-1);
  for (let i = 0; i < n; i++) {
    const cell = (rows[i] - minRow) * width + (cols[i] - minCol);
    const other = spotOfCell[cell];
    if (other >= 0) {
      throw new Error(`spot grid: ${name(other)} and ${name(i)} both lie on array cell (row ${rows[i]}, col ${cols[i]}); each cell holds at most one spot`);
    }
    spotOfCell[cell] = i;
    cellOfSpot[i] = cell;
  }
  return { height, width, cellOfSpot, spotOfCell };
}

/**
 * Rows of x [n, d] picked by `take` (length m, -1 for a zero row) -> [m, d]. `take` must be
 * injective and `inverse` its inverse (length n, -1 for rows never taken): the gradient is then
 * the same selection with the two swapped.
 */
function takeRows(x: tf.Tensor2D, take: Int32Array, inverse: Int32Array): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor2D;
    const [n, d] = input.shape;
    // -1 points at an appended zero row.
    // gatherND rather than gather: wasm's GatherV2 took 210 ms for 10k rows of 512, GatherNd 12 ms.
    const index = tf.tensor2d(take.map((t) => (t < 0 ? n : t)), [take.length, 1], 'int32'); // [m, 1]
    const value = tf.gatherND(tf.concat([input, tf.zeros([1, d])]), index) as tf.Tensor2D; // [m, d]
    return { value, gradFunc: (dy: tf.Tensor | tf.Tensor[]) => [takeRows(dy as tf.Tensor2D, inverse, take)] }; // [n, d]
  });
  return op(x) as tf.Tensor2D;
}

/**
 * Rows `rows` (distinct, each in [0, n)) of x [n, d] -> [rows.length, d], with a gradient that
 * works on wasm (the global tokens of a batch's spots picked from their slides' encodings).
 */
export function selectRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const n = x.shape[0];
  const inverse = new Int32Array(n).fill(-1);
  rows.forEach((r, i) => {
    if (!(r >= 0 && r < n)) throw new Error(`selectRows: row ${r} is outside [0, ${n})`);
    if (inverse[r] >= 0) throw new Error(`selectRows: row ${r} is selected twice`);
    inverse[r] = i;
  });
  return takeRows(x, rows, inverse);
}

/** A depthwise k x k convolution (groups = channels) with bias, padding k // 2, as nn.Conv2d. */
class DepthwiseConv {
  readonly weight: tf.Variable; // [k, k, d, 1]
  readonly bias: tf.Variable; // [d]

  constructor(params: ParameterSet, readonly name: string, readonly channels: number, readonly kernelSize: number) {
    if (!Number.isInteger(kernelSize) || kernelSize < 1 || kernelSize % 2 === 0) throw new Error(`${name}: the kernel size must be odd, got ${kernelSize}`);
    // PyTorch's default: Kaiming-uniform (a = sqrt 5) and bias alike, fan-in = k * k per group.
    const bound = 1 / kernelSize;
    this.weight = params.addUniform(`${name}.weight`, [kernelSize, kernelSize, channels, 1], bound, 'depthwise');
    this.bias = params.addUniform(`${name}.bias`, [channels], bound);
  }

  /** [1, H, W, d] -> [1, H, W, d]. */
  apply(x: tf.Tensor4D): tf.Tensor4D {
    const p = (this.kernelSize - 1) / 2;
    return tf.tidy(() => tf.add(tf.depthwiseConv2d(x, this.weight as tf.Tensor4D, 1, [[0, 0], [p, p], [p, p], [0, 0]]), this.bias)); // [1, H, W, d]
  }
}

function checkTokens(name: string, tokens: tf.Tensor2D, channels: number, n?: number): void {
  if (tokens.rank !== 2 || tokens.shape[1] !== channels || (n !== undefined && tokens.shape[0] !== n)) {
    throw new Error(`${name}: tokens have shape [${tokens.shape.join(', ')}], expected [${n ?? 'n'}, ${channels}]`);
  }
}

/**
 * APEG: scatter the n spot tokens onto the dense grid (empty cells 0), depthwise k x k
 * convolution with bias, add the dense input back, gather the tokens at their cells in the spots'
 * own order. Parameters `${name}.proj.weight` [d, 1, k, k] and `${name}.proj.bias` [d].
 */
export class APEG {
  readonly proj: DepthwiseConv;

  constructor(params: ParameterSet, readonly name: string, readonly dim: number, kernelSize = 3) {
    this.proj = new DepthwiseConv(params, `${name}.proj`, dim, kernelSize);
  }

  /** Tokens [n, d] of one section's spots, in `grid`'s spot order -> [n, d]. */
  apply(tokens: tf.Tensor2D, grid: SpotGrid): tf.Tensor2D {
    checkTokens(this.name, tokens, this.dim, grid.cellOfSpot.length);
    return tf.tidy(() => {
      const dense = tf.reshape<tf.Rank.R4>(takeRows(tokens, grid.spotOfCell, grid.cellOfSpot), [1, grid.height, grid.width, this.dim]); // [1, h, w, d]
      // The reference then zeroes the convolution at empty cells; those cells are never gathered
      // back, so that pass over the grid would change nothing and is skipped.
      const mixed = tf.add(this.proj.apply(dense), dense); // [1, h, w, d]
      return takeRows(tf.reshape(mixed, [grid.height * grid.width, this.dim]), grid.cellOfSpot, grid.spotOfCell); // [n, d]
    });
  }
}

/**
 * PEG for the ablation: the token sequence padded with zero tokens to the next perfect square,
 * filled row by row into a side x side grid, depthwise convolution with bias plus the input,
 * then the padding dropped. Parameters named as APEG's.
 */
export class PEG {
  readonly proj: DepthwiseConv;

  constructor(params: ParameterSet, readonly name: string, readonly dim: number, kernelSize = 3) {
    this.proj = new DepthwiseConv(params, `${name}.proj`, dim, kernelSize);
  }

  /** The side of the square grid that holds n tokens. */
  static side(n: number): number {
    const root = Math.floor(Math.sqrt(n));
    return root * root < n ? root + 1 : root;
  }

  /** Tokens [n, d] in their stored order -> [n, d]. */
  apply(tokens: tf.Tensor2D): tf.Tensor2D {
    checkTokens(this.name, tokens, this.dim);
    const n = tokens.shape[0];
    const side = PEG.side(n);
    return tf.tidy(() => {
      const square = tf.reshape<tf.Rank.R4>(tf.pad(tokens, [[0, side * side - n], [0, 0]]), [1, side, side, this.dim]); // [1, side, side, d]
      const mixed = tf.add(this.proj.apply(square), square); // [1, side, side, d]
      return tf.slice(tf.reshape<tf.Rank.R2>(mixed, [side * side, this.dim]), [0, 0], [n, this.dim]); // [n, d]
    });
  }
}
