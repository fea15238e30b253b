import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import ts from 'typescript';
import { ERROR, parseNotebook, serializeNotebook, STDERR, STDOUT, type Notebook } from '../../src/notebook/nbformat';
import { MIME } from '../../src/protocol/outputs';
import { repoRoot } from './helpers/paths';

/** nbformat 4 reading and writing, and the sample notebooks that ship with the extension. */

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108020000009077053e0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082', 'hex');

const notebook: Notebook = {
  metadata: {},
  cells: [
    { kind: 'markdown', source: '# Title\n\nSome *text*.', language: 'markdown', outputs: [] },
    {
      kind: 'code', source: 'console.log("a");\nconsole.error("b");\nx', language: 'typescript', executionCount: 3,
      outputs: [
        { items: [{ mime: STDOUT, data: enc('a\nmore\n') }] },
        { items: [{ mime: STDERR, data: enc('b\n') }] },
        { items: [{ mime: MIME.table, data: enc(JSON.stringify({ columns: [{ name: 'g', type: 'Utf8' }], rows: [['ERBB2']], totalRows: 1 })) }, { mime: 'text/plain', data: enc('g\nERBB2') }] },
        { items: [{ mime: 'image/png', data: png }, { mime: 'text/plain', data: enc('[spot]') }] },
      ],
    },
    { kind: 'code', source: 'throw new Error("no")', language: 'javascript', outputs: [{ items: [{ mime: ERROR, data: enc(JSON.stringify({ name: 'Error', message: 'no', stack: 'Error: no\n    at Cell 3:1:7' })) }] }] },
  ],
};

describe('nbformat', () => {
  test('writes Jupyter nbformat 4.5 that Jupyter tools read', () => {
    const file = JSON.parse(dec(serializeNotebook(notebook))) as {
      nbformat: number; nbformat_minor: number; metadata: { kernelspec: { name: string } };
      cells: { cell_type: string; id: string; source: string[]; outputs?: Record<string, unknown>[]; execution_count?: number | null; metadata: Record<string, unknown> }[];
    };
    assert.equal(file.nbformat, 4);
    assert.equal(file.nbformat_minor, 5);
    assert.equal(file.metadata.kernelspec.name, 'triplex');
    assert.deepEqual(file.cells.map((c) => c.cell_type), ['markdown', 'code', 'code']);
    assert.deepEqual(file.cells[0].source, ['# Title\n', '\n', 'Some *text*.']);
    assert.equal(new Set(file.cells.map((c) => c.id)).size, 3, 'cell ids are unique');
    assert.ok(file.cells.every((c) => /^[a-zA-Z0-9-_]{1,64}$/.test(c.id)), 'cell ids follow nbformat 4.5');
    const outs = file.cells[1].outputs ?? [];
    assert.deepEqual(outs[0], { output_type: 'stream', name: 'stdout', text: ['a\n', 'more\n'] });
    assert.deepEqual(outs[1], { output_type: 'stream', name: 'stderr', text: ['b\n'] });
    assert.equal(outs[2].output_type, 'display_data');
    assert.deepEqual((outs[2].data as Record<string, unknown>)[MIME.table], { columns: [{ name: 'g', type: 'Utf8' }], rows: [['ERBB2']], totalRows: 1 });
    assert.equal((outs[3].data as Record<string, unknown>)['image/png'], png.toString('base64'));
    assert.equal(file.cells[1].execution_count, 3);
    assert.deepEqual(file.cells[2].outputs, [{ output_type: 'error', ename: 'Error', evalue: 'no', traceback: ['Error: no', '    at Cell 3:1:7'] }]);
    assert.deepEqual(file.cells[2].metadata, { vscode: { languageId: 'javascript' } });
  });

  test('reads back what it wrote, outputs included, and writes the same bytes again', () => {
    const bytes = serializeNotebook(notebook);
    const back = parseNotebook(bytes);
    assert.deepEqual(back.cells.map((c) => [c.kind, c.source, c.language, c.executionCount]), notebook.cells.map((c) => [c.kind, c.source, c.language, c.executionCount]));
    assert.deepEqual(back.cells[1].outputs.map((o) => o.items.map((i) => i.mime)), [[STDOUT], [STDERR], [MIME.table, 'text/plain'], ['image/png', 'text/plain']]);
    assert.deepEqual([...back.cells[1].outputs[3].items[0].data], [...png]);
    assert.deepEqual(JSON.parse(dec(back.cells[2].outputs[0].items[0].data)), { name: 'Error', message: 'no', stack: 'Error: no\n    at Cell 3:1:7' });
    assert.equal(dec(serializeNotebook(back)), dec(bytes), 'a second save changes nothing (stable cell ids)');
  });

  test('reads notebooks written by Jupyter (string sources, execute_result, missing ids)', () => {
    const jupyter = {
      nbformat: 4, nbformat_minor: 4, metadata: { kernelspec: { name: 'tslab', language: 'typescript' } },
      cells: [{ cell_type: 'code', source: 'let a = 1\na', metadata: {}, execution_count: 1, outputs: [{ output_type: 'execute_result', execution_count: 1, data: { 'text/plain': ['1'] }, metadata: {} }] }],
    };
    const nb = parseNotebook(enc(JSON.stringify(jupyter)));
    assert.equal(nb.cells[0].source, 'let a = 1\na');
    assert.equal(nb.cells[0].language, 'typescript');
    assert.equal(dec(nb.cells[0].outputs[0].items[0].data), '1');
    const again = JSON.parse(dec(serializeNotebook(nb))) as { cells: { outputs: unknown[] }[] };
    assert.deepEqual(again.cells[0].outputs, [{ output_type: 'execute_result', data: { 'text/plain': ['1'] }, metadata: {}, execution_count: 1 }]);
  });

  test('an empty file is an empty notebook', () => {
    assert.deepEqual(parseNotebook(enc('')).cells, []);
  });

  const bad: [string, string, RegExp][] = [
    ['truncated JSON', '{"nbformat": 4, "cells": [', /analysis\.triplexnb is not valid notebook JSON .*cut short/],
    ['no cells', '{"nbformat": 4}', /analysis\.triplexnb is not an nbformat notebook: it has no "cells" list/],
    ['nbformat 3', '{"nbformat": 3, "cells": []}', /analysis\.triplexnb is nbformat 3; TRIPLEX notebooks read nbformat 4/],
    ['a cell that is not an object', '{"nbformat": 4, "cells": [null]}', /analysis\.triplexnb: cell 1 is not an object/],
  ];
  for (const [name, text, message] of bad) {
    test(`${name}: an error naming the file`, () => {
      assert.throws(() => parseNotebook(enc(text), 'analysis.triplexnb'), message);
    });
  }
});

