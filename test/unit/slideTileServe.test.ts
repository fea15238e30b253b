import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import sharp from 'sharp';
import { writeSlideTilePyramid, type SlideTilePyramid } from '../../src/runtime/image/slideTiles';
import { serveSlideTiles, type TileAnswer } from '../../src/runtime/image/tileServe';
import { writeTilePyramid } from '../../src/runtime/image/tiles';
import { viewerDir } from '../../src/cli/viewer';
import { MAX_TILE_REQUESTS, parseViewerInbound, parseViewerOutbound } from '../../src/protocol/webviews';
import { SlideTileRequests } from '../../src/webviews/tileRequests';
import { repoRoot } from './helpers/paths';
import { tempDir } from './helpers/spatialFixtures';
import { deflateTile, solidTile, writeTiledTiff } from './helpers/tiffWriter';
import { STRIPED, stripeCentre, stripes, writeStripedSlideStore } from './helpers/stripedSlide';

/**
 * The slide viewer's on-demand tiles on the host's side: `triplex tiles --serve` (one slide
 * opened once, tile names on stdin, a JSON line per tile), several tiles per `--tile` call, bad
 * names and corrupt tiles answered with errors naming the file, level and tile, tiles on disk
 * reused; and SlideTileRequests, the extension's queue in front of the serving child: at most
 * two tiles in flight, a new list dropping the stale ones.
 */

const cli = path.join(repoRoot(), 'dist', 'cli.js');

/** Answers of a serve loop fed `names` at once. */
async function serveAll(image: string, pyramid: SlideTilePyramid, names: string[]): Promise<TileAnswer[]> {
  const input = new PassThrough();
  const output = new PassThrough();
  const lines: string[] = [];
  output.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter(Boolean)));
  input.end(names.map((n) => `${n}\n`).join(''));
  await serveSlideTiles(image, pyramid, input, output);
  return lines.map((l) => JSON.parse(l) as TileAnswer);
}

/**
 * Largest channel difference between a decoded tile, scaled up to full resolution (as the viewer
 * draws a lower level's tile), and the slide's pixels at the centres of its stripes.
 */
async function tileError(file: string, level: number, col: number, row: number): Promise<number> {
  const { data, info } = await sharp(file).raw().toBuffer({ resolveWithObject: true });
  const f = 2 ** (STRIPED.maxLevel - level);
  let worst = 0;
  for (let y = 8; y < info.height; y += 37) {
    for (let fx = col * 256 * f; fx < (col * 256 + info.width) * f; fx++) {
      if (!stripeCentre(fx)) continue;
      const x = Math.floor(fx / f) - col * 256;
      const want = stripes(fx, (row * 256 + y) * f);
      for (let k = 0; k < 3; k++) worst = Math.max(worst, Math.abs(data[(y * info.width + x) * info.channels + k] - want[k]));
    }
  }
  return worst;
}

/** Resolves once process `pid` has ended (and been reaped); fails after 10 s. */
async function gone(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`process ${pid} still runs after 10 s`);
}

