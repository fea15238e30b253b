import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { readDataset } from '../../src/runtime/data/read';
import { readSpotTable } from '../../src/runtime/data/slide';
import { DataFileError } from '../../src/runtime/data/types';
import { extractFeatures } from '../../src/runtime/features/extract';
import { checkImageData, ImageFileError, MAX_IMAGE_PIXELS, openSlideImage } from '../../src/runtime/image/slideImage';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { repoRoot } from './helpers/paths';
import { tempDir, truthSection, writeH5ad, writeHer2st } from './helpers/spatialFixtures';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * Files that are not what their names say: a named pipe among the images (reading it waited
 * forever), a JPEG whose header claims more rows than its data holds (decoded to grey filler and
 * turned into features), and a header claiming more pixels than any slide has.
 */

const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', timeout: 30_000 });

/** A JPEG of `width` x `rows` px whose frame header (SOF) says `height` rows. */
async function shortJpeg(file: string, width: number, rows: number, height: number): Promise<string> {
  const raw = Buffer.alloc(width * rows * 3);
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7) % 251;
  const jpeg = await sharp(raw, { raw: { width, height: rows, channels: 3 } }).jpeg().toBuffer();
  for (let pos = 2; pos < jpeg.length;) {
    const marker = jpeg[pos + 1];
    if (marker >= 0xc0 && marker <= 0xc2) {
      jpeg.writeUInt16BE(height, pos + 5);
      fs.writeFileSync(file, jpeg);
      return file;
    }
    pos += 2 + jpeg.readUInt16BE(pos + 2);
  }
  throw new Error('no SOF marker');
}

function crc32(bytes: Buffer): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

describe('named pipes are refused, not waited on', () => {
  const tmp = tempDir('fifo');
  const root = writeHer2st(path.join(tmp, 'her2st'), [truthSection({ id: 'A1' })], { image: { width: 3000, height: 3000 } });
  const fifo = path.join(root, 'ST-imgs', 'A', 'A1', 'x.jpg');
  before(() => {
    fs.rmSync(path.join(path.dirname(fifo), 'A1.jpg')); // the pipe is the section's only image
    execFileSync('mkfifo', [fifo]);
  });

  for (const args of [['dataset', 'inspect', root], ['preprocess', root, '--out', path.join(tmp, 'store')]]) {
    test(`triplex ${args.slice(0, 2).join(' ')} names the pipe among the images and ends`, { timeout: 60_000 }, () => {
      const r = cli(args);
      assert.equal(r.error, undefined, 'it ended');
      assert.equal(r.status, 1, r.stdout + r.stderr);
      assert.ok(r.stderr.includes(fifo) && /named pipe/.test(r.stderr), r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }

  test('a pipe as a count file, an .h5ad, a spot table or --image is refused', { timeout: 60_000 }, async () => {
    const other = writeHer2st(path.join(tmp, 'counts'), [truthSection({ id: 'B1' })]);
    const counts = path.join(other, 'ST-cnts', 'B1.tsv.gz');
    fs.rmSync(counts);
    execFileSync('mkfifo', [counts]);
    await assert.rejects(readDataset(other), (e) => e instanceof DataFileError && e.file === counts && /named pipe/.test(e.message));
    const h5adPipe = path.join(tmp, 'pipe.h5ad');
    execFileSync('mkfifo', [h5adPipe]);
    const r = cli(['dataset', 'inspect', h5adPipe]);
    assert.equal(r.error, undefined, 'it ended');
    assert.equal(r.status, 1);
    assert.ok(r.stderr.includes(h5adPipe), r.stderr);
    const table = path.join(tmp, 'spots.csv');
    execFileSync('mkfifo', [table]);
    assert.throws(() => readSpotTable(table), (e) => e instanceof DataFileError && e.file === table && /named pipe/.test(e.message));
    const h5ad = await writeH5ad(path.join(tmp, 'one.h5ad'), [truthSection()], { x: 'dense' });
    await assert.rejects(readDataset(h5ad, { image: fifo }), (e) => e instanceof DataFileError && e.file === fifo);
  });
});

describe('images whose data does not hold what the header says', () => {
  const tmp = tempDir('images');
  const data = path.join(tmp, 'synth');
  const store = path.join(tmp, 'store');
  let badImage = '';

  before(async () => {
    await writeSyntheticStore(data, store, { patients: 1, sectionsPerPatient: 2, gridSize: 3, genes: 20 }, 10);
    // The second section's image keeps its size in the header but holds half of its rows.
    const image = openDatasetStore(store).manifest.sections[1].image!;
    badImage = image.path;
    await shortJpeg(badImage, image.width!, Math.floor(image.height! / 2), image.height!);
  });

  test('a JPEG cut short, or claiming more rows than it holds, is an error naming it', async () => {
    const cut = path.join(tmp, 'cut.jpg');
    const whole = await sharp({ create: { width: 600, height: 500, channels: 3, background: '#c080a0' } }).jpeg().toBuffer();
    fs.writeFileSync(cut, whole.subarray(0, whole.length >> 1));
    const tall = await shortJpeg(path.join(tmp, 'tall.jpg'), 400, 300, 3000);
    for (const file of [cut, tall]) {
      const named = (e: unknown) => e instanceof ImageFileError && e.file === file && /ends before the size its header gives/.test(e.message);
      await assert.rejects(checkImageData(file), named, file);
      await assert.rejects(openSlideImage(file), named, file);
      await assert.rejects(openSlideImage(file, { maxDecodedBytes: 400 * 3 * 64 }), named, `${file} in bands`);
    }
  });

  test('extract refuses it before computing any feature', async () => {
    await assert.rejects(extractFeatures(store, { encoder: 'resnet18' }), (e) => e instanceof ImageFileError && e.file === badImage);
    const features = path.join(store, 'features');
    const written = fs.existsSync(features) ? fs.readdirSync(features, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.arrow')) : [];
    assert.deepEqual(written, [], 'no features of the good section either');
  });

  test('dataset inspect lists it as a problem', { timeout: 60_000 }, () => {
    const r = cli(['dataset', 'inspect', data, '--json']);
    assert.equal(r.status, 0, r.stderr);
    const problems = (JSON.parse(r.stdout) as { problems: { file: string; section?: string; message: string }[] }).problems;
    const found = problems.find((p) => p.file === badImage);
    assert.ok(found, r.stdout);
    assert.equal(found.section, 'A2');
    assert.match(found.message, /ends before the size its header gives/);
  });

  test('a header claiming more pixels than the limit is refused, stating the limit', async () => {
    const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#ffffff' } }).png().toBuffer();
    png.writeUInt32BE(200_000, 16); // IHDR width and height, then its CRC
    png.writeUInt32BE(200_000, 20);
    png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
    const file = path.join(tmp, 'huge.png');
    fs.writeFileSync(file, png);
    assert.ok(200_000 * 200_000 > MAX_IMAGE_PIXELS);
    await assert.rejects(openSlideImage(file), (e) => e instanceof ImageFileError && e.file === file && /limit of 1e\+10/.test(e.message));
  });
});
