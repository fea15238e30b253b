import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { DEFAULT_DISPLAY, type ViewerSavedState } from '../../src/protocol/webviews';
import type { SlideViewerHandle } from '../../src/webviews/slideViewer';
import { restoredRequest } from '../../src/webviews/viewerData';

/**
 * The slide viewer's host side in a real VS Code, on a small synthetic store made by the CLI: the
 * section switcher and the grid's genes answered, and a viewer reopened from the state its
 * webview saves (what the serializer does after a window reload), with the activation event that
 * lets VS Code call it.
 */

suite('Slide viewer in VS Code', function () {
  this.timeout(5 * 60_000);
  let store = '';
  let work = '';
  let extension: vscode.Extension<unknown> | undefined;

  suiteSetup(() => {
    extension = vscode.extensions.getExtension('triplex-notebooks.triplex-notebooks');
    assert.ok(extension);
    const cli = path.join(extension.extensionPath, 'dist', 'cli.js');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    work = path.join(folder, '.tmp', 'slide-viewer');
    fs.rmSync(work, { recursive: true, force: true });
    store = path.join(work, 'store');
    for (const args of [['synth', '--out', path.join(work, 'synthetic'), '--patients', '2', '--sections', '1', '--grid', '4'], ['preprocess', path.join(work, 'synthetic'), '--out', store]]) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
      assert.equal(r.status, 0, `triplex ${args.join(' ')}: ${r.stderr}`);
    }
  });
  suiteTeardown(() => fs.rmSync(work, { recursive: true, force: true }));

  test('switches section, answers a grid, and reopens from a saved state (the serializer\'s request) on the same section and gene', async () => {
    const within = <T>(p: Promise<T>, what: string) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what} within 60 s`)), 60_000))]);
    const pkg = extension!.packageJSON as { activationEvents: string[] };
    assert.ok(pkg.activationEvents.includes('onWebviewPanel:triplex.slideViewer'), 'VS Code would not activate the extension to restore a viewer');

    const manifest = JSON.parse(fs.readFileSync(path.join(store, 'store.json'), 'utf8')) as { sections: { id: string; spots: number }[] };
    const [a, b] = manifest.sections.map((s) => s.id);
    const viewer = await vscode.commands.executeCommand<SlideViewerHandle>('triplex.openSlideViewer', { store, section: a });
    assert.ok(viewer);
    await within(viewer.whenRendered(), 'the viewer drew nothing');
    await viewer.simulate('selectSection', { section: b });
    assert.deepEqual([viewer.section, viewer.spotIds.length], [b, manifest.sections[1].spots]);
    await viewer.simulate('selectSection', { section: '../elsewhere' }); // not a section of the store: ignored
    assert.equal(viewer.section, b);
    await viewer.simulate('selectGenes', { purpose: 'grid', genes: [viewer.genes[0], viewer.genes[1]] });
    await viewer.simulate('selectGene', { gene: viewer.genes[1] });
    await within(viewer.whenRendered(viewer.genes[1]), 'the viewer did not draw the second gene on the second section');
    viewer.panel.dispose();

    // What the webview saved; the serializer turns it into the same request and opens it.
    const saved: ViewerSavedState = { request: { store, section: b }, gene: viewer.genes[1], view: { scale: 0.3, tx: 5, ty: 5 }, display: DEFAULT_DISPLAY };
    const request = restoredRequest(saved);
    assert.ok(typeof request !== 'string', String(request));
    const reopened = await vscode.commands.executeCommand<SlideViewerHandle>('triplex.openSlideViewer', request);
    assert.ok(reopened);
    const drawn = await within(reopened.whenRendered(), 'the reopened viewer drew nothing');
    assert.deepEqual([reopened.section, drawn.gene], [b, viewer.genes[1]]);
    reopened.panel.dispose();
  });
});
