import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import {
  CENTER_TILE,
  cropSpots,
  neighborMask,
  neighborView,
  SPOT_SIZE,
  spotCrop,
  type SpotCrops,
  toNormalizedFloat,
} from '../../src/runtime/image/crops';
import { ImageFileError, openSlideImage, type SlideImage } from '../../src/runtime/image/slideImage';
import { sharedData } from './helpers/paths';

// Synthetic images: big enough for a full 1120 neighbourhood, small enough to write in a blink.
const W = 1500;
const H = 1300;
const TILE = SPOT_SIZE * SPOT_SIZE * 3;

type Pixel = (x: number, y: number) => [number, number, number];
/** Distinguishes every shift a crop could get wrong (by 1, 224, 256 px, or swapped axes). */
const pattern: Pixel = (x, y) => [(x * 7 + y * 3) & 255, (x + y * 11 + 1) & 255, ((x >> 4) * 13 + (y >> 4) * 17 + 5) & 255];
const grey = (x: number, y: number): number => (x * 7 + y * 3) & 255;
/** Smooth, so that a lossy JPEG stays within a few levels of it. */
const gradient: Pixel = (x, y) => [Math.round((255 * x) / (W - 1)), Math.round((255 * y) / (H - 1)), 128];

function raster(w: number, h: number, channels: number, f: (x: number, y: number, c: number) => number): Buffer {
  const b = Buffer.alloc(w * h * channels);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < channels; c++) b[(y * w + x) * channels + c] = f(x, y, c);
  return b;
}

/** What region(x0, y0, w, h) must return for an image of width x height pixels given by f. */
function expected(f: Pixel, width: number, height: number, x0: number, y0: number, w: number, h: number): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [ix, iy] = [x0 + x, y0 + y];
      if (ix >= 0 && iy >= 0 && ix < width && iy < height) out.set(f(ix, iy), (y * w + x) * 3);
    }
  }
  return out;
}

function tile(tiles: Uint8Array, index: number): Uint8Array {
  return tiles.subarray(index * TILE, (index + 1) * TILE);
}

/** Byte equality without printing megabytes on failure. */
function assertBytes(actual: Uint8Array, want: Uint8Array, what: string): void {
  assert.equal(actual.length, want.length, `${what}: length`);
  const at = actual.findIndex((v, i) => v !== want[i]);
  assert.equal(at, -1, `${what}: first difference at byte ${at} (pixel ${Math.floor(at / 3)}): ${actual[at]} vs ${want[at]}`);
}

/** make_masking_table of the reference (NEXGEM/TRIPLEX, num_neighbors 5, radius 224), rewritten. */
function referenceMask(x: number, y: number, width: number, height: number): number[] {
  const m = new Array<number>(25).fill(1);
  for (let window = 5, ring = 0; window >= 3; window -= 2, ring++) {
    if (y - 112 * window < 0) for (let k = 0; k < 5; k++) m[5 * ring + k] = 0;
    if (y + 112 * window > height) for (let k = 0; k < 5; k++) m[25 - 5 * (ring + 1) + k] = 0;
    if (x - 112 * window < 0) for (let r = 0; r < 5; r++) m[5 * r + ring] = 0;
    if (x + 112 * window > width) for (let r = 0; r < 5; r++) m[5 * r + 4 - ring] = 0;
  }
  return m;
}

const rssMiB = (): number => Math.round(process.memoryUsage().rss / 2 ** 20);

