import { SourceMap } from 'node:module';
import ts from 'typescript';
import type { CellLanguage } from '../protocol/kernel';

/**
 * Turns a notebook cell into a script that the kernel runs with `vm.runInThisContext`:
 *   1. TypeScript strips the types (imports kept verbatim: a name imported in one cell is used in
 *      the next, so an import unused in its own cell must not be elided);
 *   2. top-level declarations become assignments to globals, declared with `var` outside the
 *      async wrapper, so they persist across cells and a cell can be re-run (`const x` twice
 *      would throw);
 *   3. imports become awaited calls of the kernel's module loader;
 *   4. the body is wrapped in an async function, so top-level `await` works; a final expression
 *      statement becomes its result, which the kernel displays.
 * Every rewrite keeps the line breaks of what it replaces, so a line of the script is the same
 * line of the transpiled code, which the source map takes back to the cell's own line.
 */

export interface CompiledCell {
  /** The script to run; it evaluates to a promise of the cell's value. */
  code: string;
  /** Names the cell declares at top level (now globals). */
  declared: string[];
  /** Cell position (1-based line and column) of a script position, when the map knows it. */
  original(line: number, column: number): { line: number; column: number } | undefined;
}

/** A cell that does not parse: the message names the cell's line and column. */
export class CellSyntaxError extends SyntaxError {
  constructor(message: string, readonly line: number, readonly column: number) {
    super(message);
    this.name = 'SyntaxError';
  }
}

/** Names of the kernel's helpers that compiled cells call (defined on globalThis by the kernel). */
export const HELPERS = { importModule: '__triplexImport', defaultOf: '__triplexDefault' } as const;

export function compileCell(source: string, language: CellLanguage = 'typescript'): CompiledCell {
  const fileName = language === 'typescript' ? 'cell.ts' : 'cell.js';
  const out = ts.transpileModule(source, {
    fileName,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      verbatimModuleSyntax: true,
      allowJs: true,
      sourceMap: true,
      inlineSources: false,
      removeComments: false,
      experimentalDecorators: false,
    },
  });
  const diagnostic = out.diagnostics?.find((d) => d.category === ts.DiagnosticCategory.Error);
  if (diagnostic) {
    const { line, character } = diagnostic.file && diagnostic.start !== undefined
      ? diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start) : { line: 0, character: 0 };
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    throw new CellSyntaxError(`${text} (line ${line + 1}, column ${character + 1})`, line + 1, character + 1);
  }
  const js = out.outputText.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
  const { body, declared, functions, toOriginalOffset } = rewriteTopLevel(js);

  // Line 1 of the script carries the declarations and the wrapper; the body starts on that line.
  const prefix = `${declared.length ? `var ${declared.join(', ')}; ` : ''}(async () => { ${functions.map((f) => `globalThis.${f} = ${f}; `).join('')}`;
  const code = `${prefix}${body}\n})()`;

  const map = out.sourceMapText ? new SourceMap(JSON.parse(out.sourceMapText) as ConstructorParameters<typeof SourceMap>[0]) : undefined;
  const bodyLines = lineStarts(body);
  const jsLines = lineStarts(js);
  return {
    code,
    declared: [...declared, ...functions],
    original(line, column) {
      if (!map || line < 1 || line > bodyLines.length) return undefined;
      const col = line === 1 ? column - prefix.length : column;
      // script position -> offset in the rewritten body -> offset in TypeScript's output -> its line and column
      const offset = toOriginalOffset(bodyLines[line - 1] + Math.max(0, col - 1));
      let jsLine = jsLines.length - 1;
      while (jsLines[jsLine] > offset) jsLine--;
      const entry = map.findEntry(jsLine, offset - jsLines[jsLine]) as { originalLine?: number; originalColumn?: number };
      if (entry.originalLine === undefined) return undefined;
      return { line: entry.originalLine + 1, column: (entry.originalColumn ?? 0) + 1 };
    },
  };
}

interface Edit { start: number; end: number; text: string }

function lineStarts(text: string): number[] {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return starts;
}

/** Same text with at least as many line breaks as `original` (so later lines keep their numbers). */
function keepLines(original: string, replacement: string): string {
  const missing = count(original, '\n') - count(replacement, '\n');
  return missing > 0 ? replacement + '\n'.repeat(missing) : replacement;
}
const count = (s: string, c: string) => s.split(c).length - 1;

function bindingNames(name: ts.BindingName, into: string[]): void {
  if (ts.isIdentifier(name)) {
    into.push(name.text);
    return;
  }
  for (const element of name.elements) {
    if (ts.isBindingElement(element)) bindingNames(element.name, into);
  }
}

