import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { MIME, SVG_MIME, type CurvePayload, type GeneMapPayload, type MetricsPayload } from '../../protocol/outputs';
import { curveSvg } from '../figures/curveSvg';
import { geneMapSvg } from '../figures/geneMapSvg';
import { metricsSvg } from '../figures/metricsSvg';
import { richOutput, type RichOutput } from './rich';
import { formatMetricsTable, type Summary } from '../eval/metrics';
import { NEIGHBOR_GRID, neighborView, SPOT_SIZE, spotCrop } from '../image/crops';
import { openSlideImage } from '../image/slideImage';
import { stringColumn } from '../store/arrow';
import type { DatasetStore } from '../store/datasetStore';
import type { EpochRecord } from '../train/trainer';
import { sectionPredictions } from '../store/predictions';
import { pearson } from '../eval/pearson';

/** The rich outputs that read stores, runs and images (the light ones are in ./rich). */

export interface GeneMapOptions {
  section: string;
  gene: string;
  /** A `predictions.arrow` of `triplex cv`, `train-fold` or `predict`. */
  predictions?: string;
}

/**
 * One gene over one section's spots: the ground truth (when the store has counts), the
 * prediction (when given), and their difference, side by side, with the PCC across spots
 * (the paper's Figure 2).
 */
export function geneMapOutput(store: DatasetStore, options: GeneMapOptions): RichOutput {
  const { section, gene } = options;
  const rows = store.rowsOf(section);
  if (rows.length === 0) throw new Error(`${store.dir}: no section '${section}'; it has ${store.manifest.sections.map((s) => s.id).join(', ')}`);
  const spotIds = stringColumn(store.spots, 'spot_id');
  const px = store.spots.getChild('pixel_x');
  const py = store.spots.getChild('pixel_y');
  const panels: GeneMapPayload['panels'] = [];
  let truth: number[] | undefined;
  if (store.hasCounts) {
    const g = store.genes.indexOf(gene);
    if (g < 0) throw new Error(`${store.dir}: no gene '${gene}' among the store's ${store.genes.length} genes`);
    const values = store.values();
    const G = store.genes.length;
    truth = rows.map((r) => values[r * G + g]);
    panels.push({ title: 'ground truth', values: truth });
  }
  let pcc: number | undefined;
  if (options.predictions) {
    const p = sectionPredictions(options.predictions, section, rows.map((r) => spotIds[r]));
    const g = p.genes.indexOf(gene);
    if (g < 0) throw new Error(`${options.predictions}: no gene '${gene}' among its ${p.genes.length} predicted genes`);
    const G = p.genes.length;
    const pred = rows.map((_, k) => p.values[k * G + g]);
    panels.push({ title: 'prediction', values: pred });
    if (truth) {
      const t = truth;
      pcc = pearson(t, pred);
      panels.push({ title: 'error (prediction - truth)', values: pred.map((v, i) => v - t[i]), diverging: true });
    }
  }
  if (panels.length === 0) throw new Error(`${store.dir} has no counts: pass the predictions to map`);
  const payload: GeneMapPayload = {
    gene, section,
    spotIds: rows.map((r) => spotIds[r]),
    x: rows.map((r) => Number(px?.get(r))),
    y: rows.map((r) => Number(py?.get(r))),
    panels,
    pcc: pcc !== undefined && Number.isFinite(pcc) ? pcc : undefined,
    source: { store: path.resolve(store.dir), predictions: options.predictions ? path.resolve(options.predictions) : undefined },
  };
  const text = `${gene} on ${section}: ${rows.length} spots, ${panels.map((p) => p.title).join(' | ')}${payload.pcc !== undefined ? `, PCC ${payload.pcc.toFixed(3)}` : ''}`;
  return richOutput({ [MIME.geneMap]: payload, [SVG_MIME]: geneMapSvg(payload), 'text/plain': text });
}

/** A run's training loss and validation PCC per epoch (its history.json, or the records). */
export function trainingCurveOutput(history: readonly EpochRecord[] | string, title = 'training'): RichOutput {
  const records = typeof history === 'string' ? JSON.parse(fs.readFileSync(history, 'utf8')) as EpochRecord[] : history;
  const x = records.map((r) => r.epoch + 1);
  const series: CurvePayload['series'] = [{ name: 'training loss', x, y: records.map((r) => r.loss), axis: 'loss' }];
  const valid = records.filter((r) => r.validationPcc !== null);
  if (valid.length) series.push({ name: 'validation PCC', x: valid.map((r) => r.epoch + 1), y: valid.map((r) => r.validationPcc as number), axis: 'metric' });
  const last = records.at(-1);
  const text = `${title}: ${records.length} epochs${last ? `, last loss ${last.loss.toFixed(4)}` : ''}${valid.length ? `, best validation PCC ${Math.max(...valid.map((r) => r.validationPcc as number)).toFixed(3)}` : ''}`;
  const payload: CurvePayload = { title, series };
  return richOutput({ [MIME.curve]: payload, [SVG_MIME]: curveSvg(payload), 'text/plain': text });
}

