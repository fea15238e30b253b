import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSlide } from '../../../src/runtime/data/slide';
import { writeSpotStore } from '../../../src/runtime/store/datasetStore';
import { writeSlide, type Pixel, type SlideSpec } from './slideFixtures';

/**
 * A slide whose full resolution shows what its reduced levels do not: dark and light stripes 3 px
 * wide along x, tinted per 256 px block so that a tile drawn in the wrong place shows. The
 * stripes' centres (x % 6 of 1 or 4) survive JPEG; the slide's 1/4 level (nearest sampling)
 * scaled up gets about half of them wrong.
 */
export const stripes: Pixel = (x, y) => {
  const g = ((x >> 8) * 29 + (y >> 8) * 53) % 60;
  return x % 6 < 3 ? [40, 50 + g, 80] : [230, 200 - g, 220];
};

/** Whether image x is a stripe's centre, where a drawn pixel is compared with the slide's. */
export const stripeCentre = (x: number) => x % 6 === 1 || x % 6 === 4;

/**
 * The striped slide as a pyramidal TIFF (levels 1, 1/4, 1/16; 0.5 um/px) in a store of one
 * section: its Deep Zoom pyramid has levels 0..13, of which 0..11 (at most 64 tiles each) are
 * written up front and 12-13 are cut on demand.
 */
export const STRIPED = { width: 6144, height: 3072, mpp: 0.5, maxLevel: 13, writtenLevels: 11 } as const;

export function writeStripedSlideStore(dir: string, section: string, layout?: SlideStoreLayout): Promise<{ store: string; slide: string }> {
  return writeSlideStore(dir, section, { kind: 'tiff', width: STRIPED.width, height: STRIPED.height, mpp: STRIPED.mpp, pixel: stripes }, layout);
}

/** Where a slide store's spots are (x, y; default: a 512 px grid), and other sections showing the same slide. */
export interface SlideStoreLayout { spots?: readonly (readonly [number, number])[]; alsoAs?: readonly string[] }

/**
 * A store of one whole slide (as `triplex slide --spots` makes it): the slide written from `spec`
 * into `dir` as `<section>.tif`, spots where `layout` says. Returns the store and the slide.
 */
export async function writeSlideStore(dir: string, section: string, spec: SlideSpec, { spots, alsoAs = [] }: SlideStoreLayout = {}): Promise<{ store: string; slide: string }> {
  fs.mkdirSync(dir, { recursive: true });
  const slide = await writeSlide(path.join(dir, `${section}.tif`), spec);
  const rows = ['spot_id,pixel_x,pixel_y'];
  if (spots) for (const [x, y] of spots) rows.push(`s${x}x${y},${x},${y}`);
  else for (let y = 256; y < spec.height; y += 512) for (let x = 256; x < spec.width; x += 512) rows.push(`s${x}x${y},${x},${y}`);
  const table = path.join(dir, `${section}-spots.csv`);
  fs.writeFileSync(table, `${rows.join('\n')}\n`);
  const store = path.join(dir, 'store');
  await writeSpotStore(store, { path: slide }, await Promise.all([section, ...alsoAs].map((id) => readSlide(slide, { spots: table, section: id }))));
  return { store, slide };
}
