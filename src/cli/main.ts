import { Command, Option } from 'commander';
import { setEngineOption, type EngineChoice } from '../runtime/engine/choice';
import { infoCommand } from './info';
import { demoCommand } from './demo';
import { synthCommand } from './synth';
import { datasetCommand } from './dataset';
import { preprocessCommand, slideCommand } from './preprocess';
import { extractCommand } from './extract';
import { spotViewCommand, tilesCommand } from './viewer';
import { ablationCommand, cvCommand, predictCommand, trainFoldCommand } from './train';

const program = new Command('triplex')
  .description('TRIPLEX: spatial gene expression from H&E whole-slide images')
  .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']))
  .option('--threads <n>', 'threads for the wasm backend (default: one per core)', (v) => Number.parseInt(v, 10))
  .addOption(new Option('--engine <name>', 'engine that trains and predicts: ort (onnxruntime), tfjs, or auto (ort when it loads); TRIPLEX_ENGINE overrides').choices(['auto', 'ort', 'tfjs']))
  .hook('preAction', (root) => setEngineOption(root.opts<{ engine?: EngineChoice }>().engine))
  .showHelpAfterError();

program.addCommand(infoCommand());
program.addCommand(datasetCommand());
program.addCommand(synthCommand());
program.addCommand(preprocessCommand());
program.addCommand(slideCommand());
program.addCommand(extractCommand());
program.addCommand(cvCommand());
program.addCommand(trainFoldCommand());
program.addCommand(predictCommand());
program.addCommand(ablationCommand());
program.addCommand(tilesCommand());
program.addCommand(spotViewCommand());
program.addCommand(demoCommand());

program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    if (e instanceof Error && e.name === 'RunStopped') {
      console.log(e.message);
      process.exit(130);
    }
    console.error(`triplex: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.TRIPLEX_DEBUG && e instanceof Error) console.error(e.stack);
    process.exit(1);
  },
);
