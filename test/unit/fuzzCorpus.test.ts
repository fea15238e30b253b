import { before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { parseNotebook } from '../../src/notebook/nbformat';
import { extractFeatures } from '../../src/runtime/features/extract';
import { bigPng, changes, editCheckpointInfo, editText, flipBytes, inflateArrowFooterMetadata, pngHeader, readSafetensorsParts, runCli, setField, setJpegSize, snapshot, truncate, writeSafetensorsParts, type CliResult } from './helpers/fuzz';
import { repoRoot } from './helpers/paths';
import { imageHeader, tempDir, truthSection, writeH5ad, writeHer2st, writeVisium } from './helpers/spatialFixtures';
import { writeSyntheticStore } from './helpers/syntheticStore';

/**
 * A fuzz corpus: a valid input of each kind (HER2+ folder, Space Ranger folder, .h5ad, spot
 * table, image, checkpoint, store, notebook, command line) corrupted one way per case. Every
 * case must end within the time limit with the exit code of its class (2: a usage error, 1: bad
 * input), a message naming the file or option, no stack trace, nothing written outside the
 * case's output folder, and earlier outputs (the shared store and run folder) byte-identical.
 * Everything is generated here; the inputs are a few hundred kB.
 */

const LIMIT_MS = 30_000;
const tmp = tempDir('fuzz');
const baseDir = path.join(tmp, 'base');

/** The valid inputs every case starts from (made once). */
interface Base {
  her2st: string;
  visium: string;
  h5ad: string;
  /** A HER2+ folder with real images (the synthetic generator's). */
  synth: string;
  /** A store of `synth` with features. */
  store: string;
  /** A run folder of fold 0 (best.safetensors, last.safetensors, results). */
  run: string;
  checkpoint: string;
  jpeg: string;
  /** A 4 x 4 px PNG. */
  png: string;
  spots: string;
}
const base = {} as Base;

interface Ctx {
  /** The case's own folder (copies of inputs go here; it must stay as it was). */
  dir: string;
  /** The one folder the case may write to. */
  out: string;
  base: Base;
}

interface Setup {
  /** The CLI command; or `notebook`, parsed in process. */
  args?: string[];
  notebook?: { file: string; bytes: Uint8Array };
  /** What stderr must name (a file or an option). */
  names: string;
  /** Shared folders with earlier outputs the run reads: byte-identical afterwards. */
  earlier?: string[];
}

interface Case {
  name: string;
  make: (c: Ctx) => Setup | Promise<Setup>;
  exit: 1 | 2;
  /** What the message must say besides the name. */
  message: RegExp;
  /** A known product fault in code this branch does not own: run and reported, not failed. */
  todo?: string;
}

const cases: Case[] = [];
const add = (group: string, list: Case[]) => cases.push(...list.map((c) => ({ ...c, name: `${group}: ${c.name}` })));

/** Copies a base input into the case folder. */
const copy = (c: Ctx, from: string, name = path.basename(from)): string => {
  const to = path.join(c.dir, name);
  fs.cpSync(from, to, { recursive: true });
  return to;
};
const fifo = (file: string) => execFileSync('mkfifo', [file]);
const loop = (file: string) => fs.symlinkSync(path.basename(file), file);
const replaceWith = (file: string, make: (f: string) => void) => {
  fs.rmSync(file, { recursive: true, force: true });
  make(file);
};

// ---------------------------------------------------------------------------------------------
// HER2+ folders: ST-cnts/<section>.tsv.gz (spots x genes), ST-spotfiles/<section>_selection.tsv.

const her2 = (c: Ctx) => copy(c, c.base.her2st);
const counts = (root: string, s = 'A1') => path.join(root, 'ST-cnts', `${s}.tsv.gz`);
const spotFile = (root: string, s = 'A1') => path.join(root, 'ST-spotfiles', `${s}_selection.tsv`);
const inspect = (p: string, ...more: string[]) => ['dataset', 'inspect', p, ...more];

/** A count cell of A1 (line 3, gene 2) set to `text`. */
const badCount = (text: string): Case => ({
  name: `a count of ${JSON.stringify(text)}`, exit: 1, message: /line 3, spot \S+, column 3 \(gene GENE2\)|line 3, column 3/,
  make: (c) => {
    const root = her2(c);
    editText(counts(root), (t) => setField(t, 2, 2, text, '\t'));
    return { args: inspect(root), names: counts(root) };
  },
});

add('HER2+', [
  ...[10, 0.5, -4].map((at): Case => ({
    name: `count file truncated at ${at < 0 ? `${at} bytes from the end` : at < 1 ? 'half' : `byte ${at}`}`, exit: 1, message: /truncated|ends early|not a valid gzip/,
    make: (c) => {
      const root = her2(c);
      const f = counts(root);
      truncate(f, at > 0 && at < 1 ? Math.floor(fs.statSync(f).size * at) : at);
      return { args: inspect(root), names: f };
    },
  })),
  ...[1, 2].map((seed): Case => ({
    name: `count file with bytes flipped (seed ${seed})`, exit: 1, message: /gzip|truncated|line|column|header|empty/,
    make: (c) => {
      const root = her2(c);
      flipBytes(counts(root), seed, 3, 12, fs.statSync(counts(root)).size - 8);
      return { args: inspect(root), names: counts(root) };
    },
  })),
  ...['NaN', 'inf', '-1', '1e400', '0x10'].map(badCount),
  {
    name: 'an empty count cell', exit: 1, message: /line 3.*(empty|blank|column)/,
    make: (c) => {
      const root = her2(c);
      editText(counts(root), (t) => setField(t, 2, 2, '', '\t'));
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a spot id twice in the count file', exit: 1, message: /appears twice/,
    make: (c) => {
      const root = her2(c);
      editText(counts(root), (t) => { const l = t.split('\n'); l.splice(3, 0, l[2]); return l.join('\n'); });
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a count line cut short', exit: 1, message: /count columns but the header names/,
    make: (c) => {
      const root = her2(c);
      editText(counts(root), (t) => { const l = t.split('\n'); l[4] = l[4].split('\t').slice(0, 4).join('\t'); return l.join('\n'); });
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a count line with an extra column', exit: 1, message: /more than the header's/,
    make: (c) => {
      const root = her2(c);
      editText(counts(root), (t) => { const l = t.split('\n'); l[2] += '\t3'; return l.join('\n'); });
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'an empty count file', exit: 1, message: /empty|ends early/,
    make: (c) => {
      const root = her2(c);
      editText(counts(root), () => '');
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a spot-file pixel_x of "NaN"', exit: 1, message: /line 3, column pixel_x/,
    make: (c) => {
      const root = her2(c);
      editText(spotFile(root), (t) => setField(t, 2, 4, 'NaN', '\t'));
      return { args: inspect(root), names: spotFile(root) };
    },
  },
  {
    name: 'a spot file without its pixel_y column', exit: 1, message: /no column "pixel_y"/,
    make: (c) => {
      const root = her2(c);
      editText(spotFile(root), (t) => t.replace('pixel_y', 'pixel_why'));
      return { args: inspect(root), names: spotFile(root) };
    },
  },
  {
    name: 'a spot file with a line of too few fields', exit: 1, message: /fields but the header has/,
    make: (c) => {
      const root = her2(c);
      editText(spotFile(root), (t) => { const l = t.split('\n'); l[3] = l[3].split('\t').slice(0, 3).join('\t'); return l.join('\n'); });
      return { args: inspect(root), names: spotFile(root) };
    },
  },
  {
    name: 'a section named with a control character', exit: 1, message: /section name/,
    make: (c) => {
      const root = her2(c);
      const bad = counts(root, 'A\u00071');
      fs.renameSync(counts(root), bad);
      return { args: inspect(root), names: path.join(root, 'ST-cnts') };
    },
  },
  {
    name: 'a section named ".A1" (a hidden, dot-led name)', exit: 1, message: /section name/,
    make: (c) => {
      const root = her2(c);
      fs.renameSync(counts(root), counts(root, '.A1'));
      fs.renameSync(counts(root, 'B1'), counts(root, '..B1'));
      return { args: inspect(root), names: path.join(root, 'ST-cnts') };
    },
  },
  {
    name: 'a count file that is a symlink loop', exit: 1, message: /link|ELOOP|cannot be read/,
    make: (c) => {
      const root = her2(c);
      replaceWith(counts(root), loop);
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a count file that is a named pipe', exit: 1, message: /named pipe/,
    make: (c) => {
      const root = her2(c);
      replaceWith(counts(root), fifo);
      return { args: ['preprocess', root, '--out', c.out], names: counts(root) };
    },
  },
  {
    name: 'a count file that is a folder', exit: 1, message: /folder|directory|not a file/,
    make: (c) => {
      const root = her2(c);
      replaceWith(counts(root), (f) => fs.mkdirSync(f));
      return { args: inspect(root), names: counts(root) };
    },
  },
  {
    name: 'a spot file that is a named pipe', exit: 1, message: /named pipe/,
    make: (c) => {
      const root = her2(c);
      replaceWith(spotFile(root), fifo);
      return { args: inspect(root), names: spotFile(root) };
    },
  },
  {
    name: 'an unknown --sections entry', exit: 1, message: /no such section; the folder has A1, B1/,
    make: (c) => {
      const root = her2(c);
      return { args: ['preprocess', root, '--out', c.out, '--sections', 'A1,Z9'], names: counts(root, 'Z9') };
    },
  },
  {
    name: '--sections naming a path', exit: 1, message: /no such section|section name/,
    make: (c) => {
      const root = her2(c);
      return { args: ['preprocess', root, '--out', c.out, '--sections', '../../etc/passwd'], names: 'passwd' };
    },
  },
  {
    name: '--image given for a HER2+ folder', exit: 1, message: /--image/,
    make: (c) => ({ args: inspect(her2(c), '--image', path.join(c.dir, 'x.jpg')), names: '--image' }),
  },
]);

// ---------------------------------------------------------------------------------------------
// Space Ranger folders: filtered_feature_bc_matrix.h5 and spatial/tissue_positions.csv.

const visium = (c: Ctx, name = 'V1') => copy(c, c.base.visium, name);
const matrix = (dir: string) => path.join(dir, 'filtered_feature_bc_matrix.h5');
const positions = (dir: string) => path.join(dir, 'spatial', 'tissue_positions.csv');
/** A positions field (line 2 of the file) set to `value`. */
const badPosition = (column: number, name: string, value: string): Case => ({
  name: `a tissue position ${name} of ${JSON.stringify(value)}`, exit: 1, message: new RegExp(`line 2, column ${name}`),
  make: (c) => {
    const dir = visium(c);
    editText(positions(dir), (t) => setField(t, 1, column, value, ','));
    return { args: inspect(dir), names: positions(dir) };
  },
});

add('Visium', [
  ...[100, 0.5, -200].map((at): Case => ({
    name: `matrix truncated at ${at < 0 ? `${at} bytes from the end` : at < 1 ? 'half' : `byte ${at}`}`, exit: 1, message: /./,
    make: (c) => {
      const dir = visium(c);
      truncate(matrix(dir), at > 0 && at < 1 ? Math.floor(fs.statSync(matrix(dir)).size * at) : at);
      return { args: inspect(dir), names: matrix(dir) };
    },
  })),
  ...[3, 4].map((seed): Case => ({
    name: `matrix with bytes flipped in its first 2 kB (seed ${seed})`, exit: 1, message: /./,
    make: (c) => {
      const dir = visium(c);
      flipBytes(matrix(dir), seed, 8, 0, 2048);
      return { args: inspect(dir), names: matrix(dir) };
    },
  })),
  badPosition(2, 'array_row', '0x10'),
  badPosition(4, 'pxl_row_in_fullres', 'NaN'),
  badPosition(5, 'pxl_col_in_fullres', '1e400'),
  badPosition(3, 'array_col', ''),
  {
    name: 'positions without the array_col column', exit: 1, message: /column array_col.*missing from the header/,
    make: (c) => {
      const dir = visium(c);
      editText(positions(dir), (t) => t.replace('array_col', 'array_column'));
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'a barcode twice in the positions', exit: 1, message: /appears twice/,
    make: (c) => {
      const dir = visium(c);
      editText(positions(dir), (t) => { const l = t.split('\n'); l.splice(2, 0, l[1]); return l.join('\n'); });
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'positions missing a matrix barcode (mismatched spot table)', exit: 1, message: /has no row here/,
    make: (c) => {
      const dir = visium(c);
      editText(positions(dir), (t) => { const l = t.split('\n'); l.splice(2, 1); return l.join('\n'); });
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'positions line with too few fields', exit: 1, message: /fields, expected/,
    make: (c) => {
      const dir = visium(c);
      editText(positions(dir), (t) => { const l = t.split('\n'); l[3] = l[3].split(',').slice(0, 3).join(','); return l.join('\n'); });
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'empty positions file', exit: 1, message: /./,
    make: (c) => {
      const dir = visium(c);
      fs.writeFileSync(positions(dir), '');
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'a folder name with a space and a control character', exit: 1, message: /folder name .* names the section/,
    make: (c) => {
      const dir = visium(c, 'V 1\t');
      return { args: inspect(dir), names: 'V 1' };
    },
  },
  {
    name: 'a matrix that is a named pipe', exit: 1, message: /named pipe/,
    make: (c) => {
      const dir = visium(c);
      replaceWith(matrix(dir), fifo);
      return { args: inspect(dir), names: matrix(dir) };
    },
  },
  {
    name: 'positions that are a symlink loop', exit: 1, message: /./,
    make: (c) => {
      const dir = visium(c);
      replaceWith(positions(dir), loop);
      return { args: inspect(dir), names: positions(dir) };
    },
  },
  {
    name: 'a --patient with a path in it', exit: 1, message: /--patient|cannot name a patient/,
    make: (c) => ({ args: inspect(visium(c), '--patient', '../../x'), names: '../../x' }),
  },
  {
    name: 'a --image that is an empty file', exit: 1, message: /./,
    make: (c) => {
      const img = path.join(c.dir, 'empty.jpg');
      fs.writeFileSync(img, '');
      return { args: inspect(visium(c), '--image', img), names: img };
    },
  },
]);

// ---------------------------------------------------------------------------------------------
// AnnData .h5ad files.

const h5ad = (c: Ctx) => copy(c, c.base.h5ad);

add('h5ad', [
  ...[8, 0.5, -100].map((at): Case => ({
    name: `truncated at ${at < 0 ? `${at} bytes from the end` : at < 1 ? 'half' : `byte ${at}`}`, exit: 1, message: /./,
    make: (c) => {
      const f = h5ad(c);
      truncate(f, at > 0 && at < 1 ? Math.floor(fs.statSync(f).size * at) : at);
      return { args: inspect(f), names: f };
    },
  })),
  ...[5, 6, 7].map((seed): Case => ({
    name: `bytes flipped in its first 4 kB (seed ${seed})`, exit: 1, message: /./,
    make: (c) => {
      const f = h5ad(c);
      flipBytes(f, seed, 16, 0, 4096);
      return { args: inspect(f), names: f };
    },
  })),
  ...([['NaN', NaN], ['inf', Infinity], ['negative', -2]] as const).map(([label, v]): Case => ({
    name: `${label} in X`, exit: 1, message: /X, row 2 .*column 1/,
    make: async (c) => {
      const t = truthSection({ id: 'H1' });
      t.counts[2][1] = v;
      const f = await writeH5ad(path.join(c.dir, 'x.h5ad'), [t], { x: 'csr' });
      return { args: inspect(f), names: f };
    },
  })),
  {
    name: 'a non-finite spot centre', exit: 1, message: /obsm\/spatial, row 1/,
    make: async (c) => {
      const t = truthSection({ id: 'H1' });
      t.spots[1].y = Infinity;
      const f = await writeH5ad(path.join(c.dir, 'x.h5ad'), [t], { x: 'dense' });
      return { args: inspect(f), names: f };
    },
  },
  {
    name: 'no obsm/spatial', exit: 1, message: /spatial/,
    make: async (c) => {
      const f = await writeH5ad(path.join(c.dir, 'x.h5ad'), [truthSection({ id: 'H1' })], { x: 'dense', withoutSpatial: true });
      return { args: ['preprocess', f, '--out', c.out], names: f };
    },
  },
  { name: 'a named pipe', exit: 1, message: /named pipe/, make: (c) => { const f = path.join(c.dir, 'p.h5ad'); fifo(f); return { args: inspect(f), names: f }; } },
  { name: 'a symlink loop', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 'l.h5ad'); loop(f); return { args: inspect(f), names: f }; } },
  { name: 'a folder', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 'd.h5ad'); fs.mkdirSync(f); return { args: inspect(f), names: f }; } },
  { name: 'a text file', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 't.h5ad'); fs.writeFileSync(f, 'barcode,x\n'); return { args: inspect(f), names: f }; } },
]);

// ---------------------------------------------------------------------------------------------
// Sample sheets (`triplex preprocess --samples`): one row per section of a cohort. Every error
// names the sheet (and its line), and nothing is written.

/** A sheet in the case folder beside a copy of the Space Ranger folder V1 and the .h5ad file. */
const sheetCase = (name: string, message: RegExp, text: string | ((c: Ctx) => string), opts: { file?: string; inspect?: boolean; setup?: (c: Ctx) => void } = {}): Case => ({
  name, exit: 1, message,
  make: (c) => {
    copy(c, c.base.visium);
    copy(c, c.base.h5ad);
    opts.setup?.(c);
    const sheet = path.join(c.dir, opts.file ?? 'samples.csv');
    const body = typeof text === 'function' ? text(c) : text;
    if (body !== '<fifo>') fs.writeFileSync(sheet, body); else fifo(sheet);
    return { args: opts.inspect ? inspect(sheet) : ['preprocess', '--samples', sheet, '--out', c.out], names: sheet };
  },
});

add('sample sheet', [
  sheetCase('a dataset that is not there', /line 3, column path\): \S*nowhere not found/, 'path,patient\nV1,P1\nnowhere,P2\n'),
  sheetCase('a section id twice', /line 3, column section\): section S1 is also on line 2/, 'path,patient,section\nV1,P1,S1\none.h5ad,P2,S1\n'),
  sheetCase('a section id read twice (no section column)', /line 3\): section V1 is also read on line 2/, 'path,patient\nV1,P1\nV1,P2\n'),
  sheetCase('a section without a patient', /line 3, column patient\): the row of one\.h5ad has no patient/, 'path,patient\nV1,P1\none.h5ad,\n'),
  sheetCase('an unknown column', /line 1, column 3\): unknown column "tissue"/, 'path,patient,tissue\nV1,P1,breast\n'),
  sheetCase('a sheet that is a named pipe', /named pipe/, '<fifo>'),
  sheetCase('an empty sheet', /is empty/, ''),
  sheetCase('a header without rows', /no rows/, 'path\tpatient\n', { file: 'samples.tsv', inspect: true }),
  sheetCase('a section id that is not a safe identifier', /line 2, column section\): "\.\.\/x" cannot name a section/, 'path,patient,section\nV1,P1,../x\n'),
  sheetCase('a patient that is not a safe identifier', /line 2, column patient\): "P 1" cannot name a patient/, 'path\tpatient\nV1\tP 1\n', { file: 'samples.tsv' }),
  sheetCase('a Visium matrix and positions of different runs', /line 2\): \S+tissue_positions\.csv \(barcode \S+\): is in filtered_feature_bc_matrix\.h5 but has no row here/, 'path,patient\nV1,P1\n', {
    // The first in-tissue barcode of the matrix loses its row in the positions.
    setup: (c) => editText(positions(path.join(c.dir, 'V1')), (t) => t.split('\n').filter((_, i, all) => i !== all.findIndex((x, j) => j > 0 && x.split(',')[1] === '1')).join('\n')),
  }),
  sheetCase('an image that is not there', /line 2, column image\): \S*slide\.jpg not found/, 'path,patient,image\nV1,P1,slide.jpg\n'),
  sheetCase('an mpp that is not a positive number', /line 2, column mpp\): "-0\.5" is not a positive number/, 'path,patient,mpp\nV1,P1,-0.5\n'),
  sheetCase('a HER2+ folder without a section', /line 2\): \S+: a HER2\+ folder holds several sections; name the one of this row in the column section/, (c) => `path,patient\n${copy(c, c.base.her2st)},P1\n`),
  sheetCase('a row whose path is no dataset', /line 2\): \S+notes\.md: is not a dataset of a row/, 'path,patient\nnotes.md,P1\n', { setup: (c) => fs.writeFileSync(path.join(c.dir, 'notes.md'), 'V1 is patient 1\n') }),
  sheetCase('a quoted field left open', /line 2\): a quoted field is not closed/, 'path,patient\n"V1,P1\n'),
  {
    name: 'a dataset and --samples both', exit: 2, message: /either a <dataset> or --samples/,
    make: (c) => {
      const sheet = path.join(c.dir, 'samples.csv');
      fs.writeFileSync(sheet, 'path,patient\nV1,P1\n');
      return { args: ['preprocess', c.base.visium, '--samples', sheet, '--out', c.out], names: '--samples' };
    },
  },
]);

