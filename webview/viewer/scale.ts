// Colour ranges, gene-set scores and the scale bar's length: pure arithmetic on spot values, the
// same in the browser and in unit tests.

/**
 * The q-th percentile (0..100) of sorted values by linear interpolation (numpy's default), the
 * definition of src/runtime/eval/slideComparison.ts's `percentile`, which webview code may not
 * import (lint: webviews import only src/protocol); here on values sorted once for both ends.
 */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (q / 100) * (sorted.length - 1);
  const k = Math.floor(pos);
  return k + 1 < sorted.length ? sorted[k] + (sorted[k + 1] - sorted[k]) * (pos - k) : sorted[k];
}

export type RangeRule = 'percentile' | 'minmax';

/**
 * The colour range of one or more value series pooled: their min and max, or their 1st and 99th
 * percentiles (so that one outlier does not wash the map out). [0, 1] when nothing is finite.
 */
export function valueRange(series: (ArrayLike<number> | undefined)[], rule: RangeRule, clip: [number, number] = [1, 99]): [number, number] {
  let n = 0;
  for (const s of series) if (s) for (let i = 0; i < s.length; i++) if (Number.isFinite(s[i])) n++;
  if (n === 0) return [0, 1];
  const pooled = new Float64Array(n);
  let k = 0;
  for (const s of series) if (s) for (let i = 0; i < s.length; i++) if (Number.isFinite(s[i])) pooled[k++] = s[i];
  if (rule === 'minmax') {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of pooled) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    return [lo, hi];
  }
  pooled.sort();
  return [percentileOfSorted(pooled, clip[0]), percentileOfSorted(pooled, clip[1])];
}

/** An error's range: symmetric around 0, out to the largest |error| (or its percentile). */
export function symmetricRange(errors: ArrayLike<number> | undefined, rule: RangeRule, clip: [number, number] = [1, 99]): [number, number] {
  const [lo, hi] = valueRange([errors], rule, clip);
  const extent = Math.max(Math.abs(lo), Math.abs(hi)) || 1;
  return [-extent, extent];
}

/**
 * A gene-set score per spot: each gene standardised over the section (mean 0, sd 1; a constant
 * gene contributes 0), then the mean over the genes. NaN where a spot has no finite value.
 */
export function geneSetScore(genes: ArrayLike<number>[]): number[] {
  if (genes.length === 0) return [];
  const n = genes[0].length;
  const sum = new Float64Array(n);
  const count = new Float64Array(n);
  for (const g of genes) {
    let m = 0;
    let c = 0;
    for (let i = 0; i < n; i++) if (Number.isFinite(g[i])) { m += g[i]; c++; }
    if (c === 0) continue;
    m /= c;
    let ss = 0;
    for (let i = 0; i < n; i++) if (Number.isFinite(g[i])) ss += (g[i] - m) ** 2;
    const sd = c > 1 ? Math.sqrt(ss / (c - 1)) : 0;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(g[i])) continue;
      sum[i] += sd > 0 ? (g[i] - m) / sd : 0;
      count[i]++;
    }
  }
  return Array.from(sum, (s, i) => (count[i] ? s / count[i] : NaN));
}

/** Genes named in a pasted list (commas, spaces, semicolons or new lines between), each once, in order. */
export function parseGeneList(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).map((g) => g.trim()).filter(Boolean))];
}

const NICE = [1, 2, 5];
/**
 * The scale bar: a round length in microns (1, 2, 5 x 10^k) whose bar is at most `maxPx` screen
 * pixels, at `mpp` microns per image pixel and `scale` screen pixels per image pixel.
 */
export function scaleBar(mpp: number, scale: number, maxPx = 120): { microns: number; px: number } | undefined {
  if (!(mpp > 0) || !(scale > 0)) return undefined;
  const micronsPerPx = mpp / scale;
  const most = maxPx * micronsPerPx;
  let best = 0;
  for (let e = -2; e <= 6; e++) for (const m of NICE) { const v = m * 10 ** e; if (v <= most) best = v; }
  return best > 0 ? { microns: best, px: best / micronsPerPx } : undefined;
}

/** A length for people: µm below a millimetre, mm above. */
export function formatMicrons(um: number): string {
  return um >= 1000 ? `${+(um / 1000).toPrecision(3)} mm` : `${+um.toPrecision(3)} µm`;
}
