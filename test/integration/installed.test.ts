import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { ERROR, STDERR, STDOUT } from '../../src/notebook/nbformat';
import type { NotebookApi } from '../../src/notebook/register';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import type { StatusSnapshot } from '../../src/statusBar';

/**
 * The .vsix that `npm run package` makes for this platform, installed by code-server's
 * --install-extension (scripts/vscode-tests/run.mjs, the "installed package" pass): what it
 * carries, its activation, its CLI and a notebook cell, all from the installed copy.
 */

const EXTENSION_ID = 'triplex-notebooks.triplex-notebooks';
const decoder = new TextDecoder();
const target = `${process.platform}/${process.arch}`;

/** Runs the installed copy's bin/triplex.js (asynchronously: the extension host stays responsive). */
function cli(extensionPath: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(extensionPath, 'bin', 'triplex.js'), ...args], { encoding: 'utf8', env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`triplex ${args.join(' ')} (installed copy) failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Relative paths of every file under `dir`. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)).split(path.sep).join('/'));
}

suite('The installed package', function () {
  this.timeout(5 * 60_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-installed-'));
  suiteTeardown(() => fs.rmSync(work, { recursive: true, force: true }));

  test('installs from the .vsix, activates, and runs its CLI and a notebook cell from the installed copy', async () => {
    const extensionsDir = process.env.TRIPLEX_TEST_INSTALLED;
    assert.ok(extensionsDir && fs.existsSync(extensionsDir), 'run through scripts/vscode-tests/run.mjs (TRIPLEX_TEST_PASS=installed)');
    const extension = vscode.extensions.getExtension<NotebookApi>(EXTENSION_ID);
    assert.ok(extension, `${EXTENSION_ID} is not installed`);
    const home = extension.extensionPath;
    assert.ok(!path.relative(fs.realpathSync(extensionsDir), fs.realpathSync(home)).startsWith('..'), `the extension runs from ${home}, not from the extensions folder ${extensionsDir}`);

    // What it carries: built bundles, this platform's binaries only, no sources, tests or dev tools.
    const files = filesUnder(home);
    for (const needed of ['dist/extension.js', 'dist/cli.js', 'dist/kernel.js', 'dist/runtime.js', 'bin/triplex.js', 'notebooks/quickstart.triplexnb', 'changelog.md', 'readme.md', 'media/icon.png']) {
      // vsce writes the changelog and readme in lower case
      assert.ok(files.includes(needed), `the package lacks ${needed}`);
    }
    const unwanted = files.filter((f) => /^(src|test|webview|scripts|bench)\//.test(f) || /\.map$/.test(f) || (/\.ts$/.test(f) && !f.startsWith('node_modules/typescript/'))
      || /^node_modules\/(@vscode|esbuild|@esbuild|mocha|eslint|playwright-core|nodejs-polars|@types)\//.test(f));
    assert.deepEqual(unwanted.slice(0, 5), [], `${unwanted.length} files the package should not carry`);
    const ortBinaries = new Set(files.filter((f) => /^node_modules\/onnxruntime-node\/bin\/napi-v\d+\/[^/]+\/[^/]+\//.test(f)).map((f) => f.split('/').slice(4, 6).join('/')));
    assert.deepEqual([...ortBinaries], [target], 'onnxruntime-node binaries of other platforms');
    const imgPackages = new Set(files.filter((f) => f.startsWith('node_modules/@img/sharp-')).map((f) => f.split('/')[2]));
    assert.deepEqual([...imgPackages].sort(), [`sharp-${process.platform}-${process.arch}`, `sharp-libvips-${process.platform}-${process.arch}`].sort());
    const manifest = extension.packageJSON as { devDependencies?: object; scripts?: object; icon?: string; version: string };
    assert.equal(manifest.devDependencies, undefined);
    assert.equal(manifest.scripts, undefined);
    const icon = fs.readFileSync(path.join(home, manifest.icon ?? 'no icon'));
    assert.equal(icon.subarray(1, 4).toString('latin1'), 'PNG');
    assert.deepEqual([icon.readUInt32BE(16), icon.readUInt32BE(20)], [128, 128], 'icon size');

    const api = await extension.activate();
    assert.ok(extension.isActive);
    const walkthroughs = (extension.packageJSON as { contributes: { walkthroughs?: { id: string }[] } }).contributes.walkthroughs ?? [];
    assert.deepEqual(walkthroughs.map((w) => w.id), ['triplex.gettingStarted']);

    // The CLI from the installed copy: version, the engines it finds, a tiny dataset and store.
    assert.equal((await cli(home, ['--version'])).trim(), manifest.version);
    const info = JSON.parse(await cli(home, ['info', '--json'])) as { engines: { name: string; available: boolean; reason?: string }[]; engine: { training: string } };
    const ort = info.engines.find((e) => e.name === 'onnxruntime-node');
    assert.ok(ort?.available, `onnxruntime-node does not load from the package: ${ort?.reason}`);
    assert.equal(info.engine.training, 'onnxruntime');
    // The status bar asks the same CLI, in the background, and names that engine.
    let status: StatusSnapshot | undefined;
    for (const end = Date.now() + 60_000; !status?.engine && Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      status = await vscode.commands.executeCommand<StatusSnapshot>('triplex.showStatus', { quiet: true });
    }
    assert.match(status?.text ?? '', /^\$\(chip\) TRIPLEX: onnxruntime \(/);
    const store = path.join(work, 'store');
    await cli(home, ['synth', '--out', path.join(work, 'synthetic'), '--patients', '2', '--sections', '1', '--grid', '4']);
    await cli(home, ['preprocess', path.join(work, 'synthetic'), '--out', store, '--genes', '10']);
    assert.ok(fs.existsSync(path.join(store, 'spots.arrow')), 'preprocess wrote no store');

    // A notebook cell: a notebook outside any node_modules, so that the kernel resolves the
    // runtime, sharp and onnxruntime from the installed extension.
    const notebookFile = path.join(work, 'installed.triplexnb');
    const cell = [
      "import { onnxRuntimeStatus, openDatasetStore } from 'triplex';",
      "import sharp from 'sharp';",
      `const store = openDatasetStore(${JSON.stringify(store)});`,
      "const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#a05080' } }).png().toBuffer();",
      'console.log(JSON.stringify({ kernel: process.argv[1], spots: store.spots.numRows, genes: store.genes.length, png: png.subarray(1, 4).toString(), ort: onnxRuntimeStatus().available }));',
    ].join('\n');
    fs.writeFileSync(notebookFile, JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [{ cell_type: 'code', metadata: {}, source: cell, outputs: [], execution_count: null }] }));
    const notebook = await vscode.workspace.openNotebookDocument(vscode.Uri.file(notebookFile));
    const editor = await vscode.window.showNotebookDocument(notebook);
    await vscode.commands.executeCommand('notebook.selectKernel', { notebookEditor: editor, id: api.controllerId, extension: EXTENSION_ID });
    await vscode.commands.executeCommand('notebook.cell.execute', { ranges: [{ start: 0, end: 1 }], document: notebook.uri });
    const run = notebook.cellAt(0);
    const end = Date.now() + 120_000;
    while (!run.executionSummary?.timing?.endTime && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    const text = (mime: string) => run.outputs.flatMap((o) => o.items).filter((i) => i.mime === mime).map((i) => decoder.decode(i.data)).join('');
    assert.equal(run.executionSummary?.success, true, `the cell failed: ${text(ERROR)}${text(STDERR)}`);
    const printed = JSON.parse(text(STDOUT)) as { kernel: string; spots: number; genes: number; png: string; ort: boolean };
    assert.equal(printed.kernel, path.join(home, 'dist', 'kernel.js'));
    assert.equal(printed.spots, openDatasetStore(store).spots.numRows);
    assert.ok(printed.spots > 0);
    assert.equal(printed.genes, 10);
    assert.equal(printed.png, 'PNG');
    assert.equal(printed.ort, true);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });
});
