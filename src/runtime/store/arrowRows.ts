import * as fs from 'node:fs';
import { FixedSizeList, MessageHeader, Table, tableFromIPC, tableToIPC, type Schema } from 'apache-arrow';
import { fileKind } from '../data/files';
import { unreadableArrow } from './arrow';
import { checkBlockMessage, checkBlockPlace, decodeFooter, locateFooter, type BlockPlace } from './arrowLayout';

/**
 * An Arrow IPC file read by rows: only the record batches that cover a row range are read, so
 * memory holds a window, not the file (a whole-slide section's features run to gigabytes, and
 * Node refuses to read a file over 2 GiB whole). Opening reads the footer and each record batch's
 * metadata (a few hundred bytes each), with the checks readArrowFile makes on the whole frame
 * (arrowLayout.ts): every block inside the file and holding the message it should. A range is
 * decoded by apache-arrow from the footer's schema, the dictionary batches and the covering
 * record batches, laid end to end as an IPC stream. Errors name the file.
 */

/** One record batch of the file: its first row and row count, and where its block lies. */
interface BatchPlace { start: number; rows: number; block: BlockPlace }

/** The rows a range read returned: a table of the covering record batches, the range starting at row `skip` of it. */
export interface RowWindow { table: Table; skip: number; count: number }

export class ArrowRows {
  private constructor(
    readonly file: string,
    /** The file as it was opened (size, modification time): a read of a file replaced since is refused. */
    private readonly stamp: { size: number; mtimeMs: number },
    /** The schema message and every dictionary batch: the head of each range's stream. */
    private readonly head: Buffer,
    private readonly batches: readonly BatchPlace[],
    /** The schema's metadata (from the footer). */
    readonly metadata: Map<string, string>,
    /** Each fixed-size-list column's width, by name. */
    readonly widths: Map<string, number>,
    readonly fields: readonly string[],
  ) {}

  /** Rows in the file. */
  get rows(): number {
    const last = this.batches.at(-1);
    return last ? last.start + last.rows : 0;
  }

  /** Record batches in the file. */
  get batchCount(): number { return this.batches.length; }

  /** Opens `file` and reads its layout (not its data). */
  static open(file: string): ArrowRows {
    let fd: number | undefined;
    try {
      // Opening a named pipe waits for a writer forever: its kind is checked first.
      const stat = fs.statSync(file);
      if (!stat.isFile()) throw new Error(`${file} is ${fileKind(stat)}, not a regular file`);
      fd = fs.openSync(file, 'r');
    } catch (cause) {
      if ((cause as Error).message.startsWith(`${file} is `)) throw cause;
      throw new Error(`${file}: cannot read (${(cause as Error).message})`, { cause });
    }
    try {
      const size = fs.fstatSync(fd).size;
      const at = (position: number, length: number) => readAt(fd!, position, length);
      const { start: footerStart, length } = locateFooter(size, at(0, 8), at(size - 10, 10));
      const footer = decodeFooter(at(footerStart, length));
      const schemaMessage = schemaHead(footer.schema);
      const dictionaries = Array.from({ length: footer.numDictionaries }, (_, i) => {
        const what = `dictionary batch ${i}`;
        const block = footer.getDictionaryBatch(i);
        if (!block) throw new Error(`the footer lists no block for ${what}`);
        checkBlockPlace(what, block, footerStart, size);
        checkBlockMessage(what, MessageHeader.DictionaryBatch, at(block.offset, block.metaDataLength), block);
        return at(block.offset, block.metaDataLength + block.bodyLength);
      });
      let rows = 0;
      const batches = Array.from({ length: footer.numRecordBatches }, (_, i): BatchPlace => {
        const what = `record batch ${i}`;
        const block = footer.getRecordBatch(i);
        if (!block) throw new Error(`the footer lists no block for ${what}`);
        checkBlockPlace(what, block, footerStart, size);
        const header = checkBlockMessage(what, MessageHeader.RecordBatch, at(block.offset, block.metaDataLength), block);
        // Every column but a null one takes at least a bit a row: a count past that is damage (and would size the reader's arrays).
        if (!(Number.isSafeInteger(header.length) && header.length >= 0 && header.length <= block.bodyLength * 8)) throw new Error(`${what} says it has ${header.length} rows in ${block.bodyLength} bytes`);
        const place = { start: rows, rows: header.length, block: { offset: block.offset, metaDataLength: block.metaDataLength, bodyLength: block.bodyLength } };
        rows += header.length;
        return place;
      });
      const fields = footer.schema.fields;
      const widths = new Map(fields.filter((f) => f.type instanceof FixedSizeList).map((f) => [f.name, (f.type as FixedSizeList).listSize]));
      const stat = fs.fstatSync(fd);
      return new ArrowRows(file, { size: stat.size, mtimeMs: stat.mtimeMs }, Buffer.concat([schemaMessage, ...dictionaries]), batches, footer.schema.metadata, widths, fields.map((f) => f.name));
    } catch (cause) {
      throw unreadableArrow(file, cause);
    } finally {
      // No descriptor is held between reads: a notebook kernel or the extension host predicts many times in one process.
      fs.closeSync(fd);
    }
  }

