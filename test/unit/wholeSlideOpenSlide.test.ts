import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageFileError } from '../../src/runtime/image/imageError';
import { argbToRgb, OPENSLIDE_ENV, openSlideCandidates, openSlideLibrary, openWithOpenSlide } from '../../src/runtime/image/openslide';
import { openSlideImage } from '../../src/runtime/image/slideImage';
import { isWholeSlideFile, openWholeSlide, REGION_PIXELS } from '../../src/runtime/image/wsi';
import { expected, maxDiff, pattern, writeSlide, type Pixel } from './helpers/slideFixtures';
import { jpeg2000Tile, rgbToYcbcr, solidTile, writeTiledTiff } from './helpers/tiffWriter';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';

// OpenSlide (Debian's libopenslide0, through the optional koffi) for what geotiff.js cannot read;
// scripts/ensure-test-deps.sh installs it, and opj_compress (libopenjp2-tools), when run as root.
const missing = openSlideLibrary().missing;
const skipOpenSlide = missing ? `needs OpenSlide: ${missing} (scripts/ensure-test-deps.sh installs libopenslide0 when run as root)` : false;
const noOpjCompress = spawnSync('opj_compress', ['-h'], { stdio: 'ignore' }).error !== undefined;
const skipJ2k = noOpjCompress ? 'needs opj_compress to write JPEG 2000 tiles (Debian: libopenjp2-tools; scripts/ensure-test-deps.sh installs it when run as root)' : false;

/** A smooth pattern (JPEG keeps it within a few levels). */
const smooth: Pixel = (x, y) => [(x >> 2) & 255, (y >> 2) & 255, ((x + y) >> 3) & 255];
const W = 700;
// Reduced levels of whole downsamples: OpenSlide shifts a reduced level by the fraction of a pixel
// its averaged downsample makes (cairo resamples), so pixel-exact checks need 4 to divide both sides.
const H = 528;

