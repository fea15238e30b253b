import { after, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from './helpers/paths';

/**
 * The main job, `triplex demo`, from nothing in a fresh folder: synthetic data, preprocessing,
 * features, and the cross-validation of TRIPLEX, TEM, NEM and GEM with the paper's metrics.
 * (How long it takes is reported by the run and by the closing notes, not asserted here.)
 */

describe('the demo from nothing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-demo-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('generates, preprocesses, extracts and cross-validates four models, printing their metrics', (t) => {
    const r = spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), 'demo', '--dir', dir], { encoding: 'utf8' });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const rows = new Map<string, number[]>();
    for (const line of r.stdout.split('\n')) {
      const m = /^(triplex|tem|nem|gem)\s+(.*)$/.exec(line);
      if (!m) continue;
      const numbers = [...m[2].matchAll(/(-?\d+\.\d+) ± (-?\d+\.\d+)/g)].map((x) => Number(x[1]));
      if (numbers.length === 4) rows.set(m[1], numbers);
    }
    assert.deepEqual([...rows.keys()], ['triplex', 'tem', 'nem', 'gem'], r.stdout);
    for (const [model, [mse, mae, pccM, pccH]] of rows) {
      assert.ok(mse > 0 && mae > 0 && Number.isFinite(pccM) && pccH >= pccM, `${model}: ${[mse, mae, pccM, pccH]}`);
      const results = JSON.parse(fs.readFileSync(path.join(dir, 'runs', model, 'results.json'), 'utf8'));
      assert.equal(results.perFold.length, 4, `${model}: one fold per patient`);
    }
    const verdict = r.stdout.split('\n').find((l) => l.startsWith('TRIPLEX is'));
    assert.ok(verdict, 'the demo says how TRIPLEX compares with the single-view models');
    // The data is built so that every view carries expression the others lack: fused, TRIPLEX must
    // beat each single-view model on PCC(M) (the unrounded means of results.json).
    const pccM = (model: string) => JSON.parse(fs.readFileSync(path.join(dir, 'runs', model, 'results.json'), 'utf8')).summary.pccM.mean as number;
    for (const single of ['tem', 'nem', 'gem']) assert.ok(pccM('triplex') > pccM(single), `TRIPLEX PCC(M) ${pccM('triplex')} is not above ${single.toUpperCase()}'s ${pccM(single)}`);
    const took = /done in ([\d.]+) s/.exec(r.stdout)?.[1];
    t.diagnostic(`${verdict} PCC(M): ${[...rows].map(([m, v]) => `${m} ${v[2]}`).join(', ')}; the demo took ${took} s`);
  });
});
