import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ERROR, STDERR, STDOUT } from '../../src/notebook/nbformat';
import type { NotebookApi } from '../../src/notebook/register';
import { TriplexSerializer } from '../../src/notebook/serializer';
import { MIME, SVG_MIME, type GeneMapPayload, type MetricsPayload, type TablePayload } from '../../src/protocol/outputs';

/**
 * TRIPLEX notebooks in a real VS Code: cells run through the controller in the kernel process,
 * with their text and rich outputs, errors, the queue, interrupts, restarts, saving, and the
 * quick-start notebook end to end.
 */

const EXTENSION_ID = 'triplex-notebooks.triplex-notebooks';
const decoder = new TextDecoder();

let api: NotebookApi;

async function waitFor<T>(what: string, probe: () => T | undefined | false, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function openNotebook(cells: (string | [string, string])[]): Promise<vscode.NotebookDocument> {
  const data = new vscode.NotebookData(cells.map((c) => {
    const [source, language] = typeof c === 'string' ? [c, 'typescript'] : c;
    return language === 'markdown'
      ? new vscode.NotebookCellData(vscode.NotebookCellKind.Markup, source, 'markdown')
      : new vscode.NotebookCellData(vscode.NotebookCellKind.Code, source, language);
  }));
  const notebook = await vscode.workspace.openNotebookDocument(api.notebookType, data);
  await useKernel(notebook);
  return notebook;
}

async function useKernel(notebook: vscode.NotebookDocument): Promise<void> {
  const editor = await vscode.window.showNotebookDocument(notebook);
  await vscode.commands.executeCommand('notebook.selectKernel', { notebookEditor: editor, id: api.controllerId, extension: EXTENSION_ID });
}

/**
 * Runs code cells [start, end) and waits until each has finished, or until one has failed and
 * those before it have finished (the queue cancels the rest).
 */
async function run(notebook: vscode.NotebookDocument, start: number, end = start + 1, ms = 60_000): Promise<void> {
  const cells = notebook.getCells().slice(start, end).filter((c) => c.kind === vscode.NotebookCellKind.Code);
  const before = cells.map((c) => c.executionSummary?.timing?.endTime ?? 0);
  const finished = (i: number) => (cells[i].executionSummary?.timing?.endTime ?? 0) > before[i];
  await vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start, end }], document: notebook.uri });
  await waitFor(`cells ${start + 1} to ${end} to finish`, () => {
    for (let i = 0; i < cells.length; i++) {
      if (!finished(i)) return false;
      if (cells[i].executionSummary?.success === false) return true;
    }
    return true;
  }, ms);
}

const items = (cell: vscode.NotebookCell) => cell.outputs.flatMap((o) => o.items);
const textOf = (cell: vscode.NotebookCell, mime = 'text/plain') => items(cell).filter((i) => i.mime === mime).map((i) => decoder.decode(i.data)).join('');
const jsonOf = <T>(cell: vscode.NotebookCell, mime: string): T => {
  const item = items(cell).find((i) => i.mime === mime);
  assert.ok(item, `cell ${cell.index + 1} has no ${mime} output; it has ${items(cell).map((i) => i.mime).join(', ') || 'none'}:\n${textOf(cell, STDOUT)}${textOf(cell, STDERR)}${textOf(cell, ERROR)}`);
  return JSON.parse(decoder.decode(item.data)) as T;
};
const errorOf = (cell: vscode.NotebookCell) => {
  const item = items(cell).find((i) => i.mime === ERROR);
  return item ? JSON.parse(decoder.decode(item.data)) as { name: string; message: string; stack: string } : undefined;
};

