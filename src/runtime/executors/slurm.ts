import * as fs from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFileAtomic } from '../store/atomic';
import { LOCK_NAME } from '../store/lock';
import { finishedCell, type GridCell } from './grid';
import { checkPartition, endedTask, maxArraySize, queuedTasks, requireSbatch, sbatch, scancel, shellWord, type QueuedTask } from './slurmTools';

/**
 * The Slurm executor: a grid's cells not yet done go to the cluster as job arrays (one task per
 * cell, in chunks of the cluster's MaxArraySize), each task running the cell's own `triplex`
 * command on the shared filesystem. A tiny probe job runs first; the arrays depend on it, so a run
 * folder the nodes cannot see fails once, with a message, instead of once per cell. The grid's
 * state, `<root>/slurm.json`, records the command and every submission (job id, the cell of each
 * task), so that `triplex status` and `triplex collect` pick the run up later and a rerun submits
 * only the cells neither done nor queued. Task logs: `<root>/slurm/<job>_<task>.log`.
 */

export const GRID_STATE = 'slurm.json';

export interface SlurmResources {
  partition?: string;
  time?: string;
  mem?: string;
  cpus?: number;
  gpus?: string;
  /** Passed to sbatch as they are (e.g. `--account=lab`, `--qos=long`). */
  sbatchArgs?: readonly string[];
}

export interface SlurmGrid {
  root: string;
  /** The job name (e.g. `triplex-cv`). */
  name: string;
  cells: GridCell[];
  /** The command that made the grid, to gather it again (`triplex collect`). */
  invocation: { cwd: string; argv: string[] };
}

interface Submission { job: string; probe: string; token: string; submitted: string; cells: string[] }
export interface GridState {
  /** The grid's folder (set from where the state is read: a moved run folder still works). */
  root: string;
  name: string;
  invocation: SlurmGrid['invocation'];
  cells: Pick<GridCell, 'key' | 'dir' | 'settings'>[];
  submissions: Submission[];
}

export type CellState = 'done' | 'pending' | 'running' | 'ended' | 'not submitted';
export interface CellStatus { key: string; state: CellState; task?: string; job?: string; detail?: string; log?: string }

const logDir = (root: string) => path.join(root, 'slurm');
const taskLog = (root: string, task: string) => path.join(logDir(root), `${task}.log`);

export function readGridState(root: string): GridState | undefined {
  const file = path.join(root, GRID_STATE);
  if (!fs.existsSync(file)) return undefined;
  try {
    return { ...(JSON.parse(fs.readFileSync(file, 'utf8')) as GridState), root: path.resolve(root) };
  } catch (e) {
    throw new Error(`${file} is not readable JSON (${(e as Error).message}); it records this run's Slurm jobs: remove it to submit the missing cells afresh`, { cause: e });
  }
}

const writeState = (root: string, s: GridState) => writeFileAtomic(path.join(root, GRID_STATE), JSON.stringify(s, null, 1) + '\n');

/** Each cell's state: its record, else the queue's word on its latest task, else how that task ended. */
export function cellStates(state: GridState, queue: Map<string, QueuedTask>): CellStatus[] {
  return state.cells.map((cell) => {
    const record = finishedCell(cell);
    const sub = [...state.submissions].reverse().find((s) => s.cells.includes(cell.key));
    const task = sub && `${sub.job}_${sub.cells.indexOf(cell.key)}`;
    const log = task && taskLog(state.root, task);
    if (record) return { key: cell.key, state: 'done', job: record.job ?? record.executor, log };
    if (!sub || !task || !log) return { key: cell.key, state: 'not submitted' };
    const q = queue.get(task);
    if (!q) return { key: cell.key, state: 'ended', task, log };
    return { key: cell.key, state: q.state === 'RUNNING' || q.state === 'COMPLETING' ? 'running' : 'pending', task, detail: q.reason && q.reason !== 'None' ? q.reason : undefined, log };
  });
}