describe('the sample notebooks', () => {
  const dir = path.join(repoRoot(), 'notebooks');
  const samples = fs.readdirSync(dir).filter((f) => f.endsWith('.triplexnb'));

  test('there are a quick start and a walkthrough', () => {
    assert.deepEqual(samples.sort(), ['her2st-walkthrough.triplexnb', 'quickstart.triplexnb']);
  });

  for (const name of samples) {
    test(`${name}: its cells type-check against the runtime that 'triplex' imports`, () => {
      const nb = parseNotebook(fs.readFileSync(path.join(dir, name)), name);
      const code = nb.cells.filter((c) => c.kind === 'code');
      assert.ok(code.length >= 4, `${name} has ${code.length} code cells`);
      // The cells in order as one module: names flow from cell to cell as in the kernel.
      const cellsFile = path.join(repoRoot(), 'test', '.tmp', `${name}.ts`);
      const globals = path.join(repoRoot(), 'test', '.tmp', `${name}.globals.d.ts`);
      const source = code.map((c, i) => `// cell ${i + 1}\n${c.source}\n`).join('') + '\nexport {};\n';
      const host = ts.createCompilerHost({});
      const files = new Map([[cellsFile, source], [globals, `type G = import(${JSON.stringify(path.join(repoRoot(), 'src', 'kernel', 'cellGlobals'))}).CellGlobals;\ndeclare const notebook: G['notebook'];\ndeclare const display: G['display'];\n`]]);
      const read = host.readFile.bind(host);
      host.readFile = (f) => files.get(path.resolve(f)) ?? read(f);
      const exists = host.fileExists.bind(host);
      host.fileExists = (f) => files.has(path.resolve(f)) || exists(f);
      const program = ts.createProgram([cellsFile, globals], {
        target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
        strict: true, noEmit: true, skipLibCheck: true, types: ['node'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
        baseUrl: repoRoot(), paths: { triplex: ['src/runtime/index.ts'] }, esModuleInterop: true, resolveJsonModule: true,
      }, host);
      const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === cellsFile || d.file?.fileName === globals);
      const text = diagnostics.map((d) => {
        const at = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
        return `${at ? `line ${at.line + 1}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
      assert.deepEqual(text, [], `${name}:\n${text.join('\n')}\n--- as checked:\n${source}`);
    });
  }
});
