import * as fs from 'node:fs';
import {
  Field, FixedSizeList, Float32, Schema, Table, Uint8, Utf8,
  Data, makeData, makeVector, tableFromIPC, tableToIPC, vectorFromArray, type Vector,
} from 'apache-arrow';
import { fileKind } from '../data/files';
import { checkArrowFile, decodeFooter, isArrowFileFormat, locateFooter } from './arrowLayout';
import { writeFileAtomic } from './atomic';

/**
 * Small typed helpers over apache-arrow for the store's columns: strings, numbers, and
 * fixed-size float vectors (one per spot: expression rows, feature vectors). Files are Arrow
 * IPC *file* format, readable by pyarrow (`pa.ipc.open_file`), polars (`pl.read_ipc`) and others.
 */

export type ColumnValue =
  | { kind: 'utf8'; values: (string | null)[] }
  | { kind: 'int32'; values: Int32Array }
  | { kind: 'float64'; values: Float64Array }
  | { kind: 'vector'; values: Float32Array; width: number }
  | { kind: 'mask'; values: Uint8Array; width: number };

export interface ColumnSpec {
  name: string;
  column: ColumnValue;
  /** Field metadata (e.g. gene names of an expression column). */
  metadata?: Record<string, string>;
}

function vectorOf(c: ColumnValue): Vector {
  switch (c.kind) {
    case 'utf8':
      return vectorFromArray(c.values, new Utf8());
    case 'int32':
      return makeVector(c.values);
    case 'float64':
      return makeVector(c.values);
    case 'vector':
      return fixedSizeList(new Float32(), c.values, c.width);
    case 'mask':
      return fixedSizeList(new Uint8(), c.values, c.width);
  }
}

/** One row per `width` consecutive values, sharing the buffer (no copy). */
function fixedSizeList(item: Float32 | Uint8, values: Float32Array | Uint8Array, width: number): Vector {
  const length = values.length / width;
  if (!Number.isInteger(length)) throw new Error(`a column of width ${width} was given ${values.length} values`);
  const child = item instanceof Float32
    ? makeData({ type: item, length: values.length, nullCount: 0, data: values as Float32Array })
    : makeData({ type: item, length: values.length, nullCount: 0, data: values as Uint8Array });
  // The two item types take the same path; the cast only picks one for the type checker.
  const type = new FixedSizeList(width, new Field('item', item, false)) as FixedSizeList<Float32>;
  return makeVector(makeData({ type, length, nullCount: 0, child: child as Data<Float32> }));
}

/** Builds a table whose schema carries `metadata` and each field's own metadata. */
export function buildTable(columns: ColumnSpec[], metadata: Record<string, string> = {}): Table {
  const vectors = columns.map((c) => vectorOf(c.column));
  const lengths = new Set(vectors.map((v) => v.length));
  if (lengths.size > 1) throw new Error(`columns differ in length: ${columns.map((c, i) => `${c.name}=${vectors[i].length}`).join(', ')}`);
  const fields = columns.map((c, i) => new Field(c.name, vectors[i].type, c.column.kind === 'utf8' && c.column.values.includes(null),
    new Map(Object.entries(c.metadata ?? {}))));
  const schema = new Schema(fields, new Map(Object.entries(metadata)));
  return new Table(schema, Object.fromEntries(columns.map((c, i) => [c.name, vectors[i]])));
}

/** Writes a table as an Arrow IPC file, atomically. */
export async function writeArrowFile(file: string, table: Table): Promise<void> {
  await writeFileAtomic(file, tableToIPC(table, 'file'));
}

/** Reads an Arrow IPC file (file or stream format), naming the file when it cannot. */
export function readArrowFile(file: string): Table {
  let bytes: Buffer;
  try {
    // Reading a named pipe waits for a writer forever (a FIFO as expressions.arrow hung `triplex cv`).
    const stat = fs.statSync(file);
    if (!stat.isFile()) throw new Error(`${file} is ${fileKind(stat)}, not a regular file`);
    bytes = fs.readFileSync(file);
  } catch (cause) {
    if ((cause as Error).message.startsWith(`${file} is `)) throw cause;
    throw new Error(`${file}: cannot read (${(cause as Error).message})`, { cause });
  }
  try {
    // Our files are all file format; a stream (no magic) is read as it comes.
    if (isArrowFileFormat(bytes)) checkArrowFile(bytes);
    return tableFromIPC(bytes);
  } catch (cause) {
    throw unreadableArrow(file, cause);
  }
}

/** The error of an Arrow file that cannot be read: the file, what is wrong, and what to do. */
export function unreadableArrow(file: string, cause: unknown): Error {
  return new Error(`${file}: not a readable Arrow IPC file (${(cause as Error).message}); re-run the step that writes it`, { cause });
}

/**
 * The schema metadata of an Arrow IPC file, read from its footer without loading the data (a
 * section's features run to hundreds of MB; a cache check needs one key). The footer is located
 * and bounded here and decoded from memory, never read past the end of the file (apache-arrow's
 * own reader, given a handle, spun forever on some damaged footers).
 */
export async function readArrowMetadata(file: string): Promise<Map<string, string>> {
  const handle = await fs.promises.open(file, 'r');
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${file} is ${fileKind(stat)}, not a regular file`);
    const at = async (position: number, length: number) => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, Math.max(0, position));
      return buffer.subarray(0, bytesRead);
    };
    const { start, length } = locateFooter(stat.size, await at(0, 8), await at(stat.size - 10, 10));
    return decodeFooter(await at(start, length)).schema.metadata;
  } catch (cause) {
    if ((cause as Error).message.startsWith(`${file} is `)) throw cause;
    throw unreadableArrow(file, cause);
  } finally {
    await handle.close();
  }
}

/** The contiguous values of a fixed-size-list float column, [rows, width]. */
export function vectorColumn(table: Table, name: string): { values: Float32Array; width: number } {
  const column = table.getChild(name);
  if (!column) throw new Error(`column ${name} is missing`);
  const type = column.type as unknown;
  if (!(type instanceof FixedSizeList)) throw new Error(`column ${name} is not a fixed-size list`);
  const width = type.listSize;
  const values = new Float32Array(column.length * width);
  let offset = 0;
  for (const data of column.data) {
    const child = data.children[0];
    const start = (data.offset + child.offset) * 1;
    values.set((child.values as Float32Array).subarray(start, start + data.length * width), offset);
    offset += data.length * width;
  }
  return { values, width };
}

/** The values of a string column. */
export function stringColumn(table: Table, name: string): string[] {
  const column = table.getChild(name);
  if (!column) throw new Error(`column ${name} is missing`);
  return Array.from(column.toArray() as Iterable<string>);
}