describe('on-demand tiles of a whole slide, host side', () => {
  let dir = '';
  let store = '';
  let slide = '';
  let pyramid: SlideTilePyramid;
  before(async () => {
    dir = tempDir('tile-serve');
    ({ store, slide } = await writeStripedSlideStore(dir, 'S1'));
    pyramid = (await writeTilePyramid(slide, path.join(viewerDir(store, 'S1'), 'tiles'))) as SlideTilePyramid;
  });
  const tileFile = (name: string) => path.join(pyramid.dir, 'slide_files', `${name}.jpeg`);

  it('serves several tiles from one open slide, refuses bad names, and reuses tiles on disk', async () => {
    assert.deepEqual([pyramid.maxLevel, pyramid.writtenLevels, pyramid.onDemand], [13, 11, true]);
    assert.ok(fs.existsSync(tileFile('11/5_2')) && !fs.existsSync(tileFile('12/0_0')), 'level 11 (18 tiles) is written, level 12 (72) is not');
    const overviewMtime = fs.statSync(tileFile('11/5_2')).mtimeMs;
    const names = ['13/0_0', '13/5_3', '13/23_11', '13/9_7', 'bad', '13/24_0', '11/5_2', `12/${'9'.repeat(80)}`];
    const answers = await serveAll(slide, pyramid, names);
    const by = new Map(answers.map((a) => [a.tile.slice(0, 20), a]));
    assert.equal(answers.length, names.length, 'one answer per line');
    for (const [name, col, row] of [['13/0_0', 0, 0], ['13/5_3', 5, 3], ['13/23_11', 23, 11], ['13/9_7', 9, 7]] as const) {
      const a = by.get(name) as { file: string };
      assert.equal(a.file, tileFile(name), name);
      const worst = await tileError(a.file, 13, col, row);
      assert.ok(worst <= 40, `${name} shows the slide's pixels there (off by ${worst})`);
    }
    // The stripes are the full resolution's alone: the top written level, scaled up, misses them.
    assert.equal((by.get('11/5_2') as { file: string }).file, tileFile('11/5_2'));
    assert.ok((await tileError(tileFile('11/5_2'), 11, 5, 2)) > 80);
    assert.match((by.get('bad') as { error: string }).error, /'bad' is not a Deep Zoom tile name \(expected <level>\/<col>_<row>, e.g\. 14\/3_5\)/);
    assert.match((by.get('13/24_0') as { error: string }).error, /S1\.tif: no Deep Zoom tile 13\/24_0 \(levels 0\.\.13; level 13 has 24 x 12 tiles\)/);
    assert.match((answers.find((a) => a.tile.length > 20) as { error: string }).error, /a tile name of 83 characters/);
    assert.equal(fs.statSync(tileFile('11/5_2')).mtimeMs, overviewMtime, 'the overview tile is answered from disk');
    // Asked again: answered from disk, not cut again.
    const cut = fs.statSync(tileFile('13/5_3')).mtimeMs;
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await serveAll(slide, pyramid, ['13/5_3']), [{ tile: '13/5_3', file: tileFile('13/5_3') }]);
    assert.equal(fs.statSync(tileFile('13/5_3')).mtimeMs, cut);
  });

  it('answers a corrupt tile of the slide with an error naming the file, the level and the tile, and goes on', async () => {
    const good = deflateTile(solidTile(256, [200, 100, 150]));
    const garbage = Buffer.from('this is not deflate data at all, it is damaged');
    const corrupt = path.join(dir, 'corrupt.tif');
    writeTiledTiff(corrupt, [
      { width: 2048, height: 1024, tileSize: 256, tile: (c) => (c === 5 ? garbage : good), compression: 'deflate' },
      { width: 512, height: 256, tileSize: 256, tile: () => good, compression: 'deflate' },
    ]);
    // Levels 0..9 (downsample 4 and more) come from the intact level 1; level 10 reads level 0.
    const p = await writeSlideTilePyramid(corrupt, path.join(dir, 'corrupt-tiles'), {}, 2);
    assert.equal(p.writtenLevels, 9);
    const [bad, fine] = await serveAll(corrupt, p, ['10/2_0', '10/0_1']).then((a) => [a.find((x) => x.tile === '10/2_0'), a.find((x) => x.tile === '10/0_1')]);
    assert.ok(bad && 'error' in bad, 'the corrupt tile is an error');
    assert.match(bad.error, /^Deep Zoom tile 10\/2_0: .*corrupt\.tif: level 0, tile \(column 5, row 0\) cannot be decoded .*the file is damaged or truncated/);
    assert.ok(fine && 'file' in fine && fs.existsSync(fine.file), 'a good tile after it is still cut');
    assert.ok(!fs.existsSync(path.join(p.dir, 'slide_files', '10', '2_0.jpeg')), 'nothing is written for the corrupt tile');
  });

  it('triplex tiles --tile takes several tiles per call; bad names and --serve with --tile are usage errors', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'tiles', store, '--section', 'S1', ...args], { encoding: 'utf8', timeout: 60_000 });
    const two = run('--tile', '13/1_1', '13/2_1');
    assert.equal(two.status, 0, two.stderr);
    assert.deepEqual(JSON.parse(two.stdout), { files: [tileFile('13/1_1'), tileFile('13/2_1')] });
    const bad = run('--tile', '12/1_1', '12/x');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--tile 12\/x: expected <level>\/<col>_<row>, e\.g\. 14\/3_5/);
    const both = run('--tile', '12/1_1', '--serve');
    assert.equal(both.status, 2);
    assert.match(both.stderr, /--tile and --serve: give one of them/);
  });

  it('validates the tile messages on receipt: names only, at most MAX_TILE_REQUESTS, deduplicated', () => {
    assert.deepEqual(parseViewerOutbound({ type: 'wantTiles', payload: { tiles: ['13/1_2', '13/1_2', '12/0_0'] } }), { type: 'wantTiles', payload: { tiles: ['13/1_2', '12/0_0'] } });
    assert.deepEqual(parseViewerOutbound({ type: 'wantTiles', payload: { tiles: [] } }), { type: 'wantTiles', payload: { tiles: [] } }, 'an empty list cancels');
    const many = Array.from({ length: MAX_TILE_REQUESTS + 1 }, (_, i) => `13/${i}_0`);
    for (const tiles of [many, ['../../etc/passwd'], ['13/1_2\n13/3_4'], ['13/1_2.jpeg'], [13], 'x']) {
      assert.equal(parseViewerOutbound({ type: 'wantTiles', payload: { tiles } }), undefined, JSON.stringify(tiles));
    }
    assert.deepEqual(parseViewerInbound({ type: 'tile', payload: { tile: '13/1_2', error: 'damaged' } }), { type: 'tile', payload: { tile: '13/1_2', error: 'damaged' } });
    assert.equal(parseViewerInbound({ type: 'tile', payload: { tile: '13/../1_2' } }), undefined);
    assert.equal(parseViewerInbound({ type: 'tile', payload: { tile: '13/1_2', error: 7 } }), undefined);
  });

  it('SlideTileRequests: one serving child, at most two tiles in flight, a new list drops the stale queue', async () => {
    const answers: TileAnswer[] = [];
    const handedBeforeAnswer: number[] = [];
    let done: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => { done = resolve; });
    const want = new Set<string>();
    const requests = new SlideTileRequests({ file: process.execPath, args: [cli, 'tiles', store, '--section', 'S1', '--serve'] }, (a) => {
      answers.push(a);
      handedBeforeAnswer.push(requests.sent.length - (answers.length - 1));
      if ([...want].every((t) => answers.some((x) => x.tile === t))) done();
    });
    try {
      const stale = ['12/0_2', '12/1_2', '12/2_2', '12/3_2', '12/4_2', '12/5_2', '12/6_2', '12/7_2'];
      requests.want(stale);
      assert.deepEqual(requests.sent, stale.slice(0, 2), 'two tiles handed to the child, six queued');
      const fresh = ['12/10_5', '12/11_5', '12/11_5', '12/99_5'];
      requests.want(fresh); // the user panned away before the child answered
      assert.equal(requests.dropped, 6, 'the six queued tiles of the old view are dropped');
      for (const t of [...stale.slice(0, 2), ...fresh]) want.add(t);
      await finished;
      assert.deepEqual(requests.sent, [...stale.slice(0, 2), '12/10_5', '12/11_5', '12/99_5'], 'deduplicated; dropped tiles are never sent');
      assert.ok(handedBeforeAnswer.every((n) => n <= 2), `never more than two in flight: ${handedBeforeAnswer.join()}`);
      for (const t of stale.slice(2)) assert.ok(!fs.existsSync(tileFile(t)), `${t} was not cut`);
      for (const t of ['12/10_5', '12/11_5', ...stale.slice(0, 2)]) assert.deepEqual(answers.find((a) => a.tile === t), { tile: t, file: tileFile(t) });
      assert.match((answers.find((a) => a.tile === '12/99_5') as { error: string }).error, /no Deep Zoom tile 12\/99_5/);
    } finally {
      requests.close();
    }
  });

  it('SlideTileRequests: the child ends after an idle period, the next request starts another, and none is left after close', async () => {
    const answers: TileAnswer[] = [];
    let check = () => undefined as void;
    const answered = (n: number) => new Promise<void>((resolve) => { check = () => { if (answers.length >= n) resolve(); }; check(); });
    const requests = new SlideTileRequests({ file: process.execPath, args: [cli, 'tiles', store, '--section', 'S1', '--serve'] }, (a) => {
      answers.push(a);
      check();
    }, 2, 300);
    try {
      requests.want(['12/3_4']);
      const first = requests.pid;
      assert.ok(first);
      await answered(1);
      await gone(first);
      assert.deepEqual([requests.pid, requests.idleStops], [undefined, 1], 'ended after 300 ms without a request');
      requests.want(['12/4_4', '12/3_4']);
      const second = requests.pid;
      assert.ok(second && second !== first, 'a new child for the next request');
      await answered(2);
      assert.deepEqual(answers, [{ tile: '12/3_4', file: tileFile('12/3_4') }, { tile: '12/4_4', file: tileFile('12/4_4') }], 'answered by either child; a tile answered is not asked again');
      requests.want(['12/5_4']);
      requests.close(); // the panel closed while a tile is being cut
      await gone(second);
      assert.equal(requests.started, 2);
      assert.equal(answers.length, 2, 'nothing answered after close');
    } finally {
      requests.close();
    }
  });

  it('SlideTileRequests: a cutter that cannot start answers the tiles in flight with its error', async () => {
    const answers: TileAnswer[] = [];
    const got = new Promise<void>((resolve) => {
      const requests = new SlideTileRequests({ file: process.execPath, args: [cli, 'tiles', store, '--section', 'S9', '--serve'] }, (a) => {
        answers.push(a);
        if (answers.length === 2) { requests.close(); resolve(); }
      });
      requests.want(['13/0_0', '13/1_0', '13/2_0']);
    });
    await got;
    assert.deepEqual(answers.map((a) => a.tile).sort(), ['13/0_0', '13/1_0']);
    for (const a of answers) assert.match((a as { error: string }).error, /^the tile cutter stopped: .*no section 'S9'/);
  });
});
