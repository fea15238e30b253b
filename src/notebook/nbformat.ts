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

/** Parses a notebook file; `file` names it in errors. An empty file is an empty notebook. */
export function parseNotebook(bytes: Uint8Array, file = 'notebook'): Notebook {
  const text = decoder.decode(bytes);
  if (text.trim() === '') return { cells: [], metadata: { kernelspec: KERNELSPEC } };
  let raw: NbFile;
  try {
    raw = JSON.parse(text) as NbFile;
  } catch (err) {
    throw new Error(`${file} is not valid notebook JSON (${(err as Error).message}); was it cut short?`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null || !Array.isArray(raw.cells)) throw new Error(`${file} is not an nbformat notebook: it has no "cells" list`);
  if (raw.nbformat !== 4) throw new Error(`${file} is nbformat ${raw.nbformat}; TRIPLEX notebooks read nbformat 4 (convert it with \`jupyter nbconvert --to notebook\`)`);
  const defaultLanguage = String((raw.metadata?.kernelspec as { language?: string } | undefined)?.language ?? 'typescript');
  return {
    metadata: raw.metadata ?? {},
    cells: raw.cells.map((c, i) => {
      if (typeof c !== 'object' || c === null) throw new Error(`${file}: cell ${i + 1} is not an object`);
      const vscodeMeta = (c.metadata?.vscode ?? {}) as { languageId?: string };
      const kind: CellKind = c.cell_type === 'code' ? 'code' : 'markdown';
      return {
        kind,
        source: joined(c.source),
        language: kind === 'markdown' ? 'markdown' : vscodeMeta.languageId ?? defaultLanguage,
        outputs: (c.outputs ?? []).map(readOutput),
        executionCount: c.execution_count ?? undefined,
        metadata: { ...c.metadata, ...(c.id ? { id: c.id } : {}) },
      };
    }),
  };
}

function readOutput(o: NbOutput): Output {
  const metadata = { outputType: o.output_type, ...(o.metadata ? { metadata: o.metadata } : {}) };
  switch (o.output_type) {
    case 'stream':
      return { items: [{ mime: o.name === 'stderr' ? STDERR : STDOUT, data: encoder.encode(joined(o.text)) }], metadata };
    case 'error':
      return {
        items: [{ mime: ERROR, data: encoder.encode(JSON.stringify({ name: o.ename ?? 'Error', message: o.evalue ?? '', stack: (o.traceback ?? []).join('\n') })) }],
        metadata,
      };
    default:
      return {
        items: Object.entries(o.data ?? {}).map(([mime, value]) => ({
          mime,
          data: isJsonMime(mime) ? encoder.encode(typeof value === 'string' ? value : JSON.stringify(value))
            : isBinaryMime(mime) ? Buffer.from(joined(value as string | string[]).replace(/\s/g, ''), 'base64')
              : encoder.encode(joined(value as string | string[])),
        })),
        metadata: { ...metadata, ...(o.execution_count !== undefined ? { executionCount: o.execution_count } : {}) },
      };
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
