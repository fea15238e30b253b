import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { SlideViewerHandle } from '../../src/webviews/slideViewer';
import { readCategoryColumns } from '../../src/runtime/store/categories';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';

/**
 * The slide viewer's selection messages handled by the extension in a real VS Code: "Save as
 * category" writes the store's categories.arrow (read back here), "Export CSV" writes the spot ids
 * to the request's destination, and a bad name or a spot of another section writes nothing.
 */

suite('Slide viewer selections in VS Code', function () {
  this.timeout(5 * 60_000);
  let work = '';
  let store = '';

  suiteSetup(() => {
    const extension = vscode.extensions.getExtension('triplex-notebooks.triplex-notebooks');
    assert.ok(extension);
    const cli = path.join(extension.extensionPath, 'dist', 'cli.js');
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    work = path.join(folder, '.tmp', 'viewer-selection');
    fs.rmSync(work, { recursive: true, force: true });
    store = path.join(work, 'store');
    for (const args of [['synth', '--out', path.join(work, 'synthetic'), '--patients', '2', '--sections', '1', '--grid', '6'], ['preprocess', path.join(work, 'synthetic'), '--out', store]]) {
      const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
      assert.equal(r.status, 0, `triplex ${args.join(' ')}: ${r.stderr}`);
    }
  });
  suiteTeardown(() => fs.rmSync(work, { recursive: true, force: true }));

  test('save as category, export CSV, and refusals', async () => {
    const csv = path.join(work, 'picked.csv');
    const viewer = await vscode.commands.executeCommand<SlideViewerHandle>('triplex.openSlideViewer', { store, csvDestination: csv });
    assert.ok(viewer);
    await Promise.race([viewer.whenRendered(), new Promise((_, reject) => setTimeout(() => reject(new Error('the viewer drew nothing within 60 s')), 60_000))]);
    const picked = viewer.spotIds.slice(0, 3);

    await viewer.simulate('saveCategory', { name: 'region', label: 'tumour', spotIds: picked });
    const opened = openDatasetStore(store); // its manifest's checksums hold
    const region = readCategoryColumns(opened, opened.rowsOf(viewer.section)).find((c) => c.name === 'region');
    assert.deepEqual(region?.values, viewer.spotIds.map((id) => (picked.includes(id) ? 'tumour' : null)));

    await viewer.simulate('exportSelection', { spotIds: picked });
    assert.equal(fs.readFileSync(csv, 'utf8'), ['section,spot_id', ...picked.map((id) => `${viewer.section},${id}`)].join('\n') + '\n');

    const categories = fs.readFileSync(path.join(store, 'categories.arrow'));
    await viewer.simulate('saveCategory', { name: '../x', label: '', spotIds: picked });
    await viewer.simulate('saveCategory', { name: 'other', label: '', spotIds: ['no-such-spot'] });
    assert.deepEqual(fs.readFileSync(path.join(store, 'categories.arrow')), categories, 'a refused save changed the store');
    viewer.panel.dispose();
  });
});