describe('whole slides through OpenSlide', () => {
  const dir = tempDir('openslide');

  it('turns premultiplied ARGB into RGB over white: opaque is its colour, transparent white', () => {
    const out = new Uint8Array(9);
    argbToRgb(Uint32Array.of(0xff102030, 0x00000000, 0x80402000), out, 0);
    assert.deepEqual([...out], [0x10, 0x20, 0x30, 255, 255, 255, 0x40 + 0x7f, 0x20 + 0x7f, 0x7f]);
  });

  it('reads a JPEG-tiled Aperio SVS as the geotiff.js reader does: same levels, pixels and mpp', { skip: skipOpenSlide }, async () => {
    const svs = await writeSlide(path.join(dir, 'jpeg.svs'), { kind: 'svs', width: W, height: H, pixel: smooth, mpp: 0.252 });
    // The same bytes under an extension only OpenSlide reads route it to OpenSlide.
    const viaOpenSlide = path.join(dir, 'jpeg.svslide');
    fs.copyFileSync(svs, viaOpenSlide);
    const [ours, theirs] = [await openWholeSlide(svs), await openWholeSlide(viaOpenSlide)];
    try {
      assert.equal(theirs.format, 'svs', 'OpenSlide names it Aperio');
      assert.deepEqual(theirs.levels.map((l) => [l.width, l.height, l.downsample]), ours.levels.map((l) => [l.width, l.height, l.downsample]));
      assert.equal(theirs.scale?.mpp, 0.252);
      assert.match(theirs.scale?.source ?? '', /openslide\.mpp-x of .*jpeg\.svslide/);
      for (const [level, x, y, w, h] of [[0, 0, 0, W, H], [0, 250, 190, 300, 200], [1, 40, 30, 60, 50], [2, 0, 0, 44, 34], [0, -20, 510, 50, 30]]) {
        const a = await ours.readRegion(level, x, y, w, h);
        const b = await theirs.readRegion(level, x, y, w, h);
        assert.ok(maxDiff(a, b) <= 2, `level ${level} (${x}, ${y}) ${w} x ${h}: the same JPEG decoded (max difference ${maxDiff(a, b)})`);
      }
      const outside = await theirs.readRegion(0, -20, 510, 50, 30);
      assert.equal(outside[0] + outside[1] + outside[2], 0, 'outside the slide is zero, as the geotiff reader gives');
      assert.equal(theirs.levelFor(4), 1);
      await assert.rejects(theirs.readRegion(0, 0, 0, 8193, 8192), (e: Error) => e instanceof ImageFileError && e.message.includes(`more than the ${REGION_PIXELS} px`));
    } finally {
      ours.close();
      theirs.close();
    }
    await assert.rejects(theirs.readRegion(0, 0, 0, 1, 1), /the slide was closed/);
  });

  it('an NDPI OpenSlide does not recognise, and a missing one: refused naming the file', { skip: skipOpenSlide }, async () => {
    const fake = path.join(dir, 'scan.ndpi');
    fs.writeFileSync(fake, 'not a slide at all');
    assert.ok(isWholeSlideFile(fake));
    await assert.rejects(openWholeSlide(fake), (e: Error) => e instanceof ImageFileError && e.message.startsWith(`${fake}: `) && /is not a slide OpenSlide recognises/.test(e.message));
    await assert.rejects(openWholeSlide(path.join(dir, 'absent.ndpi')), /absent\.ndpi: cannot be read: .*ENOENT/);
  });

  describe('an Aperio SVS with JPEG 2000 tiles (compression 33005)', { skip: skipJ2k }, () => {
    let j2k = '';
    before(async () => {
      j2k = await writeSlide(path.join(dir, 'j2k.svs'), { kind: 'svs', jpeg2000: true, width: W, height: H, pixel: pattern, mpp: 0.4990, downsamples: [4] });
    });

    it('is refused with the install message when OpenSlide is not used, or not installed (saying what is missing)', async () => {
      const refusal = `${j2k}: level 0 is compressed with JPEG 2000 (Aperio RGB), which this reader cannot decode; install OpenSlide (Debian/Ubuntu: apt-get install openslide-tools)`;
      await assert.rejects(openWholeSlide(j2k, { openSlide: false }), (e: Error) => e instanceof ImageFileError && e.message.startsWith(refusal) && !e.message.includes('not usable here'));
      if (missing) await assert.rejects(openWholeSlide(j2k), (e: Error) => e.message.startsWith(refusal) && e.message.endsWith(`(OpenSlide is not usable here: ${missing})`));
    });

    it('is read by region when OpenSlide is installed: every pixel (lossless tiles), and its mpp', { skip: skipOpenSlide }, async () => {
      const slide = await openWholeSlide(j2k);
      try {
        assert.deepEqual(slide.levels.map((l) => [l.width, l.height]), [[W, H], [Math.ceil(W / 4), Math.ceil(H / 4)]]);
        assert.equal(slide.scale?.mpp, 0.499);
        for (const [level, x, y, w, h] of [[0, 0, 0, W, H], [0, 255, 250, 9, 13], [1, 10, 20, 100, 60], [1, 150, 100, 40, 40]]) {
          const d = slide.levels[level].downsample;
          const { width, height } = slide.levels[level];
          assert.equal(maxDiff(await slide.readRegion(level, x, y, w, h), expected(pattern, d, width, height, x, y, w, h)), 0, `level ${level} (${x}, ${y}) ${w} x ${h}`);
        }
        // In strips of at most 1000 px (3 rows of 333 px; 5 of 175, the level clipped), each pasted in place.
        const { lib } = openSlideLibrary();
        const strips = openWithOpenSlide(lib!, j2k, REGION_PIXELS, 1000);
        try {
          assert.equal(maxDiff(await strips.readRegion(0, 3, 5, 333, 8), expected(pattern, 1, W, H, 3, 5, 333, 8)), 0);
          assert.equal(maxDiff(await strips.readRegion(1, -7, 120, 200, 20), expected(pattern, 4, W / 4, H / 4, -7, 120, 200, 20)), 0);
        } finally {
          strips.close();
        }
      } finally {
        slide.close();
      }
    });

    it('is what the crops read (openSlideImage): its pixels and scale', { skip: skipOpenSlide }, async () => {
      const image = await openSlideImage(j2k);
      try {
        assert.deepEqual([image.width, image.height, image.scale?.mpp], [W, H, 0.499]);
        assert.equal(maxDiff(await image.region(300, 200, 64, 64), expected(pattern, 1, W, H, 300, 200, 64, 64)), 0);
      } finally {
        image.close();
      }
    });

    it('a damaged tile: OpenSlide\'s message, naming the file and the region', { skip: skipOpenSlide }, async () => {
      const bad = path.join(dir, 'bad-j2k.svs');
      const tile = jpeg2000Tile(solidTile(256, [200, 100, 150]), 256);
      writeTiledTiff(bad, [{ width: 512, height: 256, tileSize: 256, tile: (c) => (c === 1 ? tile.subarray(0, 60) : tile), compression: 'jpeg2000',
        description: 'Aperio Image Library v12.0.15 \r\n512x256 [0,0 512x256] (256x256) J2K/KDU Q=70|MPP = 0.5' }]);
      const slide = await openWholeSlide(bad);
      try {
        assert.deepEqual([...await slide.readRegion(0, 10, 10, 1, 1)], [200, 100, 150], 'the good tile reads');
        await assert.rejects(slide.readRegion(0, 300, 0, 20, 20), (e: Error) => e instanceof ImageFileError &&
          e.message.startsWith(`${bad}: level 0, region (300, 0) 20 x 20 px cannot be read by OpenSlide: `));
      } finally {
        slide.close();
      }
    });
  });

  describe('an Aperio SVS with YCbCr JPEG 2000 tiles (compression 33003, what Aperio scanners write)', { skip: skipJ2k }, () => {
    let ycc = '';
    before(async () => {
      ycc = await writeSlide(path.join(dir, 'ycbcr.svs'), { kind: 'svs', jpeg2000: 'ycbcr', width: W, height: H, pixel: pattern, mpp: 0.2527, downsamples: [4] });
    });

    it('is refused with the install message when OpenSlide is not used, or not installed', async () => {
      const refusal = `${ycc}: level 0 is compressed with JPEG 2000 (Aperio YCbCr), which this reader cannot decode; install OpenSlide (Debian/Ubuntu: apt-get install openslide-tools)`;
      await assert.rejects(openWholeSlide(ycc, { openSlide: false }), (e: Error) => e instanceof ImageFileError && e.message.startsWith(refusal));
      if (missing) await assert.rejects(openWholeSlide(ycc), (e: Error) => e.message.startsWith(refusal) && e.message.endsWith(`(OpenSlide is not usable here: ${missing})`));
    });

    // The tiles hold the source's YCbCr rounded to bytes (+-0.5 a component); back in RGB that is at
    // most 0.5 + 1.772 x 0.5 = 1.39 off (blue, the largest coefficient), and OpenSlide's own
    // fixed-point conversion rounds once more: 2 levels. A reader that skipped the conversion (or
    // took the components for RGB) is over 100 levels off on this pattern (checked below).
    const TOLERANCE = 2;

    it('is read by region in its true colours (within the rounding of YCbCr to bytes), with its mpp', { skip: skipOpenSlide }, async () => {
      const slide = await openWholeSlide(ycc);
      try {
        assert.equal(slide.format, 'svs');
        assert.deepEqual(slide.levels.map((l) => [l.width, l.height]), [[W, H], [Math.ceil(W / 4), Math.ceil(H / 4)]]);
        assert.equal(slide.scale?.mpp, 0.2527);
        for (const [level, x, y, w, h] of [[0, 0, 0, W, H], [0, 250, 240, 30, 30], [1, 10, 20, 100, 60]]) {
          const d = slide.levels[level].downsample;
          const { width, height } = slide.levels[level];
          const want = expected(pattern, d, width, height, x, y, w, h);
          const got = await slide.readRegion(level, x, y, w, h);
          assert.ok(maxDiff(got, want) <= TOLERANCE, `level ${level} (${x}, ${y}) ${w} x ${h}: max difference ${maxDiff(got, want)}`);
          assert.ok(maxDiff(rgbToYcbcr(want), want) > 100, 'the pattern tells YCbCr from RGB');
        }
      } finally {
        slide.close();
      }
    });
  });
});

