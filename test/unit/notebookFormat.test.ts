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

describe('hostile notebooks: normalised or refused naming the file and the cell', () => {
  const nb = (cells: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells, ...extra });
  const code = (fields: Record<string, unknown>) => ({ cell_type: 'code', source: 'x', metadata: {}, outputs: [], execution_count: null, ...fields });
  const display = (data: unknown) => code({ outputs: [{ output_type: 'display_data', data, metadata: {} }] });
  const file = 'hostile.triplexnb';
  /** [case, file text, the error it must raise, or a check of the notebook that it opens as] */
  const cases: [string, string, RegExp | ((n: Notebook) => void)][] = [
    ['a numeric source', nb([code({ source: 5 })]), /hostile\.triplexnb: cell 1: "source" is the number 5; expected text or a list of lines/],
    ['a source list holding a number', nb([code({}), code({ source: ['a\n', 7] })]), /hostile\.triplexnb: cell 2: line 2 of "source" is the number 7; expected text/],
    ['an object as source', nb([code({ source: { a: 1 } })]), /hostile\.triplexnb: cell 1: "source" is an object/],
    ['a missing source', nb([code({ source: undefined })]), (n) => assert.equal(n.cells[0].source, '')],
    ['a null source', nb([{ cell_type: 'markdown', source: null }]), (n) => assert.equal(n.cells[0].source, '')],
    ['outputs that are a number', nb([code({ outputs: 5 })]), /hostile\.triplexnb: cell 1: "outputs" is the number 5; expected a list/],
    ['an output that is null', nb([code({ outputs: [null] })]), /hostile\.triplexnb: cell 1, output 1 is null; expected an object/],
    ['an output with no output_type', nb([code({ outputs: [{ text: 'a' }] })]), /cell 1, output 1: "output_type" is missing; expected "stream"/],
    ['missing outputs and metadata', nb([{ cell_type: 'code', source: 'x' }]), (n) => { assert.deepEqual(n.cells[0].outputs, []); assert.equal(n.cells[0].executionCount, undefined); }],
    ['outputs on a markdown cell', nb([{ cell_type: 'markdown', source: 'm', outputs: 'junk' }]), (n) => assert.deepEqual(n.cells[0].outputs, [])],
    ['a missing cell_type', nb([{ source: 'x' }]), /hostile\.triplexnb: cell 1: "cell_type" is missing; expected "code", "markdown" or "raw"/],
    ['an odd cell_type', nb([code({}), code({}), { cell_type: 'heading', source: 'x' }]), /cell 3: "cell_type" is the text "heading"/],
    ['a raw cell', nb([{ cell_type: 'raw', source: ['r'] }]), (n) => assert.deepEqual([n.cells[0].kind, n.cells[0].source], ['markdown', 'r'])],
    ['cell metadata that is a list', nb([code({ metadata: [1] })]), /hostile\.triplexnb: cell 1: "metadata" is a list; expected an object/],
    ['null cell metadata', nb([code({ metadata: null })]), (n) => assert.deepEqual(n.cells[0].metadata, {})],
    ['notebook metadata that is text', nb([], { metadata: 'x' }), /hostile\.triplexnb: the notebook "metadata" is the text "x"; expected an object/],
    ['a numeric kernelspec language and languageId', nb([code({ metadata: { vscode: { languageId: 3 } } })], { metadata: { kernelspec: { language: 4 } } }), (n) => assert.equal(n.cells[0].language, 'typescript')],
    ['a vendor JSON payload that is not JSON', nb([display({ 'application/vnd.triplex.table+json': '{"columns": [' })]), /cell 1, output 1: the application\/vnd\.triplex\.table\+json payload is not valid JSON/],
    ['a vendor JSON payload that is a number', nb([display({ 'application/vnd.triplex.metrics+json': 3 })]), /cell 1, output 1: the application\/vnd\.triplex\.metrics\+json payload is the number 3; expected an object/],
    ['a vendor JSON payload stored as JSON text', nb([display({ 'application/vnd.triplex.metrics+json': '{"a": 1}' })]), (n) => assert.deepEqual(JSON.parse(dec(n.cells[0].outputs[0].items[0].data)), { a: 1 })],
    ['application/json text that is not JSON', nb([display({ 'application/json': 'hello' })]), (n) => assert.equal(JSON.parse(dec(n.cells[0].outputs[0].items[0].data)), 'hello')],
    ['application/json that is a list', nb([display({ 'application/json': [1, 2] })]), (n) => assert.deepEqual(JSON.parse(dec(n.cells[0].outputs[0].items[0].data)), [1, 2])],
    ['image data that is a number', nb([display({ 'image/png': 12 })]), /cell 1, output 1: "data\.image\/png" is the number 12; expected text/],
    ['image data that is not base64', nb([display({ 'image/png': 'not base64!' })]), /cell 1, output 1: the image\/png data is not base64/],
    ['text/plain that is an object', nb([display({ 'text/plain': { a: 1 } })]), /cell 1, output 1: "data\.text\/plain" is an object/],
    ['data that is a list', nb([display([1])]), /cell 1, output 1: "data" is a list; expected an object/],
    ['output metadata that is a number', nb([code({ outputs: [{ output_type: 'stream', name: 'stdout', text: 'a', metadata: 1 }] })]), /cell 1, output 1: "metadata" is the number 1/],
    ['stream text that is a number', nb([code({ outputs: [{ output_type: 'stream', name: 'stdout', text: 1 }] })]), /cell 1, output 1: "text" is the number 1/],
    ['an odd stream name', nb([code({ outputs: [{ output_type: 'stream', name: 'stdlog', text: 'a' }] })]), (n) => assert.equal(n.cells[0].outputs[0].items[0].mime, STDOUT)],
    ['a traceback that is text', nb([code({ outputs: [{ output_type: 'error', ename: 'E', evalue: 'v', traceback: 'tb' }] })]), /cell 1, output 1: "traceback" is the text "tb"; expected a list of lines/],
    ['an error with numeric ename and no traceback', nb([code({ outputs: [{ output_type: 'error', ename: 1, evalue: null }] })]), (n) => assert.deepEqual(JSON.parse(dec(n.cells[0].outputs[0].items[0].data)), { name: '1', message: '', stack: '' })],
    ['odd execution counts and ids', nb([code({ execution_count: 'one', id: 5 }), code({ execution_count: -1, outputs: [{ output_type: 'execute_result', data: {}, execution_count: 1.5 }] })]), (n) => { assert.equal(n.cells[0].executionCount, undefined); assert.equal(n.cells[1].executionCount, undefined); assert.equal(n.cells[0].metadata?.id, undefined); }],
    ['nbformat given as text', nb([], { nbformat: '4' }), /hostile\.triplexnb is nbformat the text "4"; TRIPLEX notebooks read nbformat 4/],
    ['a top-level list', '[1, 2]', /hostile\.triplexnb is not an nbformat notebook/],
  ];
  for (const [name, text, expected] of cases) {
    test(`${name}: ${expected instanceof RegExp ? 'an error naming the file and the cell' : 'normalised, saved and read back the same'}`, () => {
      if (expected instanceof RegExp) {
        assert.throws(() => parseNotebook(enc(text), file), (err: Error) => {
          assert.ok(!(err instanceof TypeError), `a bare TypeError: ${err.message}`);
          assert.match(err.message, expected);
          assert.match(err.message, /hostile\.triplexnb/);
          return true;
        });
        return;
      }
      const opened = parseNotebook(enc(text), file);
      expected(opened);
      const saved = serializeNotebook(opened);
      const again = parseNotebook(saved, file);
      assert.deepEqual(again.cells.map((c) => [c.kind, c.source, c.language, c.executionCount, c.outputs.map((o) => o.items.map((i) => [i.mime, dec(i.data)]))]),
        opened.cells.map((c) => [c.kind, c.source, c.language, c.executionCount, c.outputs.map((o) => o.items.map((i) => [i.mime, dec(i.data)]))]));
      assert.equal(dec(serializeNotebook(again)), dec(saved), 'a second save writes the same bytes');
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
