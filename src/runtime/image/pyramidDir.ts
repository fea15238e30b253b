import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Builds a tile pyramid in a folder beside `dir` and renames it in at the end, with its
 * pyramid.json and source.json (what it was made from, to reuse it): an interrupted run leaves no
 * half pyramid. `build` fills the partial folder and returns the pyramid's description.
 */
export async function buildPyramidDir<P extends object>(dir: string, source: object, build: (partial: string) => Promise<P>): Promise<P> {
  const partial = `${dir}.partial-${process.pid}`;
  fs.rmSync(partial, { recursive: true, force: true });
  fs.mkdirSync(partial, { recursive: true });
  try {
    const pyramid = await build(partial);
    fs.writeFileSync(path.join(partial, 'pyramid.json'), JSON.stringify(pyramid));
    fs.writeFileSync(path.join(partial, 'source.json'), JSON.stringify(source));
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(path.dirname(dir), { recursive: true });
    fs.renameSync(partial, dir);
    return pyramid;
  } catch (err) {
    fs.rmSync(partial, { recursive: true, force: true });
    throw err;
  }
}
