import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { SyntheticStoreOutcome } from '../../src/commands/syntheticStore';
import type { ComputeReport } from '../../src/runtime/compute/report';
import { engineLabel, type StatusSnapshot } from '../../src/statusBar';

const EXTENSION_ID = 'triplex-notebooks.triplex-notebooks';
const COMMAND = 'triplex.showComputeInfo';
const BACKENDS: readonly string[] = ['tensorflow', 'wasm', 'cpu'];

suite('TRIPLEX Notebooks in VS Code', () => {
  test('runs in VS Code 1.100 with the test workspace open', () => {
    assert.ok(vscode.version.startsWith('1.100'), `expected VS Code 1.100.x, got ${vscode.version}`);
    assert.deepEqual(vscode.workspace.workspaceFolders?.map((folder) => folder.name), ['workspace']);
  });

  test('the extension is present and activates', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension, `extension ${EXTENSION_ID} is not loaded`);
    await extension.activate();
    assert.equal(extension.isActive, true);
  });

  test(`${COMMAND} is registered`, async () => {
    const commands = await vscode.commands.getCommands(true);
    assert.ok(commands.includes(COMMAND), `${COMMAND} is not among the registered commands`);
  });

  test(`${COMMAND} returns the compute report of the CLI`, async () => {
    const report = await vscode.commands.executeCommand<ComputeReport>(COMMAND);
    assert.ok(report && typeof report === 'object', `${COMMAND} returned ${JSON.stringify(report)}`);
    assert.ok(BACKENDS.includes(report.backend), `unexpected backend ${JSON.stringify(report.backend)}`);
    assert.ok(Number.isInteger(report.threads) && report.threads >= 1, `threads should be >= 1, got ${report.threads}`);
    assert.ok(Array.isArray(report.engines), `engines should be an array, got ${JSON.stringify(report.engines)}`);
    assert.ok(
      report.engines.some((engine) => engine.name === '@tensorflow/tfjs-node'),
      `no @tensorflow/tfjs-node entry in engines: ${JSON.stringify(report.engines.map((engine) => engine.name))}`,
    );
  });

  test('the triplex.computeBackend setting forces a backend', async () => {
    const config = vscode.workspace.getConfiguration('triplex');
    await config.update('computeBackend', 'cpu', vscode.ConfigurationTarget.Global);
    try {
      const report = await vscode.commands.executeCommand<ComputeReport>(COMMAND);
      assert.equal(report.backend, 'cpu');
      assert.equal(report.requested, 'cpu');
    } finally {
      await config.update('computeBackend', undefined, vscode.ConfigurationTarget.Global);
    }
    const report = await vscode.commands.executeCommand<ComputeReport>(COMMAND);
    assert.equal(report.requested, 'auto');
  });

  test('the walkthrough: four steps, each with a command link to a registered command and its markdown', async () => {
    const extension = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(extension);
    const walkthroughs = (extension.packageJSON as { contributes: { walkthroughs?: { id: string; steps: { id: string; description: string; media: { markdown?: string } }[] }[] } }).contributes.walkthroughs;
    const walkthrough = walkthroughs?.find((w) => w.id === 'triplex.gettingStarted');
    assert.ok(walkthrough, 'no triplex.gettingStarted walkthrough');
    assert.deepEqual(walkthrough.steps.map((s) => s.id), ['openDemoNotebook', 'makeSyntheticStore', 'trainFold', 'openSlideViewer']);
    const commands = await vscode.commands.getCommands(true);
    for (const step of walkthrough.steps) {
      const links = [...step.description.matchAll(/\(command:([\w.]+)\)/g)].map((m) => m[1]);
      assert.equal(links.length, 1, `step ${step.id} has ${links.length} command links`);
      assert.ok(commands.includes(links[0]), `step ${step.id} links to ${links[0]}, which is not registered`);
      assert.ok(step.media.markdown && fs.readFileSync(path.join(extension.extensionPath, step.media.markdown), 'utf8').startsWith('# '), `step ${step.id}: no markdown`);
    }
    assert.ok(commands.includes('triplex.getStarted'));
    await vscode.commands.executeCommand('triplex.getStarted'); // opens the walkthrough
  });

  test('the status bar names the engine that triplex info reports, and shows a background run while it runs', async function () {
    this.timeout(180_000);
    const status = () => vscode.commands.executeCommand<StatusSnapshot>('triplex.showStatus', { quiet: true });
    const until = async (what: string, ok: (s: StatusSnapshot) => boolean, ms: number) => {
      const end = Date.now() + ms;
      for (let s = await status(); ; s = await status()) {
        if (ok(s)) return s;
        if (Date.now() > end) throw new Error(`the status bar never showed ${what}; last: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const report = await vscode.commands.executeCommand<ComputeReport>(COMMAND);
    const idle = await until('the engine', (s) => s.engine !== undefined, 60_000);
    assert.equal(idle.engine, engineLabel(report));
    assert.equal(idle.text, `$(chip) TRIPLEX: ${engineLabel(report)}`);
    assert.deepEqual(idle.runs, []);

    // A background run: the synthetic store (small), shown while it runs and gone when it ends.
    const folder = path.join(vscode.workspace.workspaceFolders![0].uri.fsPath, '.tmp', 'status-synthetic');
    fs.rmSync(folder, { recursive: true, force: true });
    try {
      const made = vscode.commands.executeCommand<SyntheticStoreOutcome>('triplex.makeSyntheticStore', { folder, patients: 2, sections: 1, grid: 3 });
      const busy = await until('the run', (s) => s.runs.length === 1, 30_000);
      assert.equal(busy.runs[0].title, 'Synthetic store');
      assert.match(busy.text, /^\$\(sync~spin\) TRIPLEX: .+ · Synthetic store: \d\/3: /);
      assert.match(busy.tooltip, /Synthetic store: \d\/3: /);
      const outcome = await made;
      assert.equal(outcome.status, 'done', outcome.message);
      assert.ok(fs.existsSync(path.join(outcome.store, 'store.json')), 'no store');
      assert.ok(fs.readdirSync(outcome.store).some((f) => /feature/i.test(f)), `no features in ${fs.readdirSync(outcome.store).join(', ')}`);
      const after = await status();
      assert.deepEqual(after.runs, []);
      assert.equal(after.text, idle.text);
      // A second time into the same folder is refused, saying why (nothing overwritten).
      const again = await vscode.commands.executeCommand<SyntheticStoreOutcome>('triplex.makeSyntheticStore', { folder });
      assert.equal(again.status, 'failed');
      assert.match(again.message, /already holds/);
    } finally {
      fs.rmSync(folder, { recursive: true, force: true });
    }
  });
});