let dir = '';
const file = (name: string): string => path.join(dir, name);

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'triplex-crops-'));
  const rgb = { raw: { width: W, height: H, channels: 3 as const } };
  await sharp(raster(W, H, 3, (x, y, c) => pattern(x, y)[c]), rgb).png().toFile(file('pattern.png'));
  await sharp(raster(W, H, 3, (x, y, c) => pattern(x, y)[c]), rgb).tiff({ compression: 'lzw', tile: true, tileWidth: 256, tileHeight: 256 }).toFile(file('pattern.tif'));
  await sharp(raster(W, H, 3, (x, y, c) => gradient(x, y)[c]), rgb).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(file('gradient.jpg'));
  await sharp(raster(W, H, 4, (x, y, c) => (c < 3 ? pattern(x, y)[c] : (x + y) & 255)), { raw: { width: W, height: H, channels: 4 } }).png().toFile(file('rgba.png'));
  await sharp(raster(W, H, 1, grey), { raw: { width: W, height: H, channels: 1 } }).png().toFile(file('grey.png'));
  const deep = Uint16Array.from(raster(W, H, 3, (x, y, c) => pattern(x, y)[c]), (v) => v * 257);
  await sharp(deep, { raw: { width: W, height: H, channels: 3 } }).toColourspace('rgb16').png().toFile(file('rgb16.png'));
  // Stored W x H, shown rotated 90 degrees clockwise (EXIF Orientation 6): H x W.
  await sharp(raster(W, H, 3, (x, y, c) => pattern(x, y)[c]), rgb).withMetadata({ orientation: 6 }).png().toFile(file('rotated.png'));
  const jpeg = readFileSync(file('gradient.jpg'));
  writeFileSync(file('truncated.jpg'), jpeg.subarray(0, jpeg.length >> 1));
  writeFileSync(file('notes.jpg'), 'not an image, just text\n');
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('openSlideImage', () => {
  it('decodes a PNG once and returns exact regions, zero outside the image', async () => {
    const img = await openSlideImage(file('pattern.png'));
    assert.equal(img.mode, 'whole');
    assert.deepEqual([img.width, img.height], [W, H]);
    for (const [x0, y0, w, h] of [[0, 0, W, H], [-5, -3, 10, 8], [W - 4, H - 2, 9, 7], [-20, 10, 5, 5], [W, H, 3, 3], [7, 9, 0, 4]]) {
      assertBytes(await img.region(x0, y0, w, h), expected(pattern, W, H, x0, y0, w, h), `region(${x0}, ${y0}, ${w}, ${h})`);
    }
    assert.deepEqual(img.stats(), { decodes: 1, residentBytes: W * H * 3 });
    img.close();
    await assert.rejects(img.region(0, 0, 1, 1), /was closed/);
  });

  it('reads tiled TIFF exactly and JPEG within a few levels', async () => {
    const tif = await openSlideImage(file('pattern.tif'));
    assertBytes(await tif.region(-100, 1000, 700, 400), expected(pattern, W, H, -100, 1000, 700, 400), 'TIFF region');
    const jpg = await openSlideImage(file('gradient.jpg'));
    assert.deepEqual([jpg.width, jpg.height], [W, H]);
    const got = await jpg.region(0, 0, W, H);
    const want = expected(gradient, W, H, 0, 0, W, H);
    const worst = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i])), 0);
    assert.ok(worst <= 4, `JPEG differs from its source by up to ${worst} levels`);
  });

  it('turns RGBA, greyscale and 16-bit inputs into 8-bit RGB', async () => {
    const want = expected(pattern, W, H, 0, 0, W, H);
    const rgba = await openSlideImage(file('rgba.png'));
    assertBytes(await rgba.region(0, 0, W, H), want, 'RGBA (alpha dropped, not composited)');
    const deep = await openSlideImage(file('rgb16.png'));
    assertBytes(await deep.region(0, 0, W, H), want, '16-bit RGB');
    const g = await openSlideImage(file('grey.png'));
    assertBytes(await g.region(0, 0, W, H), expected((x, y) => [grey(x, y), grey(x, y), grey(x, y)], W, H, 0, 0, W, H), 'greyscale');
  });

  it('applies the EXIF orientation unless asked for the stored grid', async () => {
    const shown = await openSlideImage(file('rotated.png'));
    assert.deepEqual([shown.width, shown.height], [H, W]);
    // Orientation 6 shows stored pixel (x, y) at (H - 1 - y, x).
    const rotated: Pixel = (x, y) => pattern(y, H - 1 - x);
    assertBytes(await shown.region(-3, 200, 300, 90), expected(rotated, H, W, -3, 200, 300, 90), 'oriented region');
    const shownBands = await openSlideImage(file('rotated.png'), { maxDecodedBytes: H * 3 * 400 }); // bands of 200 rows
    assert.equal(shownBands.mode, 'bands');
    assertBytes(await shownBands.region(-3, 200, 300, 90), await shown.region(-3, 200, 300, 90), 'oriented region from bands');
    const stored = await openSlideImage(file('rotated.png'), { orientation: 'stored' });
    assert.deepEqual([stored.width, stored.height], [W, H]);
    assertBytes(await stored.region(10, 20, 30, 40), expected(pattern, W, H, 10, 20, 30, 40), 'stored region');
  });

  const broken: [string, RegExp][] = [
    ['truncated.jpg', /premature end/i],
    ['notes.jpg', /unsupported image format/i],
    ['missing.png', /missing/i],
  ];
  for (const [name, cause] of broken) {
    for (const maxDecodedBytes of [undefined, 200_000]) {
      it(`rejects ${name} naming the file (${maxDecodedBytes ? 'band' : 'whole'} mode)`, async () => {
        await assert.rejects(openSlideImage(file(name), { maxDecodedBytes }), (e: unknown) => {
          assert.ok(e instanceof ImageFileError, String(e));
          assert.ok(e.message.includes(file(name)), e.message);
          assert.match(e.message, cause);
          assert.ok(e.cause instanceof Error, 'sharp error kept as the cause');
          return true;
        });
      });
    }
  }
});

