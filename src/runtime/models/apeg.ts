import type { Graph, Sym } from '../engine/graph';
import type { ParamTable } from '../engine/nn';

/**
 * APEG, the atypical position encoding generator of TRIPLEX (CVPR version), on the op interface:
 * the slide's spot tokens scattered onto the array grid (empty cells 0), a depthwise k x k
 * convolution with bias (groups = d, padding k/2), zeroed at empty cells, the dense input added
 * back, and the tokens gathered at the spots' cells in their own order. The depthwise convolution
 * is k^2 shifted, weighted copies of the padded grid (pad, slice, mul, add), so it needs no
 * convolution primitive and differentiates through the ops' own rules. Parameters as
 * nn.Conv2d(d, d, k, groups=d): `${name}.proj.weight` [d, 1, k, k] and `${name}.proj.bias` [d].
 */

/** Where each spot sits on its slide's grid (rows and columns shifted to start at 0). */
export interface GridPlacement {
  height: number;
  width: number;
  /** Row-major cell of each spot, row * width + col. */
  cells: number[];
}

/** The placement of spots with integer array coordinates; two spots on one cell are an error. */
export function placeOnGrid(rows: readonly number[], cols: readonly number[]): GridPlacement {
  const r0 = Math.min(...rows);
  const c0 = Math.min(...cols);
  const height = Math.max(...rows) - r0 + 1;
  const width = Math.max(...cols) - c0 + 1;
  const cells = rows.map((r, i) => (r - r0) * width + (cols[i] - c0));
  const seen = new Set<number>();
  cells.forEach((c, i) => {
    if (seen.has(c)) throw new Error(`APEG: spot ${i} shares grid cell (${rows[i]}, ${cols[i]}) with another spot`);
    seen.add(c);
  });
  return { height, width, cells };
}

export class APEG {
  constructor(private readonly t: ParamTable, readonly name: string, readonly dim: number, readonly kernelSize = 3) {
    if (kernelSize % 2 !== 1) throw new Error(`${name}: the kernel size must be odd, got ${kernelSize}`);
    // nn.Conv2d's default, Kaiming-uniform (a = sqrt 5) and the bias alike: bound 1 / sqrt(fan-in), fan-in k * k per group.
    const bound = 1 / kernelSize;
    // Drawn in [k, k, d, 1] order (the replaced TF.js model's), so a seed starts where it always did.
    const k = kernelSize;
    const w = new Float32Array(dim * k * k);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) for (let c = 0; c < dim; c++) w[(c * k + i) * k + j] = (2 * t.random() - 1) * bound;
    t.add(`${name}.proj.weight`, [dim, 1, k, k], w);
    t.uniform(`${name}.proj.bias`, [dim], bound);
  }

  /**
   * tokens [n, d]; cells: int64 [n] of a placement on an h x w grid -> [n, d]. Tokens that must
   * not take part (padding) are zeroed by the caller and may share any cell: they add nothing.
   */
  apply(g: Graph, tokens: Sym, cells: Sym, height: number, width: number): Sym {
    const d = tokens.shape[1];
    const k = this.kernelSize;
    const pad = (k - 1) / 2;
    const dense = g.scatterAdd(g.zeros([height * width, d]), cells, tokens); // [h*w, d]
    const grid = g.reshape(dense, [height, width, d]);
    const padded = g.pad(g.pad(grid, 0, pad, pad), 1, pad, pad); // [h+k-1, w+k-1, d]
    const taps = g.transpose(g.reshape(this.t.sym(g, `${this.name}.proj.weight`), [d, k * k]), [1, 0]); // [k*k, d]
    let conv: Sym = this.t.sym(g, `${this.name}.proj.bias`);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) {
        const shifted = g.slice(g.slice(padded, 0, i, i + height), 1, j, j + width); // [h, w, d]
        conv = g.add(conv, g.mul(shifted, g.slice(taps, 0, i * k + j, i * k + j + 1))); // + [h, w, d] * [1, d]
      }
    }
    // The reference zeroes the convolution at empty cells; those cells are never gathered back,
    // so that product would change nothing and is left out.
    const mixed = g.add(g.reshape(conv, [height * width, d]), dense); // [h*w, d]
    return g.gather(mixed, cells); // [n, d]
  }
}
