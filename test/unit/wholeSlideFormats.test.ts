import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { ImageFileError } from '../../src/runtime/image/imageError';
import { isWholeSlideFile, openWholeSlide, REGION_PIXELS } from '../../src/runtime/image/wsi';
import { fileScale } from '../../src/runtime/image/cropScale';
import { readSlide } from '../../src/runtime/data/slide';
import { wsiThumbnail } from '../../src/runtime/image/wsiImage';
import { expected, maxDiff, pattern, writeSlide } from './helpers/slideFixtures';
import { tempDir } from './helpers/spatialFixtures';
import { TORCH_PYTHON } from './helpers/torch';
import { deflateTile, lzwBomb, lzwTile, solidTile, writeTiledTiff, type TiffEntry, type TiffLevelSpec } from './helpers/tiffWriter';
import { lzwOutputLength } from '../../src/runtime/image/tiffDecoders';
import { deflateSync } from 'node:zlib';

/**
 * OME-TIFF pyramids stored as SubIFDs (OME's layout since 2020: bioformats2raw/raw2ometiff,
 * QuPath), read by region at every level with the OME-XML's scale and checked against Debian's
 * tifffile; and crafted headers (absurd sizes, tile tables that do not fit the file, looping
 * directories, oversized tiles and regions), each refused by name before anything big is
 * allocated.
 */

const W = 1300;
const H = 1000;
const tifffileMissing = spawnSync(TORCH_PYTHON, ['-c', 'import tifffile'], { encoding: 'utf8' }).status !== 0;