suite('TRIPLEX notebooks in VS Code', () => {
  suiteSetup(async () => {
    const extension = vscode.extensions.getExtension<NotebookApi>(EXTENSION_ID);
    assert.ok(extension);
    api = await extension.activate();
  });

  // Editors stay open between tests: in code-server, showing a notebook right after closing
  // others sometimes waits 30 s for the editor.
  test('cells run in order in one kernel: names persist, top-level await, streamed text, the value, order and duration', async () => {
    const nb = await openNotebook([
      'const base = await new Promise<number>((resolve) => setTimeout(() => resolve(20), 20));',
      'function twice(n: number): number { return 2 * n; }\nconsole.log("base is", base);\ntwice(base) + 2',
      ['[base, typeof twice]', 'javascript'],
    ]);
    await run(nb, 0, 3);
    const [a, b, c] = nb.getCells();
    assert.deepEqual([a, b, c].map((x) => x.executionSummary?.success), [true, true, true]);
    assert.deepEqual([a, b, c].map((x) => x.executionSummary?.executionOrder), [1, 2, 3]);
    assert.ok((b.executionSummary?.timing?.endTime ?? 0) >= (b.executionSummary?.timing?.startTime ?? Infinity), 'no duration');
    assert.equal(textOf(b, STDOUT), 'base is 20\n');
    assert.equal(textOf(b), '42');
    assert.equal(textOf(c), "[ 20, 'function' ]");
    assert.equal(a.outputs.length, 0);
  });

  test('output appears in the cell while the cell is still running', async () => {
    const nb = await openNotebook(['console.log("first");\nawait new Promise((r) => setTimeout(r, 3000));\nconsole.log("second");']);
    const running = vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: 0, end: 1 }], document: nb.uri });
    const cell = nb.cellAt(0);
    await waitFor('the first line', () => textOf(cell, STDOUT) === 'first\n', 10_000);
    assert.equal(cell.executionSummary?.timing?.endTime, undefined, 'the cell had already ended');
    await running;
    await waitFor('the cell to end', () => cell.executionSummary?.success === true);
    assert.equal(textOf(cell, STDOUT), 'first\nsecond\n');
  });

  test('an error shows its message and a stack with the cell\'s own line; the cells queued after it are cancelled', async () => {
    const nb = await openNotebook([
      'const ok = 1;',
      '// line 1\nconst values: number[] = [1, 2];\nif (values.length > 1) {\n  throw new TypeError(`too many: ${values.length}`);\n}',
      'console.log("must not run")',
    ]);
    await run(nb, 0, 3);
    const [, failed, after] = nb.getCells();
    assert.equal(failed.executionSummary?.success, false);
    const error = errorOf(failed);
    assert.ok(error, 'no error output');
    assert.equal(error.name, 'TypeError');
    assert.equal(error.message, 'too many: 2');
    assert.match(error.stack, /at Cell 2:4:9/);
    assert.equal(after.outputs.length, 0);
    assert.notEqual(after.executionSummary?.success, true);
  });

  test('rich outputs: an Arrow table, a metrics table and an image, with text fallbacks', async () => {
    const nb = await openNotebook([
      'import { tableFromArrays } from "apache-arrow";\nimport { metricsOutput, imageOutput } from "triplex";',
      'tableFromArrays({ spot: Array.from({ length: 60 }, (_, i) => `s${i}`), value: Float32Array.from({ length: 60 }, (_, i) => i / 4) })',
      'const m = (mean: number) => ({ mean, std: 0.01 });\nmetricsOutput([{ model: "tem", summary: { folds: 3, mse: m(0.3), mae: m(0.4), pccM: m(0.2), pccH: m(0.5) } }, { model: "triplex", summary: { folds: 3, mse: m(0.25), mae: m(0.41), pccM: m(0.3), pccH: m(0.6) } }])',
      'await imageOutput({ rgb: new Uint8Array(4 * 4 * 3).fill(200), width: 4, height: 4 }, "grey")',
    ]);
    await run(nb, 0, 4);
    const cells = nb.getCells();
    assert.deepEqual(cells.map((c) => c.executionSummary?.success), [true, true, true, true]);
    const table = jsonOf<TablePayload>(cells[1], MIME.table);
    assert.equal(table.totalRows, 60);
    assert.deepEqual(table.rows[5], ['s5', 1.25]);
    assert.match(textOf(cells[1]), /^spot\s+value\ns0\s+0\n/);
    const metrics = jsonOf<MetricsPayload>(cells[2], MIME.metrics);
    assert.deepEqual(metrics.rows.map((r) => r.model), ['tem', 'triplex']);
    assert.match(textOf(cells[2]), /PCC\(M\)/);
    // the static renderings for Jupyter and GitHub: SVG as text, its PNG as bytes
    assert.deepEqual(items(cells[2]).map((i) => i.mime), [MIME.metrics, SVG_MIME, 'image/png', 'text/plain']);
    assert.match(textOf(cells[2], SVG_MIME), /^<svg [^>]*><title>cross-validation<\/title>/);
    const figurePng = items(cells[2]).find((i) => i.mime === 'image/png');
    assert.ok(figurePng && figurePng.data[1] === 0x50 && figurePng.data[2] === 0x4e, 'no PNG of the metrics figure');
    const image = items(cells[3]).find((i) => i.mime === 'image/png');
    assert.ok(image && image.data[1] === 0x50 && image.data[2] === 0x4e, 'no PNG output');
  });

  test('the stop button asks a cell to stop (notebook.signal); a loop that never yields ends the kernel, and the next run starts a new one', async () => {
    const nb = await openNotebook([
      'const kept = "still here";\nlet turns = 0;',
      'while (true) {\n  notebook.checkInterrupted();\n  turns++;\n  await new Promise((r) => setTimeout(r, 10));\n}',
      'kept',
      'while (true) {}',
      'typeof kept',
    ]);
    await run(nb, 0);
    const cells = nb.getCells();
    const looping = vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: 1, end: 2 }], document: nb.uri });
    await new Promise((r) => setTimeout(r, 1000));
    await vscode.commands.executeCommand('notebook.cell.cancelExecution', { ranges: [{ start: 1, end: 2 }], document: nb.uri });
    await looping;
    await waitFor('the loop to stop', () => cells[1].executionSummary?.success === false);
    assert.match(errorOf(cells[1])?.message ?? '', /Cell 2 was interrupted/);
    await run(nb, 2);
    assert.equal(textOf(cells[2]), 'still here', 'the kernel lost its variables after a cooperative stop');

    const spinning = vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: 3, end: 4 }], document: nb.uri });
    await new Promise((r) => setTimeout(r, 1000));
    await vscode.commands.executeCommand('notebook.cell.cancelExecution', { ranges: [{ start: 3, end: 4 }], document: nb.uri });
    await spinning;
    await waitFor('the kernel to be ended', () => cells[3].executionSummary?.success === false, 15_000);
    assert.match(errorOf(cells[3])?.message ?? '', /did not stop within 3 s .* the kernel process was ended/);
    await run(nb, 4);
    assert.equal(textOf(cells[4]), 'undefined');
    assert.equal(cells[4].executionSummary?.executionOrder, 1, 'a new kernel counts from 1');
  });

  test('completion offers the live properties of a value and the exports of \'triplex\'', async () => {
    // Names made at run time, written nowhere in the notebook: only the kernel can know them.
    const nb = await openNotebook(["const sample = Object.fromEntries([['al' + 'pha', 1], ['be' + 'ta', () => 2]]);", 'sample.', "import { cross } from 'triplex';"]);
    await run(nb, 0);
    const labels = async (cell: number, line: number, character: number) => {
      const list = await vscode.commands.executeCommand<vscode.CompletionList>('vscode.executeCompletionItemProvider', nb.cellAt(cell).document.uri, new vscode.Position(line, character), '.');
      return list.items.map((i) => (typeof i.label === 'string' ? i.label : i.label.label));
    };
    const members = await labels(1, 0, 'sample.'.length);
    assert.ok(members.includes('alpha') && members.includes('beta'), members.slice(0, 20).join(', '));
    const exports = await labels(2, 0, 'import { cross'.length);
    assert.ok(exports.includes('crossValidate') && exports.includes('geneMapOutput'), exports.slice(0, 20).join(', '));
  });

  test('"TRIPLEX: Restart Kernel" forgets the variables', async () => {
    const nb = await openNotebook(['const before = 1;', 'typeof before']);
    await run(nb, 0);
    await vscode.commands.executeCommand('triplex.restartKernel');
    await run(nb, 1);
    assert.equal(textOf(nb.cellAt(1)), 'undefined');
  });

  test('a kernel that crashes is reported in the cell, and the next run starts a fresh one', async () => {
    const nb = await openNotebook(['process.exit(7)', '"alive"']);
    await run(nb, 0);
    assert.equal(nb.cellAt(0).executionSummary?.success, false);
    assert.match(errorOf(nb.cellAt(0))?.message ?? '', /exited with code 7/);
    await run(nb, 1);
    assert.equal(textOf(nb.cellAt(1)), 'alive');
  });

  test('outputs survive save and reopen (nbformat on disk)', async () => {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    const file = path.join(folder, '.tmp', 'saved.triplexnb');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
    try {
      const uri = vscode.Uri.file(file);
      const nb = await vscode.workspace.openNotebookDocument(uri);
      const edit = new vscode.WorkspaceEdit();
      edit.set(uri, [vscode.NotebookEdit.insertCells(0, [
        new vscode.NotebookCellData(vscode.NotebookCellKind.Markup, '# Saved', 'markdown'),
        new vscode.NotebookCellData(vscode.NotebookCellKind.Code, 'import { tableFromArrays } from "apache-arrow";\nconsole.log("hello");\ntableFromArrays({ g: ["ERBB2"] })', 'typescript'),
      ])]);
      assert.ok(await vscode.workspace.applyEdit(edit));
      await useKernel(nb);
      await run(nb, 1);
      assert.ok(await nb.save());
      const saved = JSON.parse(fs.readFileSync(file, 'utf8')) as { nbformat: number; cells: { cell_type: string; outputs?: { output_type: string; data?: Record<string, unknown> }[] }[] };
      assert.equal(saved.nbformat, 4);
      assert.deepEqual(saved.cells.map((c) => c.cell_type), ['markdown', 'code']);
      assert.deepEqual(saved.cells[1].outputs?.map((o) => o.output_type), ['stream', 'display_data']);
      assert.deepEqual((saved.cells[1].outputs?.[1].data?.[MIME.table] as TablePayload).rows, [['ERBB2']]);

      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
      const reopened = new TriplexSerializer().deserializeNotebook(fs.readFileSync(file));
      const cell = reopened.cells[1];
      assert.deepEqual(cell.outputs?.map((o) => o.items.map((i) => i.mime)), [[STDOUT], [MIME.table, 'text/plain']]);
      assert.equal(cell.executionSummary?.executionOrder, 1);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
  });

  test('the quick-start notebook runs end to end', async function () {
    this.timeout(15 * 60_000);
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    assert.ok(folder);
    const work = path.join(folder, 'triplex-quickstart');
    fs.rmSync(work, { recursive: true, force: true });
    try {
      const nb = await vscode.commands.executeCommand<vscode.NotebookDocument>('triplex.openQuickStart');
      await useKernel(nb);
      const code = nb.getCells().filter((c) => c.kind === vscode.NotebookCellKind.Code);
      await run(nb, 0, nb.cellCount, 14 * 60_000);
      const failed = code.filter((c) => c.executionSummary?.success !== true);
      assert.deepEqual(failed.map((c) => `cell ${c.index + 1}: ${JSON.stringify(errorOf(c) ?? textOf(c, STDERR))}`), []);
      const shown = (mime: string) => code.find((c) => items(c).some((i) => i.mime === mime));
      assert.ok(shown(MIME.table), 'no spot table');
      // images of their own (figures also carry a PNG of their SVG, for Jupyter)
      const outputs = code.flatMap((c) => c.outputs);
      assert.equal(outputs.filter((o) => o.items.some((i) => i.mime === 'image/png') && !o.items.some((i) => i.mime === SVG_MIME)).length, 2, 'no spot crop and neighbour view');
      for (const mime of [MIME.metrics, MIME.curve, MIME.geneMap]) {
        const figure = outputs.find((o) => o.items.some((i) => i.mime === mime));
        assert.deepEqual(figure?.items.map((i) => i.mime), [mime, SVG_MIME, 'image/png', 'text/plain'], `${mime} carries its SVG and PNG`);
      }
      const metrics = jsonOf<MetricsPayload>(shown(MIME.metrics) ?? code[0], MIME.metrics);
      assert.deepEqual(metrics.rows.map((r) => r.model), ['tem', 'triplex']);
      assert.ok(metrics.rows.every((r) => r.values.every((v) => Number.isFinite(v.mean))), JSON.stringify(metrics.rows));
      assert.ok(shown(MIME.curve), 'no training curve');
      const map = jsonOf<GeneMapPayload>(shown(MIME.geneMap) ?? code[0], MIME.geneMap);
      assert.deepEqual(map.panels.map((p) => p.title), ['ground truth', 'prediction', 'error (prediction - truth)']);
      assert.ok(map.x.length > 10 && Number.isFinite(map.pcc), `gene map of ${map.x.length} spots, PCC ${map.pcc}`);
    } finally {
      fs.rmSync(work, { recursive: true, force: true });
    }
  });
});
