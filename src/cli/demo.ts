import * as path from 'node:path';
import { Command } from 'commander';
import { initCompute } from '../runtime/compute/backend';
import { readDataset } from '../runtime/data/read';
import { preprocess } from '../runtime/data/preprocess';
import { fitRidge, predictRidge } from '../runtime/eval/ridgeProbe';
import { formatMetricsTable, slideMetrics, type Summary } from '../runtime/eval/metrics';
import { extractFeatures } from '../runtime/features/extract';
import { readArrowFile, stringColumn, vectorColumn } from '../runtime/store/arrow';
import { openDatasetStore, writeDatasetStore, type DatasetStore } from '../runtime/store/datasetStore';
import { pathInside } from '../runtime/store/identifiers';
import { isCurrentSyntheticDataset, writeSyntheticDataset } from '../runtime/synthetic/generator';
import { ALL_VIEWS, crossValidate } from '../runtime/train/cv';
import { selectEngine } from '../runtime/engine/choice';
import { loadTrainingData } from '../runtime/train/data';
import { runBenchmark } from '../runtime/eval/benchmark';
import { BENCHMARK_MODELS, modelLabel } from '../runtime/eval/table1';
import { computeOptions, wholeNumber } from './options';

/**
 * The main job on the embedded data, end to end: generate the synthetic dataset, read it back,
 * preprocess it into an Arrow store, extract frozen features, measure how much expression each
 * view's features carry (a leave-one-patient-out linear probe per gene family), then
 * cross-validate TRIPLEX and its single-view models (TEM, NEM, GEM) with the target encoder frozen,
 * and print the paper's metrics per model.
 */
