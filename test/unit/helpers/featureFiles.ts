import * as path from 'node:path';
import type { Table } from 'apache-arrow';
import { buildTable } from '../../../src/runtime/store/arrow';
import { writeArrowBatches } from '../../../src/runtime/store/arrowBatches';
import { writeSpotStore } from '../../../src/runtime/store/datasetStore';
import { NEIGHBOR_TOKENS, TARGET_TOKENS } from '../../../src/runtime/models/triplexInputs';
import { mulberry32 } from '../../../src/runtime/util/random';

/**
 * A store of one slide without counts (as `triplex slide` makes) whose spots lie on a square
 * grid, and its section's features file written in record batches of `batch` spots through the
 * writer `triplex extract` uses (store/arrowBatches.ts): the columns extract.ts writes, with
 * random finite values drawn from a seed, one batch in memory at a time (a 50,000-spot file is
 * 7.6 GB at d 512). Neighbour masks drop a few tiles. Returns the store and the features file.
 */
export async function writeFeatureStore(storeDir: string, o: { spots: number; dim: number; batch: number; seed?: number; section?: string }): Promise<{ storeDir: string; file: string; section: string }> {
  const section = o.section ?? 'S1';
  const side = Math.ceil(Math.sqrt(o.spots));
  const spots = Array.from({ length: o.spots }, (_, i) => ({ id: `spot${i}`, row: Math.floor(i / side), col: i % side, x: 300 + (i % side) * 224, y: 300 + Math.floor(i / side) * 224 }));
  await writeSpotStore(storeDir, { path: path.join(storeDir, 'slide.tif') }, [{ id: section, patient: 'P1', spots, image: { path: path.join(storeDir, 'slide.tif') }, origin: 'test grid', warnings: [] }]);
  const file = path.join(storeDir, 'features', 'resnet18-test', `${section}.arrow`);
  const random = mulberry32(o.seed ?? 1);
  const fill = (a: Float32Array) => { for (let i = 0; i < a.length; i++) a[i] = random() * 2 - 1; return a; };
  const d = o.dim;
  function* batches(): Generator<Table> {
    for (let from = 0; from < o.spots; from += o.batch) {
      const n = Math.min(o.batch, o.spots - from);
      yield buildTable([
        { name: 'spot_id', column: { kind: 'utf8', values: spots.slice(from, from + n).map((s) => s.id) } },
        { name: 'global', column: { kind: 'vector', values: fill(new Float32Array(n * d)), width: d } },
        { name: 'neighbors', column: { kind: 'vector', values: fill(new Float32Array(n * NEIGHBOR_TOKENS * d)), width: NEIGHBOR_TOKENS * d } },
        { name: 'neighbor_mask', column: { kind: 'mask', values: Uint8Array.from({ length: n * NEIGHBOR_TOKENS }, (_, i) => (i % NEIGHBOR_TOKENS === 12 || random() > 0.1 ? 1 : 0)), width: NEIGHBOR_TOKENS } },
        { name: 'target_tokens', column: { kind: 'vector', values: fill(new Float32Array(n * TARGET_TOKENS * d)), width: TARGET_TOKENS * d } },
      ]);
    }
  }
  await writeArrowBatches(file, batches(), { 'triplex:section-key': 'test', 'triplex:section': section });
  return { storeDir, file, section };
}
