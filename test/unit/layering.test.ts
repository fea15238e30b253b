import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import { repoRoot } from './helpers/paths';

/**
 * The runtime, the CLI and the notebook kernel must run without VS Code (kernel processes, the
 * command line, plain tests). ESLint forbids importing `vscode` there; this proves it for the whole import graph,
 * including imports that would reach VS Code code through another folder.
 */
for (const [name, entries, allowed] of [
  ['runtime', ['src/runtime/index.ts'], ['src/runtime/', 'src/protocol/']],
  ['CLI', ['src/cli/main.ts'], ['src/runtime/', 'src/cli/', 'src/protocol/']],
  ['notebook kernel', ['src/kernel/main.ts', 'src/kernel/client.ts', 'src/notebook/nbformat.ts'], ['src/kernel/', 'src/protocol/', 'src/runtime/notebook/', 'src/notebook/nbformat.ts']],
] as const) {
  test(`the ${name} never reaches vscode`, async () => {
    const root = repoRoot();
    const result = await esbuild.build({
      absWorkingDir: root, entryPoints: [...entries], bundle: true, write: false, metafile: true,
      platform: 'node', packages: 'external', logLevel: 'silent', outdir: 'out/layering',
    });
    const inputs = Object.keys(result.metafile.inputs);
    const imports = Object.values(result.metafile.inputs).flatMap((i) => i.imports.map((x) => x.path));
    assert.ok(!imports.includes('vscode'), 'vscode is imported');
    const outside = inputs.filter((f) => !allowed.some((a) => f.startsWith(a)));
    assert.deepEqual(outside, [], `files outside ${allowed.join(', ')} are bundled`);
    assert.ok(inputs.length > 3, 'the bundle holds the modules');
    assert.ok(fs.existsSync(path.join(root, entries[0])));
  });
}
