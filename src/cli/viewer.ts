import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { ensureSlideTile } from '../runtime/image/slideTiles';
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
    .option('--tile <level/col_row>', 'a whole slide\'s pyramid is cut on demand: write this tile (e.g. 14/3_5) and print its file')
    .action(async (store: string, o: { section: string; tile?: string }, cmd: Command) => {
      const s = openDatasetStore(store).manifest.sections.find((x) => x.id === o.section);
      if (!s) throw new Error(`${store}: no section '${o.section}'`);
      if (!s.image) throw new Error(`${store}: section '${o.section}' has no image`);
      const pyramid = await writeTilePyramid(s.image.path, path.join(viewerDir(store, o.section), 'tiles'));
      if (o.tile === undefined) return console.log(JSON.stringify(pyramid));
      const m = /^(\d+)\/(\d+)_(\d+)$/.exec(o.tile);
      if (!m) cmd.error(`error: --tile ${o.tile}: expected <level>/<col>_<row>, e.g. 14/3_5`, { exitCode: 2 });
      const [level, col, row] = m!.slice(1).map(Number);
      const file = pyramid.onDemand ? await ensureSlideTile(s.image.path, pyramid, level, col, row) : path.join(pyramid.dir, 'slide_files', String(level), `${col}_${row}.jpeg`);
      if (!fs.existsSync(file)) throw new Error(`${store}: section '${o.section}' has no tile ${o.tile} (levels 0..${pyramid.maxLevel})`);
      console.log(JSON.stringify({ file }));
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
