import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { H5adExportOutcome } from '../../src/commands/h5adExportTask';
import type { ResultsPanelHandle } from '../../src/webviews/resultsPanel';
import { writePredictedRun } from '../unit/helpers/predictedRun';
import { TORCH_PYTHON } from '../unit/helpers/torch';

/**
 * "TRIPLEX: Open Results Table" in a real VS Code: the webview draws the runs and answers with
 * typed messages; a run exports as AnnData ("TRIPLEX: Export as AnnData (.h5ad)", which the
 * table's per-run button runs too).
 */

function writeRun(dir: string, variant: string, means: number[]): void {
  fs.mkdirSync(dir, { recursive: true });
  const keys = ['mse', 'mae', 'pccM', 'pccH'];
  fs.writeFileSync(path.join(dir, 'results.json'), JSON.stringify({
    variant, mode: 'frozen', folds: 'lopo',
    summary: Object.fromEntries(keys.map((k, i) => [k, { mean: means[i], std: 0.01 }])),
    perFold: [0, 1].map((fold) => ({ fold, slides: 2, ...Object.fromEntries(keys.map((k, i) => [k, means[i]])) })),
    aborted: false,
  }));
}

suite('The results table in VS Code', () => {
  test('opens on a folder of runs, draws them (typed message back), and exports CSV and Markdown', async () => {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    const root = path.join(folder, '.tmp', 'runs');
    fs.rmSync(root, { recursive: true, force: true });
    writeRun(path.join(root, 'tem'), 'tem', [0.3, 0.4, 0.2, 0.5]);
    writeRun(path.join(root, 'triplex'), 'triplex', [0.25, 0.41, 0.3, 0.55]);
    try {
      const handle = await vscode.commands.executeCommand<ResultsPanelHandle>('triplex.openResults', root);
      assert.ok(handle, 'no panel');
      const html = handle.panel.webview.html;
      assert.match(html, /default-src 'none'/);
      const nonce = /script-src 'nonce-([^']+)'/.exec(html)?.[1];
      assert.ok(nonce && nonce.length >= 16 && html.includes(`<script nonce="${nonce}"`), 'the script is not tied to a nonce');
      assert.doesNotMatch(html, /unsafe-eval|script-src[^;]*unsafe-inline/);

      const rendered = await Promise.race([handle.rendered, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the table did not report being drawn within 20 s')), 20_000))]);
      assert.deepEqual(rendered, { rows: 2, best: [0, 1, 0, 0] });

      const csv = await handle.exportTo('csv', vscode.Uri.file(path.join(root, 'table.csv')));
      assert.ok(csv);
      assert.match(fs.readFileSync(csv.fsPath, 'utf8'), /^variant,group,mode,folds,MSE mean/);
      const md = await handle.exportTo('markdown', vscode.Uri.file(path.join(root, 'table.md')));
      assert.ok(md);
      assert.match(fs.readFileSync(md.fsPath, 'utf8'), /\| triplex \| \*\*0\.250 ± 0\.010\*\* \|/);
      handle.panel.dispose();
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  test('"Export as AnnData (.h5ad)" on a run folder, the file given: a valid .h5ad that anndata reads, holding the run\'s predictions', async function () {
    this.timeout(3 * 60_000);
    const extension = vscode.extensions.getExtension('triplex-notebooks.triplex-notebooks');
    assert.ok(extension);
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    const work = path.join(folder, '.tmp', 'export-h5ad');
    fs.rmSync(work, { recursive: true, force: true });
    const store = path.join(work, 'store');
    const cli = path.join(extension.extensionPath, 'dist', 'cli.js');
    try {
      for (const args of [
        ['synth', '--out', path.join(work, 'synthetic'), '--patients', '2', '--sections', '1', '--grid', '4'],
        ['preprocess', path.join(work, 'synthetic'), '--out', store, '--genes', '10'],
      ]) {
        const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } });
        assert.equal(r.status, 0, `triplex ${args.join(' ')}: ${r.stderr}`);
      }
      const run = path.join(store, 'runs', 'tem');
      const { predicted } = await writePredictedRun(store, run);
      const out = path.join(work, 'tem.h5ad');

      const outcome = await vscode.commands.executeCommand<H5adExportOutcome>('triplex.exportH5ad', vscode.Uri.file(run), out);
      assert.ok(outcome, 'the command asked instead of exporting');
      assert.equal(outcome.status, 'done', outcome.message);
      assert.equal(outcome.file, out);
      assert.deepEqual([...fs.readFileSync(out).subarray(0, 8)], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a], 'no HDF5 signature');
      const read = spawnSync(TORCH_PYTHON, ['-c', [
        'import sys, json, anndata, numpy as np',
        'a = anndata.read_h5ad(sys.argv[1])',
        "print(json.dumps({'shape': list(a.shape), 'X': np.asarray(a.X, dtype=np.float64).ravel().tolist(), 'sections': sorted(a.uns['spatial'].keys())}))",
      ].join('\n'), out], { encoding: 'utf8', maxBuffer: 16 << 20 });
      assert.equal(read.status, 0, `anndata could not read ${out}: ${read.stderr}`);
      const a = JSON.parse(read.stdout) as { shape: number[]; X: number[]; sections: string[] };
      const sections = (JSON.parse(fs.readFileSync(path.join(store, 'store.json'), 'utf8')) as { sections: { id: string }[] }).sections.map((s) => s.id);
      const expected = sections.flatMap((id) => Array.from(predicted(id)));
      assert.deepEqual(a.shape, [expected.length / 10, 10]);
      assert.deepEqual(a.X, expected);
      assert.deepEqual(a.sections, [...sections].sort());
      assert.deepEqual(fs.readdirSync(work).filter((f) => f.includes('.partial-')), []);

      // A run the export refuses (no store.json where its results.json points): reported, nothing written.
      fs.rmSync(path.join(store, 'store.json'));
      const refused = await vscode.commands.executeCommand<H5adExportOutcome>('triplex.exportH5ad', run, path.join(work, 'refused.h5ad'));
      assert.equal(refused?.status, 'failed');
      assert.match(refused.message, /the run's store is not there \(no store\.json\)/);
      assert.equal(fs.existsSync(path.join(work, 'refused.h5ad')), false);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