// ---------------------------------------------------------------------------------------------
// Spot tables (`triplex slide --spots`, the sample sheet of a slide without counts) and images.

const slideArgs = (c: Ctx, image: string, ...more: string[]) => ['slide', image, '--out', c.out, ...more];
const table = (c: Ctx, edit?: (t: string) => string) => {
  const f = copy(c, c.base.spots);
  if (edit) editText(f, edit);
  return f;
};
const badTable = (name: string, edit: (t: string) => string, message: RegExp): Case => ({
  name, exit: 1, message,
  make: (c) => {
    const t = table(c, edit);
    return { args: slideArgs(c, c.base.jpeg, '--spots', t), names: t };
  },
});

add('spot table', [
  badTable('pixel_x "NaN"', (t) => setField(t, 2, 1, 'NaN', ','), /line 3, column pixel_x/),
  badTable('pixel_y "1e400"', (t) => setField(t, 3, 2, '1e400', ','), /line 4, column pixel_y/),
  badTable('pixel_x "0x10"', (t) => setField(t, 1, 1, '0x10', ','), /line 2, column pixel_x/),
  badTable('a negative pixel_x', (t) => setField(t, 1, 1, '-50', ','), /outside/),
  badTable('an empty pixel_y', (t) => setField(t, 1, 2, '', ','), /line 2, column pixel_y/),
  badTable('a spot id twice', (t) => { const l = t.split('\n'); l.splice(2, 0, l[1]); return l.join('\n'); }, /appears twice/),
  badTable('an empty spot id', (t) => setField(t, 2, 0, '', ','), /line 3.*empty spot id/),
  badTable('no pixel_y column', (t) => t.replace('pixel_y', 'py'), /line 1.*no .*column/),
  badTable('a spot outside the image', (t) => setField(t, 2, 1, '99999', ','), /outside the/),
  badTable('a header only', (t) => t.split('\n')[0] + '\n', /no spots/),
  badTable('a line of too few fields', (t) => { const l = t.split('\n'); l[2] = l[2].split(',')[0]; return l.join('\n'); }, /line 3.*fields/),
  { name: 'a named pipe', exit: 1, message: /named pipe/, make: (c) => { const f = path.join(c.dir, 's.csv'); fifo(f); return { args: slideArgs(c, c.base.jpeg, '--spots', f), names: f }; } },
  { name: 'a symlink loop', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 's.csv'); loop(f); return { args: slideArgs(c, c.base.jpeg, '--spots', f), names: f }; } },
]);

