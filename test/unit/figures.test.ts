import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { interpolateRdBu, interpolateViridis } from 'd3-scale-chromatic';
import { launchChromium } from './helpers/browser';
import { parseNotebook, serializeNotebook, type OutputItem } from '../../src/notebook/nbformat';
import { hexOf, parseColour } from '../../src/protocol/colormap';
import { MIME, SVG_MIME, type CurvePayload, type GeneMapPayload, type MetricsPayload, type MimeBundle } from '../../src/protocol/outputs';
import { preprocess } from '../../src/runtime/data/preprocess';
import { curveSvg } from '../../src/runtime/figures/curveSvg';
import { geneMapSvg } from '../../src/runtime/figures/geneMapSvg';
import { metricsSvg } from '../../src/runtime/figures/metricsSvg';
import { niceTicks } from '../../src/runtime/figures/svg';
import { PNG_MIME, withPng } from '../../src/runtime/notebook/raster';
import { RICH_OUTPUT } from '../../src/runtime/notebook/rich';
import { geneMapOutput, metricsOutput, trainingCurveOutput } from '../../src/runtime/notebook/outputs';
import { openDatasetStore, writeDatasetStore } from '../../src/runtime/store/datasetStore';
import { writePredictions } from '../../src/runtime/train/cv';
import { sectionFrom } from './helpers/sections';
import { TORCH_PYTHON as PYTHON } from './helpers/torch';

/**
 * The static figures that gene maps, curves and metrics carry as image/svg+xml, for Jupyter and
 * GitHub: read back by an independent XML parser (Python's ElementTree), drawn by librsvg (through
 * sharp) and checked by pixel, saved in an .ipynb that nbformat validates.
 */

interface SvgElement { tag: string; attrs: Record<string, string>; text: string; group: string | null }

/** Every element of an SVG document as Python's ElementTree parses it (which refuses XML that is not well-formed). */
const PARSE = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
out = []
def walk(e, group):
    tag = e.tag.split('}')[-1]
    out.append({'tag': tag, 'attrs': dict(e.attrib), 'text': ''.join(e.itertext()) if tag in ('text', 'title') else '', 'group': group})
    for c in e:
        walk(c, e.get('aria-label', group) if tag == 'g' else group)
