import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { readArrowFile } from '../../src/runtime/store/arrow';
import { readCellRecord } from '../../src/runtime/executors/grid';
import { readGridState } from '../../src/runtime/executors/slurm';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { slurmSkipReason, startSlurmCluster, type SlurmCluster } from './helpers/slurmCluster';
import { repoRoot } from './helpers/paths';

/**
 * The grids on a real one-node Slurm cluster started by the test (slurmctld, slurmd, munged): a
 * 2-fold cv through --executor slurm gives the table --executor local gives with the same seeds;
 * a task cancelled with scancel is reported by cell, and the rerun submits only it and resumes it
 * from its checkpoint; --detach then `triplex collect` gives the same table; and the bad inputs.
 */

const cli = () => path.join(repoRoot(), 'dist', 'cli.js');
const FAST = ['--preset', 'demo', '--folds', 'kfold:2', '--epochs', '2', '--batch', '32', '--lr', '1e-3'];
const skip = slurmSkipReason();

describe('training grids on a one-node Slurm cluster', { skip }, () => {
  let tmp = '';
  let store = '';
  let cluster: SlurmCluster | undefined;
  let env: NodeJS.ProcessEnv = {};
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, [cli(), ...args], { encoding: 'utf8', env: { ...env, ...extra } });
  const slurmArgs = () => ['--executor', 'slurm', '--partition', cluster!.partition, '--poll', '0.5'];
  const results = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'results.json'), 'utf8')) as { summary: Record<string, { mean: number; std: number }>; perFold: Record<string, unknown>[] };
  /** The run's metrics, numerically: results.json's summary and folds, and every number of metrics_slides.arrow. */
  const sameTable = (a: string, b: string) => {
    assert.deepEqual(results(b).summary, results(a).summary);
    assert.deepEqual(results(b).perFold, results(a).perFold);
    assert.equal(readArrowFile(path.join(b, 'metrics_slides.arrow')).numRows, 6);
    const bytes = (dir: string) => fs.readFileSync(path.join(dir, 'metrics_slides.arrow'));
    assert.ok(bytes(a).equals(bytes(b)), 'metrics_slides.arrow differs');
  };
  let local = '';

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-slurm-'));
    cluster = startSlurmCluster(path.join(tmp, 'cluster'));
    env = { ...cluster.env, TRIPLEX_BACKEND: 'wasm' };
    await initCompute({});
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 2, gridSize: 6, genes: 60 }, 40);
    await extractFeatures(store, { encoder: 'resnet18' });
  });
  after(() => {
    cluster?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('a 2-fold cv through Slurm gives the table of the local executor, and records the job of each cell', () => {
    local = path.join(tmp, 'local');
    let t = performance.now();
    const l = run(['cv', store, ...FAST, '--out', local]);
    const localSeconds = (performance.now() - t) / 1000;
    assert.equal(l.status, 0, l.stderr);
    const out = path.join(tmp, 'slurm');
    t = performance.now();
    const s = run(['cv', store, ...FAST, '--out', out, ...slurmArgs()]);
    const slurmSeconds = (performance.now() - t) / 1000;
    assert.equal(s.status, 0, s.stdout + s.stderr);
    console.log(`2-fold cv (demo preset, 2 epochs): local ${localSeconds.toFixed(1)} s, through Slurm ${slurmSeconds.toFixed(1)} s`);
    assert.match(s.stdout, /submitted Slurm job array \d+ \(2 cells: triplex\/fold-0, triplex\/fold-1\)/);
    assert.match(s.stdout, /triplex \(frozen\)\s+\d/);
    sameTable(local, out);
    const job = readGridState(out)!.submissions[0].job;
    assert.deepEqual([0, 1].map((k) => readCellRecord(path.join(out, `fold-${k}`))?.job), [`${job}_0`, `${job}_1`]);
    assert.deepEqual([0, 1].map((k) => readCellRecord(path.join(local, `fold-${k}`))?.executor), ['local', 'local']);
    // Everything done: a rerun submits nothing and gathers the same table.
    const again = run(['cv', store, ...FAST, '--out', out, ...slurmArgs()]);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /every cell of .* is done/);
    assert.doesNotMatch(again.stdout, /submitted/);
  });

  test('a task cancelled with scancel is reported by cell; the rerun submits only it and resumes it from its checkpoint', async () => {
    const out = path.join(tmp, 'cancelled');
    const args = ['cv', store, ...FAST, '--epochs', '6', '--patience', '6', '--out', out, ...slurmArgs()];
    const child = spawn(process.execPath, [cli(), ...args], { env });
    let output = '';
    child.stdout.on('data', (d: Buffer) => { output += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { output += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    // Fold 1's first checkpoint, then its task is cancelled.
    const checkpoint = path.join(out, 'fold-1', 'last.safetensors');
    const until = Date.now() + 120_000;
    while (!fs.existsSync(checkpoint)) {
      assert.ok(Date.now() < until, `no checkpoint in fold 1 after 2 minutes:\n${output}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const job = readGridState(out)!.submissions[0].job;
    cluster!.run('scancel', [`${job}_1`]);
    assert.equal(await exited, 1, output);
    assert.match(output, new RegExp(`triplex/fold-1: task ${job}_1 ended CANCELLED`));
    assert.match(output, /1 of 2 cells did not finish \(triplex\/fold-1\); run the same command again/);
    assert.ok(readCellRecord(path.join(out, 'fold-0')), 'fold 0 finished');
    assert.equal(readCellRecord(path.join(out, 'fold-1')), undefined);

    const rerun = run(args);
    assert.equal(rerun.status, 0, rerun.stdout + rerun.stderr);
    assert.match(rerun.stdout, /submitted Slurm job array (\d+) \(1 cell: triplex\/fold-1\)/);
    assert.match(rerun.stdout, /\[triplex\/fold-1\] fold 1: resuming after epoch [1-9]\d* from the last checkpoint/);
    const state = readGridState(out)!;
    assert.deepEqual(state.submissions.map((s) => s.cells), [['triplex/fold-0', 'triplex/fold-1'], ['triplex/fold-1']]);
    assert.equal(readCellRecord(path.join(out, 'fold-1'))?.job, `${state.submissions[1].job}_0`);
    assert.equal(readCellRecord(path.join(out, 'fold-0'))?.job, `${job}_0`);
  });

  test('--detach returns at once; status shows the cells and collect gathers the same table', () => {
    const out = path.join(tmp, 'detached');
    const d = run(['cv', store, ...FAST, '--out', out, ...slurmArgs(), '--detach']);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /detached: `triplex status .*` shows the cells/);
    assert.equal(fs.existsSync(path.join(out, 'results.json')), false);
    const s = run(['status', out]);
    assert.equal(s.status, 0, s.stderr);
    assert.match(s.stdout, /triplex\/fold-0\s+(pending|running|done)/);
    assert.match(s.stdout, /of 2 done/);
    const c = run(['collect', out]);
    assert.equal(c.status, 0, c.stdout + c.stderr);
    assert.match(c.stdout, /triplex \(frozen\)\s+\d/);
    sameTable(local, out);
    assert.match(run(['status', out]).stdout, /2 of 2 done/);
  });

  test('train-fold --executor slurm (the editor\'s Train Fold) passes the task\'s JSON progress on and scores the fold', () => {
    const out = path.join(tmp, 'one-fold');
    // Looks 15 s apart: the task starts and ends between two of them, so its lines are all relayed from a finished task's log.
    const r = run(['train-fold', store, '--fold', '1', ...FAST, '--out', out, ...slurmArgs(), '--poll', '15', '--progress', 'json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /submitted Slurm job array (\d+) \(1 cell: triplex\/fold-1\)/);
    const epochs = r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { event: string; fold: number }).filter((e) => e.event === 'epoch');
    assert.deepEqual(epochs.map((e) => e.fold), [1, 1]);
    assert.match(r.stdout, /fold 1: MSE \d/);
    assert.equal(readCellRecord(path.join(out, 'fold-1'))?.executor, 'slurm');
  });

  test('a grid larger than the cluster\'s MaxArraySize goes in chunks, every cell submitted once', () => {
    const out = path.join(tmp, 'chunks');
    const r = run(['ablation', store, '--variants', 'tem,nem,gem', ...FAST, '--out', out, ...slurmArgs(), '--detach']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /arrays of at most 2 tasks \(MaxArraySize\): submitting 6 cells in 3 arrays/);
    const state = readGridState(out)!;
    assert.deepEqual(state.submissions.map((s) => s.cells), [['tem/fold-0', 'tem/fold-1'], ['nem/fold-0', 'nem/fold-1'], ['gem/fold-0', 'gem/fold-1']]);
    cluster!.run('scancel', [state.submissions[0].probe, ...state.submissions.map((s) => s.job)]);
  });

  test('bad input: a partition that does not exist, Slurm options without --executor slurm, a folder never submitted', () => {
    const p = run(['cv', store, ...FAST, '--out', path.join(tmp, 'bad'), ...slurmArgs(), '--partition', 'nope']);
    assert.equal(p.status, 1);
    assert.match(p.stderr, /--partition nope: no such Slurm partition on this cluster; it has triplex/);
    const u = run(['cv', store, ...FAST, '--out', path.join(tmp, 'bad'), '--partition', 'triplex']);
    assert.equal(u.status, 2);
    assert.match(u.stderr, /--partition is for --executor slurm/);
    const c = run(['collect', path.join(tmp, 'bad')]);
    assert.equal(c.status, 1);
    assert.match(c.stderr, /no slurm\.json; status and collect are for a run submitted with --executor slurm/);
  });
});

test('--executor slurm without sbatch on the PATH says what to do', () => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-nosbatch-'));
  try {
    const r = spawnSync(process.execPath, [cli(), 'cv', store, '--executor', 'slurm'], { encoding: 'utf8', env: { ...process.env, PATH: store } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /`sbatch` is not on the PATH; run the command on a login node of the cluster .* or use --executor local/);
  } finally {
    fs.rmSync(store, { recursive: true, force: true });
  }
});
