import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultH5adFile, runOfPredictions, startH5adExport, viewerExportChoices } from '../../src/commands/h5adExportTask';
import { parseResultsOutbound, parseViewerOutbound } from '../../src/protocol/webviews';
import { openDatasetStore } from '../../src/runtime/store/datasetStore';
import { exportH5ad } from '../../src/runtime/store/h5adExport';
import { writePredictedRun } from './helpers/predictedRun';
import { writeSyntheticStore } from './helpers/syntheticStore';
import { repoRoot } from './helpers/paths';
import { TORCH_PYTHON, torchSkip } from './helpers/torch';

/**
 * The "Export .h5ad" buttons and command, below VS Code: the messages the pages send (validated on
 * receipt), what a panel offers to export and where the file goes, and the `triplex export`
 * child process the extension runs (a real export read back by anndata; a failure and a
 * cancellation that keep the previous file whole).
 */

describe('export buttons: the messages', () => {
  test('the results table asks for one run by its folder; anything else is not a message', () => {
    assert.deepEqual(parseResultsOutbound({ type: 'exportH5ad', payload: { dir: '/runs/tem' } }), { type: 'exportH5ad', payload: { dir: '/runs/tem' } });
    for (const payload of [{}, { dir: 42 }, { dir: '' }, { dir: 'x'.repeat(5000) }, { format: 'csv' }]) {
      assert.equal(parseResultsOutbound({ type: 'exportH5ad', payload }), undefined, JSON.stringify(payload).slice(0, 40));
    }
    assert.equal(parseResultsOutbound({ type: 'exportH5ad' }), undefined);
  });

  test('the slide viewer asks with an empty payload (the extension knows what it shows)', () => {
    assert.deepEqual(parseViewerOutbound({ type: 'exportH5ad', payload: {} }), { type: 'exportH5ad', payload: {} });
    assert.equal(parseViewerOutbound({ type: 'exportH5ad', payload: { source: '/etc' } }), undefined);
    assert.equal(parseViewerOutbound({ type: 'exportH5ad', payload: null }), undefined);
  });

  test('the default file sits beside the run or store, named after it', () => {
    assert.equal(defaultH5adFile('/data/store/runs/tem-frozen/'), '/data/store/runs/tem-frozen.h5ad');
    assert.equal(defaultH5adFile('/data/her2st-store'), '/data/her2st-store.h5ad');
    assert.equal(runOfPredictions('/s/runs/tem/fold-3/predictions.arrow'), '/s/runs/tem');
    assert.equal(runOfPredictions('/s/predict/predictions.arrow'), undefined);
  });
});

const READ_BACK = `
import sys, json, anndata, numpy as np
a = anndata.read_h5ad(sys.argv[1])
print(json.dumps({'shape': list(a.shape), 'X': np.asarray(a.X, dtype=np.float64).ravel().tolist(), 'layers': sorted(a.layers.keys()),
  'section': [str(s) for s in a.obs['section']], 'fold': [int(f) for f in a.obs['fold']], 'kind': str(a.uns['triplex']['kind'])}))
`;