/**
 * Submits the cells neither done nor queued (a rerun after a failure submits only those; each
 * resumes from its last checkpoint). Returns the keys submitted and those already queued.
 */
export async function submitGrid(grid: SlurmGrid, res: SlurmResources, log: (line: string) => void): Promise<{ submitted: string[]; queued: string[] }> {
  requireSbatch();
  if (res.partition) await checkPartition(res.partition);
  const previous = readGridState(grid.root);
  const state: GridState = {
    root: path.resolve(grid.root), name: grid.name, invocation: grid.invocation,
    cells: grid.cells.map((c) => ({ key: c.key, dir: path.resolve(c.dir), settings: c.settings })), submissions: previous?.submissions ?? [],
  };
  const queue = await queuedTasks();
  const states = new Map(cellStates(state, queue).map((s) => [s.key, s]));
  const queued = grid.cells.filter((c) => ['pending', 'running'].includes(states.get(c.key)!.state)).map((c) => c.key);
  const todo = grid.cells.filter((c) => ['ended', 'not submitted'].includes(states.get(c.key)!.state));
  if (todo.length === 0) {
    await writeState(grid.root, state);
    return { submitted: [], queued };
  }
  for (const c of todo) clearDeadTaskLock(c.dir, queue);
  fs.mkdirSync(logDir(grid.root), { recursive: true });
  const resources = [
    ...(res.partition ? [`--partition=${res.partition}`] : []), ...(res.time ? [`--time=${res.time}`] : []), ...(res.mem ? [`--mem=${res.mem}`] : []),
    ...(res.cpus ? [`--cpus-per-task=${res.cpus}`] : []), ...(res.gpus ? [`--gpus=${res.gpus}`] : []), ...(res.sbatchArgs ?? []),
  ];
  // The probe: on a node, it reads a file written here and runs this triplex; the arrays wait for it and are dropped if it fails.
  const token = `${Date.now()}-${process.pid}`;
  const probeIn = path.join(logDir(grid.root), `probe-${token}`);
  fs.writeFileSync(probeIn, `${token}\n`);
  const probe = await sbatch([...resources, `--job-name=${grid.name}-probe`, `--output=${path.join(logDir(grid.root), 'probe-%j.log')}`,
    `--wrap=cat ${shellWord(probeIn)} > ${shellWord(`${probeIn}.tmp`)} && ${taskCommand(grid.invocation.cwd, ['--version'])} >> ${shellWord(`${probeIn}.tmp`)} && mv ${shellWord(`${probeIn}.tmp`)} ${shellWord(`${probeIn}.seen`)}`]);
  const chunk = await maxArraySize();
  const submitted: string[] = [];
  for (let at = 0; at < todo.length; at += chunk) {
    const cells = todo.slice(at, at + chunk);
    if (todo.length > chunk && at === 0) log(`the cluster takes arrays of at most ${chunk} tasks (MaxArraySize): submitting ${todo.length} cells in ${Math.ceil(todo.length / chunk)} arrays`);
    const script = path.join(logDir(grid.root), `array-${token}-${at / chunk}.sh`);
    fs.writeFileSync(script, arrayScript(grid, cells));
    const job = await sbatch([...resources, `--job-name=${grid.name}`, `--array=0-${cells.length - 1}`, `--output=${path.join(logDir(grid.root), '%A_%a.log')}`,
      `--dependency=afterok:${probe}`, '--kill-on-invalid-dep=yes', script]);
    state.submissions.push({ job, probe, token, submitted: new Date().toISOString(), cells: cells.map((c) => c.key) });
    await writeState(grid.root, state); // each array recorded as soon as it exists: none is lost if the next sbatch fails
    submitted.push(...cells.map((c) => c.key));
    log(`submitted Slurm job array ${job} (${cells.length} cell${cells.length === 1 ? '' : 's'}: ${cells.map((c) => c.key).join(', ')}), after probe job ${probe}`);
  }
  return { submitted, queued };
}