  /** Rows [from, from + count), decoded from the record batches that hold them. */
  read(from: number, count: number): RowWindow {
    if (!(Number.isInteger(from) && Number.isInteger(count) && from >= 0 && count >= 0 && from + count <= this.rows)) {
      throw new Error(`${this.file}: rows ${from}..${from + count} asked of a file of ${this.rows} rows`);
    }
    const first = this.batches.findIndex((b) => b.start + b.rows > from);
    const covering = count === 0 ? [] : this.batches.slice(first, this.batches.findIndex((b) => b.start + b.rows >= from + count) + 1);
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
      const now = fs.fstatSync(fd);
      if (now.size !== this.stamp.size || now.mtimeMs !== this.stamp.mtimeMs) {
        fs.closeSync(fd);
        throw new Error(`it changed since it was opened (${this.stamp.size} bytes then, ${now.size} now); load the store's features again`);
      }
    } catch (cause) {
      throw new Error(`${this.file}: cannot read (${(cause as Error).message})`, { cause });
    }
    try {
      // One buffer for the stream: the head, then each block read in place (no second copy).
      const stream = Buffer.allocUnsafe(covering.reduce((n, { block }) => n + block.metaDataLength + block.bodyLength, this.head.length));
      this.head.copy(stream);
      let at = this.head.length;
      for (const { block } of covering) at += readInto(fd, stream.subarray(at, at + block.metaDataLength + block.bodyLength), block.offset);
      if (at !== stream.length) throw new Error(`the file ends inside record batch ${first + covering.length - 1}`);
      const table = tableFromIPC(stream);
      const expected = covering.reduce((n, b) => n + b.rows, 0);
      if (table.numRows !== expected) throw new Error(`record batches ${first}..${first + covering.length - 1} decode to ${table.numRows} rows, their messages say ${expected}`);
      return { table, skip: covering.length ? from - covering[0].start : 0, count };
    } catch (cause) {
      throw unreadableArrow(this.file, cause);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** `length` bytes at `position` (fewer at the end of the file). */
function readAt(fd: number, position: number, length: number): Buffer {
  const buffer = Buffer.allocUnsafe(length);
  return buffer.subarray(0, readInto(fd, buffer, position));
}

/** Fills `buffer` from `position` on; the bytes read (fewer at the end of the file). */
function readInto(fd: number, buffer: Buffer, position: number): number {
  let done = 0;
  while (done < buffer.length) {
    const n = fs.readSync(fd, buffer, done, buffer.length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * The schema message of a stream, made from the footer's schema: apache-arrow's file writer puts
 * none at the start of the file (pyarrow's does), the footer always has it.
 */
function schemaHead(schema: Schema): Buffer {
  const stream = Buffer.from(tableToIPC(new Table(schema), 'stream'));
  // A stream ends with an end-of-stream marker (-1, then length 0), which would end the range's stream here.
  return stream.length >= 8 && stream.readInt32LE(stream.length - 8) === -1 && stream.readInt32LE(stream.length - 4) === 0 ? stream.subarray(0, stream.length - 8) : stream;
}

/**
 * Rows of a fixed-size-list column (float or uint8 items) of a window, as floats [count, width];
 * a column whose values fall short of its rows (a damaged body or schema) is refused, naming the file.
 */
export function windowColumn(w: RowWindow, name: string, file: string): { values: Float32Array; width: number } {
  const column = w.table.getChild(name);
  if (!column) throw new Error(`${file}: no column '${name}'`);
  const type = column.type as unknown;
  if (!(type instanceof FixedSizeList)) throw new Error(`${file}: column '${name}' is not a fixed-size list`);
  const width = type.listSize;
  return damaged(file, name, () => {
    if (!(Number.isSafeInteger(width) && width > 0)) throw new Error(`a list size of ${width}`);
    for (const data of column.data) {
      const items = data.children[0].values as Float32Array | Uint8Array;
      const base = data.offset * width + data.children[0].offset;
      if (items.length < base + data.length * width) throw new Error(`${items.length - base} values for ${data.length} rows of ${width}`);
    }
    const values = new Float32Array(w.count * width);
    let row = 0; // the first row of the current chunk in the window's table
    for (const data of column.data) {
      const items = data.children[0].values as Float32Array | Uint8Array;
      const base = data.offset * width + data.children[0].offset;
      const lo = Math.max(w.skip, row);
      const hi = Math.min(w.skip + w.count, row + data.length);
      if (hi > lo) values.set(items.subarray(base + (lo - row) * width, base + (hi - row) * width), (lo - w.skip) * width);
      row += data.length;
    }
    return { values, width };
  });
}

/** Rows of a string column of a window. */
export function windowStrings(w: RowWindow, name: string, file: string): string[] {
  const column = w.table.getChild(name);
  if (!column) throw new Error(`${file}: no column '${name}'`);
  return damaged(file, name, () => {
    const out: string[] = [];
    for (let i = w.skip; i < w.skip + w.count; i++) out.push(String(column.get(i)));
    return out;
  });
}

/** Runs `read` of a column; what apache-arrow or the checks throw on damaged data is said with the file and column. */
function damaged<T>(file: string, name: string, read: () => T): T {
  try {
    return read();
  } catch (cause) {
    throw new Error(`${file}: column '${name}' cannot be read (${(cause as Error).message}); the file is damaged: re-run the step that writes it`, { cause });
  }
}
