import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTable, readArrowFile, stringColumn, vectorColumn, writeArrowFile } from '../../src/runtime/store/arrow';
import { writeArrowBatches } from '../../src/runtime/store/arrowBatches';
import { decodeFooter, locateFooter } from '../../src/runtime/store/arrowLayout';
import { ArrowRows, windowColumn, windowStrings } from '../../src/runtime/store/arrowRows';
import { tempDir } from './helpers/spatialFixtures';

/**
 * The reader of Arrow IPC files by rows (store/arrowRows.ts): any row range of a file of several
 * record batches, written by our batch writer (as features files are) or whole, gives the rows
 * the whole-file reader gives; a damaged layout is refused naming the file, before any data is
 * trusted. (pyarrow is not installed here: Debian has no python3-pyarrow.)
 */

const W = 6;
/** Batches of these sizes: a 77-row batch (a row count found by its bytes below) and uneven others. */
const SIZES = [5, 77, 9, 1, 13];

function part(start: number, n: number) {
  return buildTable([
    { name: 'spot_id', column: { kind: 'utf8', values: Array.from({ length: n }, (_, i) => `s${start + i}`) } },
    { name: 'global', column: { kind: 'vector', values: Float32Array.from({ length: n * W }, (_, i) => (start * W + i) / 7), width: W } },
    { name: 'neighbor_mask', column: { kind: 'mask', values: Uint8Array.from({ length: n * 3 }, (_, i) => (start * 3 + i) % 2), width: 3 } },
  ]);
}

async function writeBatches(file: string): Promise<void> {
  let start = 0;
  const tables = SIZES.map((n) => { const t = part(start, n); start += n; return t; });
  await writeArrowBatches(file, tables, { 'triplex:section': 'A1' });
}

function assertSameRows(file: string, rows: ArrowRows, from: number, count: number): void {
  const whole = readArrowFile(file);
  const w = rows.read(from, count);
  const g = vectorColumn(whole, 'global');
  assert.deepEqual(windowColumn(w, 'global', file).values, g.values.subarray(from * W, (from + count) * W), `global ${from}+${count}`);
  const m = vectorColumn(whole, 'neighbor_mask');
  assert.deepEqual(windowColumn(w, 'neighbor_mask', file).values, Float32Array.from(m.values.subarray(from * 3, (from + count) * 3)), `mask ${from}+${count}`);
  assert.deepEqual(windowStrings(w, 'spot_id', file), stringColumn(whole, 'spot_id').slice(from, from + count));
}

test('row ranges of a file of several record batches give the whole reader\'s rows', async () => {
  const file = path.join(tempDir('arrow-rows'), 'batches.arrow');
  await writeBatches(file);
  const rows = ArrowRows.open(file);
  const total = SIZES.reduce((a, b) => a + b, 0);
  assert.equal(rows.rows, total);
  assert.equal(rows.batchCount, SIZES.length);
  assert.equal(rows.metadata.get('triplex:section'), 'A1');
  assert.deepEqual([...rows.widths], [['global', W], ['neighbor_mask', 3]]);
  // Inside one batch, across batch edges, a single row, the last rows, everything, nothing.
  for (const [from, count] of [[0, 5], [2, 3], [3, 80], [80, 4], [82, 9], [91, 1], [total - 13, 13], [0, total], [total, 0], [50, 0]]) assertSameRows(file, rows, from, count);
  // A window reads only the batches that cover it: its table has their rows, not the file's.
  assert.equal(rows.read(83, 2).table.numRows, 9);
  assert.throws(() => rows.read(total - 1, 2), (e: Error) => e.message.startsWith(`${file}: rows ${total - 1}..${total + 1} asked of a file of ${total} rows`));
});

test('a file written whole (one record batch) reads by rows too', async () => {
  const file = path.join(tempDir('arrow-rows'), 'whole.arrow');
  await writeArrowFile(file, part(0, 20));
  const rows = ArrowRows.open(file);
  assert.equal(rows.batchCount, 1);
  assertSameRows(file, rows, 7, 11);
});