function rewriteTopLevel(js: string): { body: string; declared: string[]; functions: string[]; toOriginalOffset(offset: number): number } {
  const file = ts.createSourceFile('cell.js', js, ts.ScriptTarget.ES2022, true, ts.ScriptKind.JS);
  const edits: Edit[] = [];
  const declared: string[] = [];
  const functions: string[] = [];
  const replace = (node: ts.Node, text: string) => {
    const start = node.getStart(file);
    edits.push({ start, end: node.end, text: keepLines(js.slice(start, node.end), text) });
  };
  const stripExport = (node: ts.Node) => {
    for (const m of ts.canHaveModifiers(node) ? ts.getModifiers(node) ?? [] : []) {
      if (m.kind === ts.SyntaxKind.ExportKeyword || m.kind === ts.SyntaxKind.DefaultKeyword) {
        edits.push({ start: m.getStart(file), end: m.end, text: '' });
      }
    }
  };
  let moduleCount = 0;
  const statements = file.statements;
  statements.forEach((statement, index) => {
    const last = index === statements.length - 1;
    if (ts.isImportDeclaration(statement)) {
      const spec = (statement.moduleSpecifier as ts.StringLiteral).text;
      const clause = statement.importClause;
      const load = `await ${HELPERS.importModule}(${JSON.stringify(spec)})`;
      if (!clause) {
        replace(statement, `${load};`);
        return;
      }
      const m = `__module${moduleCount++}`;
      const parts = [`const ${m} = ${load};`];
      if (clause.name) {
        declared.push(clause.name.text);
        parts.push(`${clause.name.text} = ${HELPERS.defaultOf}(${m});`);
      }
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) {
        declared.push(bindings.name.text);
        parts.push(`${bindings.name.text} = ${m};`);
      } else if (bindings) {
        for (const el of bindings.elements) {
          const local = el.name.text;
          const imported = el.propertyName ? (el.propertyName as ts.Identifier | ts.StringLiteral).text : local;
          declared.push(local);
          parts.push(imported === 'default' ? `${local} = ${HELPERS.defaultOf}(${m});` : `${local} = ${m}[${JSON.stringify(imported)}];`);
        }
      }
      replace(statement, parts.join(' '));
    } else if (ts.isVariableStatement(statement)) {
      const list = statement.declarationList;
      const parts: string[] = [];
      for (const d of list.declarations) {
        const names: string[] = [];
        bindingNames(d.name, names);
        declared.push(...names);
        const target = d.name.getText(file);
        if (d.initializer) {
          const init = d.initializer.getText(file);
          parts.push(ts.isIdentifier(d.name) ? `${target} = ${init}` : `(${target} = ${init})`);
        } else if (!(list.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const))) {
          continue; // `var x;` keeps the value x had
        } else {
          parts.push(names.map((n) => `${n} = undefined`).join(', '));
        }
      }
      replace(statement, parts.length ? `;${parts.join(', ')};` : ';');
    } else if (ts.isFunctionDeclaration(statement) && statement.name) {
      stripExport(statement);
      functions.push(statement.name.text);
    } else if (ts.isClassDeclaration(statement) && statement.name) {
      stripExport(statement);
      declared.push(statement.name.text);
      const start = statement.getStart(file);
      const classStart = statement.getChildren(file).find((c) => c.kind === ts.SyntaxKind.ClassKeyword)?.getStart(file) ?? start;
      edits.push({ start: classStart, end: classStart, text: `${statement.name.text} = ` });
      edits.push({ start: statement.end, end: statement.end, text: ';' });
    } else if (ts.isExportAssignment(statement) || ts.isExportDeclaration(statement)) {
      replace(statement, ';'); // a cell is not a module: `export default x` and `export { x }` export nothing
    } else if (last && ts.isExpressionStatement(statement)) {
      replace(statement, `return (${statement.expression.getText(file)});`);
    }
  });
  edits.sort((a, b) => a.start - b.start);
  let body = '';
  let at = 0;
  const spans: { newStart: number; newEnd: number; oldStart: number; oldEnd: number }[] = [];
  for (const e of edits) {
    body += js.slice(at, e.start);
    spans.push({ newStart: body.length, newEnd: body.length + e.text.length, oldStart: e.start, oldEnd: e.end });
    body += e.text;
    at = e.end;
  }
  body += js.slice(at);
  // An offset in the rewritten body -> the offset it came from (inside a rewrite: the rewritten
  // code's start, or, when the rewrite kept the original text at its end, that text).
  const toOriginalOffset = (offset: number): number => {
    let shift = 0;
    for (const s of spans) {
      if (offset < s.newStart) break;
      if (offset < s.newEnd) {
        const tail = s.newEnd - offset;
        return s.oldEnd - s.oldStart >= tail && body.slice(offset, s.newEnd) === js.slice(s.oldEnd - tail, s.oldEnd) ? s.oldEnd - tail : s.oldStart;
      }
      shift = s.oldEnd - s.newEnd;
    }
    return offset + shift;
  };
  return { body, declared: [...new Set(declared)], functions: [...new Set(functions)], toOriginalOffset };
}