describe('OME-TIFF with its pyramid in SubIFDs', () => {
  const dir = tempDir('wsi-ome');
  const files: Record<string, string> = {};
  before(async () => {
    files.classic = await writeSlide(path.join(dir, 'subifd.ome.tif'), { kind: 'ome-tiff', width: W, height: H, pixel: pattern, mpp: 0.2201, subIfds: true, bigTiff: false });
    files.big = await writeSlide(path.join(dir, 'subifd-big.ome.tif'), { kind: 'ome-tiff', width: W, height: H, pixel: pattern, mpp: 0.5, subIfds: true });
  });

  it('reads every level by region, at the OME-XML\'s microns per pixel times the level\'s downsample', async () => {
    for (const [file, mpp] of [[files.classic, 0.2201], [files.big, 0.5]] as const) {
      assert.ok(isWholeSlideFile(file), `${file}: one IFD with SubIFDs is a pyramid`);
      const slide = await openWholeSlide(file);
      assert.equal(slide.format, 'ome-tiff');
      assert.deepEqual(slide.levels.map((l) => [l.width, l.height]), [[W, H], [325, 250], [82, 63]]);
      assert.deepEqual(slide.scale, { mpp, source: `the OME PhysicalSizeX of ${file}` });
      const levelMpp = slide.levels.map((l) => +(mpp * l.downsample).toFixed(4));
      assert.deepEqual(levelMpp, [mpp, +(mpp * 4).toFixed(4), +(mpp * W / 82).toFixed(4)]);
      for (const [level, x, y, w, h] of [[0, 250, 240, 300, 40], [0, 1290, 990, 30, 30], [1, 200, 100, 125, 150], [2, 0, 0, 82, 63]]) {
        const L = slide.levels[level];
        const got = await slide.readRegion(level, x, y, w, h);
        assert.equal(maxDiff(got, expected(pattern, [1, 4, 16][level], L.width, L.height, x, y, w, h)), 0, `${file} level ${level} at (${x}, ${y})`);
      }
      slide.close();
    }
  });

  it('is the same pyramid for tifffile (an independent reader)', { skip: tifffileMissing ? 'needs Debian\'s python3-tifffile (scripts/ensure-test-deps.sh installs it when run as root)' : false }, async () => {
    const script = [
      'import hashlib, json, sys, tifffile',
      'with tifffile.TiffFile(sys.argv[1]) as t:',
      '    s = t.series[0]',
      '    print(json.dumps({"ome": t.is_ome, "levels": [[list(l.shape), hashlib.sha256(l.asarray().tobytes()).hexdigest()] for l in s.levels]}))',
    ].join('\n');
    const r = spawnSync(TORCH_PYTHON, ['-c', script, files.classic], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(r.stdout) as { ome: boolean; levels: [number[], string][] };
    const slide = await openWholeSlide(files.classic);
    const ours = await Promise.all(slide.levels.map(async (l, k) => [[l.height, l.width, 3], createHash('sha256').update(await slide.readRegion(k, 0, 0, l.width, l.height)).digest('hex')]));
    slide.close();
    assert.equal(theirs.ome, true);
    assert.deepEqual(theirs.levels, ours);
  });

});

describe('OME-TIFF RGB stored as separate planes, written by tifffile', { skip: tifffileMissing ? 'needs Debian\'s python3-tifffile (scripts/ensure-test-deps.sh installs it when run as root)' : false }, () => {
  const dir = tempDir('wsi-planes');
  const [w, h] = [520, 300];
  // `pattern` (slideFixtures) in numpy, level 1 its every 4th pixel: what `expected` gives for downsample 4.
  const write = (file: string, how: string) => {
    const script = [
      'import sys, numpy as np, tifffile',
      `y, x = np.mgrid[0:${h}, 0:${w}]`,
      'rgb = np.stack([(x * 7 + y * 3) & 255, (x + y * 11 + 1) & 255, ((x >> 4) * 13 + (y >> 4) * 17 + 5) & 255]).astype(np.uint8)',
      'with tifffile.TiffWriter(sys.argv[1], bigtiff=True, ome=True) as t:',
      `    t.write(rgb, ${how}, tile=(128, 128), compression='zlib', subifds=1, metadata={'axes': 'CYX', 'PhysicalSizeX': 0.5, 'PhysicalSizeY': 0.5})`,
      `    t.write(rgb[:, ::4, ::4], ${how}, tile=(128, 128), compression='zlib', subfiletype=1)`,
    ].join('\n');
    const r = spawnSync(TORCH_PYTHON, ['-c', script, file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return file;
  };

  it('reads RGB planes in one image (PlanarConfiguration 2) and three greyscale images (SizeC 3), every level, with the OME scale', async () => {
    const planar = write(path.join(dir, 'planar.ome.tif'), "photometric='rgb', planarconfig='separate'");
    const channels = write(path.join(dir, 'channels.ome.tif'), "photometric='minisblack'");
    for (const file of [planar, channels]) {
      assert.ok(isWholeSlideFile(file));
      const slide = await openWholeSlide(file);
      try {
        assert.equal(slide.format, 'ome-tiff');
        assert.deepEqual(slide.levels.map((l) => [l.width, l.height]), [[w, h], [130, 75]]);
        assert.deepEqual(slide.scale, { mpp: 0.5, source: `the OME PhysicalSizeX of ${file}` });
        for (const [level, x, y, rw, rh] of [[0, 0, 0, w, h], [0, 120, 100, 20, 40], [1, 0, 0, 130, 75]]) {
          const L = slide.levels[level];
          assert.equal(maxDiff(await slide.readRegion(level, x, y, rw, rh), expected(pattern, L.downsample, L.width, L.height, x, y, rw, rh)), 0, `${file} level ${level} at (${x}, ${y})`);
        }
      } finally {
        slide.close();
      }
    }
  });

  it('refuses three channel images that do not match, naming the channel and level', async () => {
    const file = path.join(dir, 'mismatch.ome.tif');
    const xml = '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="256" SizeY="128" SizeC="3" SizeZ="1" SizeT="1"/></Image></OME>';
    const script = [
      'import sys, numpy as np, tifffile',
      'with tifffile.TiffWriter(sys.argv[1]) as t:',
      '    for c, shape in enumerate([(128, 256), (128, 256), (64, 256)]):',
      "        t.write(np.full(shape, 100, np.uint8), photometric='minisblack', tile=(64, 64), description=sys.argv[2] if c == 0 else None, metadata=None)",
    ].join('\n');
    const r = spawnSync(TORCH_PYTHON, ['-c', script, file, xml], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await assert.rejects(openWholeSlide(file), (e: Error) => e instanceof ImageFileError &&
      e.message === `${file}: its 3 colour channels are stored one per image, and channel 2's level 0 is 256 x 64 px in 64 x 64 px tiles, channel 0's 256 x 128 px in 64 x 64 px tiles: they must match; the file is damaged or not one RGB slide`);
  });
});

describe('pixels that are not square (OME PhysicalSizeX and Y, TIFF XResolution and YResolution)', () => {
  const dir = tempDir('wsi-oblong');
  const slide = (name: string, kind: 'ome-tiff' | 'tiff', mpp: number, mppY: number) =>
    writeSlide(path.join(dir, name), { kind, width: 300, height: 200, pixel: pattern, mpp, mppY, subIfds: kind === 'ome-tiff', downsamples: [2] });

  it('within 1%: square, at the mean of the two sides, which the source names', async () => {
    const ome = await slide('near.ome.tif', 'ome-tiff', 0.5, 0.504);
    const tif = await slide('near.tif', 'tiff', 0.25, 0.2512);
    for (const [file, x, y, names] of [[ome, 0.5, 0.504, 'OME PhysicalSizeX and OME PhysicalSizeY'], [tif, 0.25, 0.2512, 'XResolution and YResolution']] as const) {
      const opened = await openWholeSlide(file);
      opened.close();
      assert.equal(opened.nonSquare, undefined);
      assert.ok(Math.abs(opened.scale!.mpp - (x + y) / 2) < 1e-9, `${file}: ${opened.scale?.mpp}`);
      assert.equal(opened.scale!.source, `the mean of the ${names} of ${file} (${x} and ${y} um/px)`);
      assert.deepEqual(await fileScale(file), opened.scale);
    }
  });

  it('beyond 1%: the slide opens (its pixels read), but its scale is refused naming the file, both sides and what to do, unless --mpp gives it', async () => {
    const ome = await slide('oblong.ome.tif', 'ome-tiff', 0.25, 0.5);
    const tif = await slide('oblong.tif', 'tiff', 0.5, 0.6);
    for (const [file, said] of [[ome, 'OME PhysicalSizeX gives 0.25 um/px and OME PhysicalSizeY 0.5 um/px (100.0% apart'], [tif, 'XResolution gives 0.5 um/px and YResolution 0.6 um/px (20.0% apart']] as const) {
      const opened = await openWholeSlide(file);
      try {
        assert.equal(opened.scale, undefined);
        assert.equal(maxDiff(await opened.readRegion(0, 10, 10, 20, 20), expected(pattern, 1, 300, 200, 10, 10, 20, 20)), 0);
      } finally {
        opened.close();
      }
      const refusal = (e: Error) => e instanceof ImageFileError && e.message.startsWith(`${file}: its pixels are not square: ${said}; crops need square pixels, within 1%). `) &&
        e.message.includes(`vips resize ${path.basename(file)} square.tif 1 --vscale`) && e.message.endsWith('give the true scale with --mpp (or the sample sheet\'s mpp column)');
      await assert.rejects(fileScale(file), refusal);
      // `triplex slide` on it: refused without --mpp, at --mpp's scale with it.
      await assert.rejects(readSlide(file, { spacing: 64, minTissue: 0 }), refusal);
      const read = await readSlide(file, { spacing: 64, minTissue: 0, mpp: 0.3 });
      assert.deepEqual([read.mpp, read.mppSource], [0.3, '--mpp']);
    }
  });
});

describe('crafted whole-slide headers', () => {
  const dir = tempDir('wsi-crafted');
  const good = deflateTile(solidTile(256, [200, 100, 150]));
  /** A 512 x 512 level and a 128 x 128 one, level 0's directory edited by `edit`. */
  const crafted = (name: string, edit: (entries: TiffEntry[]) => TiffEntry[], opts: { subIfds?: boolean } = {}): string => {
    const file = path.join(dir, name);
    const level = (size: number): TiffLevelSpec => ({ width: size, height: size, tileSize: 256, tile: () => good, compression: 'deflate' });
    writeTiledTiff(file, [{ ...level(512), entries: edit }, level(128)], opts);
    return file;
  };
  const set = (tag: number, values: number[], count?: number) => (entries: TiffEntry[]) => entries.map((e) => (e.tag === tag ? { ...e, values, ...(count !== undefined ? { count } : {}) } : e));
  const refused = async (file: string, message: RegExp) => {
    const rss = process.memoryUsage().rss;
    assert.ok(isWholeSlideFile(file), `${file} is taken for a slide, so that its reader says what is wrong`);
    await assert.rejects(openWholeSlide(file), (e: Error) => {
      assert.ok(e instanceof ImageFileError, `${e.name}: ${e.message}`);
      assert.ok(e.message.startsWith(`${file}: `), e.message);
      assert.match(e.message, message);
      return true;
    });
    assert.ok(process.memoryUsage().rss - rss < 100 * 2 ** 20, 'nothing big was allocated');
  };

  it('refuses absurd sizes and tiles before reading them', async () => {
    await refused(crafted('huge.tif', (e) => set(257, [10_000_000])(set(256, [10_000_000])(e))), /level 0 claims 10000000 x 10000000 px, more than the 1000000 px a side of any slide/);
    await refused(crafted('bigtiles.tif', (e) => set(323, [65_536])(set(322, [65_536])(e))), /level 0 has tiles of 65536 x 65536 px; a tile must be 1 to 16777216 px/);
    await refused(crafted('notiles.tif', set(322, [0])), /level 0 has tiles of 0 x 256 px/);
  });

  it('refuses tile tables that do not fit the file or the image', async () => {
    // 10^9 tile offsets declared (4 GB) in a file of a few kB: geotiff.js would allocate them.
    await refused(crafted('offsets.tif', (e) => e.map((x) => (x.tag === 324 ? { ...x, count: 1e9 } : x))), /directory 0 at byte 8: tag 324 declares 1000000000 values \(4000000000 bytes\) at byte \d+, past the end of the file \(\d+ bytes\)/);
    // The grid of a 1024 px wide image has 8 tiles, the table 4.
    await refused(crafted('grid.tif', set(256, [1024])), /level 0 lists 4 tile offsets, but 1024 x 512 px in 256 x 256 px tiles make 8/);
    // A tile said to hold 2 GB.
    await refused(crafted('counts.tif', (e) => e.map((x) => (x.tag === 325 ? { ...x, values: [good.length, 2 ** 31, good.length, good.length] } : x))),
      /level 0, tile \(column 1, row 0\) ends at byte \d+ but the file has \d+ bytes/);
    // A SubIFD past the end of the file.
    await refused(crafted('subifd.tif', (e) => [...e, { tag: 330, type: 13, values: [10 ** 9] }]), /SubIFD 0 of directory 0 at byte 1000000000 lies past the end of the file/);
  });

  it('refuses a directory chain that loops (geotiff.js would follow it for ever)', async () => {
    const file = crafted('loop.tif', (e) => e);
    const b = fs.readFileSync(file);
    const first = b.readUInt32LE(4);
    const second = b.readUInt32LE(first + 2 + b.readUInt16LE(first) * 12);
    b.writeUInt32LE(first, second + 2 + b.readUInt16LE(second) * 12);
    fs.writeFileSync(file, b);
    await refused(file, /its directories loop \(directory 2 at byte 8 was read before\)/);
  });

  it('refuses a region beyond the pixel budget, and a JPEG tile larger than its level\'s tiles, naming level and tile', async () => {
    const file = crafted('fine.tif', (e) => e);
    const slide = await openWholeSlide(file, { regionPixels: 100 * 100 });
    assert.equal((await slide.readRegion(0, 0, 0, 100, 100))[0], 200);
    await assert.rejects(slide.readRegion(1, 0, 0, 101, 100), new RegExp(`^ImageFileError: ${file}: a region of 101 x 100 px of level 1 \\(128 x 128 px\\) was asked, more than the 10000 px one read may take; read a reduced level`));
    slide.close();
    const whole = await openWholeSlide(file);
    await assert.rejects(whole.readRegion(0, 0, 0, 100_000, 100_000), new RegExp(`more than the ${REGION_PIXELS} px one read may take`));
    whole.close();

    // Reduced views of a whole level (the overview, the tissue search) read it in bands within the budget: the same pixels.
    const ome = await writeSlide(path.join(dir, 'bands.ome.tif'), { kind: 'ome-tiff', width: W, height: H, pixel: pattern, mpp: 0.5, subIfds: true });
    const banded = await wsiThumbnail(ome, 400, { regionPixels: 50_000 });
    const once = await wsiThumbnail(ome, 400);
    assert.deepEqual([banded.width, banded.height], [400, 308]);
    assert.equal(maxDiff(banded.rgb, once.rgb), 0);

    // A 2048 x 2048 px JPEG where the level's tiles are 256 px: refused by libjpeg's caller before it is decoded.
    const bomb = await sharp({ create: { width: 2048, height: 2048, channels: 3, background: { r: 9, g: 9, b: 9 } } }).jpeg().toBuffer();
    const svs = path.join(dir, 'bomb.svs');
    writeTiledTiff(svs, [{ width: 512, height: 256, tileSize: 256, tile: (c) => (c === 1 ? bomb : good), compression: 'jpeg' }]);
    const s = await openWholeSlide(svs);
    await assert.rejects(s.readRegion(0, 300, 0, 10, 10), (e: Error) => e instanceof ImageFileError && e.message.startsWith(`${svs}: level 0, tile (column 1, row 0) cannot be decoded`) && /pixel limit/.test(e.message));
    s.close();
  });
});

describe('Deflate and LZW tiles decode no larger than a tile', () => {
  const dir = tempDir('wsi-bombs');
  const size = 128;
  const rgbOf = (col: number, row: number): Uint8Array => Uint8Array.from({ length: size * size * 3 }, (_, i) => ((i % 97) * 3 + (i >> 11) * 5 + col * 31 + row * 57) & 255);
  /** Two levels of 2 x 2 and 1 x 1 tiles; level 0's tile (1, 0) is `bomb` when given. */
  const write = (name: string, compression: 'deflate' | 'lzw', bomb?: Buffer): string => {
    const file = path.join(dir, name);
    const encode = compression === 'lzw' ? lzwTile : deflateTile;
    writeTiledTiff(file, [
      { width: 2 * size, height: 2 * size, tileSize: size, compression, tile: (c, r) => (bomb && c === 1 && r === 0 ? bomb : encode(rgbOf(c, r))) },
      { width: size, height: size, tileSize: size, compression, tile: () => encode(rgbOf(9, 9)) },
    ]);
    return file;
  };

  it('reads Deflate and LZW tiles as written (and Pillow reads the LZW file alike)', async () => {
    for (const compression of ['deflate', 'lzw'] as const) {
      const file = write(`fine-${compression}.tif`, compression);
      const slide = await openWholeSlide(file);
      for (const [c, r] of [[0, 0], [1, 0], [0, 1], [1, 1]]) assert.deepEqual(await slide.readRegion(0, c * size, r * size, size, size), rgbOf(c, r), `${compression} tile (${c}, ${r})`);
      assert.deepEqual(await slide.readRegion(1, 0, 0, size, size), rgbOf(9, 9));
      slide.close();
    }
    const script = 'import sys, hashlib\nfrom PIL import Image\nim = Image.open(sys.argv[1]); im.load()\nprint(hashlib.sha256(im.convert("RGB").tobytes()).hexdigest())';
    const pillow = spawnSync(TORCH_PYTHON, ['-c', script, path.join(dir, 'fine-lzw.tif')], { encoding: 'utf8' });
    assert.equal(pillow.status, 0, `Pillow (Debian's python3-pil, installed with python3-torchvision) could not read the file: ${pillow.stderr}`);
    const whole = new Uint8Array(4 * size * size * 3);
    for (let r = 0; r < 2; r++) for (let y = 0; y < size; y++) for (let c = 0; c < 2; c++) whole.set(rgbOf(c, r).subarray(y * size * 3, (y + 1) * size * 3), ((r * size + y) * 2 * size + c * size) * 3);
    assert.equal(pillow.stdout.trim(), createHash('sha256').update(whole).digest('hex'), 'Pillow decodes our LZW tiles to the same pixels');
  });

  it('counts an LZW stream\'s output without decoding it', () => {
    const data = rgbOf(2, 3);
    assert.equal(lzwOutputLength(lzwTile(data), data.length), data.length);
    assert.equal(lzwOutputLength(lzwBomb(1), 1e9), 1 + (3835 * 3836) / 2 - 1, 'a byte, then codes of 2 to 3,835 bytes');
  });

  for (const [compression, bomb] of [['deflate', () => deflateSync(Buffer.alloc(256 * 2 ** 20))], ['lzw', () => lzwBomb(40)]] as const) {
    it(`refuses a ${compression} tile that expands past its size, naming file, level and tile, before the memory is taken`, async () => {
      const stream = bomb();
      const file = write(`bomb-${compression}.tif`, compression, stream);
      const slide = await openWholeSlide(file);
      assert.deepEqual(await slide.readRegion(0, 0, 0, size, size), rgbOf(0, 0), 'the other tiles still read');
      const rss = process.memoryUsage().rss;
      await assert.rejects(slide.readRegion(0, size, 0, size, size), (e: Error) => {
        assert.ok(e instanceof ImageFileError, `${e.name}: ${e.message}`);
        assert.match(e.message, new RegExp(`^${file}: level 0, tile \\(column 1, row 0\\) cannot be decoded \\(its ${compression === 'lzw' ? 'LZW' : 'Deflate'} stream expands past the ${size * size * 3} bytes of one tile`));
        return true;
      });
      assert.ok(process.memoryUsage().rss - rss < 64 * 2 ** 20, `a ${stream.length}-byte stream did not take its expanded size`);
      slide.close();
    });
  }
});
