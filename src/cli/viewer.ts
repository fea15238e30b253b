import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { parseTileName, SlideTileCutter } from '../runtime/image/slideTiles';
import { serveSlideTiles } from '../runtime/image/tileServe';
import { writeTilePyramid } from '../runtime/image/tiles';
import { spotImages } from '../runtime/notebook/outputs';
import { openDatasetStore } from '../runtime/store/datasetStore';
import { pathInside } from '../runtime/store/identifiers';

/**
 * What the slide viewer asks of the runtime, in a child process (never in the editor): a
 * section's tile pyramid, and a spot's crop and neighbour view. Both print JSON.
 */

/** Where the viewer's files for a section live inside the store (ids are checked when the store opens). */
export function viewerDir(store: string, section: string): string {
  return pathInside(path.join(store, 'viewer'), section);
}

export function tilesCommand(): Command {
  return new Command('tiles')
    .description('tile pyramid (Deep Zoom, 256 px JPEG) of a section\'s image for the slide viewer; reused when made from the same file')
    .argument('<store>', 'dataset store')
    .requiredOption('--section <id>', 'section')
    .option('--tile <level/col_row...>', 'a whole slide\'s pyramid is cut on demand: write these tiles (e.g. 14/3_5 14/4_5) and print their files')
    .option('--serve', 'a whole slide\'s tiles on demand for the slide viewer: read tile names on stdin, one a line, and answer each with a JSON line (its file or an error)')
    .action(async (store: string, o: { section: string; tile?: string[]; serve?: boolean }, cmd: Command) => {
      if (o.tile && o.serve) cmd.error('error: --tile and --serve: give one of them', { exitCode: 2 });
      const bad = o.tile?.find((t) => !parseTileName(t));
      if (bad !== undefined) cmd.error(`error: --tile ${bad}: expected <level>/<col>_<row>, e.g. 14/3_5`, { exitCode: 2 });
      const s = openDatasetStore(store).manifest.sections.find((x) => x.id === o.section);
      if (!s) throw new Error(`${store}: no section '${o.section}'`);
      if (!s.image) throw new Error(`${store}: section '${o.section}' has no image`);
      const pyramid = await writeTilePyramid(s.image.path, path.join(viewerDir(store, o.section), 'tiles'));
      if (o.serve) {
        // A plain image's pyramid is whole: every name is answered from disk, or as missing.
        return serveSlideTiles(s.image.path, pyramid, process.stdin, process.stdout);
      }
      if (o.tile === undefined) return console.log(JSON.stringify(pyramid));
      const cutter = new SlideTileCutter(s.image.path, pyramid);
      try {
        const files: string[] = [];
        for (const name of o.tile) {
          files.push(await cutter.file(name));
        }
        console.log(JSON.stringify(files.length === 1 ? { file: files[0] } : { files }));
      } finally {
        cutter.close();
      }
    });
}

export function spotViewCommand(): Command {
  return new Command('spot-view')
    .description('a spot\'s 224 px crop and 1120 px neighbour view (masked tiles hatched) as PNG files')
    .argument('<store>', 'dataset store')
    .requiredOption('--spot <id>', 'spot id')
    .option('--section <id>', 'section (when spot ids repeat across sections)')
    .action(async (store: string, o: { spot: string; section?: string }) => {
      const images = await spotImages(openDatasetStore(store), o.spot, o.section);
      const dir = path.join(viewerDir(store, images.section), 'spots');
      fs.mkdirSync(dir, { recursive: true });
      const safe = o.spot.replace(/[^\w.-]/g, '_');
      const files = { crop: pathInside(dir, `${safe}-crop.png`), neighbors: pathInside(dir, `${safe}-neighbors.png`) };
      for (const [key, file] of Object.entries(files) as ['crop' | 'neighbors', string][]) {
        const partial = `${file}.partial-${process.pid}`;
        fs.writeFileSync(partial, images[key]);
        fs.renameSync(partial, file);
      }
      console.log(JSON.stringify({ section: images.section, ...files, maskedTiles: images.maskedTiles }));
    });
}
