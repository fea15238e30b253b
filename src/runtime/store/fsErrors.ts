import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * File-system faults said as what they are, naming the path: Node's errors say `EACCES:
 * permission denied, mkdir 'x'` at best, and a full disk only `ENOSPC: no space left on device,
 * write` (no file). `fsFault` turns an fs error into "cannot write <path>: the disk is full
 * (ENOSPC)"; errors that are not fs errors pass through unchanged.
 */

export type FsAction = 'write' | 'create the folder' | 'read' | 'replace';

/** An fs error restated; `code` and `path` stay available to callers. */
export class FileSystemFault extends Error {
  constructor(message: string, readonly code: string, readonly path: string, cause: unknown) {
    super(message, { cause });
    this.name = 'FileSystemFault';
  }
}

/** Why, in words, for the codes a disk or a folder gives; undefined for others. */
function reason(code: string, target: string): string | undefined {
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return `permission denied: the folder is read-only for this user or belongs to another (${code})`;
    case 'EROFS':
      return 'the file system is read-only (EROFS)';
    case 'ENOSPC':
      return 'the disk is full (ENOSPC); free some space and run the command again (what was written before is kept, nothing is left half-written)';
    case 'EDQUOT':
      return 'the disk quota is used up (EDQUOT)';
    case 'ENOTDIR': {
      const file = firstFileOnTheWay(target);
      return `${file ?? 'a part of the path'} is a file, not a folder (ENOTDIR)`;
    }
    case 'EISDIR':
      return 'it is a folder, not a file (EISDIR)';
    case 'EEXIST':
      return 'a file of that name is in the way (EEXIST)';
    case 'ENAMETOOLONG':
      return 'the name is too long for the file system (ENAMETOOLONG)';
    case 'ENOENT':
      return 'a folder on the way does not exist (ENOENT)';
    case 'EMFILE':
    case 'ENFILE':
      return `too many open files (${code})`;
    case 'EIO':
      return 'the disk reported an input/output error (EIO)';
    default:
      return undefined;
  }
}

/** The first existing component of `target` that is not a folder (why ENOTDIR). */
function firstFileOnTheWay(target: string): string | undefined {
  const parts = path.resolve(target).split(path.sep);
  for (let i = 2; i <= parts.length; i++) {
    const p = parts.slice(0, i).join(path.sep) || path.sep;
    try {
      if (!fs.statSync(p).isDirectory()) return p;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** `e` restated as "cannot <action> <target>: <why> (<CODE>)" when it is an fs error; otherwise `e` itself. */
export function fsFault(e: unknown, target: string, action: FsAction = 'write'): unknown {
  if (e instanceof FileSystemFault) return e;
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return e;
  const why = reason(code, target);
  if (!why) return e;
  return new FileSystemFault(`cannot ${action} ${target}: ${why}`, code, target, e);
}

/** mkdir -p, its faults restated naming the folder. */
export function makeDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw fsFault(trueMkdirError(dir, e), dir, 'create the folder');
  }
}

/**
 * Node's recursive mkdir reports ENOENT when a missing folder on the way cannot be created (on a
 * read-only file system, without permission): the real error comes from creating the first
 * missing folder alone.
 */
function trueMkdirError(dir: string, e: unknown): unknown {
  if ((e as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT') return e;
  let missing = path.resolve(dir);
  while (path.dirname(missing) !== missing && !fs.existsSync(path.dirname(missing))) missing = path.dirname(missing);
  try {
    fs.mkdirSync(missing);
  } catch (inner) {
    return inner;
  }
  return e;
}