const image = (c: Ctx, name: string, bytes?: Buffer) => {
  const f = path.join(c.dir, name);
  if (bytes) fs.writeFileSync(f, bytes);
  else fs.copyFileSync(c.base.jpeg, f);
  return f;
};
const badImage = (name: string, make: (c: Ctx) => string, message: RegExp): Case => ({
  name, exit: 1, message, make: (c) => { const f = make(c); return { args: slideArgs(c, f), names: f }; },
});

add('image', [
  badImage('a JPEG cut at half', (c) => { const f = image(c, 'h.jpg'); truncate(f, 0.5 * fs.statSync(f).size | 0); return f; }, /ends before|decode|cannot/),
  badImage('a JPEG cut at 100 bytes', (c) => { const f = image(c, 'h.jpg'); truncate(f, 100); return f; }, /./),
  badImage('a zero-byte image', (c) => image(c, 'z.jpg', Buffer.alloc(0)), /./),
  badImage('a JPEG whose header says 0 x 0', (c) => image(c, 'z.jpg', imageHeader('jpeg', 0, 0)), /zero size|./),
  badImage('a PNG whose header says 0 x 0', (c) => image(c, 'z.png', pngHeader(0, 0)), /./),
  badImage('a PNG whose header says 200,000 px square', (c) => image(c, 'huge.png', bigPng(c.base.png)), /limit of 1e\+10/),
  badImage('a BigTIFF whose header says a million px square', (c) => image(c, 'huge.tif', imageHeader('bigtiff', 1_000_000, 1_000_000)), /cannot be read as an image/),
  badImage('a JPEG whose header claims 8x its rows', (c) => { const f = image(c, 't.jpg'); setJpegSize(f, 800, 6400); return f; }, /ends before the size its header gives/),
  badImage('a text file named .jpg', (c) => image(c, 'x.jpg', Buffer.from('hello, not an image\n')), /./),
  badImage('a named pipe', (c) => { const f = path.join(c.dir, 'p.jpg'); fifo(f); return f; }, /named pipe/),
  badImage('a named pipe named like a whole slide (.svs)', (c) => { const f = path.join(c.dir, 'p.svs'); fifo(f); return f; }, /named pipe/),
  badImage('a symlink loop', (c) => { const f = path.join(c.dir, 'l.jpg'); loop(f); return f; }, /./),
  badImage('a folder', (c) => { const f = path.join(c.dir, 'd.jpg'); fs.mkdirSync(f); return f; }, /./),
  { name: '--section with a path in it', exit: 1, message: /--section|cannot name a section/, make: (c) => ({ args: slideArgs(c, c.base.jpeg, '--section', '../../evil'), names: '../../evil' }) },
  { name: '--section with a newline', exit: 1, message: /cannot name a section/, make: (c) => ({ args: slideArgs(c, c.base.jpeg, '--section', 'a\nb'), names: '--section' }) },
  { name: '--patient of a dot', exit: 1, message: /cannot name a patient/, make: (c) => ({ args: slideArgs(c, c.base.jpeg, '--patient', '.'), names: '--patient' }) },
  {
    name: 'extract with one section\'s image cut short (the others\' features kept)', exit: 1, message: /ends before|cut|truncated/,
    make: (c) => {
      const store = copy(c, c.base.store);
      const key = fs.readdirSync(path.join(store, 'features'))[0];
      fs.rmSync(path.join(store, 'features', key, 'B1.arrow'));
      const bad = image(c, 'B1.jpg');
      const manifest = path.join(store, 'store.json');
      fs.copyFileSync(JSON.parse(fs.readFileSync(manifest, 'utf8')).sections[1].image.path, bad);
      truncate(bad, 0.6 * fs.statSync(bad).size | 0);
      editText(manifest, (t) => { const m = JSON.parse(t); m.sections[1].image.path = bad; return JSON.stringify(m, null, 2); });
      return { args: ['extract', store], names: bad };
    },
  },
]);

