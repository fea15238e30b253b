import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The Slurm client commands the executor calls (sbatch, squeue, scontrol, scancel), each run
 * without a shell, and what it reads from their output. Only the queue and the controller are
 * asked, never the accounting database (`sacct`): clusters without slurmdbd have none, and a
 * cell's outcome is its record on the shared filesystem anyway.
 */

/** The full path of `command` on the PATH, or undefined. */
export function onPath(command: string, pathVar = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathVar.split(path.delimiter).filter(Boolean)) {
    const file = path.join(dir, command);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireSbatch(): void {
  if (!onPath('sbatch')) {
    throw new Error('--executor slurm: `sbatch` is not on the PATH; run the command on a login node of the cluster (or load its Slurm module, e.g. `module load slurm`), or use --executor local');
  }
}

/** Runs a Slurm command; its output, or an error with the command and what it said. */
export function slurm(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const said = (stderr || stdout || err.message).trim().split('\n').filter(Boolean).slice(-3).join('; ');
        reject(new Error(`\`${command} ${args.join(' ')}\` failed: ${said}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
  });
}

export interface QueuedTask { state: string; reason: string }

/** This user's jobs in the queue, array tasks one each (`<job>_<task>`), with their state. */
export async function queuedTasks(): Promise<Map<string, QueuedTask>> {
  const out = await slurm('squeue', ['--noheader', '--array', '--me', '--format=%i|%T|%r']);
  return parseQueue(out);
}

export function parseQueue(text: string): Map<string, QueuedTask> {
  const tasks = new Map<string, QueuedTask>();
  for (const line of text.split('\n')) {
    const [id, state, reason] = line.trim().split('|');
    if (id && state) tasks.set(id, { state, reason: reason ?? '' });
  }
  return tasks;
}

export interface EndedTask { state: string; reason: string; exitCode: string }

/** How a task that left the queue ended, while the controller remembers it (MinJobAge, 300 s by default). */
export async function endedTask(id: string): Promise<EndedTask | undefined> {
  try {
    const fields = parseFields(await slurm('scontrol', ['--oneliner', 'show', 'job', id]));
    return fields.JobState ? { state: fields.JobState, reason: fields.Reason ?? '', exitCode: fields.ExitCode ?? '' } : undefined;
  } catch {
    return undefined; // forgotten by the controller
  }
}

/** `Key=Value Key=Value ...` of scontrol's one-line output. */
export function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)=(\S*)/g)) fields[m[1]] ??= m[2];
  return fields;
}

/** The largest array the cluster takes: task ids run from 0 to MaxArraySize - 1. */
export async function maxArraySize(): Promise<number> {
  const m = /^MaxArraySize\s*=\s*(\d+)/m.exec(await slurm('scontrol', ['show', 'config']));
  return m ? Number(m[1]) : 1001; // Slurm's default
}

/** Fails, naming the partitions there are, when `partition` is not one of them. */
export async function checkPartition(partition: string): Promise<void> {
  const known = (await slurm('sinfo', ['--noheader', '--format=%R'])).split('\n').map((s) => s.trim()).filter(Boolean);
  if (!known.includes(partition)) {
    throw new Error(`--partition ${partition}: no such Slurm partition on this cluster; it has ${known.join(', ') || 'none'} (see \`sinfo\`)`);
  }
}

/** `sbatch --parsable ...`: the job id. */
export async function sbatch(args: readonly string[]): Promise<string> {
  const out = await slurm('sbatch', ['--parsable', ...args]);
  const id = out.trim().split(';')[0];
  if (!/^\d+$/.test(id)) throw new Error(`sbatch answered '${out.trim()}', not a job id`);
  return id;
}

export async function scancel(ids: readonly string[]): Promise<void> {
  if (ids.length) await slurm('scancel', [...ids]);
}

/** A word for /bin/sh, quoted. */
export const shellWord = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