describe('crops', () => {
  let img: SlideImage;
  before(async () => {
    img = await openSlideImage(file('pattern.png'));
  });

  const targets: [string, number, number][] = [
    ['centre', 750.7, 650.2],
    ['top-left corner', 0, 0],
    ['top edge', 750, 0.9],
    ['top-right corner', W - 0.5, 0],
    ['right edge', W - 1, 650],
    ['bottom-right corner', W - 1, H - 1],
    ['bottom edge', 750, H - 1],
    ['bottom-left corner', 0, H - 0.01],
    ['left edge', 0.5, 650],
    ['110 px in', 110.2, 1189.9],
  ];
  for (const [where, x, y] of targets) {
    it(`cuts the 224 crop around floor(centre) at the ${where}, zero-padded`, async () => {
      const [cx, cy] = [Math.floor(x), Math.floor(y)];
      assertBytes(await spotCrop(img, x, y), expected(pattern, W, H, cx - 112, cy - 112, 224, 224), where);
    });
  }

  it('cuts the neighbour view into row-major tiles with the exact mask', async () => {
    const { tiles, mask } = await neighborView(img, 300.9, 1000.4); // x0 = -260, y0 = 440
    assert.equal(tiles.length, 25 * TILE);
    assert.deepEqual([...mask], [
      0, 0, 1, 1, 1,
      0, 0, 1, 1, 1,
      0, 0, 1, 1, 1,
      0, 0, 0, 0, 0, // bottom edges at 1336 and 1560 > 1300
      0, 0, 0, 0, 0,
    ]);
    for (let r = 0; r < 5; r++) {
      for (let c = 0; c < 5; c++) {
        assertBytes(tile(tiles, r * 5 + c), expected(pattern, W, H, -260 + 224 * c, 440 + 224 * r, 224, 224), `tile (${r}, ${c})`);
      }
    }
  });

  it('never masks the centre tile, which is zero-padded like the target crop', async () => {
    const { tiles, mask } = await neighborView(img, 50, H - 30); // x0 = -510, y0 = 710: rows 2..4 cross the bottom
    assert.deepEqual([...mask], [
      0, 0, 0, 1, 1,
      0, 0, 0, 1, 1,
      0, 0, 1, 0, 0, // centre row: only the centre tile stays valid
      0, 0, 0, 0, 0,
      0, 0, 0, 0, 0,
    ]);
    assertBytes(tile(tiles, CENTER_TILE), await spotCrop(img, 50, H - 30), 'centre tile = target crop');
    assertBytes(tile(tiles, CENTER_TILE), expected(pattern, W, H, 50 - 112, H - 30 - 112, 224, 224), 'centre tile');
  });

  // The reference (make_masking_table) masks whole rings of tiles by testing each ring's outer edge,
  // so it never masks the centre row or column. Where the centre is at least 112 px from every edge
  // no centre-row or -column tile can cross an edge and the two rules agree; nearer an edge the spec's
  // "fully inside" also masks the centre-row/column tiles that cross it, and nothing else.
  it('masks as the reference make_masking_table, plus centre-row/column tiles crossing an edge', () => {
    let seed = 7;
    const next = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    const centres: [number, number][] = [[0, 0], [W - 1, H - 1], [112, 112], [111, 500], [560, 560], [559, 561],
      [W - 560, H - 560], [W - 561, 336], [335, 337], [W - 113, H - 112], [W - 112, H - 113]];
    for (let i = 0; i < 1000; i++) centres.push([next(W), next(H)]);
    for (const [x, y] of centres) {
      const ours = [...neighborMask(W, H, x, y)];
      const ref = referenceMask(x, y, W, H);
      const farFromEdges = x >= 112 && y >= 112 && x + 112 <= W && y + 112 <= H;
      if (farFromEdges) {
        assert.deepEqual(ours, ref, `centre (${x}, ${y})`);
        continue;
      }
      for (let i = 0; i < 25; i++) {
        if (ours[i] === ref[i]) continue;
        const [r, c] = [Math.floor(i / 5), i % 5];
        const [left, top] = [x - 560 + 224 * c, y - 560 + 224 * r];
        assert.ok(ref[i] === 1 && (r === 2 || c === 2) && i !== CENTER_TILE, `centre (${x}, ${y}), tile ${i}`);
        assert.ok(left < 0 || top < 0 || left + 224 > W || top + 224 > H, `centre (${x}, ${y}), tile ${i} is inside`);
      }
    }
  });

  it('rejects a spot outside the image, naming the file and the spot', async () => {
    await assert.rejects(cropSpots(img, [{ x: 10, y: 10 }, { id: '10x21', x: 6930.58, y: 3510.24 }], { target: true, neighbor: false }),
      (e: Error) => e.message.includes(`${file('pattern.png')} is 1500 x 1300 px but spot 10x21 is at (6930.58, 3510.24)`));
    await assert.rejects(spotCrop(img, -0.5, 10), /is at \(-0.5, 10\)/);
    await assert.rejects(neighborView(img, 10, Number.NaN), /is at \(10, NaN\)/);
  });

  it('cropSpots returns both views in input order, the same as one spot at a time', async () => {
    const spots = [{ x: 900, y: 1200 }, { x: 3, y: 4 }, { x: 750.5, y: 650.5 }, { x: 1400, y: 20 }, { x: 3, y: 4 }];
    const batch = await cropSpots(img, spots, { target: true, neighbor: true });
    assert.equal(batch.n, spots.length);
    assert.ok(batch.target && batch.neighbor);
    for (const [i, s] of spots.entries()) {
      const one = await neighborView(img, s.x, s.y);
      assertBytes(batch.target.subarray(i * TILE, (i + 1) * TILE), await spotCrop(img, s.x, s.y), `target ${i}`);
      assertBytes(batch.neighbor.tiles.subarray(i * 25 * TILE, (i + 1) * 25 * TILE), one.tiles, `tiles ${i}`);
      assert.deepEqual([...batch.neighbor.mask.subarray(i * 25, (i + 1) * 25)], [...one.mask], `mask ${i}`);
    }
    const small = await cropSpots(img, spots, { target: true, neighbor: true, targetSize: 32 });
    assert.ok(small.target);
    assertBytes(small.target.subarray(32 * 32 * 3, 2 * 32 * 32 * 3), expected(pattern, W, H, 3 - 16, 4 - 16, 32, 32), 'targetSize 32');
    const none = await cropSpots(img, [], { target: true, neighbor: true });
    assert.equal(none.target?.length, 0);
  });
});

