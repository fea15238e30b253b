import type { CountMatrix } from './types';

/**
 * Numbers as the readers accept them. JavaScript's Number() also reads '0x10', 'Infinity' and
 * ' 1e308 ', and counts are stored as float32, where 1e308 becomes Infinity: both once entered
 * the store and spread through smoothing.
 */

/** The largest finite float32. */
export const FLOAT32_MAX = 3.4028234663852886e38;

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

/** A decimal number (optional sign, digits, point, exponent) within float32 range, or undefined. */
export function parseDecimal(text: string | undefined): number | undefined {
  const t = text?.trim();
  if (!t || !DECIMAL.test(t)) return undefined;
  const v = Number(t);
  return Math.abs(v) <= FLOAT32_MAX ? v : undefined;
}

/** A count as text: a non-negative decimal within float32 range, or undefined. */
export function parseCount(text: string | undefined): number | undefined {
  const v = parseDecimal(text);
  return v === undefined || v < 0 || Object.is(v, -0) ? undefined : v;
}

/** The first stored value of a count matrix that is not a count (NaN, infinite, negative), with its row and column. */
export function firstBadCount(m: CountMatrix): { row: number; column: number; value: number } | undefined {
  for (let r = 0; r < m.nSpots; r++) {
    for (let k = m.indptr[r]; k < m.indptr[r + 1]; k++) {
      const v = m.data[k];
      if (!(v >= 0 && v <= FLOAT32_MAX)) return { row: r, column: m.indices[k], value: v };
    }
  }
  return undefined;
}
