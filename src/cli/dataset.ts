import { Command } from 'commander';
import { formatInspectReport, imageDataProblems, inspectDataset, readDataset } from '../runtime/data/read';

/** `triplex dataset ...`: look at spatial transcriptomics datasets before using them. */
export function datasetCommand(): Command {
  const dataset = new Command('dataset').description('spatial transcriptomics datasets: HER2+ folders, Space Ranger (Visium) folders, AnnData .h5ad files');
  dataset
    .command('inspect')
    .description('read a dataset and show its patients, sections, spots, genes, images and problems')
    .argument('<path>', 'a HER2+ folder (holding ST-cnts/ or count-matrices/), a Space Ranger output folder, an .h5ad file, a folder of .h5ad files, or a sample sheet (.csv/.tsv)')
    .option('--image <file>', 'full-resolution H&E image of the section (Visium folder or one-section .h5ad)')
    .option('--patient <id>', 'patient the section(s) come from (Visium folder or .h5ad)')
    .option('--patient-per-sample', 'a folder of .h5ad files that name no patient: take each sample as its own patient')
    .option('--json', 'print the report as JSON, with every problem')
    .action(async (target: string, opts: { image?: string; patient?: string; patientPerSample?: boolean; json?: boolean }) => {
      const started = performance.now();
      const ds = await readDataset(target, { image: opts.image, patient: opts.patient, patientPerSample: opts.patientPerSample });
      ds.problems.push(...(await imageDataProblems(ds)));
      const report = inspectDataset(ds);
      const seconds = (performance.now() - started) / 1000;
      console.log(opts.json ? JSON.stringify(report, null, 2) : `${formatInspectReport(report)}\nread in ${seconds.toFixed(1)} s`);
    });
  return dataset;
}