// ---------------------------------------------------------------------------------------------
// Checkpoints (`triplex predict --checkpoint`) and encoder weights (`triplex extract --weights`).

const predictWith = (c: Ctx, checkpoint: string): Setup => ({
  args: ['predict', c.base.store, '--checkpoint', checkpoint, '--out', path.join(c.out, 'p.arrow')], names: checkpoint, earlier: [c.base.store],
});
const checkpoint = (c: Ctx) => copy(c, c.base.checkpoint);
const badCheckpoint = (name: string, edit: (f: string) => void, message: RegExp, todo?: string): Case => ({
  name, exit: 1, message, todo, make: (c) => { const f = checkpoint(c); edit(f); return predictWith(c, f); },
});


add('checkpoint', [
  badCheckpoint('cut to 4 bytes', (f) => truncate(f, 4), /./),
  badCheckpoint('cut inside its header', (f) => truncate(f, 200), /./),
  badCheckpoint('cut inside its data', (f) => truncate(f, 0.7 * fs.statSync(f).size | 0), /./),
  badCheckpoint('a header length of 2^60', (f) => { const b = fs.readFileSync(f); b.writeBigUInt64LE(1n << 60n); fs.writeFileSync(f, b); }, /./),
  badCheckpoint('a header length past the end', (f) => { const b = fs.readFileSync(f); b.writeBigUInt64LE(BigInt(b.length)); fs.writeFileSync(f, b); }, /./),
  badCheckpoint('a header that is not JSON', (f) => { const { data } = readSafetensorsParts(f); writeSafetensorsParts(f, '{"__metadata__": {"format": ', data); }, /./),
  badCheckpoint('bytes flipped in its header', (f) => flipBytes(f, 11, 4, 8, 400), /./),
  badCheckpoint('data offsets past the end (a lying header)', (f) => {
    const { header, data } = readSafetensorsParts(f);
    const key = Object.keys(header).find((k) => k !== '__metadata__')!;
    (header[key] as { data_offsets: number[] }).data_offsets[1] = data.length + 4096;
    writeSafetensorsParts(f, header, data);
  }, /./),
  badCheckpoint('a tensor shape that disagrees with its bytes', (f) => {
    const { header, data } = readSafetensorsParts(f);
    const key = Object.keys(header).find((k) => k !== '__metadata__')!;
    (header[key] as { shape: number[] }).shape.push(3);
    writeSafetensorsParts(f, header, data);
  }, /./),
  badCheckpoint('a tensor transposed (shape [b, a] for [a, b])', (f) => {
    const { header, data } = readSafetensorsParts(f);
    const key = Object.keys(header).find((k) => { const s = (header[k] as { shape?: number[] }).shape; return s?.length === 2 && s[0] !== s[1]; })!;
    (header[key] as { shape: number[] }).shape.reverse();
    writeSafetensorsParts(f, header, data);
  }, /./),
  badCheckpoint('a tensor missing', (f) => {
    const { header, data } = readSafetensorsParts(f);
    delete header[Object.keys(header).find((k) => k !== '__metadata__' && !k.startsWith('optimizer.'))!];
    writeSafetensorsParts(f, header, data);
  }, /./),
  badCheckpoint('no TRIPLEX metadata (a plain safetensors)', (f) => {
    const { header, data } = readSafetensorsParts(f);
    delete header.__metadata__;
    writeSafetensorsParts(f, header, data);
  }, /not a TRIPLEX checkpoint/),
  badCheckpoint('recorded info that is not JSON', (f) => {
    const { header, data } = readSafetensorsParts(f);
    (header.__metadata__ as Record<string, string>).info = '{"version": 1,';
    writeSafetensorsParts(f, header, data);
  }, /best\.safetensors: its recorded run information is not readable JSON .*use another, or train again/),
  badCheckpoint('checkpoint version 2', (f) => editCheckpointInfo(f, (i) => { i.version = 2; }), /version 2/),
  badCheckpoint('genes in another order', (f) => editCheckpointInfo(f, (i) => { (i.genes as string[]).reverse(); }), /in another order/),
  badCheckpoint('other genes', (f) => editCheckpointInfo(f, (i) => { i.genes = ['X1', 'X2']; (i.config as { genes: number }).genes = 2; }), /predicts 2 genes/),
  badCheckpoint('a configuration that disagrees with its genes', (f) => editCheckpointInfo(f, (i) => { i.genes = ['X1', 'X2']; }), /best\.safetensors: its configuration predicts \d+ genes but it lists 2/),
  badCheckpoint('another feature width', (f) => editCheckpointInfo(f, (i) => { (i.config as { dim: number }).dim = 1024; }), /1024-wide features/),
  badCheckpoint('another model (the config of ST-Net)', (f) => editCheckpointInfo(f, (i) => { i.config = { model: 'stnet' }; }), /best\.safetensors: it records a stnet model without its settings/),
  badCheckpoint('a config that is not an object', (f) => editCheckpointInfo(f, (i) => { i.config = 7; }), /best\.safetensors: its model configuration is not an object/),
  badCheckpoint('no genes list', (f) => editCheckpointInfo(f, (i) => { delete i.genes; }), /best\.safetensors: it records no list of genes/),
  { name: 'a PyTorch .pth file', exit: 1, message: /./, make: (c) => predictWith(c, copy(c, path.join(repoRoot(), 'test', 'fixtures', 'weights', 'tiny_model.pth'))) },
  { name: 'a named pipe', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 'p.safetensors'); fifo(f); return predictWith(c, f); } },
  { name: 'a symlink loop', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 'l.safetensors'); loop(f); return predictWith(c, f); } },
  { name: 'a folder', exit: 1, message: /./, make: (c) => { const f = path.join(c.dir, 'd.safetensors'); fs.mkdirSync(f); return predictWith(c, f); } },
  {
    name: 'extract --weights: a .pth cut at half', exit: 1, message: /./,
    make: (c) => {
      const f = copy(c, path.join(repoRoot(), 'test', 'fixtures', 'weights', 'tiny_model.pth'));
      truncate(f, fs.statSync(f).size >> 1);
      const store = copy(c, c.base.store);
      fs.rmSync(path.join(store, 'features'), { recursive: true });
      return { args: ['extract', store, '--weights', f], names: f };
    },
  },
  {
    name: 'extract --weights: a safetensors of other tensors', exit: 1, message: /./,
    make: (c) => {
      const f = copy(c, path.join(repoRoot(), 'test', 'fixtures', 'weights', 'mixed.safetensors'));
      const store = copy(c, c.base.store);
      fs.rmSync(path.join(store, 'features'), { recursive: true });
      return { args: ['extract', store, '--weights', f], names: f };
    },
  },
]);

