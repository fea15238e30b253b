import { mulberry32 } from '../util/random';

/**
 * Seeded H&E-like image patches: pink eosin stroma with purple haematoxylin nuclei, at a chosen
 * nuclear density. Used by the foundation demo to exercise the trunk on images that look like
 * tissue; the full synthetic dataset (slides, spots, counts) builds on the same idea.
 */
export interface Patch {
  /** RGB, row-major, [size, size, 3], values 0..255. */
  rgb: Uint8Array;
  size: number;
  /** Fraction of the area covered by nuclei (what a model can learn to read off the image). */
  nuclearFraction: number;
}

const STROMA: [number, number, number] = [232, 165, 196];
const NUCLEUS: [number, number, number] = [92, 52, 140];

/** One patch whose nuclei are placed at `density` (0..1) of the maximum packing. */
export function hePatch(seed: number, density: number, size = 224): Patch {
  const rand = mulberry32(seed);
  const rgb = new Uint8Array(size * size * 3);
  const inNucleus = new Uint8Array(size * size);
  const count = Math.round(density * (size * size) / 180);
  for (let n = 0; n < count; n++) {
    const cy = rand() * size;
    const cx = rand() * size;
    const ry = 3 + rand() * 4;
    const rx = 3 + rand() * 4;
    for (let y = Math.max(0, Math.floor(cy - ry)); y < Math.min(size, Math.ceil(cy + ry)); y++) {
      for (let x = Math.max(0, Math.floor(cx - rx)); x < Math.min(size, Math.ceil(cx + rx)); x++) {
        if (((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1) inNucleus[y * size + x] = 1;
      }
    }
  }
  let covered = 0;
  for (let i = 0; i < size * size; i++) {
    const base = inNucleus[i] ? NUCLEUS : STROMA;
    covered += inNucleus[i];
    const shade = (rand() - 0.5) * 24;
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c] + shade)));
  }
  return { rgb, size, nuclearFraction: covered / (size * size) };
}