describe('band mode', () => {
  const spots = [{ x: 700, y: 1250 }, { x: 20, y: 30 }, { x: 1480, y: 640 }, { x: 760.2, y: 300.7 }, { x: 200, y: 1299 }, { x: 750, y: 650 }];

  // 600 rows of budget: bands of 300 rows, two held. 224 crops come from bands; 1120 views span
  // more bands than are held and are decoded on their own. 1 row: everything is decoded directly.
  for (const [name, budget] of [['pattern.png', W * 3 * 600], ['pattern.tif', W * 3 * 600], ['gradient.jpg', W * 3 * 600], ['pattern.png', W * 3]] as const) {
    it(`gives byte-identical crops to whole mode (${name}, ${budget} bytes)`, async () => {
      const whole = await openSlideImage(file(name));
      const banded = await openSlideImage(file(name), { maxDecodedBytes: budget });
      assert.equal(banded.mode, 'bands');
      const a = await cropSpots(whole, spots, { target: true, neighbor: true });
      const b = await cropSpots(banded, spots, { target: true, neighbor: true });
      assert.ok(a.target && b.target && a.neighbor && b.neighbor);
      assertBytes(b.target, a.target, 'targets');
      assertBytes(b.neighbor.tiles, a.neighbor.tiles, 'neighbour tiles');
      assert.deepEqual([...b.neighbor.mask], [...a.neighbor.mask]);
      for (const s of spots) assertBytes(await spotCrop(banded, s.x, s.y, 100), await spotCrop(whole, s.x, s.y, 100), 'crop of 100');
      assertBytes(await banded.region(-7, -7, W + 14, H + 14), await whole.region(-7, -7, W + 14, H + 14), 'whole region');
      assert.ok(banded.stats().residentBytes <= budget, `holds ${banded.stats().residentBytes} bytes of ${budget}`);
      banded.close();
      whole.close();
    });
  }

  it('decodes each band once for spots sorted by y', async () => {
    const banded = await openSlideImage(file('pattern.png'), { maxDecodedBytes: W * 3 * 600 }); // 5 bands of 300 rows (the last 100)
    const before = banded.stats().decodes; // the bottom band, decoded by open
    const column = Array.from({ length: 40 }, (_, i) => ({ x: 400, y: 120 + i * 24 })); // rows 8..1168
    await cropSpots(banded, column, { target: true, neighbor: false });
    assert.equal(banded.stats().decodes - before, 4, 'bands 0..3 once each');
  });
});