/** Models x (MSE, MAE, PCC(M), PCC(H)), mean +- std over folds, as in the paper's tables. */
export function metricsOutput(rows: readonly { model: string; summary: Summary }[], title = 'cross-validation'): RichOutput {
  const payload: MetricsPayload = {
    title,
    columns: ['MSE', 'MAE', 'PCC(M)', 'PCC(H)'],
    better: ['lower', 'lower', 'higher', 'higher'],
    rows: rows.map((r) => ({ model: r.model, values: [r.summary.mse, r.summary.mae, r.summary.pccM, r.summary.pccH] })),
  };
  return richOutput({ [MIME.metrics]: payload, [SVG_MIME]: metricsSvg(payload), 'text/plain': formatMetricsTable(rows) });
}

/** A PNG or JPEG (bytes or a file), or raw RGB pixels with their size, as an image output. */
export async function imageOutput(image: Uint8Array | string | { rgb: Uint8Array; width: number; height: number }, alt = 'image'): Promise<RichOutput> {
  let png: Buffer;
  if (typeof image === 'string') png = await sharp(image).png().toBuffer();
  else if (image instanceof Uint8Array) png = await sharp(image).png().toBuffer();
  else png = await sharp(Buffer.from(image.rgb), { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
  return richOutput({ 'image/png': png.toString('base64'), 'text/plain': `[${alt}]` });
}

/** A spot's 224 px crop and 1120 px neighbour view (masked tiles hatched) as PNG files' bytes. */
export async function spotImages(store: DatasetStore, spotId: string, section?: string): Promise<{ section: string; crop: Buffer; neighbors: Buffer; maskedTiles: number }> {
  const ids = stringColumn(store.spots, 'spot_id');
  const sections = stringColumn(store.spots, 'section');
  const row = ids.findIndex((id, i) => id === spotId && (section === undefined || sections[i] === section));
  if (row < 0) throw new Error(`${store.dir}: no spot '${spotId}'${section ? ` in section '${section}'` : ''}`);
  const meta = store.manifest.sections.find((s) => s.id === sections[row]);
  if (!meta?.image) throw new Error(`${store.dir}: section '${sections[row]}' has no image`);
  const x = Number(store.spots.getChild('pixel_x')?.get(row));
  const y = Number(store.spots.getChild('pixel_y')?.get(row));
  const img = await openSlideImage(meta.image.path);
  try {
    const crop = await spotCrop(img, x, y);
    const { tiles, mask } = await neighborView(img, x, y);
    const side = NEIGHBOR_GRID * SPOT_SIZE;
    const view = new Uint8Array(side * side * 3);
    const tileBytes = SPOT_SIZE * SPOT_SIZE * 3;
    for (let t = 0; t < NEIGHBOR_GRID * NEIGHBOR_GRID; t++) {
      const tr = Math.floor(t / NEIGHBOR_GRID);
      const tc = t % NEIGHBOR_GRID;
      for (let r = 0; r < SPOT_SIZE; r++) {
        for (let c = 0; c < SPOT_SIZE; c++) {
          const src = t * tileBytes + (r * SPOT_SIZE + c) * 3;
          const dst = ((tr * SPOT_SIZE + r) * side + tc * SPOT_SIZE + c) * 3;
          const hatch = !mask[t] && (r + c) % 16 < 2;
          const edge = r === 0 || c === 0; // tile grid lines
          for (let k = 0; k < 3; k++) view[dst + k] = edge ? 255 : hatch ? 96 : mask[t] ? tiles[src + k] : 160;
        }
      }
    }
    const png = (rgb: Uint8Array, size: number) => sharp(Buffer.from(rgb), { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
    return { section: sections[row], crop: await png(crop, SPOT_SIZE), neighbors: await png(view, side), maskedTiles: mask.reduce((n, m) => n + (m ? 0 : 1), 0) };
  } finally {
    img.close();
  }
}

/**
 * A spot as the model sees it: its 224 px crop, and its 1120 px neighbour view cut into 25 tiles,
 * with the tiles that fall outside the image (masked out of attention) hatched in grey.
 */
export async function spotOutput(store: DatasetStore, spotId: string, section?: string): Promise<RichOutput[]> {
  const { crop, neighbors, maskedTiles } = await spotImages(store, spotId, section);
  return [
    await imageOutput(crop, `spot ${spotId}: 224 px crop`),
    await imageOutput(neighbors, `spot ${spotId}: 1120 px neighbour view, ${maskedTiles} of 25 tiles masked`),
  ];
}
