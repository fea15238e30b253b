import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as vm from 'node:vm';
import { CellSyntaxError, compileCell, HELPERS } from '../../src/kernel/compiler';
import { CELL_FILE, mapStack, type CellRecord } from '../../src/kernel/stack';

/**
 * The cell compiler, table-driven: each case runs a sequence of cells through compileCell in one
 * fresh V8 context (as the kernel runs them in its own), and checks what the last cell returns.
 */

interface Case { name: string; cells: string[]; expect: unknown; language?: 'typescript' | 'javascript' }

const fakeModules: Record<string, unknown> = {
  triplex: { __esModule: true, answer: 42, default: 'the default', twice: (n: number) => 2 * n },
  plain: { value: 'cjs' },
};

function runCells(cells: string[], language: 'typescript' | 'javascript' = 'typescript'): Promise<unknown> {
  const imported: string[] = [];
  const context = vm.createContext({
    [HELPERS.importModule]: (spec: string) => {
      imported.push(spec);
      if (!(spec in fakeModules)) return Promise.reject(new Error(`no module ${spec}`));
      return Promise.resolve(fakeModules[spec]);
    },
    [HELPERS.defaultOf]: (m: { __esModule?: boolean; default?: unknown }) => (m.__esModule ? m.default : m),
    setTimeout,
  });
  return cells.reduce<Promise<unknown>>(async (previous, cell, i) => {
    await previous;
    const compiled = compileCell(cell, language);
    return vm.runInContext(compiled.code, context, { filename: CELL_FILE(i) }) as Promise<unknown>;
  }, Promise.resolve(undefined));
}

const cases: Case[] = [
  { name: 'a const persists to the next cell', cells: ['const x = 41;', 'x + 1'], expect: 42 },
  { name: 'a const cell runs twice (no redeclaration error)', cells: ['const x = 1;', 'const x = 2;', 'x'], expect: 2 },
  { name: 'let without a value resets on re-run', cells: ['let y = 5;', 'let y;', 'y'], expect: undefined },
  { name: 'var without a value keeps its value', cells: ['var z = 5;', 'var z;', 'z'], expect: 5 },
  { name: 'object and array destructuring, with defaults and rest', cells: ['const { a, b: [c, , d = 4], ...rest } = { a: 1, b: [2, 3], e: 5 };', '[a, c, d, rest]'], expect: [1, 2, 4, { e: 5 }] },
  { name: 'several declarators in one statement', cells: ['let p = 1, q = p + 1, [r] = [q * 2];', '[p, q, r]'], expect: [1, 2, 4] },
  { name: 'a function is hoisted within its cell and persists', cells: ['const early = f(1);\nfunction f(n: number): number { return n + 1; }', '[early, f(10)]'], expect: [2, 11] },
  { name: 'async and generator functions persist', cells: ['async function af() { return 3; }\nfunction* gen() { yield 1; yield 2; }', 'Promise.all([af(), [...gen()]])'], expect: [3, [1, 2]] },
  { name: 'a class persists and can be redefined', cells: ['class A { v = 1 }', 'class A { v = 2 }', 'new A().v'], expect: 2 },
  { name: 'types, interfaces and type-only imports are stripped', cells: ['interface P { x: number }\ntype Q = P[];\nimport type { Foo } from "nowhere";\nconst ps: Q = [{ x: 1 }];', 'ps.length as number'], expect: 1 },
  { name: 'an enum persists', cells: ['enum Colour { Red, Green }', 'Colour.Green'], expect: 1 },
  { name: 'top-level await', cells: ['const v = await new Promise((r) => setTimeout(() => r(7), 5));', 'v'], expect: 7 },
  { name: 'for await at top level', cells: ['async function* g() { yield 1; yield 2; }\nlet s = 0;\nfor await (const v of g()) s += v;\ns'], expect: 3 },
  { name: 'named, aliased, default and namespace imports', cells: ['import def, { answer, twice as double } from "triplex";\nimport * as ns from "triplex";', '[def, answer, double(4), ns.answer]'], expect: ['the default', 42, 8, 42] },
  { name: 'an import unused in its own cell is still made (not elided)', cells: ['import { answer } from "triplex";', 'answer'], expect: 42 },
  { name: 'a default import of a CommonJS module is the module', cells: ['import p from "plain";', 'p.value'], expect: 'cjs' },
  { name: 'a side-effect import loads the module', cells: ['import "plain";\n1'], expect: 1 },
  { name: 'export keywords are dropped', cells: ['export const e = 1;\nexport function ef() { return 2; }\nexport class EC {}', '[e, ef(), typeof EC]'], expect: [1, 2, 'function'] },
  { name: 'the last expression is the value', cells: ['1 + 1;\n"last"'], expect: 'last' },
  { name: 'a cell ending in a declaration has no value', cells: ['const w = 3;'], expect: undefined },
  { name: 'a cell ending in a statement other than an expression has no value', cells: ['if (true) { 5; }'], expect: undefined },
  { name: 'an object literal in parentheses is a value', cells: ['({ k: 1 })'], expect: { k: 1 } },
  { name: 'a comment after the last expression', cells: ['40 + 2 // the answer'], expect: 42 },
  { name: 'JavaScript cells', cells: ['const j = [1, 2, 3];', 'j.map((x) => x * 2)'], expect: [2, 4, 6], language: 'javascript' },
  { name: 'a name from a nested block stays local', cells: ['let outer = 1;\n{ const outer = 2; }', 'outer'], expect: 1 },
];

