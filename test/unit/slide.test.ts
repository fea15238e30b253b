import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { readSlide, readSpotTable } from '../../src/runtime/data/slide';
import { openDatasetStore, writeSpotStore } from '../../src/runtime/store/datasetStore';
import { loadTrainingData } from '../../src/runtime/train/data';

/**
 * Slides without counts (`triplex slide`): spots from Space Ranger positions or a named-column
 * table, or a grid over the tissue of an image; the store they make, and the errors of bad tables.
 */

describe('slides without counts', () => {
  let tmp = '';
  let image = '';
  // A 2240 x 1792 px PNG: white glass, a pink disc of radius 700 px centred at (1120, 896).
  const [W, H, CX, CY, R] = [2240, 1792, 1120, 896, 700];
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-slide-'));
    const rgb = Buffer.alloc(W * H * 3, 245);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        if ((x - CX) ** 2 + (y - CY) ** 2 > R * R) continue;
        rgb.set([228, 150, 200], (y * W + x) * 3);
      }
    }
    image = path.join(tmp, 'slide.png');
    await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).png().toFile(image);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const write = (name: string, text: string) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, text);
    return file;
  };

  test('without a table, a spot at the centre of every 224 px square that is mostly tissue', async () => {
    const slide = await readSlide(image);
    assert.equal(slide.id, 'slide');
    assert.deepEqual({ width: slide.image.width, height: slide.image.height }, { width: W, height: H });
    // Exactly the squares whose area inside the disc is at least half, counted here independently.
    let expected = 0;
    for (let r = 0; r < Math.floor(H / 224); r++) {
      for (let c = 0; c < Math.floor(W / 224); c++) {
        let inside = 0;
        for (let y = 0; y < 224; y += 4) for (let x = 0; x < 224; x += 4) inside += (c * 224 + x + 2 - CX) ** 2 + (r * 224 + y + 2 - CY) ** 2 <= R * R ? 1 : 0;
        const f = inside / 56 ** 2;
        if (f > 0.55) expected++;
        else if (f >= 0.45) expected = NaN; // a square on the edge of the rule: the test would be fragile
      }
    }
    assert.ok(Number.isFinite(expected) && expected > 20, `${expected}`);
    assert.equal(slide.spots.length, expected);
    for (const s of slide.spots) {
      assert.equal(s.x, s.col * 224 + 112);
      assert.equal(s.y, s.row * 224 + 112);
      assert.ok(Math.hypot(s.x - CX, s.y - CY) < R + 160, `${s.id} at (${s.x}, ${s.y}) is off the tissue`);
    }
    assert.equal(new Set(slide.spots.map((s) => s.id)).size, slide.spots.length);
    // A coarser grid, and a bare image with no tissue.
    assert.ok((await readSlide(image, { spacing: 448 })).spots.length < expected / 3);
    const blank = path.join(tmp, 'blank.png');
    await sharp(Buffer.alloc(512 * 512 * 3, 250), { raw: { width: 512, height: 512, channels: 3 } }).png().toFile(blank);
    await assert.rejects(readSlide(blank), /blank\.png: no 224 px square is 50% tissue; is this an H&E image/);
  });

  test('Space Ranger positions, with a header or without: in-tissue spots with their array position', () => {
    const rows = ['AAAC-1,1,10,20,500.5,700.25', 'AAAG-1,0,10,22,500,900', 'AACC-1,1,11,21,590,800'];
    const headed = readSpotTable(write('tissue_positions.csv', ['barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres', ...rows].join('\n') + '\n'));
    const headerless = readSpotTable(write('tissue_positions_list.csv', rows.join('\n')));
    for (const spots of [headed, headerless]) {
      assert.deepEqual(spots, [
        { id: 'AAAC-1', row: 10, col: 20, x: 700.25, y: 500.5 },
        { id: 'AACC-1', row: 11, col: 21, x: 800, y: 590 },
      ]);
    }
  });

  test('a table without array positions gets them from the spacing; one off the grid is refused', () => {
    const spots = readSpotTable(write('spots.tsv', 'spot_id\tpixel_x\tpixel_y\nb\t1224\t1000\na\t1000\t1000\nc\t1000.5\t1448.4\n'));
    assert.deepEqual(spots.map((s) => [s.id, s.row, s.col]), [['b', 0, 1], ['a', 0, 0], ['c', 2, 0]]);
    assert.throws(() => readSpotTable(write('clash.csv', 'spot_id,pixel_x,pixel_y\na,1000,1000\nb,1224,1000\nc,1300,1000\nd,1000,1224\n')),
      /clash\.csv \(spot c\): falls on the grid cell of spot b .*give array_row and array_col columns/);
  });

  test('bad tables name the file, the line and the problem', async () => {
    const cases: [string, string, RegExp][] = [
      ['nocol.csv', 'spot_id,x_px,pixel_y\na,1,2\n', /nocol\.csv \(line 1\): no pixel_x \/ pxl_col_in_fullres \/ x column in the header/],
      ['nan.csv', 'spot_id,pixel_x,pixel_y\na,1,2\nb,oops,3\n', /nan\.csv \(line 3, column pixel_x\): "oops" is not a decimal number/],
      ['twice.csv', 'spot_id,pixel_x,pixel_y\na,1,2\na,5,3\n', /twice\.csv \(line 3\): spot a appears twice \(also line 2\)/],
      ['half.csv', 'spot_id,pixel_x,pixel_y,array_row\na,1,2,0\n', /half\.csv \(line 1\): has only one of array_row and array_col/],
      ['short.csv', 'spot_id,pixel_x,pixel_y\na,1\n', /short\.csv \(line 2\): has 2 fields, the header 3/],
      ['none.csv', 'barcode,in_tissue,array_row,array_col,pxl_row_in_fullres,pxl_col_in_fullres\nA,0,1,1,5,5\n', /none\.csv: no spot is in the tissue/],
    ];
    for (const [name, text, error] of cases) assert.throws(() => readSpotTable(write(name, text)), error, name);
    const far = write('far.csv', 'spot_id,pixel_x,pixel_y,array_row,array_col\na,100,100,0,0\nb,2500,100,0,1\n');
    await assert.rejects(readSlide(image, { spots: far }), /far\.csv \(spot b\): at \(2500, 100\), outside the 2240 x 1792 px image .*slide\.png/);
    await assert.rejects(readSlide(path.join(tmp, 'missing.png')), /missing\.png: image not found/);
  });

  test('the store of a slide has spots and no counts; its values are refused with the reason, its inputs need extracting', async () => {
    const slide = await readSlide(image, { section: 'S1', patient: 'P9', spots: write('ok.csv', 'spot_id,pixel_x,pixel_y,array_row,array_col\na,1000,900,4,4\nb,1224,900,4,5\n') });
    const dir = path.join(tmp, 'store');
    await writeSpotStore(dir, { path: image }, [slide]);
    const store = openDatasetStore(dir);
    assert.equal(store.hasCounts, false);
    assert.deepEqual(store.genes, []);
    assert.equal(store.manifest.sections[0].image?.width, W);
    assert.deepEqual(store.rowsOf('S1'), [0, 1]);
    assert.throws(() => store.values(), /has no counts \(it was made by `triplex slide` from .*slide\.png\): it can be predicted, not trained on or scored/);
    assert.throws(() => loadTrainingData(dir, { views: ['global'] }), /has no frozen features .*run `triplex extract/);
    // A store with counts is never overwritten by a slide.
    const counted = path.join(tmp, 'counted');
    fs.mkdirSync(counted);
    fs.writeFileSync(path.join(counted, 'store.json'), JSON.stringify({ triplexStore: 1, sections: [] }));
    await assert.rejects(writeSpotStore(counted, { path: image }, [slide]), /holds a dataset store with counts; write the slide's store to another folder/);
  });
});
