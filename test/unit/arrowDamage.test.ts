import { before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildTable, readArrowFile, readArrowMetadata, writeArrowFile } from '../../src/runtime/store/arrow';
import { ArrowRows, windowColumn, windowStrings } from '../../src/runtime/store/arrowRows';
import { inflateArrowFooterMetadata } from './helpers/fuzz';
import { tempDir } from './helpers/spatialFixtures';

/**
 * Damaged Arrow files that carry no checksum (features, predictions, metrics): every flipped byte
 * of the metadata at either end must give a table or an error naming the file, never a loop, read
 * whole, by its footer, or by rows (arrowRows.ts)
 * (apache-arrow read flatbuffer list lengths unchecked: one flipped byte of a footer made a cache
 * check spin forever). A loop cannot be caught inside the process that spins, so the sweep runs
 * in a child with a time limit: this file, started again with TRIPLEX_ARROW_SWEEP set.
 */

/** A features-like file: ids, two vector columns, a mask, schema metadata. */
async function writeSample(file: string): Promise<void> {
  const n = 12;
  const w = 16;
  await writeArrowFile(file, buildTable([
    { name: 'spot_id', column: { kind: 'utf8', values: Array.from({ length: n }, (_, i) => `s${i}`) } },
    { name: 'global', column: { kind: 'vector', values: new Float32Array(n * w).map((_, i) => i / 7), width: w } },
    { name: 'neighbors', column: { kind: 'vector', values: new Float32Array(n * w * 25).fill(0.5), width: w * 25 } },
    { name: 'neighbor_mask', column: { kind: 'mask', values: new Uint8Array(n * 25).fill(1), width: 25 } },
  ], { 'triplex:section-key': 'abc', 'triplex:section': 'A1' }));
}

type Outcome = 'read' | 'refused' | 'unnamed';

/** Reads `file` both ways; an error must name the file. */
async function outcomes(file: string): Promise<Outcome[]> {
  const named = (e: unknown): Outcome => ((e as Error).message.startsWith(`${file}:`) ? 'refused' : 'unnamed');
  const whole = (() => { try { readArrowFile(file); return 'read' as const; } catch (e) { return named(e); } })();
  const footer = await readArrowMetadata(file).then(() => 'read' as const, named);
  const byRows = (() => {
    try {
      const rows = ArrowRows.open(file);
      const w = rows.read(0, rows.rows);
      for (const name of ['global', 'neighbors', 'neighbor_mask']) windowColumn(w, name, file);
      windowStrings(w, 'spot_id', file);
      return 'read' as const;
    } catch (e) {
      return named(e);
    }
  })();
  return [whole, footer, byRows];
}

async function sweep(dir: string): Promise<void> {
  const good = path.join(dir, 'good.arrow');
  await writeSample(good);
  const bytes = fs.readFileSync(good);
  const file = path.join(dir, 'damaged.arrow');
  const tally: Record<Outcome, number> = { read: 0, refused: 0, unnamed: 0 };
  const unnamed: string[] = [];
  // The schema message at the start and the footer at the end; the middle is column data.
  const positions = [...Array.from({ length: 400 }, (_, i) => i), ...Array.from({ length: 700 }, (_, i) => bytes.length - 1 - i)];
  for (const at of positions) {
    for (const flip of [0x01, 0x80, 0xff]) {
      const damaged = Buffer.from(bytes);
      damaged[at] ^= flip;
      fs.writeFileSync(file, damaged);
      for (const o of await outcomes(file)) {
        tally[o]++;
        if (o === 'unnamed') unnamed.push(`byte ${at} ^ ${flip}`);
      }
    }
  }
  // One flipped byte's worst case, made deterministic: 2^31 metadata entries.
  const inflated = path.join(dir, 'inflated.arrow');
  fs.writeFileSync(inflated, bytes);
  inflateArrowFooterMetadata(inflated);
  const messages = [
    (() => { try { readArrowFile(inflated); return 'read'; } catch (e) { return (e as Error).message; } })(),
    await readArrowMetadata(inflated).then(() => 'read', (e: Error) => e.message),
  ];
  console.log(JSON.stringify({ tally, unnamed: unnamed.slice(0, 5), inflated: { file: inflated, messages } }));
}

if (process.env.TRIPLEX_ARROW_SWEEP) {
  void sweep(process.env.TRIPLEX_ARROW_SWEEP);
} else {
  // A loop cannot be caught inside the process that spins: the reads run in a child with a time limit.
  const dir = tempDir('arrow-sweep');
  let child: { tally: Record<Outcome, number>; unnamed: string[]; inflated: { file: string; messages: string[] } } | undefined;
  before(() => {
    const r = spawnSync(process.execPath, [__filename], { env: { ...process.env, TRIPLEX_ARROW_SWEEP: dir }, encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
    assert.equal(r.signal, null, `the reads did not end within 120 s (a loop on a damaged file): ${r.stdout.slice(-500)}`);
    assert.equal(r.status, 0, r.stderr);
    child = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as typeof child;
  });

  test('every flipped metadata byte of an Arrow file gives a table or an error naming it, in time', () => {
    assert.deepEqual(child?.unnamed, [], 'errors that do not name the file');
    // Both outcomes occur: the sweep reaches bytes that matter and bytes that do not.
    const tally = child?.tally;
    assert.ok(tally && tally.refused > 100 && tally.read > 100, JSON.stringify(tally));
  });

  test('a footer that claims 2^31 metadata entries is refused, naming the file', () => {
    const { file, messages } = child?.inflated ?? { file: '?', messages: [] };
    assert.equal(messages.length, 2);
    for (const m of messages) assert.ok(m.startsWith(`${file}: not a readable Arrow IPC file (damaged metadata: a list of 2147483647 entries`), m);
  });

  test('files too short, without magic, or whose footer length overruns are refused', async () => {
    const dir = tempDir('arrow-frame');
    const file = path.join(dir, 'f.arrow');
    await writeSample(file);
    const bytes = fs.readFileSync(file);
    const cases: Array<[string, Buffer, RegExp]> = [
      ['empty', Buffer.alloc(0), /shorter than any Arrow IPC file/],
      ['no magic at the start', Buffer.concat([Buffer.from('ARROW2'), bytes.subarray(6)]), /no Arrow magic at the start/],
      ['cut short', bytes.subarray(0, bytes.length - 3), /no Arrow magic at the end/],
      ['footer longer than the file', (() => { const b = Buffer.from(bytes); b.writeInt32LE(bytes.length, bytes.length - 10); return b; })(), /footer length \d+ does not fit/],
    ];
    for (const [name, b, message] of cases) {
      fs.writeFileSync(file, b);
      await assert.rejects(readArrowMetadata(file), (e: Error) => e.message.startsWith(`${file}: not a readable Arrow IPC file`) && message.test(e.message), name);
    }
  });
}
