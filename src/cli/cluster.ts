import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { Command } from 'commander';
import { cellStates, GRID_STATE, readGridState } from '../runtime/executors/slurm';
import { queuedTasks, requireSbatch } from '../runtime/executors/slurmTools';
import { commandOutput, JSON_OPTION } from './jsonOutput';

/**
 * `triplex status <run>` and `triplex collect <run>`: a grid submitted to Slurm (with --detach,
 * or by a command that was stopped) picked up later from its run folder's slurm.json.
 */

function stateOf(run: string) {
  const state = readGridState(run);
  if (!state) throw new Error(`${run}: no ${GRID_STATE}; status and collect are for a run submitted with --executor slurm (give the folder of its --out)`);
  return state;
}

export function statusCommand(): Command {
  return new Command('status')
    .description('the cells of a grid submitted with --executor slurm: done, pending, running, or ended without finishing')
    .argument('<run>', 'the run folder (the --out of cv, ablation or benchmark)')
    .option(...JSON_OPTION)
    .action(async (run: string, o: { json?: boolean }) => {
      const state = stateOf(run);
      requireSbatch();
      const cells = cellStates(state, await queuedTasks());
      const say = commandOutput(o.json);
      const count = (s: string) => cells.filter((c) => c.state === s).length;
      say.result(() => [
        ...cells.map((c) => `${c.key.padEnd(24)} ${c.state.padEnd(13)} ${c.state === 'done' ? `by ${c.job}` : c.task ? `task ${c.task}` : ''}${c.detail ? ` (${c.detail})` : ''}`),
        `${count('done')} of ${cells.length} done, ${count('running')} running, ${count('pending')} pending, ${count('ended')} ended without finishing` +
        (count('ended') || count('not submitted') ? `; run \`triplex ${state.invocation.argv.join(' ')}\` again to resubmit those` : `; \`triplex collect ${run}\` gathers the table`),
      ].join('\n'), { run, cells });
    });
}

export function collectCommand(): Command {
  return new Command('collect')
    .description('follow a grid submitted with --executor slurm until its cells are done, then gather and print its table (submits nothing)')
    .argument('<run>', 'the run folder (the --out of cv, ablation or benchmark)')
    .action(async (run: string) => {
      const state = stateOf(run);
      // The submitting command again, in its folder, told to collect: it gathers exactly as it would have.
      const child = spawn(process.execPath, [path.resolve(process.argv[1]), ...state.invocation.argv, '--collect'], { cwd: state.invocation.cwd, stdio: 'inherit' });
      const ignore = () => undefined; // Ctrl-C reaches the child too; it cancels the jobs and says so
      process.on('SIGINT', ignore);
      const code = await new Promise<number>((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 130 : 1))));
      process.off('SIGINT', ignore);
      process.exitCode = code;
    });
}
