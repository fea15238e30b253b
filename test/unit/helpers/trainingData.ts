import { spotGrid } from '../../../src/runtime/models/spotGrid';
import { triplexConfig, type TriplexConfig } from '../../../src/runtime/models/triplexConfig';
import type { SectionInputs, TrainingData } from '../../../src/runtime/train/data';
import { mulberry32, normal } from '../../../src/runtime/util/random';

/** Small in-memory training data for the trainer's tests: the features' width and the genes. */
export const DIM = 16;
export const GENES = 5;

/**
 * Sections whose expression is a linear function of the spot's own feature, of the mean of its
 * neighbor tiles and of its slide: every view carries signal.
 */
export function syntheticData(sections = 4, side = 6, seed = 1): TrainingData {
  const random = mulberry32(seed);
  const mix = normal(random, 3 * DIM * GENES, 0.3);
  const map = new Map<string, SectionInputs>();
  for (let s = 0; s < sections; s++) {
    const rows: number[] = [];
    const cols: number[] = [];
    for (let r = 0; r < side; r++) for (let c = 0; c < side; c++) if ((r * 7 + c * 3 + s) % 11 !== 0) { rows.push(r); cols.push(c); } // holes
    const n = rows.length;
    const global = normal(random, n * DIM);
    const neighbors = normal(random, n * 25 * DIM);
    const target = normal(random, n * 49 * DIM);
    const mask = new Float32Array(n * 25).fill(1);
    for (let i = 0; i < n; i++) if (rows[i] === 0) for (let t = 0; t < 5; t++) mask[i * 25 + t] = 0; // top edge
    const slideShift = normal(random, DIM);
    const values = new Float32Array(n * GENES);
    for (let i = 0; i < n; i++) {
      for (let g = 0; g < GENES; g++) {
        let v = 1;
        for (let c = 0; c < DIM; c++) {
          let tMean = 0;
          for (let t = 0; t < 49; t++) tMean += target[(i * 49 + t) * DIM + c] / 49;
          let nMean = 0;
          for (let t = 0; t < 25; t++) nMean += neighbors[(i * 25 + t) * DIM + c] / 25;
          v += mix[c * GENES + g] * tMean * 3 + mix[(DIM + c) * GENES + g] * nMean * 3 + mix[(2 * DIM + c) * GENES + g] * (global[i * DIM + c] + slideShift[c]);
        }
        values[i * GENES + g] = v;
      }
    }
    const id = `S${s}`;
    map.set(id, {
      id, patient: `P${s}`, n, spotIds: rows.map((r, i) => `${r}x${cols[i]}`), storeRows: [], values, global, neighbors, mask, target,
      grid: spotGrid(rows, cols),
    });
  }
  return { storeDir: '(in memory)', featuresDir: '(in memory)', genes: Array.from({ length: GENES }, (_, g) => `G${g}`), hasCounts: true, dim: DIM, sections: map };
}

/** The demo preset of a variant, sized for syntheticData. */
export const config = (variant = 'triplex'): TriplexConfig => triplexConfig({ preset: 'demo', variant, genes: GENES, dim: DIM });