describe('compileCell runs cells as a notebook expects', () => {
  for (const c of cases) {
    test(c.name, async () => {
      // Values made in the cells' context have that context's prototypes: compare as JSON.
      const got = await runCells(c.cells, c.language);
      assert.deepEqual(got === undefined ? undefined : JSON.parse(JSON.stringify(got)), c.expect);
    });
  }
});

describe('compileCell errors', () => {
  const bad: [string, string, number, number][] = [
    ['a missing expression', 'const y = ;', 1, 11],
    ['an unclosed brace on line 3', 'let a = 1;\nlet b = 2;\nfunction f() {\n', 4, 1],
    ['a bad token', 'const q = 1;\nconst r = 2 +* 3;', 2, 14],
  ];
  for (const [name, source, line, column] of bad) {
    test(`${name}: a SyntaxError at the cell's line and column`, () => {
      assert.throws(() => compileCell(source), (err: unknown) => {
        assert.ok(err instanceof CellSyntaxError, String(err));
        assert.deepEqual([err.line, err.column], [line, column], err.message);
        assert.match(err.message, new RegExp(`line ${line}, column ${column}`));
        return true;
      });
    });
  }

  test('a runtime error maps to the line of the TypeScript source, past stripped types and rewritten imports', async () => {
    const source = [
      'import {',
      '  answer,',
      '} from "triplex";',
      'interface Unused {',
      '  a: number;',
      '}',
      'const { a }: { a: number } = { a: answer };',
      'function thrower(n: number): never {',
      '  throw new Error(`bad ${n}`);',
      '}',
      'thrower(a);',
    ].join('\n');
    const compiled = compileCell(source);
    const cells = new Map<number, CellRecord>([[7, { label: 'Cell 3', compiled }]]);
    const context = vm.createContext({ [HELPERS.importModule]: () => Promise.resolve(fakeModules.triplex), [HELPERS.defaultOf]: (m: unknown) => m });
    await assert.rejects(vm.runInContext(compiled.code, context, { filename: CELL_FILE(7) }) as Promise<unknown>, (err: Error) => {
      const stack = mapStack(err.stack ?? '', cells);
      assert.match(stack, /^Error: bad 42\n/);
      assert.match(stack, /at thrower \(Cell 3:9:9\)/, stack);
      assert.match(stack, /at Cell 3:11:1/, stack);
      assert.doesNotMatch(stack, /triplex-cell-|node:vm/, stack);
      return true;
    });
  });
});
