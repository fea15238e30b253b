import { Command } from 'commander';
import { exportH5ad } from '../runtime/store/h5adExport';

/** `triplex export <run|store> --h5ad <file>`: an AnnData file scanpy and squidpy read. */
export function exportCommand(): Command {
  return new Command('export')
    .description('write a store (its expression) or a cv run (its predictions, with truth, error and counts from its store) as an AnnData .h5ad file for scanpy / squidpy')
    .argument('<source>', 'a dataset store (triplex preprocess) or a run folder (triplex cv --out)')
    .requiredOption('--h5ad <file>', 'the .h5ad file to write (replaced whole if it exists; its folder must exist)')
    .option('--sections <list>', 'comma-separated sections to export (default: all)')
    .option('--store <dir>', "a run's store, when not the one its results.json names")
    .action(async (source: string, opts: { h5ad: string; sections?: string; store?: string }) => {
      const sections = opts.sections?.split(',').map((s) => s.trim()).filter(Boolean);
      const s = await exportH5ad(source, { out: opts.h5ad, sections, store: opts.store, log: (line) => console.error(line) });
      console.log(`wrote ${s.file}: ${s.spots} spots x ${s.genes} genes (${s.kind === 'run' ? 'X = predictions' : 'X = normalised expression'}; layers ${s.layers.join(', ') || 'none'}), sections ${s.sections.join(', ')}, ${s.images} image(s)`);
    });
}