describe('the OpenSlide library: 4.x and 3.4 names, TRIPLEX_OPENSLIDE, and what `triplex info` says', () => {
  const dir = tempDir('openslide-names');

  it('tries OpenSlide 4\'s name before 3.4\'s on each platform, and only what TRIPLEX_OPENSLIDE names when it is set', () => {
    assert.deepEqual(openSlideCandidates('linux', {}), ['libopenslide.so.1', 'libopenslide.so.0']);
    assert.deepEqual(openSlideCandidates('darwin', {}), ['libopenslide.1.dylib', 'libopenslide.0.dylib']);
    assert.deepEqual(openSlideCandidates('win32', {}), ['libopenslide-1.dll', 'libopenslide-0.dll']);
    assert.deepEqual(openSlideCandidates('freebsd', {}), ['libopenslide.so.1', 'libopenslide.so.0']);
    assert.deepEqual(openSlideCandidates('darwin', { [OPENSLIDE_ENV]: dir }), [path.join(dir, 'libopenslide.1.dylib'), path.join(dir, 'libopenslide.0.dylib')]);
    const file = path.join(dir, 'my-openslide.so');
    assert.deepEqual(openSlideCandidates('linux', { [OPENSLIDE_ENV]: file }), [file], 'a file (there or not) is the one library tried');
  });

  // The library this process loaded, as the loader found it: a folder holding it under OpenSlide
  // 4's name (a link to the real library) is what an OpenSlide 4 install looks like to the search.
  const real = missing ? undefined : fs.readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5] ?? '').find((f) => /\/libopenslide\.so/.test(f));
  const cli = path.join(repoRoot(), 'dist', 'cli.js');
  const info = (env: Record<string, string>, json: boolean) => {
    const r = spawnSync(process.execPath, [cli, 'info', ...(json ? ['--json'] : [])], { env: { ...process.env, ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  it('loads OpenSlide 4\'s libopenslide.so.1 from the folder TRIPLEX_OPENSLIDE names, and `triplex info` names it and its version', { skip: skipOpenSlide || (real ? false : 'the loaded OpenSlide is not in /proc/self/maps (not Linux?)') }, () => {
    const v4 = path.join(dir, 'openslide4');
    fs.mkdirSync(v4);
    fs.symlinkSync(real!, path.join(v4, 'libopenslide.so.1'));
    const report = JSON.parse(info({ [OPENSLIDE_ENV]: v4 }, true)) as { openslide: { available: boolean; library?: string; version?: string } };
    assert.deepEqual(report.openslide, { available: true, library: path.join(v4, 'libopenslide.so.1'), version: openSlideLibrary().version });
    assert.match(report.openslide.version ?? '', /^\d+\.\d+\.\d+/);
  });

  it('a TRIPLEX_OPENSLIDE folder without the library: `triplex info` says OpenSlide is unavailable, naming what it tried and what to do', () => {
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const line = info({ [OPENSLIDE_ENV]: empty }, false).split('\n').find((l) => l.startsWith('openslide ')) ?? '';
    const tried = openSlideCandidates(process.platform, { [OPENSLIDE_ENV]: empty }).join(', ');
    assert.ok(line.startsWith(`openslide   unavailable: the system's OpenSlide library cannot be loaded (${OPENSLIDE_ENV}=${empty} gives no OpenSlide library (tried ${tried}): `), line);
    assert.match(line, /apt-get install libopenslide0, or set TRIPLEX_OPENSLIDE to the library or its folder\)$/);
  });
});
