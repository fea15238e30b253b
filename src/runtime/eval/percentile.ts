// Percentiles, pure (no Node modules): the slide comparison's shared scale and the slide viewer's
// colour range (bundled into the webview) use the same definition.

/** The q-th percentile (0..100) of already sorted values, by linear interpolation between order statistics (numpy's default); NaN when empty. */
export function percentileOfSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (q / 100) * (sorted.length - 1);
  const k = Math.floor(pos);
  return k + 1 < sorted.length ? sorted[k] + (sorted[k + 1] - sorted[k]) * (pos - k) : sorted[k];
}

/** The q-th percentile (0..100) of the finite values. */
export function percentile(values: ArrayLike<number>, q: number): number {
  return percentileOfSorted(Float64Array.from(values).filter(Number.isFinite).sort(), q);
}