walk(root, None)
print(json.dumps(out))
`;
function parseSvg(svg: string): SvgElement[] {
  const r = spawnSync(PYTHON, ['-c', PARSE], { input: svg, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `the SVG is not well-formed XML:\n${r.stderr}`);
  return JSON.parse(r.stdout) as SvgElement[];
}
const circlesOf = (els: SvgElement[], group: string) => els.filter((e) => e.tag === 'circle' && e.group === group);

/** Pixels of an SVG as librsvg draws it (sharp's SVG input), or of a PNG. */
async function rasterise(svg: string | Buffer): Promise<{ at: (x: number, y: number) => number[]; width: number; height: number }> {
  const { data, info } = await sharp(typeof svg === 'string' ? Buffer.from(svg) : svg).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, at: (x, y) => [...data.subarray((Math.round(y) * info.width + Math.round(x)) * 3, (Math.round(y) * info.width + Math.round(x)) * 3 + 3)] };
}
const rgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const near = (a: number[], b: number[], tolerance = 3) => a.every((v, i) => Math.abs(v - b[i]) <= tolerance);

// Four spots on a 100 px grid; values chosen so that the colours fall on or halfway between the
// maps' control points, where they can be computed by hand.
const map: GeneMapPayload = {
  gene: 'ERBB2', section: 'A1 <&>', spotIds: ['a', 'b', 'c', 'd'],
  x: [0, 100, 0, 100], y: [0, 0, 100, 100],
  panels: [
    { title: 'ground truth', values: [0, 3, 4.5, 9] },
    { title: 'prediction', values: [9, 9, 9, NaN] },
    { title: 'error (prediction - truth)', values: [-2, 0, 1, 2], diverging: true },
  ],
  pcc: -0.5,
};

describe('notebook figures as SVG', () => {
  test('a gene map: one circle per spot per panel, in the colour maps\' colours (hand-computed)', () => {
    const els = parseSvg(geneMapSvg(map));
    // viridis over the shared range 0..9: the values sit at t = 0, 1/3, 1/2 and 1 of the map, the
    // ends being viridis' published first and last colours (d3-scale-chromatic, the maps' source).
    assert.deepEqual(circlesOf(els, 'ground truth').map((c) => c.attrs.fill), ['#440154', interpolateViridis(1 / 3), interpolateViridis(0.5), '#fde725']);
    // a missing value is grey, not a colour of the map
    assert.deepEqual(circlesOf(els, 'prediction').map((c) => c.attrs.fill), ['#fde725', '#fde725', '#fde725', '#d0d0d0']);
    // red-blue, symmetric about zero over -2..2, blue for under-prediction: -2, 0, 1, 2 sit at
    // RdBu's 1, 1/2, 1/4 and 0 (RdBu runs red to blue), its ends ColorBrewer's #053061 and #67001f.
    const rdBu = (t: number) => hexOf(parseColour(interpolateRdBu(t)));
    assert.deepEqual(circlesOf(els, 'error (prediction - truth)').map((c) => c.attrs.fill), ['#053061', rdBu(0.5), rdBu(0.25), '#67001f']);
    assert.equal(els.filter((e) => e.tag === 'circle').length, 12, 'no other circles');
    // y grows downwards as in the image, and each panel keeps the spots' square layout
    const [a, b, c] = circlesOf(els, 'ground truth').map((e) => [Number(e.attrs.cx), Number(e.attrs.cy)]);
    assert.ok(a[1] === b[1] && c[1] > a[1] && b[0] > a[0]);
    assert.equal(b[0] - a[0], c[1] - a[1]);
    const texts = els.filter((e) => e.tag === 'text').map((e) => e.text);
    assert.ok(texts.includes('ERBB2 on A1 <&> (PCC -0.500)'), 'the title with the PCC, escaped and read back');
    assert.equal(els.find((e) => e.tag === 'title')?.text, 'ERBB2 on A1 <&> (PCC -0.500)');
    // two colour bars (viridis 0..9, red-blue -2..2) with their values
    assert.deepEqual(els.filter((e) => e.tag === 'g' && e.attrs['aria-label']?.startsWith('colour bar')).map((e) => e.attrs['aria-label']), ['colour bar from 0.00 to 9.00', 'colour bar from -2.00 to 2.00']);
    for (const label of ['0', '2', '4', '6', '8', '-2', '-1', '1']) assert.ok(texts.includes(label), `colour bar value ${label}`);
    assert.ok(!els.some((e) => 'id' in e.attrs || e.tag === 'style' || e.tag === 'script'), 'no ids, styles or scripts: safe to inline twice on one page');
  });

  test('librsvg draws it: the spots\' centres have their colours, the background is white', async () => {
    const svg = geneMapSvg(map);
    const els = parseSvg(svg);
    const img = await rasterise(svg);
    assert.deepEqual([img.width, img.height], [Number(els[0].attrs.width), Number(els[0].attrs.height)]);
    for (const c of els.filter((e) => e.tag === 'circle')) {
      const seen = img.at(Number(c.attrs.cx), Number(c.attrs.cy));
      assert.ok(near(seen, rgb(c.attrs.fill)), `spot at ${c.attrs.cx},${c.attrs.cy}: drawn ${seen.join(',')}, expected ${c.attrs.fill}`);
    }
    assert.deepEqual(img.at(2, img.height - 2), [255, 255, 255]);
  });

  test('inlined into an HTML page as Jupyter and GitHub do, twice, Chromium draws each spot in its colour', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const second: GeneMapPayload = { ...map, panels: map.panels.map((p) => ({ ...p, values: [...p.values].reverse() })) };
      await page.setContent(`<!doctype html><html><head><meta charset="utf-8"></head><body style="margin:0;background:#1f1f1f">${geneMapSvg(map)}<br>${geneMapSvg(second)}</body></html>`);
      const spots = await page.$$eval('circle', (cs) => cs.map((c) => {
        const r = c.getBoundingClientRect();
        return { x: r.x + r.width / 2, y: r.y + r.height / 2, fill: c.getAttribute('fill') ?? '' };
      }));
      assert.equal(spots.length, 24, 'both figures\' circles are in the page');
      const shot = await sharp(await page.screenshot()).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      for (const s of spots) {
        const at = (Math.round(s.y) * shot.info.width + Math.round(s.x)) * 3;
        const seen = [...shot.data.subarray(at, at + 3)];
        assert.ok(near(seen, rgb(s.fill)), `spot at ${s.x},${s.y}: drawn ${seen.join(',')}, expected ${s.fill}`);
      }
      // the second figure's first truth spot has the first figure's last value (9: viridis' top)
      assert.equal(spots[12].fill, '#fde725');
    } finally {
      await browser.close();
    }
  });

  test('the PNG for Jupyter: drawn from the SVG, each spot its colour; bundles without SVG unchanged', async () => {
    const svg = geneMapSvg(map);
    const bundle = await withPng({ [MIME.geneMap]: map, [SVG_MIME]: svg, 'text/plain': 'ERBB2' });
    assert.deepEqual(Object.keys(bundle), [MIME.geneMap, SVG_MIME, PNG_MIME, 'text/plain']);
    const png = Buffer.from(String(bundle[PNG_MIME]), 'base64');
    const img = await rasterise(png);
    for (const c of parseSvg(svg).filter((e) => e.tag === 'circle')) {
      assert.ok(near(img.at(Number(c.attrs.cx), Number(c.attrs.cy)), rgb(c.attrs.fill), 6), `spot at ${c.attrs.cx},${c.attrs.cy} in the PNG`);
    }
    const plain = { [MIME.table]: { columns: [], rows: [], totalRows: 0 }, 'text/plain': '' };
    assert.equal(await withPng(plain), plain);
    const drawn = { [SVG_MIME]: svg, [PNG_MIME]: 'already' };
    assert.equal(await withPng(drawn), drawn);
  });

  test('a spot size that follows the spacing, on a section of 5,000 spots in a reasonable size', () => {
    const n = 5000;
    const side = Math.ceil(Math.sqrt(n));
    const x = Array.from({ length: n }, (_, i) => (i % side) * 138);
    const y = Array.from({ length: n }, (_, i) => Math.floor(i / side) * 138);
    const values = x.map((v, i) => Math.sin(v / 500) + i / n);
    const started = performance.now();
    const svg = geneMapSvg({ gene: 'G', section: 'S', spotIds: x.map(String), x, y, panels: [{ title: 'truth', values }, { title: 'prediction', values }, { title: 'error', values: values.map((v) => v / 10), diverging: true }] });
    const ms = performance.now() - started;
    const circles = parseSvg(svg).filter((e) => e.tag === 'circle');
    assert.equal(circles.length, 3 * n);
    // 71 spots across 280 px: neighbours 3.94 px apart, drawn 0.45 of that as radius
    assert.ok(circles.every((c) => Math.abs(Number(c.attrs.r) - 1.8) < 0.1), `radius ${circles[0].attrs.r}`);
    assert.ok(svg.length < 1_000_000, `${svg.length} bytes`);
    assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
  });

  test('nice ticks: steps of 1, 2 or 5 times a power of ten, inside the range', () => {
    for (const [lo, hi, ticks] of [
      [0, 9, [0, 2, 4, 6, 8]],
      [-2, 2, [-2, -1, 0, 1, 2]],
      [0.31, 0.74, [0.4, 0.5, 0.6, 0.7]],
      [1, 1, [1]],
    ] as const) {
      assert.deepEqual(niceTicks(lo, hi, 4).map((v) => Number(v.toPrecision(6))), ticks, `${lo}..${hi}`);
    }
  });

  test('training curves: a line per series on its axis, ticks on both axes, a legend', async () => {
    const p: CurvePayload = {
      title: 'fold 1',
      series: [
        { name: 'training loss', x: [1, 2, 3, 4], y: [1.0, 0.6, 0.4, 0.35], axis: 'loss' },
        { name: 'validation PCC', x: [2, 4], y: [0.2, 0.3], axis: 'metric' },
      ],
    };
    const svg = curveSvg(p);
    const els = parseSvg(svg);
    const lines = els.filter((e) => e.tag === 'polyline');
    assert.deepEqual(lines.map((l) => [l.group, l.attrs.points.split(' ').length]), [['training loss', 4], ['validation PCC', 2]]);
    const texts = els.filter((e) => e.tag === 'text').map((e) => e.text);
    for (const t of ['fold 1', 'epoch', 'loss', 'PCC', '1', '2', '3', '4', 'training loss (left axis)', 'validation PCC (right axis)']) assert.ok(texts.includes(t), `label ${t}`);
    // SVG's y grows downwards: a falling loss has growing y
    const ys = lines[0].attrs.points.split(' ').map((pt) => Number(pt.split(',')[1]));
    assert.ok(ys.every((v, i) => i === 0 || v > ys[i - 1]), 'a falling loss is drawn going down');
    // both series end at the last epoch: the same x on the page
    const lastX = (l: SvgElement) => Number(l.attrs.points.split(' ').at(-1)?.split(',')[0]);
    assert.equal(lastX(lines[0]), lastX(lines[1]));
    const img = await rasterise(svg);
    const [x0, y0] = lines[1].attrs.points.split(' ')[0].split(',').map(Number);
    assert.ok(near(img.at(x0, y0), rgb(lines[1].attrs.stroke), 40), 'the PCC line is drawn in its colour');
  });

  test('metrics: every model and value, the best of each column in bold', () => {
    const p: MetricsPayload = {
      title: 'cv', columns: ['MSE', 'PCC(M)'], better: ['lower', 'higher'],
      rows: [{ model: 'TRIPLEX', values: [{ mean: 0.2, std: 0.01 }, { mean: 0.31, std: 0.02 }] }, { model: 'ST-Net <x>', values: [{ mean: 0.25, std: 0.02 }, { mean: NaN, std: NaN }] }],
    };
    const els = parseSvg(metricsSvg(p)).filter((e) => e.tag === 'text');
    const bold = els.filter((e) => e.attrs['font-weight'] === 'bold').map((e) => e.text);
    assert.deepEqual(bold, ['cv', 'model', 'MSE ↓', 'PCC(M) ↑', '0.200 ± 0.010', '0.310 ± 0.020']);
    assert.ok(els.some((e) => e.text === 'ST-Net <x>') && els.some((e) => e.text === '– ± –'));
  });
});

/** A bundle as the extension holds it (images but SVG as their bytes, JSON types as JSON, the rest as text): see the controller's toItem. */
const itemsOf = (bundle: MimeBundle): OutputItem[] => Object.entries(bundle).map(([mime, v]) => ({
  mime,
  data: mime === PNG_MIME ? Buffer.from(String(v), 'base64') : new TextEncoder().encode(mime.endsWith('json') ? JSON.stringify(v) : String(v)),
}));

const nbformatMissing = spawnSync(PYTHON, ['-c', 'import json, nbformat'], { encoding: 'utf8' }).status !== 0;

describe('figures in a saved notebook', { skip: nbformatMissing ? 'needs Debian\'s python3-nbformat (scripts/ensure-test-deps.sh installs it when run as root)' : false }, () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-figures-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('gene map, curve and metrics outputs carry their SVG and PNG into the .ipynb; nbformat validates it and it reads back the same', async () => {
    const section = sectionFrom('A1', ['G1', 'G2', 'G3'], [[1, 2, 3], [4, 0, 6], [2, 2, 2], [0, 5, 1], [3, 1, 0], [6, 2, 4]], [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
    const storeDir = path.join(dir, 'store');
    await writeDatasetStore(storeDir, { format: 'her2st', path: '/data/x' }, preprocess({ format: 'her2st', source: '/data/x', sections: [section], problems: [] }, { genes: 3, minSpotFraction: 0, smooth: false }));
    const store = openDatasetStore(storeDir);
    const rows = store.rowsOf('A1');
    const spotIds = rows.map((r) => String(store.spots.getChild('spot_id')?.get(r)));
    const G = store.genes.length;
    const predictions = path.join(dir, 'predictions.arrow');
    await writePredictions(predictions, [{ id: 'A1', n: rows.length, spotIds }], new Map([['A1', Float32Array.from(store.values().slice(0, rows.length * G), (v, i) => v * 0.5 + (i % 3))]]), store.genes, {});
    const gene = store.genes[0];
    const outputs = [
      geneMapOutput(store, { section: 'A1', gene, predictions }),
      trainingCurveOutput([{ epoch: 0, loss: 1, validationPcc: 0.1 }, { epoch: 1, loss: 0.5, validationPcc: 0.2 }] as never, 'fold 1'),
      metricsOutput([{ model: 'TRIPLEX', summary: { mse: { mean: 0.2, std: 0.1 }, mae: { mean: 0.3, std: 0.1 }, pccM: { mean: 0.4, std: 0.1 }, pccH: { mean: 0.5, std: 0.1 } } as never }]),
    ].map((o) => o[RICH_OUTPUT]);
    // as the kernel sends them: with their PNG
    const sent = await Promise.all(outputs.map(withPng));
    for (const bundle of outputs) assert.equal(Object.keys(bundle)[0].startsWith('application/vnd.triplex.'), true, 'the vendor type stays first');
    const mapBundle = outputs[0];
    const payload = mapBundle[MIME.geneMap] as GeneMapPayload;
    const svg = String(mapBundle[SVG_MIME]);
    const els = parseSvg(svg);
    for (const panel of payload.panels) assert.equal(circlesOf(els, panel.title).length, rows.length, panel.title);
    assert.ok(els.some((e) => e.tag === 'text' && e.text === `${gene} on A1 (PCC ${payload.pcc?.toFixed(3)})`));

    const file = path.join(dir, 'figures.ipynb');
    const bytes = serializeNotebook({ metadata: {}, cells: [{ kind: 'code', source: 'figures', language: 'typescript', outputs: sent.map((b) => ({ items: itemsOf(b) })) }] });
    fs.writeFileSync(file, bytes);
    const check = spawnSync(PYTHON, ['-c', [
      'import json, sys, nbformat',
      'nb = nbformat.read(sys.argv[1], as_version=4)',
      'nbformat.validate(nb)',
      'print(json.dumps([[o["data"]["image/svg+xml"], o["data"]["image/png"]] for o in nb.cells[0].outputs]))',
    ].join('\n'), file], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(check.status, 0, `nbformat refused the notebook:\n${check.stderr}`);
    assert.deepEqual(JSON.parse(check.stdout), sent.map((b) => [b[SVG_MIME], b[PNG_MIME]]), 'Jupyter reads the SVGs and PNGs as written');

    const back = parseNotebook(bytes, file);
    const svgBack = back.cells[0].outputs.map((o) => new TextDecoder().decode(o.items.find((i) => i.mime === SVG_MIME)?.data));
    assert.deepEqual(svgBack, outputs.map((b) => b[SVG_MIME]));
    const pngBack = back.cells[0].outputs.map((o) => Buffer.from(o.items.find((i) => i.mime === PNG_MIME)?.data ?? []).toString('base64'));
    assert.deepEqual(pngBack, sent.map((b) => b[PNG_MIME]));
    assert.equal(new TextDecoder().decode(serializeNotebook(back)), new TextDecoder().decode(bytes), 'a second save writes the same bytes');
  });
});
