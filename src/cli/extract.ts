import { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { extractFeatures } from '../runtime/features/extract';
import { readCheckpoint } from '../runtime/train/checkpoints';
import { decimalNumber, wholeNumber } from './options';

export function extractCommand(): Command {
  return new Command('extract')
    .description('extract frozen features (global, target tokens, 5x5 neighbours with mask) for every spot of a store; cached and resumable')
    .argument('<store>', 'dataset store written by `triplex preprocess`')
    .option('--encoder <name>', 'resnet18, or the path of an ONNX image encoder (e.g. a pathology foundation model)', 'resnet18')
    .option('--weights <checkpoint>', 'ResNet18 weights (.pth, .ckpt, .safetensors), e.g. tenpercent_resnet18.ckpt')
    .option('--batch <n>', 'images per encoder call', wholeNumber(1, 4096), 32)
    .option('--crop-mpp <um/px>', 'cut crops at this scale (the model\'s training scale): images at another scale are resampled to it', decimalNumber(0, 1000, { min: true }))
    .option('--checkpoint <file>', 'cut crops at the training scale this checkpoint records (for `triplex predict` with it)')
    .option('--dense', 'dense features: one fully convolutional ResNet18 pass over the image, crops read from its map (about the image\'s area of work instead of 26 crops a spot; features differ slightly, see README "Dense features"); a features folder of its own')
    .action(async (store: string, o: { encoder: string; weights?: string; batch: number; cropMpp?: number; checkpoint?: string; dense?: boolean }, cmd: Command) => {
      if (o.cropMpp !== undefined && o.checkpoint) cmd.error('error: give either --crop-mpp or --checkpoint, not both', { exitCode: 2 });
      let mpp = o.cropMpp;
      if (o.checkpoint) {
        mpp = (await readCheckpoint(o.checkpoint)).info.mpp;
        if (mpp === undefined) console.warn(`warning: ${o.checkpoint} records no training scale; crops are cut at each image's own pixels`);
      }
      const interactive = process.stderr.isTTY === true;
      const bar = new SingleBar({
        format: 'features |{bar}| {value}/{total} spots | {section} | {rate} spots/s | ETA {eta_formatted}',
        hideCursor: true, noTTYOutput: false, etaBuffer: 50,
      });
      let started = false;
      let lastLine = performance.now();
      const controller = new AbortController();
      process.once('SIGINT', () => controller.abort());
      const t = performance.now();
      const summary = await extractFeatures(store, {
        encoder: o.encoder, weights: o.weights, dense: o.dense, batchSize: o.batch, signal: controller.signal, mpp,
        onProgress: (p) => {
          if (!interactive) {
            // Logs (CI, pipes): a line every 15 s instead of a bar.
            if (performance.now() - lastLine > 15000) {
              lastLine = performance.now();
              console.log(`features: ${p.done}/${p.total} spots, ${p.section}, ${p.spotsPerSecond.toFixed(1)} spots/s, ETA ${Math.round(p.etaSeconds)} s`);
            }
            return;
          }
          if (!started) {
            bar.start(p.total, 0, { section: p.section, rate: '-' });
            started = true;
          }
          bar.update(p.done, { section: p.section, rate: p.spotsPerSecond.toFixed(1) });
        },
      }).finally(() => started && bar.stop());
      const seconds = (performance.now() - t) / 1000;
      const spots = summary.sections.reduce((n, s) => n + s.spots, 0);
      const computed = summary.sections.filter((s) => s.status !== 'cached');
      console.log(`features of ${spots} spots in ${summary.sections.length} sections (${summary.sections.length - computed.length} cached) ` +
        `with ${summary.encoder.encoder} on ${summary.encoder.engine}, width ${summary.width}, in ${seconds.toFixed(1)} s -> ${summary.dir}`);
      for (const n of summary.notes) console.log(n);
      for (const w of summary.warnings) console.warn(`warning: ${w}`);
      for (const s of computed) console.log(`  ${s.id}: ${s.spots} spots, ${s.tilesEncoded} tiles encoded, ${s.seconds.toFixed(1)} s (${(s.spots / s.seconds).toFixed(1)} spots/s)${s.status === 'resumed' ? ', resumed' : ''}`);
    });
}
