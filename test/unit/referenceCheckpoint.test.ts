import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initCompute } from '../../src/runtime/compute/backend';
import { extractFeatures } from '../../src/runtime/features/extract';
import { PRESETS, type PresetName } from '../../src/runtime/models/triplexConfig';
import { readPredictions } from '../../src/runtime/store/predictions';
import { loadTrainingData, type TrainingData } from '../../src/runtime/train/data';
import { readGeneListFile } from '../../src/runtime/data/geneList';
import { inferReferenceModel, loadModelCheckpoint } from '../../src/runtime/train/referenceCheckpoint';
import type { StateDict } from '../../src/runtime/weights/stateDict';
import { repoRoot } from './helpers/paths';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { TORCH_PYTHON, torchSkip } from './helpers/torch';

/**
 * Checkpoints of the authors' TRIPLEX code (PyTorch Lightning .ckpt, their key names): written by
 * scripts/fixtures/write_reference_ckpt.py from our PyTorch reference model, together with our own
 * checkpoint of the same weights, for a small synthetic store with real images and features.
 */

const GENES = 30;

describe("checkpoints of the authors' code", { skip: torchSkip }, () => {
  let tmp = '';
  let store = '';
  let fixtures = '';
  let data: TrainingData;
  const cli = (args: string[]) => spawnSync(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { encoding: 'utf8', env: { ...process.env, TRIPLEX_BACKEND: 'wasm' } });
  const fixture = (name: string) => path.join(fixtures, name);

  before(async () => {
    await initCompute({});
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-refckpt-'));
    store = path.join(tmp, 'store');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 1, sectionsPerPatient: 1, gridSize: 4, genes: 60 }, GENES);
    await extractFeatures(store, { encoder: 'resnet18' });
    data = loadTrainingData(store, { views: ['neighbor', 'global'] });
    fixtures = path.join(tmp, 'fixtures');
    const info = path.join(tmp, 'info.json');
    fs.writeFileSync(info, JSON.stringify({ genes: data.genes, featuresDir: `features/${path.basename(data.featuresDir)}` }));
    const r = spawnSync(TORCH_PYTHON, [path.join(repoRoot(), 'scripts', 'fixtures', 'write_reference_ckpt.py'), fixtures, info], { encoding: 'utf8' });
    assert.equal(r.status, 0, `write_reference_ckpt.py failed (is python3-torch installed?):\n${r.stderr}`);
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('predict with the .ckpt gives the values of our checkpoint of the same weights, and prints what it inferred', () => {
    const theirs = path.join(tmp, 'theirs.arrow');
    const ours = path.join(tmp, 'ours.arrow');
    const p = cli(['predict', store, '--checkpoint', fixture('reference.ckpt'), '--out', theirs]);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, /a PyTorch Lightning checkpoint of the authors' TRIPLEX code \(CVPR 2024 layout, keys under 'model\.'; Lightning 1\.9\.5, epoch 41, step 5208\)/);
    assert.match(p.stdout, new RegExp(`inferred from its tensors: views target\\+neighbor\\+global; d 512; ${GENES} genes; ` +
      'neighbor encoder depth 2, 4 heads, MLP ratio 1; global encoder depth 3, 8 heads, MLP ratio 0\\.5, position encoding apeg \\(kernel 3\\); ' +
      'fusion layer depth 2, 2 heads, MLP ratio 1\\.5; mode full'));
    assert.match(p.stdout, /attention heads of the global encoder \(8\): its hyper_parameters' num_heads2/);
    assert.match(p.stdout, /attention heads of the fusion encoder \(2\): its hyper_parameters' num_heads1/);
    assert.match(p.stdout, new RegExp(`genes: the store's ${GENES}, taken in its order because the checkpoint names none`));
    const q = cli(['predict', store, '--checkpoint', fixture('ours.safetensors'), '--out', ours, '--json']);
    assert.equal(q.status, 0, q.stderr);
    const printed = JSON.parse(q.stdout) as { predictions: string; genes: string[]; sections: Array<{ spots: number }> };
    assert.equal(printed.predictions, ours);
    assert.equal(printed.genes.length, GENES);
    const a = readPredictions(theirs);
    const b = readPredictions(ours);
    assert.deepEqual(a.genes, data.genes);
    assert.deepEqual(b.genes, data.genes);
    const [id] = [...data.sections.keys()];
    const x = a.sections.get(id)!.values;
    const y = b.sections.get(id)!.values;
    assert.equal(x.length, data.sections.get(id)!.n * GENES);
    assert.equal(x.length, y.length);
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i] - y[i]));
    assert.ok(worst <= 1e-5, `largest difference ${worst}`);
    // Predictions that differ from spot to spot and gene to gene: a comparison that could fail.
    assert.ok(new Set(Array.from(x, (v) => v.toFixed(4))).size > x.length / 2, 'predictions vary');
  });

  test('evaluate scores the .ckpt as it scores our checkpoint of the same weights (Table 2 layout)', () => {
    const list = path.join(tmp, 'eval-genes.txt');
    fs.writeFileSync(list, `${data.genes.join('\n')}\n`);
    const theirs = cli(['evaluate', fixture('reference.ckpt'), store, '--genes', list, '--out', path.join(tmp, 'eval-theirs')]);
    assert.equal(theirs.status, 0, theirs.stderr);
    assert.match(theirs.stdout, /a PyTorch Lightning checkpoint of the authors' TRIPLEX code/);
    assert.match(theirs.stdout, /PCC\(M\)/);
    const ours = cli(['evaluate', fixture('ours.safetensors'), store, '--out', path.join(tmp, 'eval-ours'), '--json']);
    assert.equal(ours.status, 0, ours.stderr);
    const printed = JSON.parse(ours.stdout) as { evaluation: string; row: { sections: unknown[] } };
    assert.equal(printed.evaluation, path.join(tmp, 'eval-ours'));
    assert.equal(printed.row.sections.length, 1);
    type Report = { genes: { shared: string[] }; scores: Array<{ sections: Array<{ section: string; mse: number; mae: number; pccM: number }> }> };
    const read = (dir: string) => JSON.parse(fs.readFileSync(path.join(tmp, dir, 'evaluation.json'), 'utf8')) as Report;
    const [a, b] = [read('eval-theirs'), read('eval-ours')];
    assert.equal(a.genes.shared.length, GENES);
    const [x, y] = [a.scores[0].sections[0], b.scores[0].sections[0]];
    assert.equal(x.section, y.section);
    for (const k of ['mse', 'mae', 'pccM'] as const) assert.ok(Math.abs(x[k] - y[k]) <= 1e-5, `${k}: ${x[k]} vs ${y[k]}`);
    assert.ok(Number.isFinite(x.pccM) && x.mse > 0, JSON.stringify(x));
    const g = cli(['evaluate', fixture('ours.safetensors'), store, '--genes', list, '--out', path.join(tmp, 'eval-bad')]);
    assert.equal(g.status, 2, g.stderr);
    assert.match(g.stderr, /--genes is for checkpoints of the authors' code/);
  });

  test('--genes names the genes; a list of another length, a repeated gene, or --genes with our own checkpoint is refused', () => {
    const list = path.join(tmp, 'genes.txt');
    fs.writeFileSync(list, `${data.genes.join('\n')}\n`);
    const p = cli(['predict', store, '--checkpoint', fixture('reference.ckpt'), '--genes', list, '--out', path.join(tmp, 'named.arrow')]);
    assert.equal(p.status, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`genes: the ${GENES} of .*genes\\.txt`));
    assert.deepEqual(readPredictions(path.join(tmp, 'named.arrow')).genes, data.genes);

    const short = path.join(tmp, 'short.txt');
    fs.writeFileSync(short, data.genes.slice(1).join('\n'));
    const r = cli(['predict', store, '--checkpoint', fixture('reference.ckpt'), '--genes', short, '--out', path.join(tmp, 'short.arrow')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`short\\.txt lists ${GENES - 1} genes, but .*reference\\.ckpt predicts ${GENES} \\(its head fc\\.weight is \\[${GENES}, 512\\]\\)`));
    assert.ok(!fs.existsSync(path.join(tmp, 'short.arrow')), 'nothing written');

    const twice = path.join(tmp, 'twice.txt');
    fs.writeFileSync(twice, `A\nB\n\nA\n`);
    assert.throws(() => readGeneListFile(twice), /twice\.txt, line 4: gene A is listed again \(first on line 1\)/);

    const s = cli(['predict', store, '--checkpoint', fixture('ours.safetensors'), '--genes', list]);
    assert.equal(s.status, 2);
    assert.match(s.stderr, /--genes is for checkpoints of the authors' code/);
  });

  test('a checkpoint of another configuration, an incomplete one, a bare state dict and a 2025-version one are refused by file and key', async () => {
    const load = (name: string) => loadModelCheckpoint(fixture(name), data);
    await assert.rejects(load('wrong_shape.ckpt'), (e: Error) => {
      assert.match(e.message, /wrong_shape\.ckpt: tensor 'model\.fc_target\.weight': has shape \[31, 512\], but the configuration its other tensors describe \(views target\+neighbor\+global; d 512; 30 genes;.*\) needs \[30, 512\]/);
      return true;
    });
    await assert.rejects(load('missing_key.ckpt'), /missing_key\.ckpt: tensor 'model\.global_encoder\.layer2\.layers\.1\.1\.fn\.net\.3\.bias': \(shape \[512\]\) is missing/);
    await assert.rejects(load('plain.pt'), /plain\.pt: is not a PyTorch Lightning checkpoint: it has no 'state_dict' dict of tensors \(its top-level keys are fc_target\.weight, /);
    await assert.rejects(load('v2025.ckpt'), /v2025\.ckpt: tensor 'model\.target_linear\.weight': \(shape \[512, 512\]\) is from the 2025 version of the authors' code/);
    // Not the store's genes and no list: the user is told to give --genes.
    await assert.rejects(loadModelCheckpoint(fixture('reference.ckpt'), { ...data, genes: data.genes.slice(2) }), /reference\.ckpt does not name its genes and predicts 30, the store has 28; give them with --genes <file>/);
  });

  test("the paper's BC1, BC2 and SCC configurations are inferred from their tensors' shapes alone", () => {
    const shapes = JSON.parse(fs.readFileSync(fixture('shapes.json'), 'utf8')) as Record<PresetName, Record<string, number[]>>;
    for (const name of ['bc1', 'bc2', 'scc'] as const) {
      for (const prefix of ['', 'model.']) {
        const sd: StateDict = new Map(Object.entries(shapes[name]).map(([k, shape]) => [prefix + k, { shape, data: new Float32Array(0), sourceDtype: 'float32' }]));
        const inferred = inferReferenceModel(sd, `${name}.ckpt`);
        const want = PRESETS[name];
        const { config } = inferred;
        assert.equal(inferred.mode, 'full');
        assert.equal(inferred.prefix, prefix);
        assert.deepEqual([config.genes, config.dim, config.views], [250, 512, { target: true, neighbor: true, global: true }]);
        for (const part of ['neighbor', 'global', 'fusion'] as const) {
          assert.deepEqual([config[part].depth, config[part].heads, config[part].mlpRatio], [want[part].depth, want[part].heads, want[part].mlpRatio], `${name} ${part}`);
        }
        assert.deepEqual([config.global.positionEncoding, config.global.kernelSize, config.fusion.method], ['apeg', 3, 'layer']);
        assert.match(inferred.notes.join('\n'), new RegExp(`the paper's ${name} config, which its depths and widths match`));
        // Every tensor of theirs but the buffers that hold nothing learned has a place in ours.
        assert.equal(inferred.weights.size, Object.keys(shapes[name]).filter((k) => !/(num_batches_tracked|attention_bias_idxs)$/.test(k)).length);
      }
    }
    const bc1 = (edit: (entries: [string, number[]][]) => [string, number[]][]): StateDict =>
      new Map(edit(Object.entries(shapes.bc1)).map(([k, shape]) => [k, { shape, data: new Float32Array(0), sourceDtype: 'float32' }]));
    // Without the heads recorded, a configuration none of the paper's matches cannot be settled.
    const odd = bc1((e) => e.filter(([k]) => !k.startsWith('neighbor_encoder.layer.layers.3.')));
    assert.throws(() => inferReferenceModel(odd, 'odd.ckpt'), /odd\.ckpt: tensor 'global_encoder\.layer1\.layers\.0\.0\.fn\.to_qkv\.weight': the number of attention heads of the global and fusion encoders is in no tensor's shape/);
    // Keys their CVPR model does not have: a module of a later version of theirs, a second block before APEG.
    const extra = bc1((e) => [...e, ['neighbor_encoder.pos_encoding', [1, 25, 512]]]);
    assert.throws(() => inferReferenceModel(extra, 'extra.ckpt'), /extra\.ckpt: tensor 'neighbor_encoder\.pos_encoding': \(shape \[1, 25, 512\]\) is no tensor of TRIPLEX as the authors' CVPR code builds it/);
    const twoFirst = bc1((e) => [...e, ['global_encoder.layer1.layers.1.0.norm.weight', [512]]]);
    assert.throws(() => inferReferenceModel(twoFirst, 'two.ckpt'), /two\.ckpt: tensor 'global_encoder\.layer1\.layers\.1\.0\.norm\.weight': \(shape \[512\]\) is no tensor of TRIPLEX/);
    // A relative-position bias for another neighbor grid.
    const grid7 = bc1((e) => e.map(([k, shape]) => [k, k.endsWith('attention_biases') ? [shape[0], 49] : shape]));
    assert.throws(() => inferReferenceModel(grid7, 'grid7.ckpt'), /grid7\.ckpt: tensor 'neighbor_encoder\.layer\.layers\.0\.0\.fn\.attention_biases': has shape \[4, 49\]; the relative-position bias of the 5x5 neighbor grid is \[heads, 25\]/);
  });
});
