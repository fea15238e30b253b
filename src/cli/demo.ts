import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
import { initCompute } from '../runtime/compute/backend';
import { readDataset } from '../runtime/data/read';
import { preprocess } from '../runtime/data/preprocess';
import { fitRidge, predictRidge } from '../runtime/eval/ridgeProbe';
import { slideMetrics } from '../runtime/eval/metrics';
import { extractFeatures } from '../runtime/features/extract';
import { cropSpots, toNormalizedFloat } from '../runtime/image/crops';
import { openSlideImage } from '../runtime/image/slideImage';
import { createResNet18 } from '../runtime/model/resnet18';
import { readArrowFile, stringColumn, vectorColumn } from '../runtime/store/arrow';
import { openDatasetStore, writeDatasetStore, type DatasetStore } from '../runtime/store/datasetStore';
import { writeSyntheticDataset } from '../runtime/synthetic/generator';
import { loadStateDict } from '../runtime/weights';
import { computeOptions } from './options';

/**
 * The main job on the embedded data, end to end: generate the synthetic dataset, read it back,
 * preprocess it into an Arrow store, extract frozen features, measure how much expression each
 * view's features carry (a leave-one-patient-out linear probe per gene family), and fine-tune the
 * ResNet18 trunk on spot crops. It grows into the full TRIPLEX cross-validation.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the end-to-end demonstration on the embedded synthetic dataset')
    .option('--dir <dir>', 'working folder (kept: a second run reuses the dataset and features)', '.demo')
    .option('--weights <checkpoint>', 'ResNet18 weights (.pth, .ckpt or .safetensors), e.g. the histology-pretrained tenpercent_resnet18.ckpt')
    .option('--steps <n>', 'fine-tuning steps of the trunk', (v) => Number.parseInt(v, 10), 4)
    .action(async (opts: { dir: string; weights?: string; steps: number }, cmd: Command) => {
      const started = performance.now();
      const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
      const report = await initCompute(computeOptions(cmd));
      console.log(`compute: ${report.backend} ${report.version}, ${report.threads} thread(s)${report.fallbackReason ? ` (${report.fallbackReason})` : ''}`);

      const dataDir = path.join(opts.dir, 'synthetic');
      const storeDir = path.join(opts.dir, 'store');
      if (!fs.existsSync(path.join(dataDir, 'README.md'))) {
        const s = await writeSyntheticDataset(dataDir);
        console.log(`1. synthetic dataset: ${s.sections.length} sections of ${s.genes} genes from ${new Set(s.sections.map((x) => x.patient)).size} patients -> ${dataDir} [${elapsed()}]`);
      } else {
        console.log(`1. synthetic dataset: reusing ${dataDir}`);
      }
      const ds = await readDataset(dataDir);
      const pre = preprocess(ds);
      await writeDatasetStore(storeDir, { format: ds.format, path: dataDir }, pre);
      const spots = ds.sections.reduce((n, s) => n + s.spots.length, 0);
      console.log(`2. read back as ${ds.format} and preprocessed: ${spots} spots, ${pre.record.genes.length} genes (${pre.record.normalisation.transform}, smoothed) -> ${storeDir} [${elapsed()}]`);

      const summary = await extractFeatures(storeDir, { encoder: 'resnet18', weights: opts.weights });
      const cached = summary.sections.filter((s) => s.status === 'cached').length;
      const tiles = summary.sections.reduce((n, s) => n + s.tilesEncoded, 0);
      console.log(`3. frozen features on ${summary.encoder.engine}: ${summary.sections.length} sections (${cached} cached), ${tiles} tiles encoded -> ${summary.dir} [${elapsed()}]`);

      const store = openDatasetStore(storeDir);
      console.log('4. how much expression each view carries: leave-one-patient-out ridge probe, mean PCC over genes');
      probeTable(store, summary.dir);
      console.log(`   [${elapsed()}]`);

      await fineTune(store, opts.weights, opts.steps);
      console.log(`done in ${elapsed()}. Next: TRIPLEX itself (target, neighbour and global encoders fused), cross-validated.`);
    });
}

/** Features of every spot in store order: own crop, mean of the 25 neighbour tiles. */
function loadFeatures(store: DatasetStore, dir: string): { own: Float32Array; niche: Float32Array; width: number } {
  const ownParts: Float32Array[] = [];
  const nicheParts: Float32Array[] = [];
  let width = 0;
  for (const s of store.manifest.sections) {
    const t = readArrowFile(path.join(dir, `${s.id}.arrow`));
    const g = vectorColumn(t, 'global');
    width = g.width;
    ownParts.push(g.values);
    const nb = vectorColumn(t, 'neighbors').values;
    const niche = new Float32Array(t.numRows * width);
    for (let i = 0; i < t.numRows; i++) for (let k = 0; k < 25; k++) for (let c = 0; c < width; c++) niche[i * width + c] += nb[(i * 25 + k) * width + c] / 25;
    nicheParts.push(niche);
  }
  const cat = (parts: Float32Array[]) => {
    const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  return { own: cat(ownParts), niche: cat(nicheParts), width };
}

function probeTable(store: DatasetStore, dir: string): void {
  const { own, niche, width } = loadFeatures(store, dir);
  const n = store.spots.numRows;
  const slideMean = new Float32Array(n * width); // the slide's mean own-crop feature: a crude global view
  for (const s of store.manifest.sections) {
    const rows = store.rowsOf(s.id);
    const m = new Float32Array(width);
    for (const r of rows) for (let c = 0; c < width; c++) m[c] += own[r * width + c] / rows.length;
    for (const r of rows) slideMean.set(m, r * width);
  }
  const join = (...parts: Float32Array[]) => {
    const d = parts.length * width;
    const out = new Float32Array(n * d);
    for (let i = 0; i < n; i++) parts.forEach((p, k) => out.set(p.subarray(i * width, (i + 1) * width), i * d + k * width));
    return out;
  };
  const views: [string, Float32Array, number][] = [
    ['own crop', own, width],
    ['neighbourhood', niche, width],
    ['own + neighbourhood + slide', join(own, niche, slideMean), 3 * width],
  ];
  const genes = store.genes;
  const G = genes.length;
  const Y = store.values();
  const patients = stringColumn(store.spots, 'patient');
  const sections = stringColumn(store.spots, 'section');
  const families = ['TGT', 'NCH', 'SLD', 'MIX'];
  const header = ['features', ...families.map((f) => `${f} genes`), 'all genes'];
  const rows: string[][] = [];
  for (const [name, X, d] of views) {
    const pcc = new Map<string, number[]>();
    for (const test of [...new Set(patients)]) {
      const train = patients.flatMap((p, i) => (p === test ? [] : [i]));
      const model = fitRidge(pick(X, train, d), pick(Y, train, G), train.length, d, G, 10);
      for (const section of new Set(sections.filter((_, i) => patients[i] === test))) {
        const rowsOf = sections.flatMap((s, i) => (s === section ? [i] : []));
        const P = predictRidge(model, pick(X, rowsOf, d), rowsOf.length);
        const { pccPerGene } = slideMetrics(P, pick(Y, rowsOf, G), rowsOf.length, genes);
        genes.forEach((g, j) => {
          if (Number.isFinite(pccPerGene[j])) pcc.set(g, [...(pcc.get(g) ?? []), pccPerGene[j]]);
        });
      }
    }
    const meanOf = (filter: (g: string) => boolean) => {
      const v = [...pcc].filter(([g]) => filter(g)).map(([, rs]) => rs.reduce((a, b) => a + b, 0) / rs.length);
      return v.length ? (v.reduce((a, b) => a + b, 0) / v.length).toFixed(3) : '-';
    };
    rows.push([name, ...families.map((f) => meanOf((g) => g.startsWith(f))), meanOf(() => true)]);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => '   ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

function pick(X: Float32Array, rows: number[], d: number): Float32Array {
  const out = new Float32Array(rows.length * d);
  rows.forEach((r, i) => out.set(X.subarray(r * d, (r + 1) * d), i * d));
  return out;
}

/** A few steps of fine-tuning the whole trunk on spot crops, as the target encoder is trained. */
async function fineTune(store: DatasetStore, weights: string | undefined, steps: number): Promise<void> {
  const section = store.manifest.sections[0];
  const rows = store.rowsOf(section.id).slice(0, 8);
  const xs = store.spots.getChild('pixel_x')?.toArray() as Float64Array;
  const ys = store.spots.getChild('pixel_y')?.toArray() as Float64Array;
  const img = await openSlideImage(section.image?.path as string);
  const crops = await cropSpots(img, rows.map((r) => ({ x: xs[r], y: ys[r] })), { target: true, neighbor: false });
  img.close();
  const G = store.genes.length;
  const values = store.values();
  const net = createResNet18({ seed: 0 });
  if (weights) net.loadStateDict(await loadStateDict(weights), weights);
  const x = tf.tensor4d(toNormalizedFloat(crops.target as Uint8Array, rows.length, 224), [rows.length, 224, 224, 3]);
  const y = tf.tensor2d(pick(values, rows, G), [rows.length, G]);
  const head = tf.variable(tf.zeros([512, G]));
  const bias = tf.variable(tf.mean(y, 0));
  const optimizer = tf.train.adam(1e-3);
  const vars = [...net.trainableVariables, head, bias];
  console.log(`5. fine-tuning the whole ResNet18 on ${rows.length} spot crops of ${section.id} (batch ${rows.length}, Adam, ${G} genes):`);
  const t = performance.now();
  for (let step = 1; step <= steps; step++) {
    const loss = optimizer.minimize(() => tf.losses.meanSquaredError(y, tf.add(tf.matMul(net.pooled(x, 'training'), head), bias)), true, vars);
    const value = (await (loss as tf.Scalar).data())[0];
    loss?.dispose();
    const seconds = (performance.now() - t) / 1000;
    console.log(`   step ${step}/${steps}  loss ${value.toFixed(4)}  ${((step * rows.length) / seconds).toFixed(2)} images/s`);
  }
  tf.dispose([x, y, head, bias]);
  optimizer.dispose();
  net.dispose();
}