test('no descriptor is held between reads, and a file replaced after opening is refused naming it', async () => {
  const file = path.join(tempDir('arrow-rows'), 'replaced.arrow');
  await writeBatches(file);
  const open = () => fs.readdirSync('/proc/self/fd').length;
  const before = open();
  const rows = ArrowRows.open(file);
  rows.read(0, 10);
  assert.equal(open(), before, 'a descriptor stays open after open and read');
  // A re-run of extract replaces the file: the layout read at open no longer describes it.
  await writeArrowFile(file, part(0, 20));
  assert.throws(() => rows.read(0, 10), (e: Error) => e.message.startsWith(`${file}: cannot read (it changed since it was opened`));
});

/** The offset of the `index`th occurrence of `needle` in `hay` at or after `from`. */
function find(hay: Buffer, needle: Buffer, from = 0): number {
  const at = hay.indexOf(needle, from);
  assert.ok(at >= 0, `bytes ${needle.toString('hex')} not found`);
  return at;
}

test('a damaged layout is refused naming the file: a block past the end, a batch whose rows outnumber its values, no file', async () => {
  const dir = tempDir('arrow-rows-damage');
  const good = path.join(dir, 'good.arrow');
  await writeBatches(good);
  const bytes = fs.readFileSync(good);
  const { start, length } = locateFooter(bytes.length, bytes.subarray(0, 8), bytes.subarray(bytes.length - 10));
  const footer = decodeFooter(bytes.subarray(start, start + length));
  const refused = (name: string, damaged: Buffer, message: RegExp) => {
    const file = path.join(dir, `${name}.arrow`);
    fs.writeFileSync(file, damaged);
    assert.throws(() => {
      const rows = ArrowRows.open(file);
      const w = rows.read(0, rows.rows);
      windowColumn(w, 'global', file);
      windowColumn(w, 'neighbor_mask', file);
    }, (e: Error) => e.message.startsWith(`${file}: `) && message.test(e.message), `${name}: the error names the file and says ${message}`);
  };

  // The footer's block of record batch 3 (a 24-byte struct: int64 offset, int32 metadata length, padding, int64 body length) moved past the end.
  const block = footer.getRecordBatch(3)!;
  const entry = Buffer.alloc(8);
  entry.writeBigInt64LE(BigInt(block.offset));
  const past = Buffer.from(bytes);
  past.writeBigInt64LE(BigInt(bytes.length + 4096), find(past, entry, start));
  refused('past-end', past, /record batch 3 \(bytes \d+ \+ \d+ \+ \d+\) lies outside the data of a \d+-byte file/);

  // Record batch 1's row count (77, an int64 in its message: the batch's length and its columns' node lengths) made 78, one place at a time.
  const second = footer.getRecordBatch(1)!;
  const places: number[] = [];
  for (let at = bytes.indexOf(Buffer.from([77, 0, 0, 0, 0, 0, 0, 0]), second.offset); at >= 0 && at < second.offset + second.metaDataLength; at = bytes.indexOf(Buffer.from([77, 0, 0, 0, 0, 0, 0, 0]), at + 1)) places.push(at);
  assert.ok(places.length >= 2, `the row count is recorded for the batch and its columns (${places.length} places)`);
  for (const at of places) {
    const more = Buffer.from(bytes);
    more[at] = 78;
    refused(`more-rows-${at}`, more, /column '\w+' cannot be read \(\d+ values for 78 rows of \d+\); the file is damaged|schemas must be equivalent|decode to \d+ rows/);
  }

  // Record batch 2's message marker, and a file cut short.
  const marker = Buffer.from(bytes);
  marker.writeInt32LE(5, footer.getRecordBatch(2)!.offset);
  refused('marker', marker, /record batch 2 at byte \d+ does not start with a message marker/);
  refused('cut', bytes.subarray(0, bytes.length - 100), /no Arrow magic at the end/);
  assert.throws(() => ArrowRows.open(dir), (e: Error) => e.message === `${dir} is a folder, not a regular file`);
  assert.throws(() => ArrowRows.open(path.join(dir, 'none.arrow')), (e: Error) => e.message.startsWith(`${path.join(dir, 'none.arrow')}: cannot read (ENOENT`));
});
