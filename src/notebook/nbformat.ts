/**
 * Jupyter nbformat 4 for TRIPLEX notebooks, without `vscode`: the file is plain nbformat JSON, so
 * it opens in Jupyter tools and renders on GitHub (as .ipynb), and it keeps outputs: streams,
 * rich displays (our vendor MIME types saved as JSON, images as base64), results and errors.
 */

export type CellKind = 'code' | 'markdown';

/** An output as the editor holds it: MIME items in order, bytes as text or base64. */
export interface OutputItem { mime: string; data: Uint8Array }
export interface Output { items: OutputItem[]; metadata?: Record<string, unknown> }
export interface Cell {
  kind: CellKind;
  source: string;
  language: string;
  outputs: Output[];
  executionCount?: number;
  metadata?: Record<string, unknown>;
}
export interface Notebook { cells: Cell[]; metadata: Record<string, unknown> }

export const STDOUT = 'application/vnd.code.notebook.stdout';
export const STDERR = 'application/vnd.code.notebook.stderr';
export const ERROR = 'application/vnd.code.notebook.error';

interface NbOutput {
  output_type: 'stream' | 'display_data' | 'execute_result' | 'error';
  name?: 'stdout' | 'stderr';
  text?: string | string[];
  data?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  execution_count?: number | null;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}
interface NbCell {
  cell_type: 'code' | 'markdown' | 'raw';
  id?: string;
  source: string | string[];
  metadata?: Record<string, unknown>;
  outputs?: NbOutput[];
  execution_count?: number | null;
}
interface NbFile { nbformat: number; nbformat_minor: number; metadata?: Record<string, unknown>; cells: NbCell[] }

export const KERNELSPEC = { name: 'triplex', display_name: 'TRIPLEX (TypeScript)', language: 'typescript' };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const joined = (s: string | string[] | undefined) => (Array.isArray(s) ? s.join('') : s ?? '');
/** nbformat stores multi-line strings as a list of lines, each with its newline. */
const lines = (s: string) => s.split(/(?<=\n)/).filter((l) => l.length > 0);
const isJsonMime = (mime: string) => mime === 'application/json' || mime.endsWith('+json');
const isBinaryMime = (mime: string) => mime.startsWith('image/') && mime !== 'image/svg+xml';

/** Parses a notebook file; `file` names it in errors. An empty file is an empty notebook.
 *  Every field is checked: what can be normalised without losing anything is (a missing
 *  `source`, `metadata` or `outputs`, a `null` execution count, a non-string cell id, a stream
 *  name other than stderr), anything else is refused naming the file, the cell and the output,
 *  so that whatever opens can also be saved. */
export function parseNotebook(bytes: Uint8Array, file = 'notebook'): Notebook {
  const text = decoder.decode(bytes);
  if (text.trim() === '') return { cells: [], metadata: { kernelspec: KERNELSPEC } };
  let raw: NbFile;
  try {
    raw = JSON.parse(text) as NbFile;
  } catch (err) {
    throw new Error(`${file} is not valid notebook JSON (${(err as Error).message}); was it cut short?`, { cause: err });
  }
  if (!isRecord(raw) || !Array.isArray(raw.cells)) throw new Error(`${file} is not an nbformat notebook: it has no "cells" list`);
  if (raw.nbformat !== 4) throw new Error(`${file} is nbformat ${typeof raw.nbformat === 'number' ? raw.nbformat : describe(raw.nbformat)}; TRIPLEX notebooks read nbformat 4 (convert it with \`jupyter nbconvert --to notebook\`)`);
  const metadata = raw.metadata ?? {};
  if (!isRecord(metadata)) throw new Error(`${file}: the notebook "metadata" is ${describe(metadata)}; expected an object`);
  const spec = metadata.kernelspec;
  const language = isRecord(spec) ? spec.language : undefined;
  const defaultLanguage = typeof language === 'string' && language !== '' ? language : 'typescript';
  return { metadata, cells: raw.cells.map((c: unknown, i) => readCell(c, defaultLanguage, `${file}: cell ${i + 1}`)) };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A value as an error message names it: its type, and short values themselves. */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  // JSON.stringify says null for Infinity (JSON.parse reads 1e400 as Infinity): "the number null".
  const shown = typeof v === 'number' ? String(v) : JSON.stringify(v);
  return `${typeof v === 'number' ? 'the number' : typeof v === 'string' ? 'the text' : `the ${typeof v}`} ${shown.length > 40 ? `${shown.slice(0, 37)}...` : shown}`;
}
/** Multi-line text as nbformat stores it: a string or a list of strings; `undefined` and `null` are empty. */
function readText(v: unknown, where: string, field: string): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    const bad = v.findIndex((l) => typeof l !== 'string');
    if (bad < 0) return v.join('');
    throw new Error(`${where}: line ${bad + 1} of "${field}" is ${describe(v[bad])}; expected text`);
  }
  throw new Error(`${where}: "${field}" is ${describe(v)}; expected text or a list of lines`);
}
function readMetadata(v: unknown, where: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (isRecord(v)) return v;
  throw new Error(`${where}: "metadata" is ${describe(v)}; expected an object`);
}
const readCount = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : undefined);

