import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { ResultsPanelHandle } from '../../src/webviews/resultsPanel';

/** "TRIPLEX: Open Results Table" in a real VS Code: the webview draws the runs and answers with typed messages. */

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
});