// ---------------------------------------------------------------------------------------------
// Stores: store.json, spots.arrow, expressions.arrow, features/<key>/<section>.arrow.

const cvOn = (c: Ctx, store: string, names: string): Setup => ({ args: ['cv', store, '--out', c.out, '--preset', 'demo', '--epochs', '1'], names });
const badStore = (name: string, edit: (store: string) => string, message: RegExp, command: 'cv' | 'predict' | 'extract' = 'cv'): Case => ({
  name, exit: 1, message,
  make: (c) => {
    const store = copy(c, c.base.store);
    const names = edit(store);
    if (command === 'cv') return cvOn(c, store, names);
    if (command === 'extract') return { args: ['extract', store], names };
    return { args: ['predict', store, '--checkpoint', c.base.checkpoint, '--out', path.join(c.out, 'p.arrow')], names };
  },
});
const manifest = (store: string) => path.join(store, 'store.json');
const editManifest = (edit: (m: { triplexStore: number; sections: Array<Record<string, unknown>> }) => void) => (store: string) => {
  editText(manifest(store), (t) => { const m = JSON.parse(t); edit(m); return JSON.stringify(m, null, 2); });
  return manifest(store);
};
const features = (store: string) => { const root = path.join(store, 'features'); return path.join(root, fs.readdirSync(root)[0]); };