const taskCommand = (cwd: string, args: readonly string[]) =>
  `cd ${shellWord(cwd)} && ${[process.execPath, path.resolve(process.argv[1] ?? 'triplex'), ...args].map(shellWord).join(' ')}`;

function arrayScript(grid: SlurmGrid, cells: readonly GridCell[]): string {
  return [
    '#!/bin/sh',
    `# ${grid.name}: one task per cell, written by triplex for ${grid.root}`,
    'case "$SLURM_ARRAY_TASK_ID" in',
    ...cells.map((c, i) => `  ${i}) # ${c.key}\n    ${taskCommand(grid.invocation.cwd, c.args).replace(' && ', ' && exec ')} ;;`),
    '  *) echo "no cell for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
    'esac',
    '',
  ].join('\n');
}

/** A cell lock left by a Slurm task killed on another node (its host cannot judge it stale): removed once its job has left the queue. */
function clearDeadTaskLock(dir: string, queue: Map<string, QueuedTask>): void {
  const file = path.join(dir, LOCK_NAME);
  try {
    const job = /slurm job (\d+(?:_\d+)?)/.exec((JSON.parse(fs.readFileSync(file, 'utf8')) as { command?: string }).command ?? '')?.[1];
    if (job && !queue.has(job)) fs.rmSync(file, { force: true });
  } catch {
    // no lock, or not a task's
  }
}

export interface CellFailure { key: string; task?: string; how: string; log?: string; tail: string[] }
export interface GridOutcome { done: string[]; failed: CellFailure[]; cancelled: boolean }

export interface FollowOptions {
  log: (line: string) => void;
  /** Each new line of a running task's log. */
  relay?: (cell: string, line: string) => void;
  signal?: AbortSignal;
  pollSeconds?: number;
}

/**
 * Follows the grid until no cell is queued or running: a line per cell that finishes or fails
 * (with the tail of its log), the tasks' own lines relayed. A stop request cancels the grid's
 * tasks (scancel) and returns which cells finished.
 */
export async function followGrid(root: string, o: FollowOptions): Promise<GridOutcome> {
  const state = readGridState(root);
  if (!state) throw new Error(`${root}: no ${GRID_STATE}, so no Slurm jobs to follow; was the run submitted with --executor slurm from here?`);
  const announced = new Set<string>();
  const offsets = new Map<string, { at: number; rest: string }>();
  let suspects = new Set<string>();
  const probes = new Map<string, boolean>();
  for (let first = true; ; first = false) {
    const queue = await queuedTasks();
    const states = cellStates(state, queue);
    for (const s of states) {
      // A task can finish between two looks: the end of its log is relayed when it is first seen done.
      const finishing = s.state === 'done' && !first && !announced.has(s.key);
      if (s.log && o.relay && (s.state === 'running' || s.state === 'ended' || finishing)) relayNew(s.log, offsets, (line) => o.relay!(s.key, line), finishing);
      if (s.state === 'done' && !announced.has(s.key)) {
        announced.add(s.key);
        if (!first) o.log(`${s.key}: finished (${states.filter((x) => x.state === 'done').length}/${states.length})`);
      }
    }
    await checkProbes(state, queue, probes);
    if (o.signal?.aborted) {
      const live = [...new Set(states.filter((s) => s.task && (s.state === 'running' || s.state === 'pending')).map((s) => s.task!.split('_')[0]))];
      await scancel(live);
      o.log(`cancelled Slurm job${live.length === 1 ? '' : 's'} ${live.join(', ') || '(none left)'}`);
      return { done: states.filter((s) => s.state === 'done').map((s) => s.key), failed: [], cancelled: true };
    }
    // A task that left the queue without its record is failed on the second look: a shared filesystem may show the record late.
    const ended = new Set(states.filter((s) => s.state === 'ended').map((s) => s.key));
    const live = states.filter((s) => s.state === 'running' || s.state === 'pending');
    if (live.length === 0 && [...ended].every((k) => suspects.has(k))) {
      const failed = await Promise.all(states.filter((s) => s.state === 'ended').map(describeFailure));
      for (const f of failed) o.log(`${f.key}: ${f.how}${f.log ? `; the end of its log ${f.log}:` : ''}${f.tail.map((l) => `\n  | ${l}`).join('')}`);
      return { done: states.filter((s) => s.state === 'done').map((s) => s.key), failed, cancelled: false };
    }
    suspects = ended;
    try {
      await sleep((o.pollSeconds ?? 10) * 1000, undefined, { signal: o.signal });
    } catch {
      // stop requested: cancelled on the next round
    }
  }
}

