import { Command } from 'commander';
import { writeSyntheticDataset } from '../runtime/synthetic/generator';
import { wholeNumber } from './options';

export function synthCommand(): Command {
  return new Command('synth')
    .description('write the embedded synthetic dataset (HER2+ layout: ST-cnts, ST-spotfiles, ST-imgs, ST-pat)')
    .requiredOption('--out <dir>', 'folder to write (created; must be empty or absent)')
    .option('--seed <n>', 'random seed', wholeNumber(0, 2 ** 32 - 1), 2024)
    .option('--patients <n>', 'patients', wholeNumber(1, 26), 4)
    .option('--sections <n>', 'sections per patient', wholeNumber(1, 99), 2)
    .option('--grid <n>', 'spots per side of the array', wholeNumber(2, 100), 12)
    .action(async (o: { out: string; seed: number; patients: number; sections: number; grid: number }) => {
      const t = performance.now();
      const s = await writeSyntheticDataset(o.out, { seed: o.seed, patients: o.patients, sectionsPerPatient: o.sections, gridSize: o.grid });
      const spots = s.sections.reduce((n, x) => n + x.spots, 0);
      console.log(`wrote ${s.sections.length} sections (${s.sections.map((x) => x.id).join(' ')}) from ${o.patients} patients, ${spots} spots, ${s.genes} genes to ${o.out} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    });
}
