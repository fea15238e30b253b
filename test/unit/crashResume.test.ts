import { after, before, describe, test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { mulberry32 } from '../../src/runtime/util/random';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { repoRoot } from './helpers/paths';

/**
 * Hostile input, kills: `triplex extract`, `train-fold` and `cv` killed with SIGKILL at seeded
 * random points, then run again to completion, give the same bytes as an uninterrupted run (features
 * files; checkpoints, predictions, histories, metrics, results.json; only timings.json differs),
 * leave no temporary file (partials, chunk folders, lock files or their temporaries), and a killed
 * run's lock does not stop the rerun (it is taken over, and the rerun says so).
 *
 * The same runs, uninterrupted, in two folders, give byte-identical files (item 10: artefacts
 * comparable between runs). Every run uses TRIPLEX_THREADS=1, the documented reproducible setting.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const ENV = { ...process.env, TRIPLEX_THREADS: '1' };
const FAST = ['--preset', 'demo', '--epochs', '2', '--batch', '32', '--lr', '1e-3'];
/**
 * Seeds of the kill points. The i-th kill waits for the i-th of a command's progress marks (none,
 * a third, two thirds of them: files a run leaves as it goes), then a seeded random delay, so the
 * kills land early, midway and late whatever the machine's load.
 */
const SEEDS = [11, 22, 33];
/** Files that record when or where, not what: they may differ. */
const TIMING_FILES = new Set(['timings.json']);
/** A cell's record (executors/grid.ts) says what trained it and also when and on which host: compared without those. */
const CELL_RECORD = 'cell.json';
const WHEN_AND_WHERE = ['finished', 'host', 'job'];

function comparableBytes(file: string): Buffer {
  const bytes = fs.readFileSync(file);
  if (path.basename(file) !== CELL_RECORD) return bytes;
  const record = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  for (const key of WHEN_AND_WHERE) delete record[key];
  return Buffer.from(JSON.stringify(record));
}
/** Names no finished run may leave: partial writes, extract's chunk folders, locks and their temporaries, files moved aside. */
const TEMPORARY = /\.partial-|\.chunks$|\.triplex\.lock|\.tmp$|\.unreadable-/;

async function runCli(args: string[]): Promise<{ status: number | null; output: string }> {
  const child = spawn(process.execPath, [cli(), ...args], { env: ENV });
  let output = '';
  child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
  const [status] = await once(child, 'close') as [number | null];
  return { status, output };
}

/** Every file under `dir` (relative path -> sha256), the timing files left out, cell records without their time and host. */
function digests(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const rel of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const file = path.join(dir, rel);
    if (!fs.statSync(file).isFile() || TIMING_FILES.has(path.basename(rel))) continue;
    out.set(rel, createHash('sha256').update(comparableBytes(file)).digest('hex'));
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

function temporaries(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((rel) => TEMPORARY.test(path.basename(rel)));
}

/** Starts the command and kills it with SIGKILL `ms` after `ready()` holds; whether it was still running then. */
async function killAfter(args: string[], ready: () => boolean, ms: number): Promise<boolean> {
  const child = spawn(process.execPath, [cli(), ...args], { env: ENV, stdio: 'ignore' });
  let timer: NodeJS.Timeout | undefined;
  const poll = setInterval(() => {
    if (timer || !ready()) return;
    timer = setTimeout(() => child.kill('SIGKILL'), ms);
  }, 25);
  const [, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null];
  clearInterval(poll);
  clearTimeout(timer);
  return signal === 'SIGKILL';
}

/** Progress marks of extract: the sections' features files written. */
const sectionsWritten = (store: string) => () => {
  const dir = path.join(store, 'features');
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => /\/[A-Z]\d\.arrow$/.test(f)).length : 0;
};

/** Progress marks of train-fold and cv: epochs in the folds' history.json, and predictions written. */
const epochsDone = (out: string) => () => {
  if (!fs.existsSync(out)) return 0;
  let n = 0;
  for (const fold of fs.readdirSync(out).filter((f) => f.startsWith('fold-'))) {
    try {
      n += (JSON.parse(fs.readFileSync(path.join(out, fold, 'history.json'), 'utf8')) as unknown[]).length;
    } catch {
      // not written yet
    }
    if (fs.existsSync(path.join(out, fold, 'predictions.arrow'))) n++;
  }
  return n;
};

/** Runs the command to completion (without blocking: two may run at once); its time in seconds. */
async function timed(args: string[]): Promise<number> {
  const t = performance.now();
  const r = await runCli(args);
  assert.equal(r.status, 0, r.output);
  return (performance.now() - t) / 1000;
}

/**
 * Kills `args` (run in a fresh copy of the work: `prepare` makes it and returns the folder to check),
 * reruns it, and compares the folder with the reference.
 */
async function crashAndResume(t: TestContext, o: {
  seed: number; index: number; reference: Map<string, string>;
  prepare: (name: string) => { args: string[]; dir: string; lockDirs: string[]; marks: () => number; totalMarks: number };
}): Promise<void> {
  const { args, dir, lockDirs, marks, totalMarks } = o.prepare(`seed-${o.seed}`);
  const need = Math.floor((o.index * totalMarks) / SEEDS.length);
  // The first kill comes within the start (engine, graphs, first batches); the others after a mark.
  const delay = Math.round(mulberry32(o.seed)() * (need === 0 ? 4000 : 1500));
  const killed = await killAfter(args, () => marks() >= need, delay);
  const left = fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true }) as string[]).sort() : [];
  const locks = lockDirs.filter((d) => fs.existsSync(path.join(d, '.triplex.lock')));
  t.diagnostic(`seed ${o.seed}: ${killed ? `killed ${delay} ms after progress mark ${need} of ${totalMarks}` : `ended before the kill ${delay} ms after mark ${need}`}; left ${left.length} entries (${left.filter((n) => /safetensors|\.arrow$|json$/.test(n)).join(', ') || 'none'}); locks left in ${locks.length} folder(s)`);
  const rerun = await runCli(args);
  assert.equal(rerun.status, 0, `rerun after the kill ${delay} ms after mark ${need} failed:\n${rerun.output}`);
  // A killed run's lock is taken over, and the rerun says so.
  if (locks.length) assert.match(rerun.output, /took over the stale lock/);
  assert.deepEqual(temporaries(dir), [], `temporary files left after the rerun (kill ${delay} ms after mark ${need})`);
  for (const d of lockDirs) assert.equal(fs.existsSync(path.join(d, '.triplex.lock')), false, `${d}: lock left`);
  assert.deepEqual(digests(dir), o.reference, `not the uninterrupted run's bytes (kill ${delay} ms after mark ${need})`);
}

