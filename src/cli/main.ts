import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { setEngineOption, setProviderOption, type EngineChoice, type ProviderChoice } from '../runtime/engine/choice';
import { wholeNumber } from './options';
import { infoCommand } from './info';
import { demoCommand } from './demo';
import { synthCommand } from './synth';
import { datasetCommand } from './dataset';
import { preprocessCommand, slideCommand } from './preprocess';
import { extractCommand } from './extract';
import { spotViewCommand, tilesCommand } from './viewer';
import { exportCommand } from './export';
import { evaluateCommand } from './evaluate';
import { ablationCommand, benchmarkCommand, cvCommand, predictCommand, trainFoldCommand } from './train';
import { collectCommand, statusCommand } from './cluster';

/** The package's version: dist/cli.js sits beside package.json's folder, in the repository and in the installed extension. */
function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const program = new Command('triplex')
  .description('TRIPLEX: spatial gene expression from H&E whole-slide images')
  .version(packageVersion(), '-V, --version', 'print the version of triplex')
  .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', 'tensorflow', 'wasm', 'cpu']))
  .option('--threads <n>', 'threads for the wasm backend (default: one per core)', wholeNumber(1, 1024))
  .addOption(new Option('--engine <name>', 'engine that trains and predicts: ort (onnxruntime), tfjs, or auto (ort when it loads); TRIPLEX_ENGINE overrides').choices(['auto', 'ort', 'tfjs']))
  .addOption(new Option('--provider <name>', 'onnxruntime execution provider: cpu, webgpu, cuda, or auto (a GPU provider that runs here, else cpu); TRIPLEX_PROVIDER overrides').choices(['auto', 'cpu', 'webgpu', 'cuda']))
  .hook('preAction', (root) => {
    const o = root.opts<{ engine?: EngineChoice; provider?: ProviderChoice }>();
    setEngineOption(o.engine);
    setProviderOption(o.provider);
  });

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
program.addCommand(benchmarkCommand());
program.addCommand(statusCommand());
program.addCommand(collectCommand());
program.addCommand(evaluateCommand());
program.addCommand(exportCommand());
program.addCommand(tilesCommand());
program.addCommand(spotViewCommand());
program.addCommand(demoCommand());

/**
 * Usage errors (bad option values, unknown options or commands, missing arguments) exit with 2
 * after commander's one-line message and a pointer to the command's help, not the whole help.
 */
const overrideExits = (cmd: Command, name: string): void => {
  cmd.exitOverride();
  cmd.showHelpAfterError(`(\`${name} --help\` lists its ${cmd.commands.length ? 'commands and ' : ''}options)`);
  cmd.commands.forEach((sub) => overrideExits(sub, `${name} ${sub.name()}`));
};
overrideExits(program, 'triplex');

program.parseAsync(process.argv).then(
  () => process.exit(process.exitCode ?? 0),
  (e: unknown) => {
    if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
    if (e instanceof Error && e.name === 'RunStopped') {
      console.log(e.message);
      process.exit(130);
    }
    console.error(`triplex: ${e instanceof Error ? e.message : String(e)}`);
    if (process.env.TRIPLEX_DEBUG && e instanceof Error) console.error(e.stack);
    process.exit(1);
  },
);
