import { Command } from 'commander';
import { exportH5ad } from '../runtime/store/h5adExport';
import { RunStopped } from '../runtime/train/cv';
import { interruptible } from './train';

/** `triplex export <run|store> --h5ad <file>`: an AnnData file scanpy and squidpy read. */
export function exportCommand(): Command {
  return new Command('export')
    .description('write a store (its expression) or a cv run (its predictions, with truth, error and counts from its store) as an AnnData .h5ad file for scanpy / squidpy')
    .argument('<source>', 'a dataset store (triplex preprocess) or a run folder (triplex cv --out)')
    .requiredOption('--h5ad <file>', 'the .h5ad file to write (replaced whole if it exists; its folder must exist)')
    .option('--sections <list>', 'comma-separated sections to export (default: all)')
    .option('--store <dir>', "a run's store, when not the one its results.json names")
    .option('--json', 'print what was written as one line of JSON (file, kind, spots, genes, sections, layers, images)')
    .action(async (source: string, opts: { h5ad: string; sections?: string; store?: string; json?: boolean }) => {
      const sections = opts.sections?.split(',').map((s) => s.trim()).filter(Boolean);
      // Ctrl-C (or the extension's Cancel) stops before the next image or before writing: the previous file is kept.
      const stop = interruptible('stopping before the next image or the writing');
      const s = await exportH5ad(source, { out: opts.h5ad, sections, store: opts.store, signal: stop.signal, log: (line) => console.error(line) }).catch((e: unknown) => {
        throw stop.signal.aborted ? new RunStopped(`export stopped on request; ${opts.h5ad} was left as it was`) : e;
      });
      if (opts.json) console.log(JSON.stringify(s));
      else console.log(`wrote ${s.file}: ${s.spots} spots x ${s.genes} genes (${s.kind === 'run' ? 'X = predictions' : 'X = normalised expression'}; layers ${s.layers.join(', ') || 'none'}), sections ${s.sections.join(', ')}, ${s.images} image(s)`);
    });
}
