import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { startCli } from '../../src/commands/cliProcess';
import { extractFeatures } from '../../src/runtime/features/extract';
import { repoRoot } from './helpers/paths';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * onnxruntime-node failing to load, for real: the bundled CLI is run from a folder whose
 * node_modules holds a copy of onnxruntime-node with a broken native binding (a file that is not a
 * shared object), the other packages found through NODE_PATH. TF.js takes over, and `triplex info`,
 * the demo's first lines and Train Fold's log (the same child process and arguments as the
 * command, through src/commands/cliProcess.ts) each say so in one line.
 */

const WHY = /TF\.js: onnxruntime is unavailable \(installed but failed to load its native binding: .*onnxruntime_binding\.node: .+\)/;

describe('onnxruntime-node failing to load', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-no-ort-'));
  const app = path.join(tmp, 'app');
  const cli = path.join(app, 'dist', 'cli.js');
  const env = { ...process.env, NODE_PATH: path.join(repoRoot(), 'node_modules') };
  let store = '';
  before(async () => {
    const real = path.join(repoRoot(), 'node_modules', 'onnxruntime-node');
    const broken = path.join(app, 'node_modules', 'onnxruntime-node');
    fs.mkdirSync(path.join(app, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(repoRoot(), 'dist', 'cli.js'), cli);
    fs.cpSync(path.join(real, 'dist'), path.join(broken, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(real, 'package.json'), path.join(broken, 'package.json'));
    const binding = path.join(broken, 'bin', 'napi-v6', process.platform, process.arch, 'onnxruntime_binding.node');
    fs.mkdirSync(path.dirname(binding), { recursive: true });
    fs.writeFileSync(binding, 'not a shared object\n');
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 1, gridSize: 4, genes: 20 }, 12);
    await extractFeatures(store, { encoder: 'resnet18' });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('`triplex info` names TF.js as the engine, and why, in one line (and in --json)', () => {
    const json = spawnSync(process.execPath, [cli, 'info', '--json'], { env, encoding: 'utf8' });
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { engine: { training: string; inference: string; detail: string }; engines: { name: string; available: boolean }[] };
    assert.equal(report.engine.training, 'tfjs');
    assert.equal(report.engine.inference, 'tfjs');
    assert.match(report.engine.detail, new RegExp(`^${WHY.source}$`));
    assert.equal(report.engines.find((e) => e.name === 'onnxruntime-node')?.available, false);
    const text = spawnSync(process.execPath, [cli, 'info'], { env, encoding: 'utf8' });
    assert.equal(text.status, 0, text.stderr);
    assert.equal(text.stdout.split('\n').filter((l) => WHY.test(l) && /^training\s+tfjs/.test(l)).length, 1, text.stdout);
  });

  test("the demo's first lines say so, before anything runs", async () => {
    const child = spawn(process.execPath, [cli, 'demo', '--dir', path.join(tmp, 'demo'), '--models', 'tem', '--epochs', '1'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    try {
      for await (const line of readline.createInterface({ input: child.stdout })) {
        lines.push(line);
        if (line.startsWith('engine:') || lines.length >= 4) break;
      }
    } finally {
      child.kill('SIGKILL');
    }
    assert.match(lines[0], /^compute: /, lines.join('\n'));
    assert.match(lines[1] ?? '', new RegExp(`^engine: ${WHY.source}$`), lines.join('\n'));
  });

  test("Train Fold's log says so in one line, and the fold trains on TF.js", async () => {
    const out = path.join(tmp, 'run');
    // The arguments src/commands/trainFold.ts gives the process it starts.
    const args = ['train-fold', store, '--fold', '0', '--model', 'triplex', '--mode', 'frozen', '--epochs', '1', '--preset', 'demo', '--out', out, '--progress', 'json'];
    const log: string[] = [];
    let progress = 0;
    const child = startCli(app, args, { NODE_PATH: env.NODE_PATH }, (line) => {
      if (line.startsWith('{')) { progress++; return true; }
      log.push(line);
    });
    const { code } = await child.exited;
    assert.equal(code, 0, log.join('\n'));
    assert.equal(log.filter((l) => WHY.test(l)).length, 1, log.join('\n'));
    assert.match(log.find((l) => WHY.test(l))!, new RegExp(`^engine: ${WHY.source}$`));
    assert.ok(progress > 0, 'progress events came');
    assert.ok(fs.existsSync(path.join(out, 'fold-0', 'best.safetensors')), 'the fold trained and kept its checkpoint');
  });
});