add('store', [
  badStore('no store.json', (s) => { fs.rmSync(manifest(s)); return s; }, /not a TRIPLEX dataset store/),
  badStore('store.json cut at half', (s) => { truncate(manifest(s), fs.statSync(manifest(s)).size >> 1); return manifest(s); }, /not a readable store manifest/),
  badStore('store.json of version 99', editManifest((m) => { m.triplexStore = 99; }), /store version 99/),
  badStore('a section id "../../x"', editManifest((m) => { m.sections[0].id = '../../x'; }), /sections\[0\]\.id/, 'extract'),
  badStore('a section id with a control character', editManifest((m) => { m.sections[1].id = 'B\u00001'; }), /sections\[1\]\.id/),
  badStore('a patient "/etc"', editManifest((m) => { m.sections[2].patient = '/etc'; }), /sections\[2\]\.patient/, 'predict'),
  badStore('a section listed twice', editManifest((m) => { m.sections[1].id = 'A1'; }), /listed twice/),
  badStore('"sections" that is not a list', editManifest((m) => { (m as { sections: unknown }).sections = { A1: 1 }; }), /is not a list/),
  badStore('a spot count that disagrees with spots.arrow', (s) => { editManifest((m) => { m.sections[0].spots = 10; })(s); return s; }, /lists 28 spots/),
  badStore('spots.arrow cut at half', (s) => { const f = path.join(s, 'spots.arrow'); truncate(f, fs.statSync(f).size >> 1); return f; }, /./),
  badStore('spots.arrow missing', (s) => { const f = path.join(s, 'spots.arrow'); fs.rmSync(f); return f; }, /./, 'predict'),
  badStore('expressions.arrow with bytes flipped', (s) => { const f = path.join(s, 'expressions.arrow'); flipBytes(f, 13, 16, 0, 512); return f; }, /./),
  badStore('expressions.arrow a named pipe', (s) => { const f = path.join(s, 'expressions.arrow'); replaceWith(f, fifo); return f; }, /./),
  badStore('a section\'s features missing', (s) => { const f = path.join(features(s), 'B1.arrow'); fs.rmSync(f); return 'B1'; }, /extract/),
  badStore('a second features folder (which one?)', (s) => { fs.cpSync(features(s), `${features(s)}-copy`, { recursive: true }); return '--features'; }, /choose one/),
  badStore('a features file whose footer claims 2^31 metadata entries', (s) => { const f = path.join(features(s), 'A1.arrow'); inflateArrowFooterMetadata(f); return f; }, /not a readable Arrow IPC file .*damaged metadata/, 'predict'),
  badStore('a features file that is a symlink loop', (s) => { const f = path.join(features(s), 'A1.arrow'); replaceWith(f, loop); return f; }, /./, 'predict'),
  {
    name: '--features naming no folder', exit: 1, message: /not found/,
    make: (c) => ({ args: ['predict', c.base.store, '--checkpoint', c.base.checkpoint, '--features', 'nope', '--out', path.join(c.out, 'p.arrow')], names: 'nope', earlier: [c.base.store] }),
  },
  {
    name: 'predict --sections naming no section', exit: 1, message: /Z9/,
    make: (c) => ({ args: ['predict', c.base.store, '--checkpoint', c.base.checkpoint, '--sections', 'Z9', '--out', path.join(c.out, 'p.arrow')], names: 'Z9', earlier: [c.base.store] }),
  },
  {
    name: 'a store path that is a file', exit: 1, message: /./,
    make: (c) => { const f = path.join(c.dir, 'store'); fs.writeFileSync(f, 'x'); return cvOn(c, f, f); },
  },
]);

