import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Writes a file so that readers see either the old content or the new, never a part: the bytes
 * go to a temporary file in the same folder, are flushed, and the file is renamed over the target.
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array | string): Promise<void> {
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const partial = `${file}.partial-${process.pid}-${Date.now()}`;
  const handle = await fs.promises.open(partial, 'w');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fs.promises.rm(partial, { force: true });
    throw e;
  }
  await handle.close();
  try {
    await fs.promises.rename(partial, file);
  } catch (e) {
    await fs.promises.rm(partial, { force: true });
    throw e;
  }
}

/** Removes partial files left by an interrupted writer in `dir` (not recursive). */
export async function removePartials(dir: string): Promise<string[]> {
  const names = fs.existsSync(dir) ? await fs.promises.readdir(dir) : [];
  const partials = names.filter((n) => /\.partial-\d+-\d+$/.test(n));
  await Promise.all(partials.map((n) => fs.promises.rm(path.join(dir, n), { force: true })));
  return partials;
}
