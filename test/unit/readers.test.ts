import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import * as zlib from 'node:zlib';
import { datasetCommand } from '../../src/cli/dataset';
import { readH5ad } from '../../src/runtime/data/h5ad';
import { readHer2st, readImageSize, spotsOutsideImage } from '../../src/runtime/data/her2st';
import { detectFormat, formatInspectReport, inspectDataset, readDataset, type InspectReport } from '../../src/runtime/data/read';
import { DataFileError, type Section, type SpatialDataset } from '../../src/runtime/data/types';
import { readVisium } from '../../src/runtime/data/visium';
import { sharedData } from './helpers/paths';
import {
  imageHeader, tempDir, truthSection, writeH5ad, writeHdf5, writeHer2st, writeVisium,
  type HeaderKind, type TruthSection, type TruthSpot,
} from './helpers/spatialFixtures';

const HER2ST = sharedData('her2st');

function dense(s: Section): number[][] {
  const out = Array.from({ length: s.counts.nSpots }, () => new Array<number>(s.counts.nGenes).fill(0));
  for (let i = 0; i < s.counts.nSpots; i++) {
    for (let k = s.counts.indptr[i]; k < s.counts.indptr[i + 1]; k++) out[i][s.counts.indices[k]] = s.counts.data[k];
  }
  return out;
}

/** Canonical CSR: sorted gene indices within a row, no stored zeros, consistent lengths. */
function assertCanonical(s: Section): void {
  const c = s.counts;
  assert.equal(c.nSpots, s.spots.length);
  assert.equal(c.nGenes, s.genes.length);
  assert.equal(c.indptr.length, c.nSpots + 1);
  assert.equal(c.indptr[c.nSpots], c.indices.length);
  assert.equal(c.data.length, c.indices.length);
  for (let i = 0; i < c.nSpots; i++) {
    for (let k = c.indptr[i]; k < c.indptr[i + 1]; k++) {
      assert.ok(c.data[k] !== 0, `stored zero in row ${i}`);
      if (k > c.indptr[i]) assert.ok(c.indices[k] > c.indices[k - 1], `row ${i} not sorted`);
    }
  }
}

/** The section holds the truth's spots (in order, same cells, centres and counts). */
function assertMatchesTruth(s: Section, truth: TruthSection, id: (p: TruthSpot) => string): void {
  assertCanonical(s);
  assert.deepEqual(s.genes, truth.genes);
  assert.deepEqual(
    s.spots.map((p) => ({ id: p.id, row: p.row, col: p.col, x: p.x, y: p.y })),
    truth.spots.map((p) => ({ id: id(p), row: p.row, col: p.col, x: p.x, y: p.y })),
  );
  assert.deepEqual(dense(s), truth.counts);
}

const her2stId = (p: TruthSpot) => `${p.col}x${p.row}`;
const barcodeId = (p: TruthSpot) => p.barcode;