// Two runs at a time (each on one thread): the kills and reruns of two seeds overlap.
describe('killed runs resume to the bytes of an uninterrupted run', { concurrency: 2 }, () => {
  let tmp = '';
  const cvReference = () => path.join(tmp, 'reference', 'deeper', 'cv');
  let store = '';
  let bare = '';
  const reference = { extract: 0, cv: 0, fold: 0 };
  let cvFiles = new Map<string, string>();
  let foldFiles = new Map<string, string>();
  let featureFiles = new Map<string, string>();

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-crash-'));
    bare = path.join(tmp, 'bare');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), bare, { patients: 3, sectionsPerPatient: 2, gridSize: 4, genes: 40 }, 30);
    store = path.join(tmp, 'store');
    fs.cpSync(bare, store, { recursive: true });
    reference.extract = await timed(['extract', store]);
    featureFiles = digests(store);
    // The reference run at another depth than the reruns: nothing of where a run was is in its files.
    [reference.cv, reference.fold] = await Promise.all([
      timed(['cv', store, ...FAST, '--out', cvReference()]),
      timed(['train-fold', store, ...FAST, '--fold', '1', '--out', path.join(tmp, 'fold-ref')]),
    ]);
    cvFiles = digests(cvReference());
    foldFiles = digests(path.join(tmp, 'fold-ref'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // Each rerun below after a kill is also a second run in another folder (a copy of the store, a run
  // folder at another depth), compared byte for byte with the reference.
  test('checkpoints and predictions record no absolute path and no time; timings are kept apart', (t) => {
    t.diagnostic(`uninterrupted: extract ${reference.extract.toFixed(1)} s, cv ${reference.cv.toFixed(1)} s, train-fold ${reference.fold.toFixed(1)} s`);
    assert.equal([...featureFiles.keys()].filter((f) => f.startsWith('features') && f.endsWith('.arrow')).length, 6);
    for (const k of [0, 1, 2]) {
      const fold = path.join(cvReference(), `fold-${k}`);
      for (const name of ['best.safetensors', 'last.safetensors', 'predictions.arrow']) {
        const bytes = fs.readFileSync(path.join(fold, name)).toString('latin1');
        assert.equal(bytes.includes(tmp), false, `${name} names the folder ${tmp}`);
        assert.doesNotMatch(bytes, /seconds|spotsPerSecond|\d{4}-\d\d-\d\dT\d\d:/, `${name} records a time`);
      }
      const timings = JSON.parse(fs.readFileSync(path.join(fold, 'timings.json'), 'utf8')) as { epoch: number; seconds: number }[];
      assert.deepEqual(timings.map((e) => e.epoch), [0, 1]);
      assert.ok(timings.every((e) => e.seconds > 0));
    }
  });

  SEEDS.forEach((seed, index) => {
    test(`extract killed (seed ${seed})`, (t) => crashAndResume(t, {
      seed, index, reference: featureFiles,
      prepare: (name) => {
        const copy = path.join(tmp, `extract-${name}`);
        fs.cpSync(bare, copy, { recursive: true });
        return { args: ['extract', copy], dir: copy, lockDirs: [copy], marks: sectionsWritten(copy), totalMarks: 6 };
      },
    }));
  });

  SEEDS.forEach((seed, index) => {
    test(`train-fold killed (seed ${seed})`, (t) => crashAndResume(t, {
      seed, index, reference: foldFiles,
      prepare: (name) => {
        const out = path.join(tmp, `fold-${name}`);
        return { args: ['train-fold', store, ...FAST, '--fold', '1', '--out', out], dir: out, lockDirs: [out, path.join(out, 'fold-1')], marks: epochsDone(out), totalMarks: 3 };
      },
    }));
  });

  SEEDS.forEach((seed, index) => {
    test(`cv killed (seed ${seed})`, (t) => crashAndResume(t, {
      seed, index, reference: cvFiles,
      prepare: (name) => {
        const out = path.join(tmp, `cv-${name}`);
        return { args: ['cv', store, ...FAST, '--out', out], dir: out, lockDirs: [out, ...[0, 1, 2].map((k) => path.join(out, `fold-${k}`))], marks: epochsDone(out), totalMarks: 9 };
      },
    }));
  });
});
