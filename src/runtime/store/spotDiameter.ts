/**
 * A section's spot diameter in image pixels, for drawing spots to scale: the platform's diameter
 * (the ST array's 100 um spots 200 um apart; Visium's 55 um spots 100 um apart) over the image's
 * microns per pixel where the store knows them, else the same fraction of the spot spacing
 * measured on the section (the median distance to each spot's nearest neighbour).
 */

interface Platform { name: string; diameterUm: number; spacingUm: number }
const ST: Platform = { name: 'the ST array', diameterUm: 100, spacingUm: 200 };
const VISIUM: Platform = { name: 'Visium', diameterUm: 55, spacingUm: 100 };

/** Median distance from a spot to its nearest neighbour (up to 400 spots sampled evenly); NaN under two spots. */
export function spotSpacing(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  if (n < 2) return NaN;
  const sampled = Math.min(n, 400);
  const nearest: number[] = [];
  for (let k = 0; k < sampled; k++) {
    const i = Math.floor((k * n) / sampled);
    let best = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const d = (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2;
      if (d > 0 && d < best) best = d;
    }
    if (Number.isFinite(best)) nearest.push(Math.sqrt(best));
  }
  if (nearest.length === 0) return NaN;
  nearest.sort((a, b) => a - b);
  return nearest[Math.floor(nearest.length / 2)];
}

/**
 * The platform of a section: by the store's source format where it says (her2st: ST; visium:
 * Visium), else by the spacing in microns when the scale is known (closer to 200 um: ST), else
 * undefined.
 */
function platformOf(format: string, spacingPx: number, mpp: number | undefined): Platform | undefined {
  if (format === 'her2st') return ST;
  if (format === 'visium') return VISIUM;
  if (mpp && Number.isFinite(spacingPx)) return Math.abs(Math.log(spacingPx * mpp / ST.spacingUm)) < Math.abs(Math.log(spacingPx * mpp / VISIUM.spacingUm)) ? ST : VISIUM;
  return undefined;
}

/** The diameter in image pixels and a sentence on how it was found. `fallback` when the section tells nothing (one spot, no scale). */
export function spotDiameterPx(x: ArrayLike<number>, y: ArrayLike<number>, format: string, mpp: number | undefined, fallback: number): { px: number; from: string } {
  const spacing = spotSpacing(x, y);
  const platform = platformOf(format, spacing, mpp);
  if (platform && mpp && mpp > 0) {
    return { px: platform.diameterUm / mpp, from: `${platform.name}'s ${platform.diameterUm} um spots at ${mpp} um per pixel` };
  }
  if (Number.isFinite(spacing) && spacing > 0) {
    const p = platform ?? ST;
    const ratio = p.diameterUm / p.spacingUm;
    return { px: spacing * ratio, from: `${ratio} x the ${spacing.toFixed(1)} px spot spacing (${p.name}${platform ? '' : ', assumed'}: ${p.diameterUm} um spots ${p.spacingUm} um apart)` };
  }
  return { px: fallback, from: `${fallback.toFixed(1)} px: the section has too few spots to measure their spacing` };
}
