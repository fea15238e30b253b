import * as fs from 'node:fs';
import { DataFileError } from './types';

/**
 * Refuses a path that exists but is not a regular file: opening a named pipe for reading waits
 * for a writer forever, and a device never ends. A missing file is left to the caller, whose
 * message says what was expected there.
 */
export function checkRegularFile(file: string): void {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    return;
  }
  if (!stat.isFile()) throw new DataFileError(file, undefined, `is ${fileKind(stat)}, not a regular file; give a plain file`);
}

/** What a non-regular file is, in words. */
export function fileKind(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a folder';
  if (stat.isFIFO()) return 'a named pipe (FIFO)';
  if (stat.isSocket()) return 'a socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  return stat.isFile() ? 'a regular file' : 'not a regular file';
}