function readCell(c: unknown, defaultLanguage: string, where: string): Cell {
  if (!isRecord(c)) throw new Error(`${where} is not an object`);
  const type = c.cell_type;
  if (type !== 'code' && type !== 'markdown' && type !== 'raw') {
    throw new Error(`${where}: "cell_type" is ${describe(type)}; expected "code", "markdown" or "raw"`);
  }
  const kind: CellKind = type === 'code' ? 'code' : 'markdown';
  const source = readText(c.source, where, 'source');
  const metadata = readMetadata(c.metadata, where);
  const languageId = isRecord(metadata.vscode) ? metadata.vscode.languageId : undefined;
  let outputs: Output[] = [];
  if (kind === 'code' && c.outputs !== undefined && c.outputs !== null) {
    if (!Array.isArray(c.outputs)) throw new Error(`${where}: "outputs" is ${describe(c.outputs)}; expected a list`);
    outputs = c.outputs.map((o: unknown, k) => readOutput(o, `${where}, output ${k + 1}`));
  }
  return {
    kind,
    source,
    language: kind === 'markdown' ? 'markdown' : typeof languageId === 'string' && languageId !== '' ? languageId : defaultLanguage,
    outputs,
    executionCount: kind === 'code' ? readCount(c.execution_count) : undefined,
    metadata: { ...metadata, ...(typeof c.id === 'string' && c.id !== '' ? { id: c.id } : {}) },
  };
}

/** A rich output's value for one MIME type, as the bytes the editor holds; refused if it could not be written back. */
function readMimeValue(mime: string, value: unknown, where: string): Uint8Array {
  if (isJsonMime(mime)) {
    const vendor = mime.startsWith('application/vnd.');
    let parsed = value;
    if (typeof value === 'string') {
      // Older writers stored the JSON text; a string that is not JSON is a JSON string value.
      try {
        parsed = JSON.parse(value) as unknown;
      } catch {
        if (vendor) throw new Error(`${where}: the ${mime} payload is not valid JSON (it should be an object)`);
        return encoder.encode(JSON.stringify(value));
      }
    }
    if (vendor && !isRecord(parsed)) throw new Error(`${where}: the ${mime} payload is ${describe(parsed)}; expected an object`);
    return encoder.encode(JSON.stringify(parsed));
  }
  const text = readText(value, where, `data.${mime}`);
  if (!isBinaryMime(mime)) return encoder.encode(text);
  const base64 = text.replace(/\s/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64)) throw new Error(`${where}: the ${mime} data is not base64`);
  return Buffer.from(base64, 'base64');
}

