import * as fs from 'node:fs';
import * as path from 'node:path';
import { stringColumn } from '../../../src/runtime/store/arrow';
import { openDatasetStore } from '../../../src/runtime/store/datasetStore';
import { writePredictions } from '../../../src/runtime/train/cv';

/**
 * A run folder as `triplex cv` lays it out (fold-<k>/predictions.arrow, results.json naming the
 * store), without training: fold k holds section k out and "predicts" 0.5 x its truth + 0.1, so
 * tests know every value the export must carry. Written by the runtime's own writer.
 */
export async function writePredictedRun(store: string, runDir: string, variant = 'tem'): Promise<{ predicted: (section: string) => Float32Array }> {
  const s = openDatasetStore(store);
  const G = s.genes.length;
  const truth = s.values();
  const ids = stringColumn(s.spots, 'spot_id');
  const predicted = (section: string) => Float32Array.from(s.rowsOf(section).flatMap((r) => Array.from(truth.subarray(r * G, (r + 1) * G), (v) => 0.5 * v + 0.1)));
  const sections = s.manifest.sections.map((m) => m.id);
  for (const [fold, id] of sections.entries()) {
    const rows = s.rowsOf(id);
    const file = path.join(runDir, `fold-${fold}`, 'predictions.arrow');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    await writePredictions(file, [{ id, n: rows.length, spotIds: rows.map((r) => ids[r]) }], new Map([[id, predicted(id)]]), s.genes, { variant, fold });
  }
  fs.writeFileSync(path.join(runDir, 'results.json'), JSON.stringify({
    variant, mode: 'frozen', folds: 'lopo', store: path.resolve(store),
    training: sections.map((id, fold) => ({ fold, test: [id] })),
  }));
  return { predicted };
}
