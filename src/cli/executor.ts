import * as path from 'node:path';
import { Command, Option } from 'commander';
import { RunStopped } from '../runtime/train/cv';
import { followGrid, submitGrid, type SlurmGrid, type SlurmResources } from '../runtime/executors/slurm';
import type { GridCell } from '../runtime/executors/grid';
import { requireSbatch } from '../runtime/executors/slurmTools';
import { withLock } from '../runtime/store/lock';
import { decimalNumber, wholeNumber } from './options';

/**
 * `--executor local|slurm` and the Slurm resources, for the commands that train a grid of cells
 * (cv, ablation, benchmark; train-fold, a grid of one, for the editor). Local: the cells one after
 * another in this process, as always. Slurm: see runtime/executors/slurm.ts.
 */

export interface ExecutorFlags {
  executor: 'local' | 'slurm';
  partition?: string;
  time?: string;
  mem?: string;
  cpus?: number;
  gpus?: string;
  sbatchArg: string[];
  detach?: boolean;
  poll: number;
  /** `triplex collect`: follow and gather the submitted grid, submitting nothing. */
  collect?: boolean;
}

/** The options that are only the Slurm executor's (a usage error with --executor local). */
const SLURM_ONLY = ['partition', 'time', 'mem', 'cpus', 'gpus', 'detach', 'collect'] as const;
export const EXECUTOR_FLAGS = ['--executor', '--partition', '--time', '--mem', '--cpus', '--gpus', '--sbatch-arg', '--detach', '--poll', '--collect', '--cell-only'];

export function executorOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--executor <where>', 'local: the cells (model x fold) one after another here; slurm: one Slurm job array, a task per cell not yet done').choices(['local', 'slurm']).default('local'))
    .option('--partition <name>', 'slurm: the partition (default: the cluster\'s)')
    .option('--time <limit>', 'slurm: time limit per cell, as sbatch takes it (e.g. 4:00:00)')
    .option('--mem <size>', 'slurm: memory per cell, as sbatch takes it (e.g. 16G)')
    .option('--cpus <n>', 'slurm: CPUs per cell', wholeNumber(1, 4096))
    .option('--gpus <n>', 'slurm: GPUs per cell, as sbatch --gpus takes it (e.g. 1 or a100:1)')
    .option('--sbatch-arg <arg>', 'slurm: passed to sbatch as it is (repeatable; e.g. --sbatch-arg=--account=lab)', (v: string, all: string[]) => [...all, v], [] as string[])
    .option('--detach', 'slurm: return once submitted; follow with `triplex status <run>`, gather with `triplex collect <run>`')
    .option('--poll <seconds>', 'slurm: seconds between looks at the queue', decimalNumber(0, 3600, { min: true }), 10)
    .addOption(new Option('--collect').hideHelp());
}

export function checkExecutorFlags(cmd: Command, o: ExecutorFlags): void {
  if (o.executor === 'slurm') return requireSbatch();
  const given = SLURM_ONLY.filter((k) => o[k] !== undefined);
  if (o.sbatchArg.length) given.push('sbatch-arg' as never);
  if (given.length) cmd.error(`error: --${given.join(', --')} ${given.length === 1 ? 'is' : 'are'} for --executor slurm`, { exitCode: 2 });
}

export const slurmResources = (o: ExecutorFlags): SlurmResources => ({ partition: o.partition, time: o.time, mem: o.mem, cpus: o.cpus, gpus: o.gpus, sbatchArgs: o.sbatchArg });

/**
 * Runs the grid on Slurm: submits the cells not done (nothing with --collect), then follows the
 * tasks until none is queued. 'gather' when every cell finished (the caller gathers the table),
 * 'detached' with --detach. Failed cells: each reported with its log's tail, then an error.
 */
export async function runOnSlurm(o: ExecutorFlags, grid: Omit<SlurmGrid, 'invocation'>, log: (line: string) => void, signal: AbortSignal, relay?: (cell: string, line: string) => void): Promise<'gather' | 'detached'> {
  const invocation = { cwd: process.cwd(), argv: process.argv.slice(2).filter((a) => a !== '--detach' && a !== '--collect') };
  let waiting = true;
  if (!o.collect) {
    // One submitter at a time per run folder: two at once would submit the same cells twice. (Not
    // train-fold's grid of one, whose root is the cell's folder: its task takes that folder's lock.)
    const submit = () => submitGrid({ ...grid, invocation }, slurmResources(o), log);
    const ownFolder = grid.cells.some((c) => path.resolve(c.dir) === path.resolve(grid.root));
    const { submitted, queued } = ownFolder ? await submit() : await withLock(grid.root, `triplex ${grid.name.replace(/^triplex-/, '')} (submitting to Slurm)`, submit);
    if (queued.length) log(`already queued or running from an earlier submission: ${queued.join(', ')}`);
    waiting = submitted.length + queued.length > 0;
    if (!waiting) log(`every cell of ${grid.root} is done; gathering`);
  }
  if (o.detach && waiting) {
    log(`detached: \`triplex status ${grid.root}\` shows the cells, \`triplex collect ${grid.root}\` gathers the table when they are done`);
    return 'detached';
  }
  const outcome = await followGrid(grid.root, { log, relay, signal, pollSeconds: o.poll });
  if (outcome.cancelled) {
    throw new RunStopped(`cancelled; cells finished: ${outcome.done.join(', ') || 'none'}; run the same command again to submit the others (each resumes from its last checkpoint)`);
  }
  if (outcome.failed.length) {
    throw new Error(`${outcome.failed.length} of ${grid.cells.length} cells did not finish (${outcome.failed.map((f) => f.key).join(', ')}); ` +
      'run the same command again to resubmit only them, each resuming from its last checkpoint');
  }
  return 'gather';
}

/**
 * The `triplex train-fold` arguments of one cell: the invoking command's options that train-fold
 * also takes (and the global ones), with the cell's model, mode, fold and folder.
 */
export function cellArgs(cmd: Command, trainFoldFlags: ReadonlySet<string>, cell: { model: string; mode?: string; fold: number; out: string; progress?: string }): string[] {
  const args: string[] = [];
  const forward = (c: Command, keep: (long: string) => boolean) => {
    for (const opt of c.options) {
      const long = opt.long;
      if (!long || !keep(long)) continue;
      const v: unknown = c.getOptionValue(opt.attributeName());
      if (v === undefined || v === false) continue;
      args.push(...(v === true ? [long] : [long, String(v)]));
    }
  };
  const root = cmd.parent;
  if (root) forward(root, (long) => long !== '--version');
  args.push('train-fold', String(cmd.processedArgs[0] ?? cmd.args[0]));
  const own = new Set(['--out', '--model', '--mode', '--fold', '--progress', '--json', ...EXECUTOR_FLAGS]);
  forward(cmd, (long) => trainFoldFlags.has(long) && !own.has(long));
  args.push('--fold', String(cell.fold), '--model', cell.model, ...(cell.mode ? ['--mode', cell.mode] : []), '--out', cell.out, '--cell-only', '--progress', cell.progress ?? 'text');
  return args;
}

export type { GridCell };