describe('export buttons: the export the extension runs', { skip: torchSkip ? 'needs python3-anndata, and TRIPLEX_SKIP_TORCH is set' : false }, () => {
  let tmp = '';
  let store = '';
  let runDir = '';
  let predicted: (section: string) => Float32Array;
  before(async () => {
    assert.ok(fs.existsSync(path.join(repoRoot(), 'dist', 'cli.js')), 'dist/cli.js is missing; run node scripts/build.mjs');
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-export-ui-'));
    store = path.join(tmp, 'store');
    runDir = path.join(store, 'runs', 'tem');
    await writeSyntheticStore(path.join(tmp, 'synthetic'), store, { patients: 3, sectionsPerPatient: 1, gridSize: 4, genes: 20 }, 8);
    ({ predicted } = await writePredictedRun(store, runDir));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('the slide viewer offers the run it shows (with its store), the runs it compares, and the store', () => {
    const fold = path.join(runDir, 'fold-1', 'predictions.arrow');
    assert.deepEqual(viewerExportChoices({ store, predictions: fold }).map((c) => c.request), [{ source: runDir, store }, { source: store }]);
    assert.deepEqual(viewerExportChoices({ store, predictions: path.join(tmp, 'predictions.arrow') }).map((c) => c.request), [{ source: store }]);
    const compared = viewerExportChoices({ store, compare: [runDir] });
    assert.deepEqual(compared.map((c) => c.request), [{ source: runDir, store }, { source: store }]);
    assert.match(compared[0].label, /^TEM: predictions \(run .*tem\)$/);
  });

  test('a run, through the `triplex export --json` child: progress lines, a summary, a file anndata reads with the predictions', async () => {
    const out = defaultH5adFile(runDir);
    const lines: string[] = [];
    const { done } = startH5adExport(repoRoot(), { source: runDir, destination: out }, (line, stream) => lines.push(`${stream}: ${line}`));
    const outcome = await done;
    assert.equal(outcome.status, 'done', outcome.message);
    const s = openDatasetStore(store);
    const sections = s.manifest.sections.map((m) => m.id);
    assert.deepEqual(outcome.summary && { ...outcome.summary }, { file: out, kind: 'run', spots: s.spots.numRows, genes: 8, sections, layers: ['truth', 'error', 'counts'], images: 3 });
    assert.match(outcome.message, new RegExp(`^wrote ${out}: ${s.spots.numRows} spots x 8 genes, 3 section\\(s\\), layers truth, error, counts$`));
    assert.ok(lines.some((l) => /^stderr: A1: shrinking /.test(l)), lines.join('\n'));

    assert.deepEqual([...fs.readFileSync(out).subarray(0, 8)], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a], 'no HDF5 signature');
    const r = spawnSync(TORCH_PYTHON, ['-c', READ_BACK, out], { encoding: 'utf8', maxBuffer: 16 << 20 });
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as { shape: number[]; X: number[]; layers: string[]; section: string[]; fold: number[]; kind: string };
    assert.deepEqual(a.shape, [s.spots.numRows, 8]);
    assert.deepEqual(a.layers, ['counts', 'error', 'truth']);
    assert.equal(a.kind, 'predictions');
    const expected = sections.flatMap((id) => Array.from(predicted(id)));
    assert.deepEqual(a.X, expected);
    assert.deepEqual(a.fold, a.section.map((id) => sections.indexOf(id)));
  });

  test('a failure names the file and why; a cancelled export leaves the previous file whole and no partial file', async () => {
    const nowhere = path.join(tmp, 'nowhere', 'x.h5ad');
    const failed = await startH5adExport(repoRoot(), { source: runDir, destination: nowhere }).done;
    assert.equal(failed.status, 'failed');
    assert.match(failed.message, new RegExp(`^${nowhere}: the folder ${path.dirname(nowhere)} does not exist; create it first$`));
    const noStore = await startH5adExport(repoRoot(), { source: runDir, destination: path.join(tmp, 'y.h5ad'), store: path.join(tmp, 'synthetic') }).done;
    assert.equal(noStore.status, 'failed');
    assert.match(noStore.message, /synthetic: the run's store is not there \(no store\.json\)/);

    const kept = path.join(tmp, 'kept.h5ad');
    fs.writeFileSync(kept, 'previous');
    // In the runtime: stopped once the partial file exists.
    const stop = new AbortController();
    await assert.rejects(exportH5ad(store, { out: kept, signal: stop.signal, onPartial: () => stop.abort() }), new RegExp(`${kept}: the export was stopped on request; nothing was written`));
    // Through the child, as the notification's Cancel does: SIGINT once it shrinks the first of three images.
    const task = startH5adExport(repoRoot(), { source: store, destination: kept }, (line) => {
      if (/: shrinking /.test(line)) task.child.cancel();
    });
    const cancelled = await task.done;
    assert.equal(cancelled.status, 'cancelled', cancelled.message);
    assert.equal(cancelled.exitCode, 130, 'the CLI did not stop at its own check');
    assert.equal(cancelled.message, `the export was cancelled; ${kept} was left as it was`);
    assert.equal(fs.readFileSync(kept, 'utf8'), 'previous');
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('.partial-')), []);
  });
});