// ---------------------------------------------------------------------------------------------
// Notebooks (.triplexnb), parsed in process as the editor opens them.

const nbText = (cells: unknown[], extra: Record<string, unknown> = {}) => JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata: {}, cells, ...extra });
const goodNotebook = nbText([{ cell_type: 'markdown', source: '# t', metadata: {} }, { cell_type: 'code', source: ['let a = 1\n', 'a'], metadata: {}, execution_count: 1, outputs: [{ output_type: 'stream', name: 'stdout', text: ['1\n'] }] }]);
const notebook = (name: string, bytes: (c: Ctx) => Uint8Array | string, message: RegExp): Case => ({
  name, exit: 1, message,
  make: (c) => {
    const file = path.join(c.dir, 'analysis.triplexnb');
    const b = bytes(c);
    fs.writeFileSync(file, b);
    return { notebook: { file, bytes: fs.readFileSync(file) }, names: file };
  },
});
const code = (fields: Record<string, unknown>) => ({ cell_type: 'code', source: 'x', metadata: {}, outputs: [], execution_count: null, ...fields });

add('notebook', [
  ...[1, 30, 0.9].map((at) => notebook(`cut at ${at < 1 ? '90%' : `byte ${at}`}`, () => goodNotebook.slice(0, at < 1 ? Math.floor(goodNotebook.length * at) : at), /not valid notebook JSON|not an nbformat notebook/)),
  notebook('bytes flipped (seed 17)', (c) => { const f = path.join(c.dir, 'flip'); fs.writeFileSync(f, goodNotebook); flipBytes(f, 17, 6, 0, 40); return fs.readFileSync(f); }, /./),
  notebook('cells that are an object', () => nbText([]).replace('"cells":[]', '"cells":{}'), /no "cells" list/),
  notebook('a heading cell', () => nbText([{ cell_type: 'heading', source: 'x' }]), /cell 1: "cell_type"/),
  notebook('outputs that are a number', () => nbText([code({ outputs: 5 })]), /cell 1: "outputs"/),
  notebook('an output without output_type', () => nbText([code({ outputs: [{ text: 'a' }] })]), /output 1: "output_type" is missing/),
  notebook('image data that is not base64', () => nbText([code({ outputs: [{ output_type: 'display_data', data: { 'image/png': '%%%' }, metadata: {} }] })]), /not base64/),
  notebook('a triplex payload that is not JSON', () => nbText([code({ outputs: [{ output_type: 'display_data', data: { 'application/vnd.triplex.table+json': '{"a":' }, metadata: {} }] })]), /not valid JSON/),
  notebook('a traceback that is text', () => nbText([code({ outputs: [{ output_type: 'error', ename: 'E', evalue: 'v', traceback: 'tb' }] })]), /"traceback"/),
  notebook('nbformat 3', () => nbText([], { nbformat: 3 }), /nbformat 3/),
  notebook('a source of 1e400 (a number)', () => nbText([code({ source: 7 })]).replace('"source":7', '"source":1e400'), /"source" is the number Infinity/),
  notebook('UTF-16 text', () => Buffer.from(`\ufeff${goodNotebook}`, 'utf16le'), /./),
]);

// ---------------------------------------------------------------------------------------------
// Command-line options: at least one bad value per numeric option of each command, and choices.

const option = (command: string, opt: string, value: string, message: RegExp, more: (c: Ctx) => string[] = () => []): Case => ({
  name: `${command} ${opt} ${JSON.stringify(value)}`, exit: 2, message,
  make: (c) => {
    const target = command === 'preprocess' ? [c.base.her2st, '--out', c.out] : command === 'slide' ? [c.base.jpeg, '--out', c.out]
      : command === 'synth' ? ['--out', c.out] : command === 'extract' ? [c.base.store] : [c.base.store, '--out', c.base.run];
    const args = command === '' ? [opt, value, 'info'] : [command, ...target, ...more(c), opt, value];
    return { args, names: opt, earlier: [c.base.store, c.base.run, c.base.her2st] };
  },
});
const whole = /whole number/;
const decimal = /decimal number/;
const choice = /Allowed choices|argument .* is invalid/;

add('option', [
  option('cv', '--epochs', 'NaN', whole), option('cv', '--epochs', '0', whole), option('cv', '--patience', '-1', whole),
  option('cv', '--batch', '1e3', whole), option('cv', '--micro-batch', '2.5', whole), option('cv', '--lr', '1e400', decimal),
  option('cv', '--lr', '2', decimal), option('cv', '--seed', '4294967296', whole), option('cv', '--validation', '-0.1', decimal),
  option('cv', '--validation', 'inf', decimal), option('cv', '--model', 'gpt', choice), option('cv', '--mode', 'half', choice),
  option('cv', '--init', 'zeros', choice), option('cv', '--preset', 'huge', choice), option('cv', '--progress', 'xml', choice),
  option('train-fold', '--fold', '-1', whole), option('train-fold', '--fold', '0x1', whole), option('train-fold', '--epochs', '', whole, () => ['--fold', '0']),
  option('train-fold', '--lr', '0', decimal, () => ['--fold', '0']), option('train-fold', '--micro-batch', '0', whole, () => ['--fold', '0']),
  option('benchmark', '--epochs', '1.5', whole), option('benchmark', '--patience', 'NaN', whole), option('benchmark', '--batch', '-8', whole),
  option('benchmark', '--lr', 'Infinity', decimal), option('benchmark', '--seed', '1e2', whole), option('benchmark', '--validation', '1', decimal),
  option('ablation', '--patience', '0', whole),
  option('extract', '--batch', '4097', whole), option('extract', '--batch', ' ', whole), option('extract', '--batch', '99999999999999999999', whole),
  option('preprocess', '--genes', '0', whole), option('preprocess', '--genes', '1e400', whole), option('preprocess', '--min-spot-fraction', 'NaN', decimal),
  option('preprocess', '--min-spot-fraction', '1.01', decimal), option('preprocess', '--transform', 'log2', choice),
  option('slide', '--spacing', '15', whole), option('slide', '--min-tissue', '-1', decimal),
  option('synth', '--grid', '1', whole), option('synth', '--seed', '-1', whole), option('synth', '--sections', '100', whole),
  option('', '--threads', '0', whole), option('', '--backend', 'gpu', choice),
  option('cv', '--no-such-option', '1', /unknown option/),
]);

