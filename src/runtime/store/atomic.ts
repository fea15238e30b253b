import * as fs from 'node:fs';
import * as path from 'node:path';
import { fsFault, makeDir } from './fsErrors';

/**
 * Writes a file so that readers see either the old content or the new, never a part: the bytes
 * go to a temporary file in the same folder, are flushed, and the file is renamed over the target.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  makeDir(path.dirname(file));
  const partial = `${file}.partial-${process.pid}-${Date.now()}`;
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(partial, 'w');
  } catch (e) {
    throw fsFault(e, file);
  }
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (e) {
    await handle.close().catch(() => undefined);
    await fs.promises.rm(partial, { force: true });
    throw fsFault(e, file);
  }
  try {
    await handle.close();
    await fs.promises.rename(partial, file);
  } catch (e) {
    await fs.promises.rm(partial, { force: true });
    throw fsFault(e, file);
  }
}

/**
 * Removes partial files left in `dir` (not recursive) by a writer that was killed: those whose
 * process (the pid in the name) no longer runs. A live writer's partial is left alone, so a
 * second process resuming in the same folder does not delete the first one's file mid-write.
 */
export async function removePartials(dir: string): Promise<string[]> {
  const names = fs.existsSync(dir) ? await fs.promises.readdir(dir) : [];
  const partials = names.filter((n) => {
    const m = /\.partial-(\d+)-\d+$/.exec(n);
    return m !== null && !isRunning(Number(m[1]));
  });
  await Promise.all(partials.map((n) => fs.promises.rm(path.join(dir, n), { force: true })));
  return partials;
}

/** Whether a process with this pid exists (signal 0 only checks; EPERM: it exists, as another user's). */
function isRunning(pid: number): boolean {
  if (pid === process.pid) return false; // ours from an earlier run whose pid was reused: nothing of ours writes now
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
