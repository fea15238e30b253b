import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { ComputeReport } from '../../src/runtime/compute/report';

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
});