// ---------------------------------------------------------------------------------------------

interface Outcome extends CliResult { timedOut: boolean }

/** A notebook case as the editor meets it: the error's message is what the user sees. */
function openNotebook(n: { file: string; bytes: Uint8Array }): Outcome {
  const started = performance.now();
  try {
    parseNotebook(n.bytes, n.file);
    return { status: 0, signal: null, stdout: '', stderr: '', seconds: (performance.now() - started) / 1000, timedOut: false };
  } catch (e) {
    const err = e as Error;
    // A TypeError or RangeError is a parser that fell over, not a refusal.
    const kind = err instanceof Error && err.constructor === Error ? '' : `${(err as Error)?.constructor?.name ?? typeof err}: `;
    return { status: 1, signal: null, stdout: '', stderr: `triplex: ${kind}${err instanceof Error ? err.message : String(err)}\n`, seconds: (performance.now() - started) / 1000, timedOut: false };
  }
}

before(async () => {
  fs.mkdirSync(baseDir);
  base.her2st = writeHer2st(path.join(baseDir, 'her2st'), [truthSection({ id: 'A1' }), truthSection({ id: 'B1', seed: 2 })]);
  base.visium = await writeVisium(path.join(baseDir, 'V1'), truthSection({ id: 'V1', grid: 'hex' }), { positions: 'tissue_positions.csv' });
  base.h5ad = await writeH5ad(path.join(baseDir, 'one.h5ad'), [truthSection({ id: 'H1' })], { x: 'csr' });
  base.synth = path.join(baseDir, 'synth');
  base.store = path.join(baseDir, 'store');
  await writeSyntheticStore(base.synth, base.store, { patients: 3, sectionsPerPatient: 1, gridSize: 3, genes: 20 }, 10);
  await extractFeatures(base.store, { encoder: 'resnet18' });
  base.run = path.join(baseDir, 'run');
  const r = await runCli(['train-fold', base.store, '--fold', '0', '--preset', 'demo', '--epochs', '1', '--batch', '32', '--lr', '1e-3', '--out', base.run], baseDir, 120_000);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  base.checkpoint = path.join(base.run, 'fold-0', 'best.safetensors');
  base.jpeg = path.join(baseDir, 'slide.jpg');
  const raw = Buffer.alloc(800 * 600 * 3);
  for (let i = 0; i < raw.length; i += 3) {
    const x = (i / 3) % 800;
    const tissue = x > 150 && x < 650;
    raw.set(tissue ? [200 - (x % 40), 120 + ((i >> 5) % 30), 180] : [245, 245, 245], i);
  }
  await sharp(raw, { raw: { width: 800, height: 600, channels: 3 } }).jpeg({ quality: 80 }).toFile(base.jpeg);
  base.png = path.join(baseDir, 'small.png');
  await sharp({ create: { width: 4, height: 4, channels: 3, background: '#ffffff' } }).png().toFile(base.png);
  base.spots = path.join(baseDir, 'spots.csv');
  fs.writeFileSync(base.spots, `spot_id,pixel_x,pixel_y\n${Array.from({ length: 6 }, (_, i) => `s${i},${200 + 80 * i},${300}`).join('\n')}\n`);
});

describe('fuzz corpus', { concurrency: 2 }, () => {
  test('has at least 80 cases, every class represented', () => {
    assert.ok(cases.length >= 80, `${cases.length} cases`);
    const groups = new Set(cases.map((c) => c.name.split(':')[0]));
    assert.deepEqual([...groups].sort(), ['HER2+', 'Visium', 'checkpoint', 'h5ad', 'image', 'notebook', 'option', 'sample sheet', 'spot table', 'store'].sort());
    assert.equal(new Set(cases.map((c) => c.name)).size, cases.length, 'case names are unique');
  });

  cases.forEach((k, i) => {
    test(k.name, { timeout: LIMIT_MS + 30_000, todo: k.todo }, async () => {
      const dir = path.join(tmp, `case-${String(i).padStart(3, '0')}`);
      const out = path.join(dir, 'out');
      fs.mkdirSync(dir);
      const setup = await k.make({ dir, out, base });
      const watched = [dir, ...(setup.earlier ?? [])];
      const before = watched.map((w) => snapshot(w, w === dir ? out : undefined));
      const r: Outcome = setup.notebook ? openNotebook(setup.notebook) : { ...(await runCli(setup.args!, dir, LIMIT_MS)), timedOut: false };
      r.timedOut = r.signal === 'SIGKILL';
      const shown = `triplex ${(setup.args ?? ['(notebook)']).join(' ')}\nexit ${r.status} ${r.signal ?? ''} in ${r.seconds.toFixed(1)} s\n--- stdout\n${r.stdout.slice(-2000)}\n--- stderr\n${r.stderr.slice(-4000)}`;
      assert.ok(!r.timedOut && r.seconds * 1000 < LIMIT_MS, `ended within ${LIMIT_MS / 1000} s\n${shown}`);
      assert.equal(r.status, k.exit, shown);
      assert.ok(r.stderr.includes(setup.names), `stderr names ${JSON.stringify(setup.names)}\n${shown}`);
      assert.match(r.stderr, k.message, shown);
      assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `no stack trace\n${shown}`);
      assert.doesNotMatch(r.stderr, /^triplex: (TypeError|RangeError|ReferenceError)|\bundefined\b|\[object Object\]/m, `a message, not a fault\n${shown}`);
      watched.forEach((w, j) => {
        const diff = changes(before[j], snapshot(w, w === dir ? out : undefined));
        assert.deepEqual(diff, [], `nothing written outside ${out}${w === dir ? '' : ` (earlier outputs in ${w} unchanged)`}\n${shown}`);
      });
    });
  });
});
