import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from './paths';

/** Debian's Python, which has python3-torch; the pyenv python3 on PATH may not. */
export const TORCH_PYTHON = process.env.TRIPLEX_TORCH_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

const cache = new Map<string, string>();

/** Skip reason for suites that need PyTorch, when TRIPLEX_SKIP_TORCH is set (else false). */
export const torchSkip: string | false = process.env.TRIPLEX_SKIP_TORCH ? 'needs PyTorch, and TRIPLEX_SKIP_TORCH is set' : false;

/**
 * Reference files made by the script `scripts/fixtures/<script>` with PyTorch, in a
 * temporary folder made once per test process. Tests that need them fail when PyTorch is missing
 * (`npm test` installs it); suites pass `{ skip: torchSkip }` so that TRIPLEX_SKIP_TORCH=1
 * skips them instead, on a machine that cannot have PyTorch.
 */
export function torchReference(scriptName: string): { dir(): string } {
  return {
    dir(): string {
      const known = cache.get(scriptName);
      if (known) return known;
      const out = fs.mkdtempSync(path.join(os.tmpdir(), `triplex-torch-${path.parse(scriptName).name}-`));
      process.once('exit', () => fs.rmSync(out, { recursive: true, force: true }));
      const script = path.join(repoRoot(), 'scripts', 'fixtures', scriptName);
      const r = spawnSync(TORCH_PYTHON, [script, out], { encoding: 'utf8' });
      if (r.status !== 0) {
        throw new Error(`${TORCH_PYTHON} ${script} failed (is python3-torch installed? npm test installs it):\n${r.stderr || r.error?.message}`);
      }
      cache.set(scriptName, out);
      return out;
    },
  };
}