function readOutput(o: unknown, where: string): Output {
  if (!isRecord(o)) throw new Error(`${where} is ${describe(o)}; expected an object`);
  const type = o.output_type;
  const meta = o.metadata === undefined || o.metadata === null ? undefined : readMetadata(o.metadata, where);
  const metadata = { outputType: type, ...(meta ? { metadata: meta } : {}) };
  switch (type) {
    case 'stream':
      return { items: [{ mime: o.name === 'stderr' ? STDERR : STDOUT, data: encoder.encode(readText(o.text, where, 'text')) }], metadata };
    case 'error': {
      const traceback = o.traceback === undefined || o.traceback === null ? [] : o.traceback;
      if (!Array.isArray(traceback) || traceback.some((l) => typeof l !== 'string')) throw new Error(`${where}: "traceback" is ${describe(traceback)}; expected a list of lines`);
      const label = (v: unknown, fallback: string) => (typeof v === 'string' ? v : v === undefined || v === null ? fallback : JSON.stringify(v));
      return {
        items: [{ mime: ERROR, data: encoder.encode(JSON.stringify({ name: label(o.ename, 'Error'), message: label(o.evalue, ''), stack: traceback.join('\n') })) }],
        metadata,
      };
    }
    case 'display_data':
    case 'execute_result': {
      const data = o.data ?? {};
      if (!isRecord(data)) throw new Error(`${where}: "data" is ${describe(data)}; expected an object of MIME type -> value`);
      return {
        items: Object.entries(data).map(([mime, value]) => ({ mime, data: readMimeValue(mime, value, where) })),
        metadata: { ...metadata, ...(type === 'execute_result' ? { executionCount: readCount(o.execution_count) ?? null } : {}) },
      };
    }
    default:
      throw new Error(`${where}: "output_type" is ${describe(type)}; expected "stream", "display_data", "execute_result" or "error"`);
  }
}

function writeOutput(o: Output): NbOutput[] {
  const streams = o.items.filter((i) => i.mime === STDOUT || i.mime === STDERR);
  if (streams.length === o.items.length && streams.length > 0) {
    // One nbformat stream per run of the same stream.
    const out: NbOutput[] = [];
    for (const item of streams) {
      const name = item.mime === STDERR ? 'stderr' : 'stdout';
      const text = decoder.decode(item.data);
      const last = out.at(-1);
      if (last?.name === name) last.text = lines(joined(last.text) + text);
      else out.push({ output_type: 'stream', name, text: lines(text) });
    }
    return out;
  }
  const error = o.items.find((i) => i.mime === ERROR);
  if (error) {
    const e = JSON.parse(decoder.decode(error.data)) as { name?: string; message?: string; stack?: string };
    return [{ output_type: 'error', ename: e.name ?? 'Error', evalue: e.message ?? '', traceback: (e.stack ?? '').split('\n') }];
  }
  const data: Record<string, unknown> = {};
  for (const item of o.items) {
    if (isJsonMime(item.mime)) data[item.mime] = JSON.parse(decoder.decode(item.data)) as unknown;
    else if (isBinaryMime(item.mime)) data[item.mime] = Buffer.from(item.data).toString('base64');
    else data[item.mime] = lines(decoder.decode(item.data));
  }
  const meta = (o.metadata?.metadata ?? {}) as Record<string, unknown>;
  if (o.metadata?.outputType === 'execute_result') {
    return [{ output_type: 'execute_result', data, metadata: meta, execution_count: (o.metadata.executionCount as number | null | undefined) ?? null }];
  }
  return [{ output_type: 'display_data', data, metadata: meta }];
}

/** Serialises to nbformat 4.5 JSON (one-space indent, as Jupyter writes it, and a final newline). */
export function serializeNotebook(nb: Notebook): Uint8Array {
  // Cells keep the ids they were read with; a new cell gets one from its position (stable across saves).
  const taken = new Set(nb.cells.map((c) => c.metadata?.id).filter((id): id is string => typeof id === 'string'));
  const fresh = (index: number) => {
    let id = `cell-${index}`;
    for (let k = 1; taken.has(id); k++) id = `cell-${index}-${k}`;
    taken.add(id);
    return id;
  };
  const file: NbFile = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { ...nb.metadata, kernelspec: KERNELSPEC, language_info: { name: 'typescript', file_extension: '.ts' } },
    cells: nb.cells.map((c, index) => {
      const { id, ...rest } = c.metadata ?? {};
      const cellId = typeof id === 'string' ? id : fresh(index);
      if (c.kind === 'markdown') return { cell_type: 'markdown', id: cellId, metadata: rest, source: lines(c.source) };
      const metadata = c.language === 'typescript' ? rest : { ...rest, vscode: { languageId: c.language } };
      return {
        cell_type: 'code', id: cellId, metadata, source: lines(c.source),
        execution_count: c.executionCount ?? null,
        outputs: c.outputs.flatMap(writeOutput),
      };
    }),
  };
  return encoder.encode(JSON.stringify(file, null, 1) + '\n');
}