describe('toNormalizedFloat', () => {
  it('applies the ImageNet mean and std per channel, NHWC', () => {
    const rgb = Uint8Array.from([0, 128, 255, 255, 0, 10]); // 2 images of 1 x 1
    const out = toNormalizedFloat(rgb, 2, 1);
    const want = [(0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (1 - 0.406) / 0.225, (1 - 0.485) / 0.229, -0.456 / 0.224, (10 / 255 - 0.406) / 0.225];
    for (const [i, v] of want.entries()) assert.ok(Math.abs(out[i] - v) < 1e-6, `value ${i}: ${out[i]} vs ${v}`);
  });

  it('zeroes the images whose mask is 0 and checks sizes', () => {
    const rgb = new Uint8Array(2 * 4 * 3).fill(200); // 2 images of 2 x 2
    const out = toNormalizedFloat(rgb, 2, 2, Uint8Array.from([1, 0]));
    assert.deepEqual([...out.subarray(0, 12)], [...toNormalizedFloat(rgb, 2, 2).subarray(0, 12)]);
    assert.ok(out.subarray(12).every((v) => v === 0));
    assert.throws(() => toNormalizedFloat(new Uint8Array(10), 1, 2), /10 bytes is not 1 images of 2 x 2 x 3/);
    assert.throws(() => toNormalizedFloat(new Uint8Array(12), 1, 2, new Uint8Array(3)), /3 entries for 1 images/);
  });
});

describe('real HER2+ section C2', () => {
  const image = sharedData('her2st', 'ST-imgs', 'C', 'C2', '5714_HE_BT_C2.jpg');
  const spotFile = sharedData('her2st', 'ST-spotfiles', 'C2_selection.tsv');
  const available = existsSync(image) && existsSync(spotFile);

  function realSpots(): { id: string; x: number; y: number }[] {
    const [header, ...rows] = readFileSync(spotFile, 'utf8').trim().split('\n').map((l) => l.split('\t'));
    const col = (name: string): number => header.indexOf(name);
    return rows.map((r) => ({ id: `${r[col('x')]}x${r[col('y')]}`, x: Number(r[col('pixel_x')]), y: Number(r[col('pixel_y')]) }));
  }

  let bandCrops: SpotCrops | undefined; // from the band-mode test, compared with whole mode below

  it('crops real spots in band mode within its budget', { skip: !available && 'C2 image not found' }, async () => {
    const budget = 64 * 2 ** 20;
    const rss0 = rssMiB();
    const img = await openSlideImage(image, { maxDecodedBytes: budget });
    assert.equal(img.mode, 'bands');
    const spots = realSpots().slice(0, 12);
    bandCrops = await cropSpots(img, spots, { target: true, neighbor: true });
    assert.ok(img.stats().residentBytes <= budget);
    console.log(`# C2 band mode (64 MiB budget): ${img.stats().decodes} decodes, holds ${(img.stats().residentBytes / 2 ** 20).toFixed(1)} MiB; ` +
      `RSS ${rss0} -> ${rssMiB()} MiB`);
    img.close();
  });

  it('crops real spots from the whole decoded JPEG with bounded memory', { skip: !available && 'C2 image not found' }, async () => {
    const rss0 = rssMiB();
    const t0 = performance.now();
    const img = await openSlideImage(image);
    const openMs = performance.now() - t0;
    const rssOpen = rssMiB();
    assert.equal(img.mode, 'whole');
    assert.deepEqual([img.width, img.height], [9274, 9911]);
    const spots = realSpots();
    assert.ok(spots.length > 100);
    for (const s of spots.slice(0, 5)) {
      const target = await spotCrop(img, s.x, s.y);
      const { tiles, mask } = await neighborView(img, s.x, s.y);
      assertBytes(tile(tiles, CENTER_TILE), target, `spot ${s.id}: tile 12 = 224 crop`);
      assert.deepEqual([...mask], [...neighborMask(img.width, img.height, Math.floor(s.x), Math.floor(s.y))]);
      assert.ok(target.some((v) => v !== 0), `spot ${s.id}: crop is not empty`);
    }
    const batch = await cropSpots(img, spots.slice(0, 32), { target: true, neighbor: true });
    assert.ok(batch.neighbor && batch.target);
    if (bandCrops?.target && bandCrops.neighbor) {
      const n = bandCrops.n;
      assertBytes(batch.target.subarray(0, n * TILE), bandCrops.target, 'band-mode targets');
      assertBytes(batch.neighbor.tiles.subarray(0, n * 25 * TILE), bandCrops.neighbor.tiles, 'band-mode neighbour tiles');
    }
    const masked = batch.neighbor.mask.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
    const decoded = img.width * img.height * 3;
    const grown = (rssMiB() - rss0) * 2 ** 20;
    console.log(`# C2 whole mode: open ${openMs.toFixed(0)} ms, decoded ${(decoded / 2 ** 20).toFixed(0)} MiB; ` +
      `RSS ${rss0} -> ${rssOpen} (open) -> ${rssMiB()} MiB (32 spots, both views); ${masked} of ${32 * 25} tiles masked`);
    // The pixels once, plus this test's crops (32 neighbour views = 120 MiB), plus slack for the allocator.
    assert.ok(grown < decoded + 400 * 2 ** 20, `RSS grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
    img.close();
  });
});
