import * as path from 'node:path';
import { Command } from 'commander';
import { initCompute } from '../runtime/compute/backend';
import { evaluateOnStore } from '../runtime/eval/evaluate';
import { CheckpointUsageError } from '../runtime/train/referenceCheckpoint';
import { computeOptions } from './options';
import { commandOutput, JSON_OPTION } from './jsonOutput';

/** `triplex evaluate`: a trained run applied to another cohort's store, scored as the paper's Table 2. */
export function evaluateCommand(): Command {
  return new Command('evaluate')
    .description("external validation (the paper's Table 2): apply a cv run's fold models (or one checkpoint) to a store with counts, genes aligned by name, and print MSE, MAE, PCC(M), PCC(H) per test section")
    .argument('<run|checkpoint>', 'cv run folder (from `triplex cv`) or one checkpoint (fold-<k>/best.safetensors, or an authors\' Lightning .ckpt)')
    .argument('<store>', 'dataset store with counts and features from the run\'s encoder (`triplex preprocess <data> --genes-from <run>`, then `triplex extract`)')
    .option('--out <dir>', 'folder of predictions, table2.md, table2.csv and evaluation.json (default <store>/evaluations/<run>[-ensemble])')
    .option('--ensemble', 'score one ensemble (the mean of the fold models\' predictions) instead of mean ± sd over the fold models')
    .option('--features <key>', 'features folder under <store>/features (default: the one the run was trained on)')
    .option('--genes <file>', 'authors\' .ckpt only: the genes it predicts, one a line, in order (default: the store\'s, when their number matches)')
    .option(...JSON_OPTION)
    .action(async (source: string, store: string, o: { out?: string; ensemble?: boolean; features?: string; genes?: string; json?: boolean }, cmd: Command) => {
      const say = commandOutput(o.json);
      await initCompute(computeOptions(cmd));
      const t = performance.now();
      const out = o.out ?? path.join(store, 'evaluations', `${path.basename(path.resolve(source)).replace(/\.(safetensors|ckpt)$/, '')}${o.ensemble ? '-ensemble' : ''}`);
      const r = await evaluateOnStore({ source, storeDir: store, outDir: out, ensemble: o.ensemble, features: o.features, genes: o.genes, log: say.log }).catch((e: unknown) => {
        throw e instanceof CheckpointUsageError ? cmd.error(`error: ${e.message}`, { exitCode: 2 }) : e;
      });
      const { text, ...report } = r;
      say.result(() => [
        '', text,
        `${r.genes.shared.length} of ${r.genes.model} model genes scored${r.genes.missing.length ? `; ${r.genes.missing.length} missing from the store, left out: ${r.genes.missing.join(', ')}` : ''}`,
        `predictions, table2.md, table2.csv and evaluation.json -> ${out} (${((performance.now() - t) / 1000).toFixed(1)} s)`,
      ].join('\n'), { evaluation: out, ...report });
    });
}