/** A probe that ended without leaving its `.seen` file: the run folder (or triplex) is not there on the nodes. */
async function checkProbes(state: GridState, queue: Map<string, QueuedTask>, verified: Map<string, boolean>): Promise<void> {
  for (const sub of state.submissions) {
    if (verified.get(sub.probe) || queue.has(sub.probe)) continue;
    const seen = path.join(logDir(state.root), `probe-${sub.token}.seen`);
    for (let look = 0; look < 3 && !fs.existsSync(seen); look++) await sleep(1000); // a shared filesystem may show it late
    if (fs.existsSync(seen)) {
      verified.set(sub.probe, true);
      continue;
    }
    const jobs = state.submissions.filter((s) => s.probe === sub.probe).map((s) => s.job);
    await scancel(jobs).catch(() => undefined);
    const ended = await endedTask(sub.probe);
    throw new Error(`the probe job ${sub.probe} ran on a node${ended ? ` (${ended.state}, exit ${ended.exitCode})` : ''} but did not leave ${seen}: ` +
      `either the run folder ${state.root} is not on a filesystem the nodes share (put --out on one, such as your home or a project or scratch filesystem), ` +
      `or ${process.execPath} or ${path.resolve(process.argv[1] ?? 'triplex')} does not run there (install triplex on the shared filesystem); ` +
      `its log: ${path.join(logDir(state.root), `probe-${sub.probe}.log`)}; cancelled job ${jobs.join(', ')}`);
  }
}

async function describeFailure(s: CellStatus): Promise<CellFailure> {
  const ended = s.task ? await endedTask(s.task) : undefined;
  const how = ended
    ? `task ${s.task} ended ${ended.state}${ended.reason && ended.reason !== 'None' ? ` (${ended.reason})` : ''}, exit code ${ended.exitCode}, without finishing the cell`
    : `task ${s.task} left the queue without finishing the cell (Slurm no longer remembers how it ended)`;
  return { key: s.key, task: s.task, how, log: s.log && fs.existsSync(s.log) ? s.log : undefined, tail: s.log ? tailLines(s.log, 10) : [] };
}

function tailLines(file: string, n: number): string[] {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).slice(-n);
  } catch {
    return [];
  }
}

/** Emits the lines a log gained since the last call; `last`: the task has ended, so a final line without its newline is emitted too. */
function relayNew(file: string, offsets: Map<string, { at: number; rest: string }>, emit: (line: string) => void, last = false): void {
  const seen = offsets.get(file) ?? { at: 0, rest: '' };
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return; // not created yet
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= seen.at && !(last && seen.rest)) return;
    const buf = Buffer.alloc(Math.max(0, size - seen.at));
    fs.readSync(fd, buf, 0, buf.length, seen.at);
    const lines = (seen.rest + buf.toString('utf8')).split('\n');
    seen.rest = lines.pop() ?? '';
    if (last && seen.rest) {
      lines.push(seen.rest);
      seen.rest = '';
    }
    seen.at = Math.max(seen.at, size);
    offsets.set(file, seen);
    for (const line of lines) emit(line);
  } finally {
    fs.closeSync(fd);
  }
}
