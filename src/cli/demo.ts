import { Command } from 'commander';
import { initCompute } from '../runtime/compute/backend';
import { computeOptions } from './options';

export function demoCommand(): Command {
  return new Command('demo')
    .description('run the end-to-end demonstration on the embedded synthetic data')
    .action(async (_opts: unknown, cmd: Command) => {
      const report = await initCompute(computeOptions(cmd));
      console.log(`backend ${report.backend}, ${report.threads} thread(s)`);
    });
}
