import { describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readDataset } from '../../src/runtime/data/read';
import { readSpotTable } from '../../src/runtime/data/slide';
import { preprocess } from '../../src/runtime/data/preprocess';
import { parseCount, parseDecimal } from '../../src/runtime/data/numbers';
import { DataFileError, type SpatialDataset } from '../../src/runtime/data/types';
import { tempDir, truthSection, writeH5ad, writeHer2st, writeVisium } from './helpers/spatialFixtures';

/**
 * Numbers that are not what the format means: '0x10' read as 16, '1e308' stored as an infinite
 * float32 count, NaN and Infinity in an .h5ad X (once accepted while the HER2+ reader refused
 * them). Each is refused naming the file, the row and the column.
 */

const tmp = tempDir('numbers');
let n = 0;
const fresh = (name: string) => path.join(tmp, `${name}-${n++}`);

describe('decimal numbers', () => {
  const cases: Array<[string, number | undefined, number | undefined]> = [
    // text, as a decimal, as a count
    ['12', 12, 12], ['0', 0, 0], ['1.5', 1.5, 1.5], ['1e3', 1000, 1000], ['.5', 0.5, 0.5], [' 7 ', 7, 7], ['+3', 3, 3],
    ['-2.5', -2.5, undefined], ['-0', -0, undefined], ['0x10', undefined, undefined], ['0b1', undefined, undefined],
    ['1e308', undefined, undefined], ['3.5e38', undefined, undefined], ['NaN', undefined, undefined], ['inf', undefined, undefined],
    ['Infinity', undefined, undefined], ['', undefined, undefined], ['1,5', undefined, undefined], ['1_000', undefined, undefined], ['12abc', undefined, undefined],
  ];
  for (const [text, decimal, count] of cases) {
    test(`${JSON.stringify(text)}: decimal ${decimal}, count ${count}`, () => {
      assert.equal(parseDecimal(text), decimal);
      assert.equal(parseCount(text), count);
    });
  }
});

describe('HER2+ files', () => {
  for (const text of ['0x10', '1e308', 'NaN', 'inf', '-1', '9'.repeat(40), '1e39']) {
    test(`the count "${text.length > 12 ? `${text.slice(0, 6)}... (${text.length})` : text}" is refused, naming file, line and gene`, async () => {
      const truth = truthSection();
      const root = writeHer2st(fresh('her2st'), [truth], { badCount: { spot: 2, gene: 3, text } });
      const file = path.join(root, 'ST-cnts', 'A1.tsv.gz');
      await assert.rejects(readDataset(root), (e) => e instanceof DataFileError && e.file === file &&
        e.message.includes(`line 4, spot ${truth.spots[2].col}x${truth.spots[2].row}, column 5 (gene ${truth.genes[3]})`) && /not a non-negative decimal/.test(e.message));
    });
  }

  test('a spot file coordinate "0x10" is refused', async () => {
    const root = writeHer2st(fresh('her2st'), [truthSection()]);
    const spotFile = path.join(root, 'ST-spotfiles', 'A1_selection.tsv');
    const lines = fs.readFileSync(spotFile, 'utf8').split('\n');
    const f = lines[2].split('\t');
    f[4] = '0x10';
    lines[2] = f.join('\t');
    fs.writeFileSync(spotFile, lines.join('\n'));
    await assert.rejects(readDataset(root), (e) => e instanceof DataFileError && e.file === spotFile && /line 3, column pixel_x/.test(e.message));
  });

  test('duplicate gene columns: the first keeps the name, and the problem says so', async () => {
    const truth = truthSection();
    truth.genes[4] = truth.genes[1];
    const ds = await readDataset(writeHer2st(fresh('her2st'), [truth]));
    assert.equal(ds.sections[0].genes[1], truth.genes[1]);
    assert.equal(ds.sections[0].genes[4], `${truth.genes[1]}-1`);
    const p = ds.problems.find((x) => /duplicate gene names/.test(x.message));
    assert.ok(p, ds.problems.map((x) => x.message).join('\n'));
    assert.match(p.message, /the first column of a name keeps it/);
  });
});

describe('.h5ad and Visium files', () => {
  for (const [value, x] of [[NaN, 'dense'], [Infinity, 'csr'], [-3, 'csc'], [1e39, 'dense']] as const) {
    test(`${value} in X (${x}) is refused, naming row, spot and gene`, async () => {
      const truth = truthSection();
      truth.counts[5][2] = value;
      const file = await writeH5ad(`${fresh('x')}.h5ad`, [truth], { x });
      await assert.rejects(readDataset(file), (e) => e instanceof DataFileError && e.file === file &&
        e.message.includes(`X, row 5 (spot ${truth.spots[5].barcode}), column 2 (gene ${truth.genes[2]})`));
    });
  }

  test('NaN in obsm/spatial is refused', async () => {
    const truth = truthSection();
    truth.spots[3].x = NaN;
    const file = await writeH5ad(`${fresh('xy')}.h5ad`, [truth], { x: 'dense' });
    await assert.rejects(readDataset(file), (e) => e instanceof DataFileError && /obsm\/spatial, row 3/.test(e.message));
  });

  test('a negative count in a Space Ranger matrix, and "0x10" in its positions, are refused', async () => {
    const truth = truthSection();
    truth.counts[1][0] = -5;
    const dir = await writeVisium(fresh('visium'), truth, { positions: 'tissue_positions.csv' });
    await assert.rejects(readDataset(dir), (e) => e instanceof DataFileError && e.file === path.join(dir, 'filtered_feature_bc_matrix.h5') &&
      e.message.includes(`barcode ${truth.spots[1].barcode}`) && /holds -5/.test(e.message));
    const ok = await writeVisium(fresh('visium'), truthSection(), { positions: 'tissue_positions.csv' });
    const positions = path.join(ok, 'spatial', 'tissue_positions.csv');
    fs.writeFileSync(positions, fs.readFileSync(positions, 'utf8').replace(/\n([^,\n]+),1,(\d+),/, '\n$1,1,0x10,'));
    await assert.rejects(readDataset(ok), (e) => e instanceof DataFileError && e.file === positions && /column array_row/.test(e.message) && /"0x10"/.test(e.message));
  });

  test('a spot table with "1e308" as a pixel position is refused', () => {
    const table = `${fresh('spots')}.csv`;
    fs.writeFileSync(table, 'spot_id,pixel_x,pixel_y\na,100,100\nb,1e308,100\n');
    assert.throws(() => readSpotTable(table), (e) => e instanceof DataFileError && e.file === table && /line 3, column pixel_x/.test(e.message));
  });
});

describe('preprocessing', () => {
  test('refuses to write a non-finite value, whatever built the dataset', () => {
    const s = truthSection();
    const ds: SpatialDataset = {
      format: 'h5ad', source: 'notebook', problems: [],
      sections: [{
        id: 'A1', patient: 'A', genes: s.genes, spots: s.spots.map((p) => ({ id: p.barcode, row: p.row, col: p.col, x: p.x, y: p.y })),
        counts: { nSpots: s.spots.length, nGenes: s.genes.length, indptr: Uint32Array.from(s.spots.map((_, i) => i).concat(s.spots.length)), indices: new Uint32Array(s.spots.length), data: new Float32Array(s.spots.length).fill(5).fill(Infinity, 3, 4) },
      }],
    };
    assert.throws(() => preprocess(ds, { genes: 1, minSpotFraction: 0 }), new RegExp(`section A1, spot ${s.spots[3].barcode}, gene ${s.genes[0]}: preprocessing gave the count Infinity`));
  });
});