async function rejectsWith(promise: Promise<unknown>, file: string, where: RegExp, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof DataFileError, `expected a DataFileError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.where ?? '', where);
    assert.ok(e.message.startsWith(file), 'the message names the file');
    if (message) assert.match(e.message, message);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------

describe('HER2+ reader on the real data', () => {
  let ds: SpatialDataset;
  let allMs = 0;
  before(async () => {
    const t0 = performance.now();
    ds = await readHer2st(HER2ST);
    allMs = performance.now() - t0;
  });
  const section = (id: string) => ds.sections.find((s) => s.id === id)!;

  test('30 sections sorted by name, 7 patients, every count row read', (t) => {
    t.diagnostic(`all 30 sections (11,908 spots x ~15,400 genes): ${(allMs / 1000).toFixed(2)} s`);
    const files = fs.readdirSync(path.join(HER2ST, 'ST-cnts')).map((f) => f.replace('.tsv.gz', ''));
    assert.deepEqual(ds.sections.map((s) => s.id), files.sort((a, b) => a.localeCompare(b)));
    assert.equal(ds.sections.length, 30);
    assert.deepEqual([...new Set(ds.sections.map((s) => s.patient))], ['A', 'C', 'D', 'E', 'F', 'G', 'H']);
    assert.ok(ds.sections.every((s) => s.patient === s.id[0]));
    assert.equal(ds.sections.reduce((n, s) => n + s.spots.length, 0), 11908); // count rows of all files (zcat | wc -l)
    for (const s of ds.sections) assertCanonical(s);
  });

  test('reads one ~300-spot section in well under 2 s', async (t) => {
    const t0 = performance.now();
    const one = await readHer2st(HER2ST, { sections: ['D1'] });
    const ms = performance.now() - t0;
    t.diagnostic(`one section (D1, ${one.sections[0].spots.length} spots x ${one.sections[0].genes.length} genes): ${ms.toFixed(0)} ms`);
    assert.deepEqual(one.sections.map((s) => s.id), ['D1']);
    assert.equal(one.sections[0].spots.length, 306);
  });

  test('C2 counts and spot centres equal a naive parse of the files', () => {
    const c2 = section('C2');
    const lines = zlib.gunzipSync(fs.readFileSync(path.join(HER2ST, 'ST-cnts', 'C2.tsv.gz'))).toString('utf8').trimEnd().split('\n');
    const genes = lines[0].split('\t').slice(1);
    const rows = new Map(lines.slice(1).map((l) => { const f = l.split('\t'); return [f[0], f.slice(1).map(Number)] as const; }));
    assert.deepEqual(c2.genes, genes);
    assert.deepEqual(c2.spots.map((s) => s.id), [...rows.keys()]);
    assert.deepEqual(dense(c2), [...rows.values()]);

    const spotFile = fs.readFileSync(path.join(HER2ST, 'ST-spotfiles', 'C2_selection.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t').map(Number));
    const byId = new Map(spotFile.map((f) => [`${Math.round(f[0])}x${Math.round(f[1])}`, f]));
    for (const s of c2.spots) {
      const f = byId.get(s.id)!;
      assert.deepEqual([s.row, s.col, s.x, s.y], [Math.round(f[1]), Math.round(f[0]), f[4], f[5]], s.id);
    }
  });

  test('images for C2-C6 only, sizes from the JPEG headers, every spot inside', () => {
    // Sizes as file(1) reports them for these JPEGs.
    const expected: Record<string, [number, number]> = { C2: [9274, 9911], C3: [9270, 9936], C4: [9278, 9916], C5: [9272, 9901], C6: [9288, 9907] };
    assert.deepEqual(ds.sections.filter((s) => s.image).map((s) => s.id), Object.keys(expected));
    for (const [id, [width, height]] of Object.entries(expected)) {
      const s = section(id);
      assert.equal(path.dirname(s.image!.path), path.join(HER2ST, 'ST-imgs', 'C', id));
      assert.deepEqual([s.image!.width, s.image!.height], [width, height], id);
      assert.ok(s.spots.every((p) => p.x >= 0 && p.y >= 0 && p.x < width && p.y < height), `${id}: a spot outside the image`);
      assert.deepEqual(spotsOutsideImage(s.spots, s.image), []);
    }
    const noImage = ds.problems.find((p) => p.message.startsWith('sections without an image: '));
    assert.match(noImage?.message ?? '', /^sections without an image: A1, A2, .*C1, D1, .*H3 /);
  });

  test('labels attached where a label file exists, matched by rounded x, y', () => {
    const labelled = ds.sections.filter((s) => s.spots.some((p) => p.label !== undefined)).map((s) => s.id);
    assert.deepEqual(labelled, ['A1', 'C1', 'D1', 'E1', 'F1', 'G2', 'H1']);
    const file = fs.readFileSync(path.join(HER2ST, 'ST-pat', 'lbl', 'C1_labeled_coordinates.tsv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split('\t'));
    const labels = new Map(file.map((f) => [`${Math.round(Number(f[1]))}x${Math.round(Number(f[2]))}`, f[5]]));
    const c1 = section('C1');
    assert.equal(c1.spots.length, 176);
    for (const s of c1.spots) assert.equal(s.label, labels.get(s.id), s.id);
    assert.equal(c1.spots.find((s) => s.id === '9x17')?.label, 'connective tissue'); // first row of the file
  });

  test('reports what does not fit: spots without counts, NA label rows, labels of an unread section', () => {
    const messages = ds.problems.map((p) => `${p.section ?? '-'} ${p.message}`);
    assert.ok(messages.includes('A1 selected spots without counts, dropped: 17x14, 18x20'), messages.join('\n'));
    assert.ok(messages.includes('G2 label rows without coordinates, skipped: lines 264, 279, 281, 283, 285, 301, 311, 324'));
    assert.ok(messages.some((m) => m.startsWith('- labels for a section without counts: J1 ')));
    assert.ok(!messages.some((m) => m.includes('count spots missing from the spot file')), 'every real count id is in its spot file');
  });

  test('inspect: a readable summary of at most 40 lines, and the JSON report', () => {
    const report = inspectDataset(ds);
    assert.deepEqual(report.patients.map((p) => [p.id, p.sections.length]), [['A', 6], ['C', 6], ['D', 6], ['E', 3], ['F', 3], ['G', 3], ['H', 3]]);
    assert.equal(report.totals.sections, 30);
    assert.equal(report.totals.spots, 11908);
    assert.ok(report.totals.genesInAll > 10000 && report.totals.genesInAll < report.totals.genesInAny);
    const c2 = report.sections.find((s) => s.id === 'C2')!;
    assert.deepEqual([c2.outsideImage, c2.image === 'none' ? 'none' : c2.image.width], [0, 9274]);
    assert.equal(report.sections.find((s) => s.id === 'A1')!.image, 'none');
    assert.equal(report.problems.length, ds.problems.length);
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);

    const text = formatInspectReport(report);
    const lines = text.split('\n');
    assert.ok(lines.length <= 40, `${lines.length} lines`);
    assert.ok(lines.every((l) => l.length <= 150), 'lines fit a wide terminal');
    assert.match(text, /^C2\s+C\s+187\s+15,706\s+0\s+0\s+9274 x 9911 {2}ST-imgs\/C\/C2\/5714_HE_BT_C2\.jpg$/m);
    assert.match(text, /^ {2}selected spots without counts, dropped \(\d+\): A1 17x14, 18x20; /m);
  });
});

// ---------------------------------------------------------------------------------------------

describe('three readers, one synthetic section', () => {
  const truth = truthSection();
  const readers: Array<{ name: string; id: (p: TruthSpot) => string; read: (dir: string) => Promise<SpatialDataset> }> = [
    { name: 'HER2+ folder', id: her2stId, read: (dir) => readHer2st(writeHer2st(dir, [truth])) },
    { name: 'Visium, tissue_positions.csv', id: barcodeId, read: async (dir) => readVisium(await writeVisium(path.join(dir, 'A1'), truth, { positions: 'tissue_positions.csv' }), { patient: 'A' }) },
    { name: 'Visium, headerless tissue_positions_list.csv', id: barcodeId, read: async (dir) => readVisium(await writeVisium(path.join(dir, 'A1'), truth, { positions: 'tissue_positions_list.csv' }), { patient: 'A' }) },
    { name: 'h5ad, dense X', id: barcodeId, read: async (dir) => readH5ad(await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'dense' }), { patient: 'A' }) },
    { name: 'h5ad, CSR X', id: barcodeId, read: async (dir) => readH5ad(await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'csr' }), { patient: 'A' }) },
    { name: 'h5ad, CSC X', id: barcodeId, read: async (dir) => readH5ad(await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'csc' }), { patient: 'A' }) },
    { name: 'h5ad, CSR X with stored zeros and unsorted indices', id: barcodeId, read: async (dir) => readH5ad(await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'csr', messy: true }), { patient: 'A' }) },
    { name: 'h5ad, CSC X with stored zeros and unsorted indices', id: barcodeId, read: async (dir) => readH5ad(await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'csc', messy: true }), { patient: 'A' }) },
  ];
  const results = new Map<string, Section>();

  for (const r of readers) {
    test(r.name, async () => {
      const ds = await r.read(tempDir('reader'));
      assert.equal(ds.sections.length, 1);
      const [s] = ds.sections;
      assert.deepEqual([s.id, s.patient], ['A1', 'A']);
      assertMatchesTruth(s, truth, r.id);
      results.set(r.name, s);
    });
  }

  test('all give the same grid, centres and CSR arrays', () => {
    assert.equal(results.size, readers.length, 'every reader above succeeded');
    const [first, ...rest] = [...results.values()];
    for (const s of rest) {
      assert.deepEqual(s.spots.map((p) => [p.row, p.col, p.x, p.y]), first.spots.map((p) => [p.row, p.col, p.x, p.y]));
      assert.deepEqual([s.counts.indptr, s.counts.indices, s.counts.data], [first.counts.indptr, first.counts.indices, first.counts.data]);
    }
  });
});

describe('HER2+ reader: what it keeps and reports', () => {
  test('drops unselected spots and spots without counts, attaches labels, checks the image', async () => {
    const truth = truthSection({ labels: true, rows: 5 });
    const root = writeHer2st(tempDir('her2st'), [truth], { extraCountIds: ['99x99'], withoutCounts: [2], unselected: [5], image: { width: 1300, height: 3000 } });
    const ds = await readHer2st(root);
    const [s] = ds.sections;
    const kept = truth.spots.filter((_, i) => i !== 2 && i !== 5);
    assert.deepEqual(s.spots.map((p) => p.id), kept.map(her2stId));
    assert.deepEqual(s.spots.map((p) => p.label), kept.map((p) => p.label));
    assert.deepEqual(dense(s), truth.counts.filter((_, i) => i !== 2 && i !== 5));
    assert.deepEqual([s.image?.width, s.image?.height], [1300, 3000]);
    const outside = kept.filter((p) => p.x >= 1300).map(her2stId);
    assert.ok(outside.length > 0);
    assert.deepEqual(ds.problems.map((p) => p.message), [
      'count spots missing from the spot file, dropped: 99x99',
      `selected spots without counts, dropped: ${her2stId(truth.spots[2])}`,
      `label rows without coordinates, skipped: line ${truth.spots.length + 2}`,
      `spots whose pixel centre is outside the image (1300 x 3000): ${outside.join(', ')}`,
    ]);
  });
});

describe('Visium reader: tissue, features and the image', () => {
  const truth = truthSection();
  const cases = [
    { name: 'the right image', image: [1600, 1600], hires: [160, 160], problems: [] as RegExp[] },
    { name: 'an image too narrow for the run', image: [1500, 1600], hires: [160, 160], problems: [/^spots whose pixel centre is outside the image \(1500 x 1600\): /, /^image size unlike the run's: 1500 x 1600, but .* about 1600 x 1600/] },
  ];
  for (const c of cases) {
    test(`out-of-tissue barcodes and antibody features left out; ${c.name}`, async () => {
      const dir = await writeVisium(path.join(tempDir('visium'), 'slide1'), truth, { positions: 'tissue_positions.csv', outOfTissue: [0], extraFeatures: true });
      fs.writeFileSync(path.join(dir, 'spatial', 'tissue_hires_image.png'), imageHeader('png', c.hires[0], c.hires[1]));
      const image = path.join(dir, 'full.tif');
      fs.writeFileSync(image, imageHeader('tiff-le', c.image[0], c.image[1]));
      const ds = await readVisium(dir, { image });
      const [s] = ds.sections;
      assert.deepEqual([s.id, s.patient], ['slide1', 'slide1']);
      assert.deepEqual(s.genes, [...truth.genes, `${truth.genes[0]}-1`]);
      assert.deepEqual(s.spots.map((p) => p.id), truth.spots.slice(1).map(barcodeId));
      assert.deepEqual(dense(s), truth.counts.slice(1).map((r, i) => [...r, (i + 1) % 3]));
      assert.deepEqual(s.image, { path: image, width: c.image[0], height: c.image[1] });
      const messages = ds.problems.map((p) => p.message);
      assert.deepEqual(messages.slice(0, 3), [
        'features that are not Gene Expression, left out: 1 Antibody Capture',
        `duplicate gene names made unique: ${truth.genes[0]}-1 (the first column of a name keeps it; later columns are renamed, not summed)`,
        `matrix barcodes outside the tissue, dropped: ${truth.spots[0].barcode}`,
      ]);
      assert.equal(messages.length, 3 + c.problems.length, messages.join('\n'));
      c.problems.forEach((re, i) => assert.match(messages[3 + i], re));
    });
  }

  test('a run folder holding outs/ is read from outs/, named after the run', async () => {
    const run = path.join(tempDir('visium'), 'run7');
    await writeVisium(path.join(run, 'outs'), truth, { positions: 'tissue_positions.csv' });
    assert.equal(detectFormat(run), 'visium');
    const ds = await readVisium(run);
    assert.equal(ds.sections[0].id, 'run7');
    assert.match(ds.problems.at(-1)!.message, /^sections without an image: run7 /);
  });
});

describe('h5ad reader: samples, grids, gene symbols', () => {
  test('a categorical sample column splits the spots into sections, sorted by name', async () => {
    const b1 = truthSection({ id: 'B1', seed: 2, rows: 3 });
    const a1 = truthSection({ id: 'A1', seed: 3 });
    const ds = await readH5ad(await writeH5ad(path.join(tempDir('h5ad'), 'two.h5ad'), [b1, a1], { x: 'csr', samples: true }));
    assert.deepEqual(ds.sections.map((s) => [s.id, s.patient]), [['A1', 'A1'], ['B1', 'B1']]);
    assertMatchesTruth(ds.sections[0], a1, barcodeId);
    assertMatchesTruth(ds.sections[1], b1, barcodeId);
  });

  const grids: Array<{ grid: 'square' | 'hex' }> = [{ grid: 'square' }, { grid: 'hex' }];
  for (const { grid } of grids) {
    test(`without array_row/array_col: grid derived from the spacing (${grid})`, async () => {
      const truth = truthSection({ grid, rows: 6, cols: 6 });
      const ds = await readH5ad(await writeH5ad(path.join(tempDir('h5ad'), 'A1.h5ad'), [truth], { x: 'dense', arrayCoords: false }));
      const minRow = Math.min(...truth.spots.map((p) => p.row));
      const minCol = Math.min(...truth.spots.map((p) => p.col));
      assert.deepEqual(ds.sections[0].spots.map((p) => [p.row, p.col]), truth.spots.map((p) => [p.row - minRow, p.col - minCol]));
    });
  }

  test('Ensembl var index: gene symbols from the categorical feature_name column', async () => {
    const truth = truthSection();
    const ds = await readH5ad(await writeH5ad(path.join(tempDir('h5ad'), 'A1.h5ad'), [truth], { x: 'csc', ensemblIndex: true }));
    assert.deepEqual(ds.sections[0].genes, truth.genes);
  });
});

// ---------------------------------------------------------------------------------------------

describe('bad input: a DataFileError naming the file and the row or field, and no dataset', () => {
  const truth = truthSection();
  const cases: Array<{ name: string; run: (dir: string) => Promise<{ read: Promise<unknown>; file: string }>; where: RegExp; message?: RegExp }> = [
    {
      name: 'truncated .tsv.gz (the real C2, cut in half), beside a good section',
      run: async (dir) => {
        writeHer2st(dir, [truth]);
        const gz = fs.readFileSync(path.join(HER2ST, 'ST-cnts', 'C2.tsv.gz'));
        fs.writeFileSync(path.join(dir, 'ST-cnts', 'C2.tsv.gz'), gz.subarray(0, gz.length >> 1));
        fs.copyFileSync(path.join(HER2ST, 'ST-spotfiles', 'C2_selection.tsv'), path.join(dir, 'ST-spotfiles', 'C2_selection.tsv'));
        return { read: readDataset(dir), file: path.join(dir, 'ST-cnts', 'C2.tsv.gz') };
      },
      where: /^after line \d+$/, message: /truncated/,
    },
    {
      name: 'non-numeric count',
      run: async (dir) => {
        writeHer2st(dir, [truth], { badCount: { spot: 2, gene: 3, text: '7a' } });
        return { read: readHer2st(dir), file: path.join(dir, 'ST-cnts', 'A1.tsv.gz') };
      },
      where: new RegExp(`^line 4, spot ${her2stId(truth.spots[2])}, column 5 \\(gene GENE4\\)$`), message: /"7a" is not a non-negative decimal number/,
    },
    {
      name: 'no count spot id in the spot file',
      run: async (dir) => {
        writeHer2st(dir, [truth], { shiftSpotFile: 100 });
        return { read: readHer2st(dir), file: path.join(dir, 'ST-cnts', 'A1.tsv.gz') };
      },
      where: /^column 1 \(spot ids\)$/, message: /none of its 20 spots is selected in .*A1_selection\.tsv/,
    },
    {
      name: 'non-numeric pixel position in the spot file',
      run: async (dir) => {
        writeHer2st(dir, [truth]);
        const file = path.join(dir, 'ST-spotfiles', 'A1_selection.tsv');
        fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/\n(([^\t]*\t){4})[^\t]*/, '\n$1n/a'));
        return { read: readHer2st(dir), file };
      },
      where: /^line 2, column pixel_x$/,
    },
    {
      name: '.h5 without matrix/indptr',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions.csv', withoutIndptr: true });
        return { read: readDataset(dir), file: path.join(dir, 'filtered_feature_bc_matrix.h5') };
      },
      where: /^matrix\/indptr$/, message: /missing/,
    },
    {
      name: 'HDF5 file that is not a Space Ranger matrix at all',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions.csv' });
        const file = path.join(dir, 'filtered_feature_bc_matrix.h5');
        await writeHdf5(file, (f) => { f.create_dataset({ name: 'something', data: new Float32Array(3) }); });
        return { read: readVisium(dir), file };
      },
      where: /^matrix$/, message: /not a Space Ranger feature-barcode matrix/,
    },
    {
      name: 'matrix file that is not HDF5',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions.csv' });
        const file = path.join(dir, 'filtered_feature_bc_matrix.h5');
        fs.writeFileSync(file, 'barcode,count\nAAAC-1,3\n');
        return { read: readVisium(dir), file };
      },
      where: /^byte 0$/, message: /not an HDF5 file/,
    },
    {
      name: '.h5ad that is not HDF5',
      run: async (dir) => {
        const file = path.join(dir, 'x.h5ad');
        fs.writeFileSync(file, zlib.gzipSync('not hdf5'));
        return { read: readDataset(file), file };
      },
      where: /^byte 0$/, message: /not an HDF5 file .*; expected an AnnData/,
    },
    {
      name: 'tissue_positions.csv without the pxl_col_in_fullres column',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions.csv', dropColumn: 'pxl_col_in_fullres' });
        return { read: readVisium(dir), file: path.join(dir, 'spatial', 'tissue_positions.csv') };
      },
      where: /^line 1, column pxl_col_in_fullres$/,
    },
    {
      name: 'tissue_positions_list.csv with a field missing',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions_list.csv', dropColumn: 'pxl_col_in_fullres' });
        return { read: readVisium(dir), file: path.join(dir, 'spatial', 'tissue_positions_list.csv') };
      },
      where: /^line 1$/, message: /has 5 fields, expected 6/,
    },
    {
      name: 'in-tissue barcode in the positions but not in the matrix',
      run: async (dir) => {
        await writeVisium(dir, truth, { positions: 'tissue_positions.csv', extraInTissue: true });
        return { read: readVisium(dir), file: path.join(dir, 'spatial', 'tissue_positions.csv') };
      },
      where: /^line 2, barcode GGGGGGGGGGGGGGGG-1$/, message: /in tissue but not in filtered_feature_bc_matrix\.h5/,
    },
    {
      name: 'h5ad without obsm/spatial',
      run: async (dir) => {
        const file = await writeH5ad(path.join(dir, 'A1.h5ad'), [truth], { x: 'csr', withoutSpatial: true });
        return { read: readH5ad(file), file };
      },
      where: /^obsm\/spatial$/, message: /missing: expected the spot centres/,
    },
    {
      name: 'one --image for an h5ad of two sections',
      run: async (dir) => {
        const file = await writeH5ad(path.join(dir, 'two.h5ad'), [truth, truthSection({ id: 'B1', seed: 9 })], { x: 'dense', samples: true });
        return { read: readH5ad(file, { image: path.join(dir, 'none.jpg') }), file };
      },
      where: /^--image$/, message: /holds 2 sections \(A1, B1\)/,
    },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const { read, file } = await c.run(tempDir('bad'));
      await rejectsWith(read, file, c.where, c.message);
    });
  }
});

describe('image sizes from header bytes', () => {
  const kinds: HeaderKind[] = ['jpeg', 'jpeg-exif-progressive', 'png', 'tiff-le', 'tiff-be', 'bigtiff'];
  for (const kind of kinds) {
    test(kind, async () => {
      const file = path.join(tempDir('img'), `image.${kind}`);
      fs.writeFileSync(file, imageHeader(kind, 9274, 9911));
      assert.deepEqual(await readImageSize(file), { width: 9274, height: 9911 });
    });
  }
  test('not an image, or cut before its size', async () => {
    const dir = tempDir('img');
    const text = path.join(dir, 'notes.jpg');
    fs.writeFileSync(text, 'hello, not a picture');
    await rejectsWith(readImageSize(text), text, /^byte 0$/, /not a JPEG, PNG or TIFF/);
    const cut = path.join(dir, 'cut.jpg');
    fs.writeFileSync(cut, imageHeader('jpeg', 10, 10).subarray(0, 22));
    await rejectsWith(readImageSize(cut), cut, /^byte \d+$/, /ends early/);
  });
});

describe('detectFormat, readDataset and the CLI', () => {
  test('formats by layout', async () => {
    const dir = tempDir('detect');
    const visium = await writeVisium(path.join(dir, 'V1'), truthSection(), { positions: 'tissue_positions.csv' });
    const h5ad = await writeH5ad(path.join(dir, 'A1.h5ad'), [truthSection()], { x: 'csr' });
    const sheet = path.join(dir, 'samples.csv');
    fs.writeFileSync(sheet, 'path,patient\nV1,P1\n');
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    // A folder holding .h5ad files (HEST: one per sample) and a sample sheet are cohorts.
    const cases: Array<[string, string]> = [[HER2ST, 'her2st'], [visium, 'visium'], [h5ad, 'h5ad'], [dir, 'cohort'], [sheet, 'cohort']];
    for (const [p, format] of cases) assert.equal(detectFormat(p), format, p);
    const bad: Array<[string, RegExp]> = [
      [path.join(dir, 'missing'), /not found; expected a HER2\+ folder/],
      [empty, /not a dataset folder/],
      [path.join(visium, 'filtered_feature_bc_matrix.h5'), /give the Space Ranger folder/],
      [path.join(visium, 'spatial', 'scalefactors_json.json'), /not a dataset; expected/],
    ];
    for (const [p, message] of bad) assert.throws(() => detectFormat(p), (e: unknown) => e instanceof DataFileError && e.file === p && message.test(e.message));
    await rejectsWith(readDataset(HER2ST, { image: h5ad }), HER2ST, /^--image$/);
  });

  test('triplex dataset inspect <path> [--image] [--json]', async (t) => {
    const dir = await writeVisium(path.join(tempDir('cli'), 'S7'), truthSection(), { positions: 'tissue_positions.csv' });
    const image = path.join(dir, 'he.jpg');
    fs.writeFileSync(image, imageHeader('jpeg', 2000, 2000));
    const log = t.mock.method(console, 'log', () => undefined);

    await datasetCommand().parseAsync(['inspect', dir, '--image', image, '--json'], { from: 'user' });
    const report = JSON.parse(String(log.mock.calls[0].arguments[0])) as InspectReport;
    assert.equal(report.format, 'visium');
    assert.deepEqual(report.sections.map((s) => [s.id, s.spots, s.image === 'none' ? 'none' : [s.image.width, s.image.height], s.outsideImage]), [['S7', 20, [2000, 2000], 0]]);

    await datasetCommand().parseAsync(['inspect', dir], { from: 'user' });
    const text = String(log.mock.calls[1].arguments[0]);
    assert.match(text, /^Visium \(Space Ranger\) {2}/);
    assert.match(text, /^S7\s+S7\s+20\s+7\s+0\s+-\s+none$/m);
    assert.match(text, /^ {2}sections without an image: S7 \(give the full-resolution/m);
  });
});
