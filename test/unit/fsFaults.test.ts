import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../../src/runtime/store/atomic';
import { FileSystemFault, fsFault, makeDir } from '../../src/runtime/store/fsErrors';
import { crossValidate } from '../../src/runtime/train/cv';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';

/**
 * File-system faults said as what they are, naming the path: a read-only output folder was
 * reported as ENOENT on mkdir, a full disk as a bare ENOSPC naming no file. Real faults where
 * this machine can make them (a file where a folder is expected, a folder where a file is; as
 * root, a tiny tmpfs for a full disk and a read-only one; as another user, chmod 555), and the
 * message of every code from a table.
 */

const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
const errno = (code: string) => Object.assign(new Error(`${code}: something, write`), { code });
const isRoot = process.getuid?.() === 0;

/** As root: a tmpfs of `size` mounted at a new folder (read-only with `ro`), or why not. */
function mountTmpfs(dir: string, options: string): string | undefined {
  if (!isRoot) return 'mounting a tmpfs needs root';
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? undefined : `mount failed (${(r.stderr || r.error?.message || '').trim()})`;
}

describe('file-system faults name the path and say what they are', () => {
  const tmp = tempDir('fsfaults');
  const mounted: string[] = [];
  after(() => {
    for (const m of mounted) spawnSync('umount', [m]);
  });

  const cases: [string, string, RegExp][] = [
    ['EACCES', 'write', /^cannot write \/out\/a\.arrow: permission denied: the folder is read-only for this user or belongs to another \(EACCES\)$/],
    ['EPERM', 'write', /^cannot write \/out\/a\.arrow: permission denied: .*\(EPERM\)$/],
    ['EROFS', 'create the folder', /^cannot create the folder \/out\/a\.arrow: the file system is read-only \(EROFS\)$/],
    ['ENOSPC', 'write', /^cannot write \/out\/a\.arrow: the disk is full \(ENOSPC\); free some space/],
    ['EDQUOT', 'write', /^cannot write \/out\/a\.arrow: the disk quota is used up \(EDQUOT\)$/],
    ['EISDIR', 'write', /^cannot write \/out\/a\.arrow: it is a folder, not a file \(EISDIR\)$/],
    ['ENAMETOOLONG', 'write', /too long for the file system \(ENAMETOOLONG\)$/],
    ['EIO', 'read', /^cannot read \/out\/a\.arrow: the disk reported an input\/output error \(EIO\)$/],
    ['EMFILE', 'write', /too many open files \(EMFILE\)$/],
  ];
  for (const [code, action, message] of cases) {
    test(`${code}: restated, naming the path, keeping the code`, () => {
      const e = fsFault(errno(code), '/out/a.arrow', action as 'write') as FileSystemFault;
      assert.ok(e instanceof FileSystemFault);
      assert.match(e.message, message);
      assert.equal(e.code, code);
      assert.equal(e.path, '/out/a.arrow');
    });
  }

  test('errors that are not fs errors, or of other codes, pass through unchanged', () => {
    const plain = new Error('shape mismatch');
    assert.equal(fsFault(plain, '/x'), plain);
    const other = errno('ECONNRESET');
    assert.equal(fsFault(other, '/x'), other);
    assert.equal(fsFault('text', '/x'), 'text');
  });

  test('a file where the output folder should be: ENOTDIR naming that file (API and CLI)', async () => {
    const file = path.join(tmp, 'not-a-folder');
    fs.writeFileSync(file, 'x');
    const out = path.join(file, 'run');
    assert.throws(() => makeDir(out), { message: `cannot create the folder ${out}: ${file} is a file, not a folder (ENOTDIR)` });
    await assert.rejects(crossValidate({ storeDir: path.join(tmp, 'no-store'), outDir: out }), { message: `cannot create the folder ${out}: ${file} is a file, not a folder (ENOTDIR)` });
    const r = cli(['cv', path.join(tmp, 'no-store'), '--out', out]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot create the folder ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*is a file, not a folder \\(ENOTDIR\\)`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(fs.readFileSync(file, 'utf8'), 'x');
  });

  test('a folder where a file should be written: EISDIR, and no partial file left', async () => {
    const target = path.join(tmp, 'results.json');
    fs.mkdirSync(target);
    await assert.rejects(writeFileAtomic(target, '{}'), { message: `cannot write ${target}: it is a folder, not a file (EISDIR)` });
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.partial-')), []);
  });

  const fullWhy = mountTmpfs(path.join(tmp, 'full'), 'size=64k');
  if (!fullWhy) mounted.push(path.join(tmp, 'full'));
  test('a full disk: ENOSPC naming the file, the earlier content kept, no partial left', { skip: fullWhy }, async () => {
    const file = path.join(tmp, 'full', 'history.json');
    await writeFileAtomic(file, 'earlier\n');
    await assert.rejects(writeFileAtomic(file, Buffer.alloc(1 << 20, 1)), (e: Error) => {
      assert.match(e.message, new RegExp(`^cannot write ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the disk is full \\(ENOSPC\\)`));
      return true;
    });
    assert.equal(fs.readFileSync(file, 'utf8'), 'earlier\n');
    assert.deepEqual(fs.readdirSync(path.join(tmp, 'full')), ['history.json']);
  });

  const roWhy = mountTmpfs(path.join(tmp, 'ro'), 'ro,size=64k');
  if (!roWhy) mounted.push(path.join(tmp, 'ro'));
  test('a read-only file system: EROFS naming the folder, for a write and for `triplex cv --out`', { skip: roWhy }, async () => {
    const ro = path.join(tmp, 'ro');
    await assert.rejects(writeFileAtomic(path.join(ro, 'a.json'), '{}'), { message: `cannot write ${path.join(ro, 'a.json')}: the file system is read-only (EROFS)` });
    const r = cli(['cv', path.join(tmp, 'no-store'), '--out', path.join(ro, 'run')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /cannot create the folder .*ro\/run: the file system is read-only \(EROFS\)/);
    assert.doesNotMatch(r.stderr, /ENOENT/);
  });

  test('a folder without write permission: EACCES naming it', { skip: isRoot ? 'running as root, whom chmod 555 does not stop (the tmpfs test above covers a read-only folder)' : undefined }, async () => {
    const locked = path.join(tmp, 'locked');
    fs.mkdirSync(locked, { mode: 0o555 });
    fs.chmodSync(locked, 0o555);
    await assert.rejects(writeFileAtomic(path.join(locked, 'a.json'), '{}'), /cannot write .*locked\/a\.json: permission denied/);
    assert.throws(() => makeDir(path.join(locked, 'run')), /cannot create the folder .*locked\/run: permission denied: .*\(EACCES\)/);
  });
});
