import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { extractFeatures } from '../../src/runtime/features/extract';
import { acquireLock, LOCK_NAME, LockedError } from '../../src/runtime/store/lock';
import { crossValidate } from '../../src/runtime/train/cv';
import { trainFold } from '../../src/runtime/train/trainer';
import type { TrainingData } from '../../src/runtime/train/data';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * Concurrent writers: a second extract on a store, or a second cv / train-fold on a run folder,
 * once interleaved its files with the first's. Each now takes `<dir>/.triplex.lock` (pid, host,
 * start time, command) and a second one refuses at once, naming the first; a lock whose process
 * has ended is taken over, saying so; the lock goes when the run ends, however it ends.
 */

const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
/** The pid of a process that has ended. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid!;

/** A second process that takes the lock of `dir` as a triplex run would (its own pid) and waits until killed. */
async function holder(dir: string): Promise<ChildProcess> {
  const script = `
    const fs = require('fs'), os = require('os'), path = require('path');
    fs.mkdirSync(${JSON.stringify(dir)}, { recursive: true });
    fs.writeFileSync(path.join(${JSON.stringify(dir)}, ${JSON.stringify(LOCK_NAME)}),
      JSON.stringify({ pid: process.pid, host: os.hostname(), started: new Date().toISOString(), command: 'triplex extract' }), { flag: 'wx' });
    console.log('locked');
    setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  process.once('exit', () => child.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder ended with ${code}`)));
  });
  return child;
}
const stop = async (child: ChildProcess) => {
  const ended = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await ended;
};

