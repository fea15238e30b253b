import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fsFault, makeDir } from './fsErrors';

/**
 * One writer per folder: `extract` on a store, `cv` and `train-fold` on a run folder take
 * `<dir>/.triplex.lock` before they write, so that a second run on the same folder refuses,
 * naming the first (pid, host, start time, command), instead of interleaving its files.
 *
 * The lock file is written complete under a temporary name and hard-linked to its place: the
 * link fails if a lock exists, and a reader never sees a half-written lock. A lock whose process
 * no longer runs on this host (killed with -9, the machine restarted) is stale: it is taken over
 * and the caller is told so. Locks held by this process are also removed when it exits.
 */

export const LOCK_NAME = '.triplex.lock';

export interface LockOwner { pid: number; host: string; started: string; command: string }
export interface Lock {
  file: string;
  /** Set when a stale lock (its process gone) was taken over: a line saying so, for the log. */
  tookOver?: string;
  /** Removes the lock (idempotent); called when the work ends, however it ends. */
  release(): void;
}

/** Lock files this process holds: a second take in the same process refuses too, and exit removes them. */
const held = new Set<string>();
let exitHook = false;

/** Thrown when another live process holds the folder. */
export class LockedError extends Error {
  constructor(readonly file: string, readonly owner: LockOwner | undefined, what: string) {
    super(`${what}: ${path.dirname(file)} is in use by ${owner ? describeOwner(owner) : 'another process (its lock file cannot be read)'}; `
      + `wait for it to end or stop it; if it is not running, remove ${file}`);
    this.name = 'LockedError';
  }
}

export const describeOwner = (o: LockOwner) => `${o.command} (pid ${o.pid} on ${o.host}, started ${o.started})`;

/** Takes `<dir>/.triplex.lock` for `command` (e.g. "triplex extract"), or throws `LockedError`. */
export function acquireLock(dir: string, command: string): Lock {
  makeDir(dir);
  const file = path.join(path.resolve(dir), LOCK_NAME);
  removeStaleTemps(path.dirname(file));
  const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command };
  const content = JSON.stringify(owner) + '\n';
  let tookOver: string | undefined;
  for (let attempt = 0; ; attempt++) {
    if (held.has(file)) throw new LockedError(file, readOwner(file), command);
    if (tryCreate(file, content)) break;
    const other = readOwner(file);
    if (attempt >= 2 || !other || !isStale(other)) throw new LockedError(file, other, command);
    // Remove the stale lock only if it is still the one just read (not one a third process has just taken over).
    const again = readOwner(file);
    if (again && JSON.stringify(again) === JSON.stringify(other)) fs.rmSync(file, { force: true });
    tookOver = `took over the stale lock ${file} of ${describeOwner(other)}: that process no longer runs`;
  }
  held.add(file);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const f of held) fs.rmSync(f, { force: true });
    });
  }
  let released = false;
  return {
    file,
    ...(tookOver ? { tookOver } : {}),
    release() {
      if (released) return;
      released = true;
      held.delete(file);
      // Only our own lock: never one that someone took over from us after we were thought dead.
      const now = readOwner(file);
      if (now && now.pid === owner.pid && now.host === owner.host && now.started === owner.started) fs.rmSync(file, { force: true });
    },
  };
}

/** Runs `work` holding the lock of `dir`; the lock is released however `work` ends. */
export async function withLock<T>(dir: string, command: string, work: (lock: Lock) => Promise<T>): Promise<T> {
  const lock = acquireLock(dir, command);
  try {
    return await work(lock);
  } finally {
    lock.release();
  }
}

/** Temporary lock files (`.triplex.lock.<pid>-<ms>.tmp`) of a process killed while taking a lock. */
function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = /^\.triplex\.lock\.(\d+)-\d+\.tmp$/.exec(name);
    if (m && isStale({ pid: Number(m[1]), host: os.hostname(), started: '', command: '' })) fs.rmSync(path.join(dir, name), { force: true });
  }
}

/** Creates the lock file with its full content, atomically; false if a lock exists. */
function tryCreate(file: string, content: string): boolean {
  const temp = `${file}.${process.pid}-${Date.now()}.tmp`;
  try {
    fs.writeFileSync(temp, content, { flag: 'wx' });
  } catch (e) {
    fs.rmSync(temp, { force: true });
    throw fsFault(e, file);
  }
  try {
    fs.linkSync(temp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fsFault(e, file);
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const o = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string') {
      return { pid: o.pid, host: o.host, started: String(o.started ?? 'at an unknown time'), command: String(o.command ?? 'a triplex command') };
    }
  } catch {
    // missing (released meanwhile) or not a lock we wrote
  }
  return undefined;
}

/** A lock is stale when its process no longer runs on this host; a lock of another host is never judged. */
function isStale(o: LockOwner): boolean {
  if (o.host !== os.hostname()) return false;
  if (o.pid === process.pid) return true; // an earlier process with our pid (locks this process holds are refused before)
  try {
    process.kill(o.pid, 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'EPERM';
  }
}