export function demoCommand(): Command {
  return new Command('demo')
    .description('run the end-to-end demonstration on the embedded synthetic dataset')
    .option('--dir <dir>', 'working folder (kept: a second run reuses the dataset and features)', '.demo')
    .option('--weights <checkpoint>', 'ResNet18 weights (.pth, .ckpt or .safetensors), e.g. the histology-pretrained tenpercent_resnet18.ckpt')
    .option('--models <list>', 'model variants to cross-validate', 'triplex,tem,nem,gem')
    .option('--epochs <n>', 'maximum epochs per fold', wholeNumber(1), DEMO_TRAINING.epochs)
    .option('--benchmark', "instead of step 5, the paper's comparison: TRIPLEX, TEM, NEM, GEM and ST-Net, HisToGene, Hist2ST, EGN, BLEEP under one protocol (Table 1)")
    .action(async (opts: { dir: string; weights?: string; models: string; epochs: number; benchmark?: boolean }, cmd: Command) => {
      const started = performance.now();
      const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
      const report = await initCompute(computeOptions(cmd));
      console.log(`compute: ${report.backend} ${report.version}, ${report.threads} thread(s)${report.fallbackReason ? ` (${report.fallbackReason})` : ''}`);
      // Which engine trains, or why TF.js does (onnxruntime missing or failing to load): said before anything runs.
      console.log(`engine: ${(await selectEngine()).reason}`);

      const dataDir = path.join(opts.dir, 'synthetic');
      const storeDir = path.join(opts.dir, 'store');
      if (!isCurrentSyntheticDataset(dataDir)) {
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

      if (opts.benchmark) {
        await benchmarkStep(storeDir, path.basename(summary.dir), path.join(opts.dir, 'runs', 'benchmark'), opts.epochs, elapsed);
        return;
      }
      const models = opts.models.split(',').map((m) => m.trim()).filter(Boolean);
      const t = DEMO_TRAINING;
      console.log(`5. cross-validation, leave one patient out, target encoder frozen: ${models.join(', ')} (preset demo, up to ${opts.epochs} epochs, ` +
        `batch ${t.batchSize}, Adam lr ${t.learningRate}, inputs standardised, early stopping on a held-out training patient)`);
      const data = loadTrainingData(storeDir, { views: ALL_VIEWS, features: path.basename(summary.dir) });
      const rows: { model: string; summary: Summary }[] = [];
      for (const model of models) {
        const t0 = performance.now();
        const result = await crossValidate({
          storeDir, outDir: path.join(opts.dir, 'runs', model), variant: model, preset: 'demo', folds: 'lopo', mode: 'frozen', data,
          epochs: opts.epochs, patience: t.patience, batchSize: t.batchSize, learningRate: t.learningRate, seed: 0,
          init: t.init, standardizeInputs: t.standardizeInputs,
        });
        rows.push({ model, summary: result.evaluation.summary });
        const epochs = result.folds.map((f) => f.train.epochsRun).join('/');
        console.log(`   ${model}: PCC(M) ${result.evaluation.summary.pccM.mean.toFixed(3)}, ${epochs} epochs per fold, ${((performance.now() - t0) / 1000).toFixed(0)} s [${elapsed()}]`);
      }
      console.log('');
      console.log(formatMetricsTable(rows));
      const triplex = rows.find((r) => r.model === 'triplex');
      const single = rows.filter((r) => ['tem', 'nem', 'gem'].includes(r.model));
      if (triplex && single.length) {
        const behind = single.filter((r) => !(triplex.summary.pccM.mean > r.summary.pccM.mean));
        console.log(behind.length === 0
          ? `TRIPLEX is ahead of ${single.map((r) => r.model.toUpperCase()).join(', ')} on PCC(M).`
          : `TRIPLEX is not ahead of ${behind.map((r) => r.model.toUpperCase()).join(', ')} on PCC(M) in this run.`);
      }
      console.log(`done in ${elapsed()}; runs, checkpoints, predictions and metrics in ${path.join(opts.dir, 'runs')}`);
    });
}

/**
 * The paper's Table 1 on the embedded data: all nine models under the demo's training settings,
 * one protocol for all (folds, genes, validation patients, optimiser, epochs, seeds, and every
 * output bias started at the training mean), each model's time printed.
 */
async function benchmarkStep(storeDir: string, features: string, outDir: string, epochs: number, elapsed: () => string): Promise<void> {
  const t = DEMO_TRAINING;
  console.log(`5. the paper's comparison, leave one patient out: ${BENCHMARK_MODELS.join(', ')} (demo sizes, up to ${epochs} epochs, batch ${t.batchSize}, ` +
    `Adam lr ${t.learningRate}, early stopping on a held-out training patient)`);
  const result = await runBenchmark({
    storeDir, outDir, features, preset: 'demo', folds: 'lopo', mode: 'frozen', epochs, patience: t.patience, batchSize: t.batchSize, learningRate: t.learningRate,
    seed: 0, init: t.init, standardizeInputs: t.standardizeInputs,
    log: (m) => { if (!/ fold \d+: /.test(m)) console.log(`   ${m}`); },
  });
  console.log('');
  console.log(result.markdown);
  for (const r of result.rows) console.log(`   ${modelLabel(r.model)}: ${r.seconds.toFixed(0)} s`);
  const ranked = [...result.rows].filter((r) => Number.isFinite(r.values[2].mean)).sort((a, b) => b.values[2].mean - a.values[2].mean);
  console.log(ranked[0]?.model === 'triplex' ? 'TRIPLEX is first on PCC(M).' : `TRIPLEX is not first on PCC(M) in this run (${ranked.map((r) => modelLabel(r.model)).join(' > ')}).`);
  console.log(`done in ${elapsed()}; Table 1 and the runs in ${outDir}`);
}

/**
 * Training settings of the demo, chosen for minutes on two cores rather than the paper's hours:
 * a larger learning rate and smaller batches than the paper's 1e-4 and 128, a few epochs, the
 * heads' biases started at the training mean, and the frozen inputs standardised per channel
 * (the demo's encoder is randomly initialised, and its features vary little from spot to spot
 * against their level; with them raw, the transformers barely learn in a few epochs).
 */
export const DEMO_TRAINING = { epochs: 5, patience: 2, batchSize: 32, learningRate: 5e-4, init: 'mean-bias', standardizeInputs: true } as const;

/** Features of every spot in store order: own crop, mean of the 25 neighbour tiles. */
function loadFeatures(store: DatasetStore, dir: string): { own: Float32Array; niche: Float32Array; width: number } {
  const ownParts: Float32Array[] = [];
  const nicheParts: Float32Array[] = [];
  let width = 0;
  for (const s of store.manifest.sections) {
    const t = readArrowFile(pathInside(dir, `${s.id}.arrow`));
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