describe('one writer per folder', () => {
  const tmp = tempDir('locks');
  const store = path.join(tmp, 'store');

  before(async () => {
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 2, sectionsPerPatient: 1, gridSize: 3, genes: 20 }, 10);
  });

  test('a lock held in this process refuses a second take, naming the pid, and is free again once released', () => {
    const dir = path.join(tmp, 'own');
    const lock = acquireLock(dir, 'triplex cv');
    const content = JSON.parse(fs.readFileSync(path.join(dir, LOCK_NAME), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(content).sort(), ['command', 'host', 'pid', 'started']);
    assert.equal(content.pid, process.pid);
    assert.equal(content.host, os.hostname());
    assert.throws(() => acquireLock(dir, 'triplex cv'), (e: Error) => e instanceof LockedError && e.message.includes(`pid ${process.pid} on ${os.hostname()}`) && e.message.includes('triplex cv'));
    lock.release();
    lock.release();
    assert.deepEqual(fs.readdirSync(dir), [], 'no lock and no temporary file left');
    acquireLock(dir, 'triplex cv').release();
  });

  test('extract refuses at once while another process holds the store, naming its pid; the holder\'s lock is left alone', async () => {
    const child = await holder(store);
    try {
      const t0 = performance.now();
      await assert.rejects(extractFeatures(store, { encoder: 'resnet18' }), (e: Error) => {
        assert.match(e.message, new RegExp(`triplex extract: .*store is in use by triplex extract \\(pid ${child.pid} on ${os.hostname()}, started \\d{4}-`));
        return true;
      });
      assert.ok(performance.now() - t0 < 2000, 'fails fast');
      const r = cli(['extract', store]);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`is in use by triplex extract \\(pid ${child.pid}`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(JSON.parse(fs.readFileSync(path.join(store, LOCK_NAME), 'utf8')).pid, child.pid);
      assert.ok(!fs.existsSync(path.join(store, 'features')), 'nothing was written');
    } finally {
      await stop(child);
    }
  });

  test('cv, train-fold and a fold\'s training refuse while another process holds the run folder', async () => {
    const out = path.join(tmp, 'run');
    const child = await holder(out);
    try {
      const byPid = (e: Error) => e instanceof LockedError && e.message.includes(`pid ${child.pid} on ${os.hostname()}`);
      await assert.rejects(crossValidate({ storeDir: store, outDir: out }), (e: Error) => byPid(e) && e.message.startsWith('triplex cv: '));
      await assert.rejects(crossValidate({ storeDir: store, outDir: out, onlyFolds: [0] }), (e: Error) => byPid(e) && e.message.startsWith('triplex train-fold (fold 0): '));
      await assert.rejects(trainFold({} as TrainingData, { config: {} as never, mode: 'frozen', train: [], validation: [], outDir: out }), byPid);
      for (const args of [['cv', store, '--out', out], ['train-fold', store, '--fold', '0', '--out', out]]) {
        const r = cli(args);
        assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`is in use by triplex extract \\(pid ${child.pid}`), args[0]);
      }
      assert.deepEqual(fs.readdirSync(out), [LOCK_NAME], 'nothing else was written');
    } finally {
      await stop(child);
    }
  });

  test('a stale lock (its process has ended) is taken over, said so, and the run ends without a lock', { timeout: 300_000 }, async () => {
    const dead = deadPid();
    fs.writeFileSync(path.join(store, LOCK_NAME), JSON.stringify({ pid: dead, host: os.hostname(), started: '2026-01-01T00:00:00.000Z', command: 'triplex extract' }));
    const summary = await extractFeatures(store, { encoder: 'resnet18' });
    assert.match(summary.warnings.join('\n'), new RegExp(`took over the stale lock .*${LOCK_NAME} of triplex extract \\(pid ${dead} .*no longer runs`));
    assert.ok(!fs.existsSync(path.join(store, LOCK_NAME)), 'released after success');
    fs.writeFileSync(path.join(store, LOCK_NAME), JSON.stringify({ pid: deadPid(), host: os.hostname(), started: 'then', command: 'triplex extract' }));
    const r = cli(['extract', store]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: took over the stale lock/);
    assert.ok(!fs.existsSync(path.join(store, LOCK_NAME)));
  });

  test('a temporary lock file of a process killed while taking the lock is removed', () => {
    const dir = path.join(tmp, 'temps');
    fs.mkdirSync(dir);
    const dead = `${LOCK_NAME}.${deadPid()}-1.tmp`;
    const live = `${LOCK_NAME}.${process.ppid}-1.tmp`;
    fs.writeFileSync(path.join(dir, dead), '{}');
    fs.writeFileSync(path.join(dir, live), '{}');
    acquireLock(dir, 'triplex cv').release();
    assert.deepEqual(fs.readdirSync(dir), [live]);
  });

  test('a lock of another host is not judged: refused, naming that host', () => {
    const dir = path.join(tmp, 'remote');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, LOCK_NAME), JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', started: 'then', command: 'triplex cv' }));
    assert.throws(() => acquireLock(dir, 'triplex cv'), /in use by triplex cv \(pid \d+ on elsewhere\.example, started then\)/);
  });

  test('the lock is released after an error and after a cancel (Ctrl-C)', async () => {
    await assert.rejects(extractFeatures(store, { encoder: path.join(tmp, 'no-such-encoder.onnx') }));
    assert.ok(!fs.existsSync(path.join(store, LOCK_NAME)), 'released after an error');
    const out = path.join(tmp, 'failed-run');
    await assert.rejects(crossValidate({ storeDir: path.join(tmp, 'no-store'), outDir: out }));
    assert.ok(!fs.existsSync(path.join(out, LOCK_NAME)), 'cv released after an error');
    // A section left to compute, and the signal already tripped: extract stops at its first check.
    const features = fs.readdirSync(path.join(store, 'features')).map((d) => path.join(store, 'features', d));
    for (const d of features) fs.rmSync(path.join(d, 'A1.arrow'), { force: true });
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(extractFeatures(store, { encoder: 'resnet18', signal: controller.signal }), /cancelled/);
    assert.ok(!fs.existsSync(path.join(store, LOCK_NAME)), 'released after a cancel');
  });

  test('triplex extract interrupted by SIGINT leaves no lock', { timeout: 300_000 }, async () => {
    fs.rmSync(path.join(store, 'features'), { recursive: true, force: true });
    const child = spawn(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), 'extract', store], { stdio: 'ignore', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
    const lock = path.join(store, LOCK_NAME);
    const t0 = Date.now();
    while (!fs.existsSync(lock) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
    assert.ok(fs.existsSync(lock), 'extract took the lock');
    child.kill('SIGINT');
    const code = await new Promise((resolve) => child.once('exit', (c, s) => resolve(c ?? s)));
    assert.ok(!fs.existsSync(lock), `no lock left after SIGINT (exit ${String(code)})`);
    assert.notEqual(code, 0, "the run was interrupted, not finished");
  });
});
