import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainFoldRun } from '../../src/commands/trainFold';
import { openFromRenderer } from '../../src/notebook/register';
import { onPath } from '../../src/runtime/executors/slurmTools';

/**
 * "TRIPLEX: Train Fold" in a real VS Code, on a small synthetic store made by the CLI: a run to
 * the end (its results open), a cancelled run (its last checkpoint kept, nothing half-written),
 * and a refused run (the reason reported).
 */

const FAST = ['--batch', '32', '--lr', '1e-3', '--init', 'mean-bias', '--standardize-inputs', '--patience', '50'];

suite('Train fold in VS Code', function () {
  this.timeout(10 * 60_000);
  let store = '';
  let work = '';

  suiteSetup(() => {
    const extension = vscode.extensions.getExtension('triplex-notebooks.triplex-notebooks');
    assert.ok(extension);
    const cli = path.join(extension.extensionPath, 'dist', 'cli.js');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    work = path.join(folder, '.tmp', 'train-fold');
    fs.rmSync(work, { recursive: true, force: true });
    store = path.join(work, 'store');
    for (const args of [
      ['synth', '--out', path.join(work, 'synthetic'), '--patients', '3', '--sections', '2', '--grid', '6'],
      ['preprocess', path.join(work, 'synthetic'), '--out', store],
      ['extract', store],
    ]) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
      assert.equal(r.status, 0, `triplex ${args.join(' ')}: ${r.stderr}`);
    }
  });
  suiteTeardown(() => fs.rmSync(work, { recursive: true, force: true }));

  test('trains a fold to the end, then opens its predictions in the slide viewer and its metrics in the table', async () => {
    const run = await vscode.commands.executeCommand<TrainFoldRun>('triplex.trainFold', { store, variant: 'tem', fold: 0, mode: 'frozen', epochs: 2, preset: 'demo', extraArgs: FAST });
    assert.ok(run);
    const outcome = await run.done;
    assert.equal(outcome.status, 'done', outcome.message);
    for (const f of ['best.safetensors', 'last.safetensors', 'history.json', 'predictions.arrow']) assert.ok(fs.existsSync(path.join(run.outDir, 'fold-0', f)), `no fold-0/${f}`);
    assert.ok(outcome.results, 'the results table did not open');
    assert.equal((await outcome.results.rendered).rows, 1);
    outcome.results.panel.dispose();

    // The slide viewer opened on the fold's test section with its predictions: it draws the
    // first gene, switches gene, and answers a click on a spot with its crop and neighbour view.
    const viewer = outcome.viewer;
    assert.ok(viewer, 'the slide viewer did not open');
    const within = <T>(p: Promise<T>, what: string) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within 30 s`)), 30_000))]);
    const first = await within(viewer.whenRendered(), 'the viewer drew nothing');
    assert.equal(first.gene, viewer.genes[0]);
    assert.ok(fs.existsSync(path.join(store, 'viewer', viewer.section, 'tiles', 'slide.dzi')), 'no tile pyramid');
    await viewer.simulate('selectGene', { gene: viewer.genes[1] });
    const second = await within(viewer.whenRendered(viewer.genes[1]), 'the viewer did not draw the second gene');
    assert.ok(second.ms >= 0);
    await viewer.simulate('spotClicked', { spotId: viewer.spotIds[0] });
    const spots = path.join(store, 'viewer', viewer.section, 'spots');
    assert.deepEqual(fs.readdirSync(spots).sort(), [`${viewer.spotIds[0]}-crop.png`, `${viewer.spotIds[0]}-neighbors.png`]);
    assert.deepEqual(viewer.received.filter((m) => 'gene' in m).map((m) => (m as { gene: string }).gene).slice(0, 2), [viewer.genes[0], viewer.genes[1]]);
    viewer.panel.dispose();
  });

  test('a gene map\'s "Open in slide viewer" (renderer message) opens the viewer; a forged message is ignored', async () => {
    const predictions = path.join(store, 'runs', 'tem-frozen', 'fold-0', 'predictions.arrow');
    const log = vscode.window.createOutputChannel('test');
    const section = JSON.parse(fs.readFileSync(path.join(store, 'store.json'), 'utf8')).sections[0].id as string;
    assert.equal(await openFromRenderer({ type: 'openSlideViewer', store: '/nowhere', section, gene: 'x' }, log), false);
    assert.equal(await openFromRenderer({ type: 'runShell', store, section, gene: 'x' }, log), false);
    assert.equal(await openFromRenderer({ type: 'openSlideViewer', store, section, gene: 'whatever', predictions }, log), true);
    const tabs = vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview && t.label === `${section}: slide viewer`);
    assert.equal(tabs.length, 1);
    await vscode.window.tabGroups.close(tabs);
    log.dispose();
  });

  test('cancelling keeps the last good checkpoint and leaves no half-written file', async () => {
    const run = await vscode.commands.executeCommand<TrainFoldRun>('triplex.trainFold', { store, variant: 'tem', fold: 1, mode: 'frozen', epochs: 500, preset: 'demo', extraArgs: FAST });
    assert.ok(run);
    const last = path.join(run.outDir, 'fold-1', 'last.safetensors');
    const end = Date.now() + 120_000;
    while (!fs.existsSync(last) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
    assert.ok(fs.existsSync(last), 'no checkpoint after two minutes');
    run.cancel();
    const outcome = await run.done;
    assert.equal(outcome.status, 'cancelled', outcome.message);
    assert.equal(outcome.exitCode, 130);
    const history = JSON.parse(fs.readFileSync(path.join(run.outDir, 'fold-1', 'history.json'), 'utf8')) as unknown[];
    assert.ok(history.length >= 1 && history.length < 500, `${history.length} epochs`);
    const files = fs.readdirSync(path.join(run.outDir, 'fold-1'));
    assert.deepEqual(files.filter((f) => /partial|\.tmp/.test(f)), [], 'a half-written file was left');
    assert.ok(fs.statSync(last).size > 1000);
  });

  test('a run the trainer refuses ends as failed, with its reason', async () => {
    // Fine-tuning the target encoder of a model without a target view.
    const run = await vscode.commands.executeCommand<TrainFoldRun>('triplex.trainFold', { store, variant: 'nem', fold: 0, mode: 'full', epochs: 1, preset: 'demo' });
    assert.ok(run);
    const outcome = await run.done;
    assert.equal(outcome.status, 'failed');
    assert.match(outcome.message, /mode full fine-tunes the target encoder, but this configuration has no target view/);
  });

  test('from the palette: six questions (seven where sbatch is on the PATH), each offering the choice made last time first', async () => {
    // The run above is the workspace's last choice; accepting every first offer must repeat it.
    // Where sbatch is on the PATH a seventh asks where to train, this machine first.
    const questions = onPath('sbatch') ? 7 : 6;
    const started = vscode.commands.executeCommand<TrainFoldRun | undefined>('triplex.trainFold');
    for (let step = 0; step < questions; step++) {
      await new Promise((r) => setTimeout(r, 700));
      await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    }
    const run = await started;
    assert.ok(run, 'the questions were not answered');
    assert.deepEqual({ ...run.request, store: path.resolve(run.request.store) }, { store: path.resolve(store), variant: 'nem', fold: 0, mode: 'full', preset: 'demo', epochs: 1, executor: 'local' });
    assert.equal((await run.done).status, 'failed');
  });
});
