import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readSlide } from '../../src/runtime/data/slide';
import { ImageFileError } from '../../src/runtime/image/slideImage';
import { isWholeSlideFile, openWholeSlide, readRegion } from '../../src/runtime/image/wsi';
import { ensureSlideTile, writeSlideTilePyramid } from '../../src/runtime/image/slideTiles';
import { writeTilePyramid } from '../../src/runtime/image/tiles';
import sharp from 'sharp';
import { expected, maxDiff, pattern, writeSlide, type Pixel } from './helpers/slideFixtures';
import { tempDir } from './helpers/spatialFixtures';
import { deflateTile, jpegTile, solidTile, writeTiledTiff } from './helpers/tiffWriter';

// Smooth, so that JPEG tiles stay within a few levels of it.
const smooth: Pixel = (x, y) => [Math.round(128 + 100 * Math.sin(x / 90)), Math.round(128 + 100 * Math.cos(y / 70)), 160];

const W = 1300;
const H = 1000;

function meanDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

describe('whole-slide TIFF by region and level', () => {
  const dir = tempDir('wsi');
  const files: Record<string, string> = {};
  before(async () => {
    files.tiff = await writeSlide(path.join(dir, 'pyramid.tif'), { kind: 'tiff', width: W, height: H, pixel: pattern, mpp: 0.5 });
    files.big = await writeSlide(path.join(dir, 'pyramid-big.tif'), { kind: 'bigtiff', width: W, height: H, pixel: pattern, mpp: 0.25 });
    files.ome = await writeSlide(path.join(dir, 'slide.ome.tif'), { kind: 'ome-tiff', width: W, height: H, pixel: pattern, mpp: 0.3456 });
    files.svs = await writeSlide(path.join(dir, 'slide.svs'), { kind: 'svs', width: W, height: H, pixel: smooth, mpp: 0.252 });
  });

  it('reads every level of a pyramidal TIFF, BigTIFF and OME-TIFF exactly, with the file\'s microns per pixel', async () => {
    const cases = [[files.tiff, 'tiff', 0.5, 'resolution tags'], [files.big, 'tiff', 0.25, 'resolution tags'], [files.ome, 'ome-tiff', 0.3456, 'OME PhysicalSizeX']] as const;
    for (const [file, format, mpp, source] of cases) {
      assert.ok(isWholeSlideFile(file), `${file} is a whole slide`);
      const slide = await openWholeSlide(file);
      assert.equal(slide.format, format);
      assert.deepEqual(slide.levels.map((l) => [l.width, l.height, l.downsample]), [[W, H, 1], [325, 250, 4], [82, 63, W / 82]]);
      assert.ok(Math.abs(slide.scale!.mpp - mpp) < 1e-6, `${file}: ${slide.scale?.mpp}`);
      assert.match(slide.scale!.source, new RegExp(source));
      // Across tile edges, partly outside the slide, and on reduced levels.
      for (const [level, x, y, w, h] of [[0, 250, 240, 300, 40], [0, -20, 980, 50, 40], [0, 1290, 5, 30, 3], [1, 200, 100, 125, 150], [2, 0, 0, 82, 63]]) {
        const L = slide.levels[level];
        const got = await readRegion(slide, level, x, y, w, h);
        assert.equal(maxDiff(got, expected(pattern, L.downsample === 1 ? 1 : [1, 4, 16][level], L.width, L.height, x, y, w, h)), 0, `${file} level ${level} (${x}, ${y})`);
      }
      assert.equal(slide.levelFor(5), 1);
      assert.equal(slide.levelFor(100), 2);
      assert.equal(slide.levelFor(0.5), 0);
      slide.close();
    }
  });

  it('reads an Aperio SVS (JPEG tiles, MPP in the description) by region, decoding only the tiles it needs', async () => {
    assert.ok(isWholeSlideFile(files.svs));
    const slide = await openWholeSlide(files.svs, { cacheBytes: 4 * 256 * 256 * 3 });
    assert.equal(slide.format, 'svs');
    assert.deepEqual(slide.scale, { mpp: 0.252, source: `the Aperio MPP of ${files.svs}` });
    const got = await slide.readRegion(0, 500, 300, 224, 224);
    assert.ok(maxDiff(got, expected(smooth, 1, W, H, 500, 300, 224, 224)) <= 8, 'JPEG within a few levels');
    assert.equal(slide.stats().decodes, 4, 'a 224 px crop over a tile corner decodes 4 tiles');
    await slide.readRegion(0, 510, 310, 100, 100);
    assert.equal(slide.stats().decodes, 4, 'cached');
    assert.ok(slide.stats().residentBytes <= 4 * 256 * 256 * 3, 'the cache stays within its budget');
    const low = await slide.readRegion(2, 0, 0, 82, 63);
    assert.ok(meanDiff(low, expected(smooth, 16, 82, 63, 0, 0, 82, 63)) <= 3, 'level 2 (JPEG of a busier image: compared on average)');
    slide.close();
  });

  it('gives the viewer Deep Zoom tiles from the slide\'s own pyramid: an overview up front, the rest on demand', async () => {
    const viewer = path.join(dir, 'viewer');
    const p = await writeSlideTilePyramid(files.svs, viewer, {}, 4);
    assert.deepEqual([p.width, p.height, p.maxLevel, p.writtenLevels, p.onDemand], [W, H, 11, 9, true]);
    assert.ok(fs.existsSync(path.join(viewer, 'slide_files', '9', '1_0.jpeg')));
    assert.ok(!fs.existsSync(path.join(viewer, 'slide_files', '10')), 'levels with more tiles than the overview holds are not written');
    const decode = async (file: string) => new Uint8Array((await sharp(file).removeAlpha().raw().toBuffer()));
    // Full resolution, cut on demand from level 0; level 9 (1/4) from the slide's level 1.
    const full = await ensureSlideTile(files.svs, p, 11, 1, 1);
    assert.ok(meanDiff(await decode(full), expected(smooth, 1, W, H, 256, 256, 256, 256)) <= 3);
    const quarter = path.join(viewer, 'slide_files', '9', '0_0.jpeg');
    assert.ok(meanDiff(await decode(quarter), expected(smooth, 4, 325, 250, 0, 0, 256, 250)) <= 3);
    await assert.rejects(ensureSlideTile(files.svs, p, 11, 9, 0), /no Deep Zoom tile 11\/9_0 \(levels 0\.\.11; level 11 has 6 x 4 tiles\)/);
    // writeTilePyramid (the viewer's `triplex tiles`) takes this route for whole slides.
    const again = await writeTilePyramid(files.tiff, path.join(dir, 'viewer2'));
    assert.equal(again.onDemand, true);
  });

  it('triplex slide finds the tissue of a pyramidal slide on a reduced level and lays the grid at the model\'s scale', async () => {
    // Glass with an ellipse of stained tissue; 0.5 um/px in the resolution tags.
    const [w, h] = [2048, 1536];
    const inside = (x: number, y: number) => ((x - 1024) / 700) ** 2 + ((y - 768) / 500) ** 2 <= 1;
    const file = await writeSlide(path.join(dir, 'tissue.tif'), { kind: 'tiff', width: w, height: h, mpp: 0.5,
      pixel: (x, y) => (inside(x, y) ? [200 - (x % 7) * 5, 110, 170] : [245, 244, 246]) });
    const slide = await readSlide(file, { cropMpp: 1 });
    assert.equal(slide.mpp, 0.5);
    assert.match(slide.mppSource!, /resolution tags of .*tissue\.tif/);
    // 224 crop px at 1 um/px are 448 px of this slide.
    assert.match(slide.origin, /on a 448 px grid \(224 px at the model's 1 um\/px: 224\.0 um\) over the tissue \(found by Otsu on a reduced pyramid level\)/);
    assert.ok(slide.spots.length >= 4, `${slide.spots.length} spots`);
    for (const s of slide.spots) {
      assert.ok(inside(s.x, s.y), `spot ${s.id} at (${s.x}, ${s.y}) lies in the tissue`);
      assert.equal((s.x - 224) % 448, 0);
    }
    assert.deepEqual(slide.warnings, []);
    // Spots outside the slide are refused, naming the table and the spot.
    const table = path.join(dir, 'outside.csv');
    fs.writeFileSync(table, 'spot_id,pixel_x,pixel_y\na,100,100\nb,5000,100\n');
    await assert.rejects(readSlide(file, { spots: table }), /outside\.csv \(spot b\): at \(5000, 100\), outside the 2048 x 1536 px image .*tissue\.tif/);
  });

  it('refuses a truncated file, a corrupt tile, levels of another aspect and OpenSlide-only formats, naming file, level and tile', async () => {
    const small = (tile: Buffer) => ({ width: 512, height: 512, tileSize: 256, tile: () => tile, compression: 'deflate' as const });
    const good = deflateTile(solidTile(256, [200, 100, 150]));
    // A copy cut short: the directory is whole, the last tiles' bytes are missing.
    const truncated = path.join(dir, 'truncated.tif');
    const full = writeTiledTiff(truncated, [{ ...small(good), tile: (c, r) => (c + r === 0 ? good : deflateTile(solidTile(256, [c * 50, r * 50, 9]))) }, { ...small(good), width: 128, height: 128 }]);
    fs.truncateSync(truncated, full - 10);
    await assert.rejects(openWholeSlide(truncated), (e: Error) => e instanceof ImageFileError && e.message.startsWith(`${truncated}: level 0, tile (column 1, row 1) ends at byte`) &&
      /the file is truncated/.test(e.message));

    const corrupt = path.join(dir, 'corrupt.tif');
    const garbage = Buffer.from('this is not deflate data at all, it is damaged');
    writeTiledTiff(corrupt, [{ width: 512, height: 256, tileSize: 256, tile: (c) => (c === 1 ? garbage : good), compression: 'deflate' }, { ...small(good), width: 128, height: 64 }]);
    const slide = await openWholeSlide(corrupt);
    assert.equal((await slide.readRegion(0, 0, 0, 10, 10))[0], 200, 'the good tile reads');
    await assert.rejects(slide.readRegion(0, 250, 0, 20, 20), (e: Error) => e instanceof ImageFileError &&
      e.message.includes(corrupt) && /level 0, tile \(column 1, row 0\) cannot be decoded/.test(e.message));

    // A damaged JPEG tile of an SVS (decoded by libjpeg-turbo): the same error.
    const badSvs = path.join(dir, 'bad.svs');
    const jpeg = await jpegTile(solidTile(256, [200, 100, 150]), 256);
    writeTiledTiff(badSvs, [{ width: 512, height: 256, tileSize: 256, tile: (c) => (c === 1 ? jpeg.subarray(0, 300) : jpeg), compression: 'jpeg', photometric: 6 }]);
    const svs = await openWholeSlide(badSvs);
    assert.ok(Math.abs((await svs.readRegion(0, 10, 10, 1, 1))[0] - 200) <= 3, 'the good tile reads');
    await assert.rejects(svs.readRegion(0, 300, 0, 20, 20), (e: Error) => e instanceof ImageFileError && e.message.startsWith(`${badSvs}: level 0, tile (column 1, row 0) cannot be decoded`));

    const aspect = path.join(dir, 'aspect.tif');
    writeTiledTiff(aspect, [small(good), { ...small(good), width: 256, height: 64 }]);
    await assert.rejects(openWholeSlide(aspect), /aspect\.tif: its pyramid levels disagree in aspect: level 0 is 512 x 512 px, level 1 is 256 x 64 px/);

    const ndpi = path.join(dir, 'scan.ndpi');
    fs.copyFileSync(files.tiff, ndpi);
    assert.ok(isWholeSlideFile(ndpi));
    // Where OpenSlide is installed it reads these (wholeSlideOpenSlide.test.ts); without it, or not used:
    await assert.rejects(openWholeSlide(ndpi, { openSlide: false }), /scan\.ndpi: is a slide format only OpenSlide reads; install OpenSlide \(Debian\/Ubuntu: apt-get install openslide-tools\)/);
  });
});
