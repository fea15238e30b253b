import * as fs from 'node:fs';
import * as path from 'node:path';
import { RecordBatch, RecordBatchFileWriter, Schema, type Table } from 'apache-arrow';
import { makeDir } from './fsErrors';

/**
 * Writes tables one after another into one Arrow IPC file as its record batches (one or more per
 * table), atomically: a partial file beside the target, renamed over it when complete. The
 * writer's bytes are drained to disk after every table, so memory holds one table, not the file:
 * a whole-slide section's features run to gigabytes (issue 16). The tables share their fields;
 * the file's schema carries `metadata`. Readers take the file whole (arrow.ts readArrowFile) or
 * by rows (arrowRows.ts).
 */
export async function writeArrowBatches(file: string, tables: Iterable<Table> | AsyncIterable<Table>, metadata: Record<string, string>): Promise<void> {
  makeDir(path.dirname(file));
  const partial = `${file}.partial-${process.pid}-${Date.now()}`;
  const writer = new RecordBatchFileWriter();
  const bytes = writer[Symbol.asyncIterator]();
  const out = await fs.promises.open(partial, 'w');
  let next: Promise<IteratorResult<Uint8Array>> | undefined;
  const idle = Symbol('idle');
  /** Writes what the writer has produced; with `all`, until it is finished. */
  const drain = async (all: boolean) => {
    for (;;) {
      next ??= bytes.next();
      const r = all ? await next : await Promise.race([next, new Promise<typeof idle>((resolve) => setImmediate(() => resolve(idle)))]);
      if (r === idle) return;
      next = undefined;
      if (r.done) return;
      await out.write(r.value);
    }
  };
  try {
    for await (const t of tables) {
      const schema = new Schema(t.schema.fields, new Map(Object.entries(metadata)));
      for (const batch of t.batches) writer.write(new RecordBatch(schema, batch.data));
      await drain(false);
    }
    writer.finish();
    await drain(true);
    await out.sync();
    await out.close();
    fs.renameSync(partial, file);
  } catch (e) {
    await out.close().catch(() => undefined);
    fs.rmSync(partial, { force: true });
    throw e;
  }
}
