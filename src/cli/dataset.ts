import { Command } from 'commander';
import { formatInspectReport, imageDataProblems, inspectDataset, readDataset } from '../runtime/data/read';

/** `triplex dataset ...`: look at spatial transcriptomics datasets before using them. */
export function datasetCommand(): Command {
  const dataset = new Command('dataset').description('spatial transcriptomics datasets: HER2+ folders, Space Ranger (Visium) folders, AnnData .h5ad files');
  dataset
    .command('inspect')
    .description('read a dataset and show its patients, sections, spots, genes, images and problems')
    .argument('<path>', 'a HER2+ folder (holding ST-cnts/), a Space Ranger output folder, or an .h5ad file')
    .option('--image <file>', 'full-resolution H&E image of the section (Visium folder or one-section .h5ad)')
    .option('--patient <id>', 'patient the section(s) come from (Visium folder or .h5ad)')
    .option('--json', 'print the report as JSON, with every problem')
    .action(async (target: string, opts: { image?: string; patient?: string; json?: boolean }) => {
      const started = performance.now();
      const ds = await readDataset(target, { image: opts.image, patient: opts.patient });
      ds.problems.push(...(await imageDataProblems(ds)));
      const report = inspectDataset(ds);
      const seconds = (performance.now() - started) / 1000;
      console.log(opts.json ? JSON.stringify(report, null, 2) : `${formatInspectReport(report)}\nread in ${seconds.toFixed(1)} s`);
    });
  return dataset;
}
