import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root (the folder holding package.json), found from this file. */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = up;
  }
  return dir;
}

/** The shared real data beside the project (../shared/data), never copied into it. */
export function sharedData(...parts: string[]): string {
  return path.join(repoRoot(), '..', 'shared', 'data', ...parts);
}
