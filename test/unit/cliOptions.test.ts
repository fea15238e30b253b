import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';

/**
 * Option values are checked before any work, with the allowed range, and exit 2 (a usage
 * error): `--micro-batch 0` once failed with "divide by zero", `--epochs -1` was reported as an
 * interrupted run, and `--lr NaN` failed only after a whole epoch.
 */

const tmp = tempDir('options');
const store = path.join(tmp, 'store'); // never created: a bad option must stop before it is looked at
const out = path.join(tmp, 'out');
const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 60_000 });

const cases: Array<[string[], string, RegExp]> = [
  [['cv', store, '--micro-batch', '0'], '--micro-batch', /whole number of at least 1/],
  [['cv', store, '--epochs', '-1'], '--epochs', /whole number of at least 1/],
  [['cv', store, '--epochs', '2.5'], '--epochs', /whole number/],
  [['cv', store, '--batch', '1e3'], '--batch', /whole number/],
  [['cv', store, '--patience', ''], '--patience', /whole number/],
  [['cv', store, '--seed', '-3'], '--seed', /whole number from 0 to 4294967295/],
  [['cv', store, '--lr', 'NaN'], '--lr', /decimal number greater than 0 and at most 1/],
  [['cv', store, '--lr', '0'], '--lr', /greater than 0/],
  [['cv', store, '--lr', 'Infinity'], '--lr', /greater than 0/],
  [['cv', store, '--lr', '0x10'], '--lr', /greater than 0/],
  [['cv', store, '--validation', '1'], '--validation', /at least 0 and below 1/],
  [['train-fold', store, '--fold', 'x'], '--fold', /whole number of at least 0/],
  [['ablation', store, '--epochs', '0'], '--epochs', /whole number of at least 1/],
  [['extract', store, '--batch', '0'], '--batch', /whole number from 1 to 4096/],
  [['preprocess', store, '--out', out, '--genes', '0'], '--genes', /whole number of at least 1/],
  [['preprocess', store, '--out', out, '--min-spot-fraction', '2'], '--min-spot-fraction', /at least 0 and at most 1/],
  [['slide', 'x.jpg', '--out', out, '--spacing', '8'], '--spacing', /whole number of at least 16/],
  [['slide', 'x.jpg', '--out', out, '--min-tissue', 'NaN'], '--min-tissue', /at least 0 and at most 1/],
  [['--threads', '0', 'info'], '--threads', /whole number from 1 to 1024/],
  [['synth', '--out', out, '--patients', '27'], '--patients', /whole number from 1 to 26/],
  [['demo', '--dir', out, '--epochs', '0'], '--epochs', /whole number of at least 1/],
  [['cv', store, '--bogus'], '--bogus', /unknown option/],
];

describe('command-line options', () => {
  for (const [args, option, range] of cases) {
    test(`triplex ${args.map((a) => (a === store || a === out ? path.basename(a) : a)).join(' ')}: exit 2 naming ${option}`, () => {
      const r = cli(args);
      assert.equal(r.error, undefined);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.ok(r.stderr.includes(`'${option}`) || r.stderr.includes(option), r.stderr);
      assert.match(r.stderr, range);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(fs.readdirSync(tmp), [], 'nothing written');
    });
  }

  test('triplex --version prints the package version', () => {
    const r = cli(['--version']);
    assert.equal(r.status, 0, r.stderr);
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('a usage error prints its one line and where the help is, not the whole help', () => {
    for (const [args, message, help] of [
      [['frobnicate'], /unknown command 'frobnicate'/, /`triplex --help` lists its commands and options/],
      [['cv', store, '--bogus'], /unknown option '--bogus'/, /`triplex cv --help` lists its options/],
      [['dataset', 'inspect'], /missing required argument/, /`triplex dataset inspect --help` lists its options/],
    ] as const) {
      const r = cli([...args]);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr, help);
      assert.doesNotMatch(r.stderr, /Usage:|Commands:/, 'not the whole help');
      assert.ok(r.stderr.trim().split('\n').length <= 3, r.stderr);
    }
  });

  test('valid values still reach the command (exit 1 for the missing store, not 2)', () => {
    const r = cli(['cv', store, '--lr', '1e-3', '--epochs', '3', '--micro-batch', '8', '--validation', '0.2']);
    assert.equal(r.status, 1, r.stderr);
    assert.ok(r.stderr.includes(store), r.stderr);
  });
});
