import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { RESTRICTED_MODE_MESSAGE } from '../../src/notebook/controller';
import type { NotebookApi } from '../../src/notebook/register';
import { STDERR } from '../../src/notebook/nbformat';

/** In an untrusted workspace, notebooks open but cells do not run. */

const EXTENSION_ID = 'triplex-notebooks.triplex-notebooks';

suite('TRIPLEX notebooks in Restricted Mode', () => {
  test('the workspace is untrusted and the extension still activates', async () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const extension = vscode.extensions.getExtension<NotebookApi>(EXTENSION_ID);
    assert.ok(extension);
    await extension.activate();
    assert.equal(extension.isActive, true);
  });

  test('a cell does not run: VS Code asks for trust first, and our controller refuses too', async () => {
    const api = (await vscode.extensions.getExtension<NotebookApi>(EXTENSION_ID)?.activate()) as NotebookApi;
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    const marker = path.join(folder, 'ran.txt');
    fs.rmSync(marker, { force: true });
    const source = `require("fs").writeFileSync(${JSON.stringify(marker)}, "x");\n1`;
    const data = new vscode.NotebookData([new vscode.NotebookCellData(vscode.NotebookCellKind.Code, source, 'typescript')]);
    const nb = await vscode.workspace.openNotebookDocument(api.notebookType, data);
    const editor = await vscode.window.showNotebookDocument(nb);
    await vscode.commands.executeCommand('notebook.selectKernel', { notebookEditor: editor, id: api.controllerId, extension: EXTENSION_ID });
    // VS Code answers a run in Restricted Mode with its "Do you trust the authors?" dialog (which
    // the test workbench refuses to show, as a user would decline); the cell must not run. If it
    // ever reaches our controller, the controller ends it with RESTRICTED_MODE_MESSAGE instead.
    void vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: 0, end: 1 }], document: nb.uri });
    await new Promise((r) => setTimeout(r, 5000));
    const cell = nb.cellAt(0);
    const items = cell.outputs.flatMap((o) => o.items);
    assert.equal(fs.existsSync(marker), false, 'the cell ran');
    assert.notEqual(cell.executionSummary?.success, true);
    assert.ok(!items.some((i) => i.mime === 'text/plain'), 'the cell produced a value');
    const said = items.filter((i) => i.mime === STDERR).map((i) => new TextDecoder().decode(i.data)).join('');
    assert.ok(said === '' || said === RESTRICTED_MODE_MESSAGE, said);
  });
});
