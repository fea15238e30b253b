import * as fs from 'node:fs';
import { Command, Option } from 'commander';
import { readDataset } from '../runtime/data/read';
import { preprocess, type LogTransform } from '../runtime/data/preprocess';
import { DEFAULT_GRID_SPACING, readSlide } from '../runtime/data/slide';
import { writeDatasetStore, writeSpotStore } from '../runtime/store/datasetStore';
import { readGeneListFile } from '../runtime/data/geneList';
import { genesFrom } from '../runtime/train/runSource';
import { decimalNumber, wholeNumber } from './options';

export function preprocessCommand(): Command {
  return new Command('preprocess')
    .description('read a dataset (HER2+ folder, Visium folder or .h5ad), apply the paper\'s preprocessing, and write an Arrow dataset store')
    .argument('[dataset]', 'HER2+ layout folder, Space Ranger output folder, .h5ad file, or a folder of .h5ad files (one per sample)')
    .requiredOption('--out <store>', 'store folder to write')
    .option('--samples <sheet>', 'a cohort: sample sheet (.csv/.tsv; columns path, patient, section, image, mpp, labels), one row per section')
    .option('--patient-per-sample', 'a folder of .h5ad files that name no patient: take each sample as its own patient')
    .option('--image <file>', 'full-resolution H&E image (Visium and .h5ad)')
    .option('--mpp <um/px>', 'microns per pixel of the images (checked against what the files, Space Ranger and the sheet say)', decimalNumber(0, 1000, { min: true }))
    .option('--sections <list>', 'only these sections, comma-separated (e.g. C2,C3,C4,C5,C6)', (v) => v.split(',').map((x) => x.trim()).filter(Boolean))
    .option('--with-images', 'only the sections that have an image (features need one)')
    .option('--genes <n|file>', 'genes to keep: a whole number (the top n, default 250), or a text file of gene names, one a line (# starts a comment), kept in that order')
    .option('--genes-from <store|run>', 'keep the genes of a dataset store, a cv run folder or a checkpoint, in their order (for external validation with `triplex evaluate`)')
    .option('--min-spot-fraction <f>', 'keep genes expressed in at least this fraction of spots', decimalNumber(0, 1), 0.1)
    .addOption(new Option('--transform <t>', 'log transform after library-size normalisation').choices(['log1p', 'log10']).default('log1p'))
    .option('--no-smooth', 'skip the 3x3 array-neighbourhood smoothing')
    .action(async (given: string | undefined, o: { out: string; samples?: string; patientPerSample?: boolean; image?: string; mpp?: number; sections?: string[]; withImages?: boolean; genes?: string; genesFrom?: string; minSpotFraction: number; transform: LogTransform; smooth: boolean }, cmd: Command) => {
      const t = performance.now();
      if ((given === undefined) === (o.samples === undefined)) cmd.error('error: give either a <dataset> or --samples <sheet> (one of the two)', { exitCode: 2 });
      const dataset = (given ?? o.samples)!;
      const genes = await geneChoice(o, cmd);
      const read = await readDataset(dataset, { image: o.image, sections: o.sections, patientPerSample: o.patientPerSample, mpp: o.mpp });
      const kept = o.withImages ? read.sections.filter((s) => s.image) : read.sections;
      const ids = new Set(kept.map((s) => s.id));
      const ds = { ...read, sections: kept, problems: read.problems.filter((p) => !p.section || ids.has(p.section)) };
      if (ds.sections.length === 0) throw new Error(`${dataset}: no section${o.withImages ? ' with an image' : ''} to preprocess`);
      const pre = preprocess(ds, { ...genes, minSpotFraction: o.minSpotFraction, transform: o.transform, smooth: o.smooth });
      const manifest = await writeDatasetStore(o.out, { format: ds.format, path: dataset }, pre);
      const spots = manifest.sections.reduce((n, s) => n + s.spots, 0);
      console.log(`${ds.format} dataset ${dataset}: ${manifest.sections.length} sections, ${spots} spots, ` +
        `${pre.record.genes.length} genes (${o.transform}${o.smooth ? ', smoothed' : ''}) -> ${o.out} in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const missing = 'missingGenes' in pre.record.selection ? pre.record.selection.missingGenes ?? [] : [];
      if (missing.length) {
        console.log(`  ${missing.length} of the ${missing.length + pre.record.genes.length} listed genes are not in every section, left out of the store (recorded as missingGenes in store.json): ` +
          `${missing.slice(0, 20).join(', ')}${missing.length > 20 ? `, ... and ${missing.length - 20} more` : ''}`);
      }
      const dropped = 'notInEverySection' in pre.record.selection ? pre.record.selection.notInEverySection ?? 0 : 0;
      if (ds.format === 'cohort' || dropped > 0) {
        console.log(`  ${new Set(ds.sections.map((s) => s.patient)).size} patients; ${dropped} genes dropped for not being in every section`);
      }
      for (const p of ds.problems.slice(0, 10)) console.log(`  note: ${p.file}${p.section ? ` [${p.section}]` : ''}: ${p.message}`);
      if (ds.problems.length > 10) console.log(`  ... and ${ds.problems.length - 10} more notes (triplex dataset inspect shows all)`);
    });
}

/**
 * --genes as a count or a file of names, or --genes-from. Something that reads as a number but is
 * no whole count (0, 2.5, 1e400) and names no file is a usage error, as are both options at once.
 */
async function geneChoice(o: { genes?: string; genesFrom?: string }, cmd: Command): Promise<{ genes?: number; useGenes?: string[] }> {
  if (o.genesFrom && o.genes !== undefined) cmd.error(`error: give either --genes or --genes-from, not both (--genes ${o.genes}, --genes-from ${o.genesFrom})`, { exitCode: 2 });
  if (o.genesFrom) return { useGenes: await genesFrom(o.genesFrom) };
  if (o.genes === undefined) return { genes: 250 };
  const n = /^\s*\+?\d+\s*$/.test(o.genes) ? Number(o.genes) : Number.NaN;
  if (Number.isSafeInteger(n) && n >= 1) return { genes: n };
  if (/^\s*[+-]?[\d.]*\d[\d.]*(e[+-]?\d+)?\s*$/i.test(o.genes) && !fs.existsSync(o.genes)) {
    cmd.error(`error: option '--genes <n|file>' argument '${o.genes}' is invalid. expected a whole number of at least 1, or a file of gene names.`, { exitCode: 2 });
  }
  return { useGenes: readGeneListFile(o.genes) };
}

export function slideCommand(): Command {
  return new Command('slide')
    .description('make a store from an H&E image without counts, to predict its expression: spots from a table, or a grid over the tissue')
    .argument('<image>', 'full-resolution H&E image (JPEG, PNG or TIFF)')
    .requiredOption('--out <store>', 'store folder to write')
    .option('--spots <file>', 'spot table: Space Ranger tissue_positions(.csv|_list.csv), or a CSV/TSV with spot_id, pixel_x, pixel_y [, array_row, array_col]')
    .option('--section <id>', 'section id (default: the image file name)')
    .option('--patient <id>', 'patient id (default: the section id)')
    .option('--spacing <px>', 'without --spots: a spot every this many full-resolution pixels', wholeNumber(16), DEFAULT_GRID_SPACING)
    .option('--min-tissue <f>', 'without --spots: least tissue fraction of a spot\'s square', decimalNumber(0, 1), 0.5)
    .option('--mpp <um/px>', 'microns per pixel of the image (a whole slide states its own; checked against it)', decimalNumber(0, 1000, { min: true }))
    .option('--crop-mpp <um/px>', 'without --spots: the model\'s scale; --spacing is then in its pixels (a grid of crops at the model\'s scale)', decimalNumber(0, 1000, { min: true }))
    .action(async (image: string, o: { out: string; spots?: string; section?: string; patient?: string; spacing: number; minTissue: number; mpp?: number; cropMpp?: number }) => {
      const slide = await readSlide(image, { spots: o.spots, section: o.section, patient: o.patient, spacing: o.spacing, minTissue: o.minTissue, mpp: o.mpp, cropMpp: o.cropMpp });
      for (const w of slide.warnings) console.warn(`warning: ${w}`);
      await writeSpotStore(o.out, { path: image }, [slide]);
      console.log(`slide ${slide.id} (${slide.image.width} x ${slide.image.height} px${slide.mpp ? `, ${slide.mpp} um/px from ${slide.mppSource}` : ', scale unknown'}): ${slide.origin} -> ${o.out}`);
      console.log(`next: triplex extract ${o.out} (with the encoder the model was trained on), then triplex predict ${o.out} --checkpoint <best.safetensors>`);
    });
}
