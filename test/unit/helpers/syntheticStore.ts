import { readDataset } from '../../../src/runtime/data/read';
import { preprocess } from '../../../src/runtime/data/preprocess';
import { writeDatasetStore } from '../../../src/runtime/store/datasetStore';
import { writeSyntheticDataset, type SynthOptions } from '../../../src/runtime/synthetic/generator';

/**
 * A small synthetic dataset written to `dataDir` in the HER2+ layout, read back and preprocessed
 * into a store at `storeDir` keeping `genes` genes: the starting point of the tests that train,
 * extract or cross-validate on real files.
 */
export async function writeSyntheticStore(dataDir: string, storeDir: string, synth: SynthOptions, genes: number, read: { mpp?: number } = {}): Promise<void> {
  await writeSyntheticDataset(dataDir, synth);
  const ds = await readDataset(dataDir, read);
  if (ds.format !== 'her2st') throw new Error(`${dataDir} was read as ${ds.format}, not her2st`);
  await writeDatasetStore(storeDir, { format: ds.format, path: dataDir }, preprocess(ds, { genes }));
}
