import * as readline from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { SlideTileCutter } from './slideTiles';
import type { TilePyramid } from './tiles';

/**
 * `triplex tiles --serve`: the slide viewer's tile cutter as a long-lived process. It reads Deep
 * Zoom tile names (`level/col_row`), one a line, and answers each with one JSON line,
 * `{"tile": name, "file": path}` or `{"tile": name, "error": message}`, in the order the tiles
 * are done (several at once: the host bounds how many it sends). The slide is opened at the start,
 * once, with its cache of decoded tiles; tiles already on disk are answered at once. Ends when the
 * input ends.
 */

/** What one answer line says. */
export type TileAnswer = { tile: string; file: string } | { tile: string; error: string };

/** Longest line read as a tile name (anything longer is answered with an error, not buffered on). */
const MAX_NAME = 64;

export async function serveSlideTiles(image: string, pyramid: TilePyramid, input: Readable, output: Writable): Promise<void> {
  const cutter = new SlideTileCutter(image, pyramid);
  const pending = new Set<Promise<void>>();
  const answer = (a: TileAnswer) => { output.write(`${JSON.stringify(a)}\n`); };
  if (pyramid.onDemand) void cutter.open(); // before the first name arrives: the viewer is waiting
  try {
    for await (const line of readline.createInterface({ input, crlfDelay: Infinity })) {
      const name = line.trim();
      if (!name) continue;
      if (name.length > MAX_NAME) {
        answer({ tile: name.slice(0, MAX_NAME), error: `a tile name of ${name.length} characters: expected <level>/<col>_<row>, e.g. 14/3_5` });
        continue;
      }
      const job = cutter.file(name).then((file) => answer({ tile: name, file }), (err: unknown) => answer({ tile: name, error: (err as Error).message }));
      pending.add(job);
      void job.finally(() => pending.delete(job));
    }
    await Promise.all(pending);
  } finally {
    cutter.close();
  }
}
