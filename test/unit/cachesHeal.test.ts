import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { extractFeatures } from '../../src/runtime/features/extract';
import { readArrowFile, vectorColumn } from '../../src/runtime/store/arrow';
import { removePartials } from '../../src/runtime/store/atomic';
import { relativeError } from './helpers/compare';
import { inflateArrowFooterMetadata } from './helpers/fuzz';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * What a killed or damaged run leaves behind: a features file cut short (extract once answered
 * "re-run the step that writes it", which is extract itself) and `*.partial-*` files from a
 * writer killed mid-write (up to 82 MB for a checkpoint) that a resume never removed.
 */

const cli = (args: string[], timeout = 300_000) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout, killSignal: 'SIGKILL', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
/** The pid of a process that has ended: the writer of a stale partial. */
const deadPid = () => spawnSync(process.execPath, ['-e', '']).pid;

describe('caches heal', () => {
  const tmp = tempDir('heal');
  const store = path.join(tmp, 'store');
  let dir = '';
  let original: Float32Array;

  before(async () => {
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 2, sectionsPerPatient: 1, gridSize: 3, genes: 20 }, 10);
    dir = (await extractFeatures(store, { encoder: 'resnet18' })).dir;
    original = vectorColumn(readArrowFile(path.join(dir, 'A1.arrow')), 'global').values;
  });

  test('a features file cut short is moved aside, said so, and computed again', async () => {
    const file = path.join(dir, 'A1.arrow');
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 1000));
    const summary = await extractFeatures(store, { encoder: 'resnet18' });
    assert.deepEqual(summary.sections.map((s) => s.status), ['extracted', 'cached']);
    assert.equal(summary.warnings.length, 1);
    assert.ok(summary.warnings[0].startsWith(`${file} could not be read`) && /moved aside to .*A1\.arrow\.unreadable-\d+ and computed again/.test(summary.warnings[0]), summary.warnings[0]);
    const aside = fs.readdirSync(dir).filter((f) => f.startsWith('A1.arrow.unreadable-'));
    assert.equal(aside.length, 1);
    assert.equal(fs.statSync(path.join(dir, aside[0])).size, 1000);
    assert.ok(relativeError(vectorColumn(readArrowFile(file), 'global').values, original) < 1e-6);
  });

  test('a damaged chunk of an interrupted section is removed and computed again', async () => {
    const file = path.join(dir, 'B1.arrow');
    fs.rmSync(file);
    fs.mkdirSync(`${file}.chunks`);
    fs.writeFileSync(path.join(`${file}.chunks`, '00000.arrow'), 'ARROW1 and then nothing');
    const summary = await extractFeatures(store, { encoder: 'resnet18', sections: ['B1'] });
    assert.equal(summary.sections[0].status, 'extracted');
    assert.match(summary.warnings.join('\n'), /00000\.arrow could not be read .*removed and computed again/);
    assert.ok(fs.existsSync(file) && !fs.existsSync(`${file}.chunks`));
  });

  test('a features file whose footer claims 2^31 entries (a loop in apache-arrow) is moved aside and computed again', { timeout: 120_000 }, () => {
    const file = path.join(dir, 'A1.arrow');
    inflateArrowFooterMetadata(file);
    // In a child with a time limit: a loop cannot be caught inside the process that spins.
    const r = cli(['extract', store], 60_000);
    assert.equal(r.signal, null, 'extract did not end within 60 s');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: .*A1\.arrow could not be read \(damaged metadata: a list of 2147483647 entries.*\); moved aside/);
    assert.ok(relativeError(vectorColumn(readArrowFile(file), 'global').values, original) < 1e-6);
  });

  test('triplex extract prints the warning and ends well', { timeout: 300_000 }, () => {
    const file = path.join(dir, 'B1.arrow');
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 2000));
    const r = cli(['extract', store]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /warning: .*B1\.arrow could not be read .*moved aside/);
    assert.doesNotMatch(r.stdout + r.stderr, /re-run the step that writes it/);
  });
});

describe('leftovers of a killed run', () => {
  const tmp = tempDir('partials');

  test('only partials whose writer has ended are removed', async () => {
    const dead = deadPid();
    fs.writeFileSync(path.join(tmp, `best.safetensors.partial-${dead}-1`), 'half');
    fs.writeFileSync(path.join(tmp, `last.safetensors.partial-${process.ppid}-1`), 'being written');
    assert.deepEqual(await removePartials(tmp), [`best.safetensors.partial-${dead}-1`]);
    assert.deepEqual(fs.readdirSync(tmp), [`last.safetensors.partial-${process.ppid}-1`]);
  });

  test('cv removes them from the run and fold folders when it resumes', { timeout: 600_000 }, async () => {
    const store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synth'), store, { patients: 3, sectionsPerPatient: 1, gridSize: 3, genes: 20 }, 10);
    await extractFeatures(store, { encoder: 'resnet18' });
    const out = path.join(tmp, 'run');
    const dead = deadPid();
    const stale = [path.join(out, `results.json.partial-${dead}-7`), path.join(out, 'fold-0', `last.safetensors.partial-${dead}-8`)];
    for (const f of stale) {
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.writeFileSync(f, Buffer.alloc(1000));
    }
    const r = cli(['cv', store, '--preset', 'demo', '--epochs', '1', '--batch', '32', '--lr', '1e-3', '--out', out, '--json']);
    assert.equal(r.status, 0, r.stderr);
    // --json: the summary as one line on stdout (the progress went to stderr).
    const summary = JSON.parse(r.stdout) as { run: string; aborted: boolean; folds: unknown[]; summary: { pccM: { mean: number | null } } };
    assert.equal(summary.run, out);
    assert.equal(summary.aborted, false);
    assert.equal(summary.folds.length, 3);
    assert.ok('mean' in summary.summary.pccM, JSON.stringify(summary.summary));
    const left = fs.readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => /\.partial-/.test(f));
    assert.deepEqual(left, []);
  });
});
