import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KernelProcess, type CellOutcome } from '../../src/kernel/client';
import { CellQueue, type QueuedCell } from '../../src/kernel/queue';
import sharp from 'sharp';
import { MIME, SVG_MIME, type MimeBundle, type TablePayload } from '../../src/protocol/outputs';
import { repoRoot } from './helpers/paths';

/**
 * The kernel as a real child process (dist/kernel.js, built by `scripts/build.mjs`), driven by the
 * same client the extension uses: persistence, streaming, errors, rich values, interrupts, crashes.
 */

const kernelScript = path.join(repoRoot(), 'dist', 'kernel.js');

interface Run { outcome: CellOutcome; events: ({ kind: 'stdout' | 'stderr'; text: string } | { kind: 'display'; bundle: MimeBundle })[]; text: string }

async function run(kernel: KernelProcess, code: string, label = 'Cell 1'): Promise<Run> {
  const events: Run['events'] = [];
  const outcome = await kernel.execute(code, { label, language: 'typescript' }, {
    stream: (kind, text) => events.push({ kind, text }),
    display: (bundle) => events.push({ kind: 'display', bundle }),
  });
  const text = events.map((e) => (e.kind === 'display' ? String(e.bundle['text/plain'] ?? '') : e.text)).join('');
  return { outcome, events, text };
}

describe('the kernel process', () => {
  let dir: string;
  let kernel: KernelProcess;
  before(async () => {
    assert.ok(fs.existsSync(kernelScript), `${kernelScript} is missing; run node scripts/build.mjs`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-kernel-'));
    kernel = await KernelProcess.start({ kernelScript, notebookDir: dir, interruptGraceMs: 1500 });
  });
  after(() => {
    kernel.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('runs in the notebook folder, and names persist across cells', async () => {
    const a = await run(kernel, 'const base: number = 40;\nfunction add(n: number) { return base + n; }\nprocess.cwd()');
    assert.deepEqual(a.outcome, { status: 'ok' });
    assert.equal(a.text, fs.realpathSync(dir)); // a string value is shown as is
    const b = await run(kernel, 'add(2)');
    assert.equal(b.text, '42');
  });

  test('console output streams before the cell ends, in order, stdout and stderr apart', async () => {
    const r = await run(kernel, 'console.log("one");\nconsole.error("two");\nawait new Promise((r) => setTimeout(r, 50));\nvoid process.stdout.write("three\\n");');
    assert.deepEqual(r.events, [{ kind: 'stdout', text: 'one\n' }, { kind: 'stderr', text: 'two\n' }, { kind: 'stdout', text: 'three\n' }]);
  });

  test('an error reports the cell\'s own line, through a function defined in an earlier cell', async () => {
    await run(kernel, 'function check(v: number) {\n  if (v < 0) {\n    throw new RangeError(`negative: ${v}`);\n  }\n  return v;\n}', 'Cell 4');
    const r = await run(kernel, '// a comment line\nconst fine = check(1);\ncheck(-fine);', 'Cell 5');
    assert.equal(r.outcome.status, 'failed');
    if (r.outcome.status !== 'failed') return;
    assert.equal(r.outcome.error.name, 'RangeError');
    assert.equal(r.outcome.error.message, 'negative: -1');
    assert.match(r.outcome.error.stack, /at check \(Cell 4:3:11\)\n\s+at Cell 5:3:1/);
    assert.doesNotMatch(r.outcome.error.stack, /kernel\.js|node:internal|triplex-cell-/);
  });

  test('a syntax error names the line and column and runs nothing', async () => {
    const r = await run(kernel, 'console.log("not run");\nconst = 3;');
    assert.equal(r.outcome.status, 'failed');
    assert.equal(r.events.length, 0);
    if (r.outcome.status === 'failed') assert.match(r.outcome.error.message, /line 2, column 7/);
  });

  test('imports the bundled runtime as "triplex", and packages it ships with', async () => {
    const r = await run(kernel, 'import { tableOutput, metricsOutput } from "triplex";\nimport { tableFromArrays } from "apache-arrow";\n[typeof tableOutput, typeof metricsOutput, typeof tableFromArrays].join(" ")');
    assert.equal(r.text, 'function function function');
    const missing = await run(kernel, 'import "no-such-package-here";');
    assert.equal(missing.outcome.status, 'failed');
    if (missing.outcome.status === 'failed') assert.match(missing.outcome.error.message, /Cannot find module 'no-such-package-here' from the notebook's folder/);
  });

  test('an Arrow table as the last value is shown as a table', async () => {
    const r = await run(kernel, 'tableFromArrays({ gene: ["ERBB2", "GATA3", "ACTB"], pcc: Float32Array.from([0.5, 0.25, -0.125]) })');
    const shown = r.events.find((e) => e.kind === 'display');
    assert.ok(shown && shown.kind === 'display');
    const t = shown.bundle[MIME.table] as TablePayload;
    assert.deepEqual(t.columns.map((c) => c.name), ['gene', 'pcc']);
    assert.deepEqual(t.rows, [['ERBB2', 0.5], ['GATA3', 0.25], ['ACTB', -0.125]]);
    assert.equal(t.totalRows, 3);
    assert.match(String(shown.bundle['text/plain']), /ERBB2/);
  });

  test('display() shows several values from one cell, in order with the text', async () => {
    const r = await run(kernel, 'console.log("before");\ndisplay({ a: 1 }, "plain");\nconsole.log("after");');
    assert.deepEqual(r.events.map((e) => (e.kind === 'display' ? e.bundle['text/plain'] : e.text)), ['before\n', '{ a: 1 }', 'plain', 'after\n']);
  });

  test('a figure arrives with a PNG drawn from its SVG, in order with the text around it', async () => {
    const r = await run(kernel, [
      'import { metricsOutput, trainingCurveOutput } from "triplex";',
      'console.log("before");',
      'const m = (mean: number) => ({ mean, std: 0.01 });',
      'display(metricsOutput([{ model: "triplex", summary: { folds: 3, mse: m(0.3), mae: m(0.4), pccM: m(0.2), pccH: m(0.5) } }]));',
      'console.log("between");',
      'trainingCurveOutput([{ epoch: 0, loss: 1, validationPcc: 0.2 }, { epoch: 1, loss: 0.5, validationPcc: 0.3 }])',
    ].join('\n'));
    assert.deepEqual(r.outcome, { status: 'ok' });
    assert.deepEqual(r.events.map((e) => (e.kind === 'display' ? Object.keys(e.bundle) : e.text)), [
      'before\n', [MIME.metrics, SVG_MIME, 'image/png', 'text/plain'], 'between\n', [MIME.curve, SVG_MIME, 'image/png', 'text/plain'],
    ]);
    for (const e of r.events) {
      if (e.kind !== 'display') continue;
      const png = await sharp(Buffer.from(String(e.bundle['image/png']), 'base64')).metadata();
      const size = /<svg [^>]*width="(\d+)" height="(\d+)"/.exec(String(e.bundle[SVG_MIME]));
      assert.deepEqual([png.format, png.width, png.height], ['png', Number(size?.[1]), Number(size?.[2])]);
    }
  });

  test('completion lists live properties and the runtime\'s exports', async () => {
    await run(kernel, 'const sample = { alpha: 1, beta() { return 2; } };');
    const items = await kernel.complete('sample');
    assert.deepEqual(items.filter((i) => ['alpha', 'beta'].includes(i.name)), [{ name: 'alpha', kind: 'value' }, { name: 'beta', kind: 'function' }]);
    const runtime = await kernel.complete('require("triplex")');
    assert.ok(runtime.some((i) => i.name === 'crossValidate' && i.kind === 'function'), JSON.stringify(runtime.slice(0, 5)));
  });

  test('interrupt stops a cell that watches notebook.signal, and the kernel keeps its variables', async () => {
    const running = run(kernel, 'let spins = 0;\nwhile (true) {\n  notebook.checkInterrupted();\n  spins++;\n  await new Promise((r) => setTimeout(r, 5));\n}');
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await kernel.interrupt(), 'stopped');
    const r = await running;
    assert.equal(r.outcome.status, 'failed');
    if (r.outcome.status === 'failed') assert.match(r.outcome.error.message, /interrupted/);
    assert.equal(kernel.alive, true);
    assert.equal((await run(kernel, 'spins > 0 && base')).text, '40');
  });

  test('interrupt ends the process when a synchronous loop never yields; a new kernel starts clean', async () => {
    const running = run(kernel, 'while (true) {}');
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    assert.equal(await kernel.interrupt(), 'killed');
    assert.ok(performance.now() - t0 >= 1400, 'the grace period was not given');
    const r = await running;
    assert.equal(r.outcome.status, 'died');
    if (r.outcome.status === 'died') assert.match(r.outcome.reason, /did not stop within 2 s/);
    assert.equal(kernel.alive, false);
    assert.equal((await run(kernel, '1')).outcome.status, 'died');

    kernel = await KernelProcess.start({ kernelScript, notebookDir: dir, interruptGraceMs: 1500 });
    assert.equal((await run(kernel, 'typeof base')).text, 'undefined');
  });

  test('a crashing cell is reported with the exit code', async () => {
    const r = await run(kernel, 'process.exit(3)');
    assert.deepEqual(r.outcome, { status: 'died', reason: 'the kernel process exited with code 3' });
    kernel = await KernelProcess.start({ kernelScript, notebookDir: dir });
  });

  test('an error thrown later by a timer is reported, and the kernel lives on', async () => {
    const r = await run(kernel, 'setTimeout(() => { throw new Error("late"); }, 10);\nawait new Promise((r) => setTimeout(r, 100));\n"still here"');
    assert.equal(r.outcome.status, 'ok');
    assert.match(r.text, /Uncaught Error: late[\s\S]*still here/);
  });
});

describe('the cell queue', () => {
  const cell = (name: string, log: string[], ok = true, ms = 5): QueuedCell => ({
    run: async () => {
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, ms));
      log.push(`end ${name}`);
      return ok;
    },
    cancel: () => log.push(`cancel ${name}`),
  });

  test('runs cells one at a time, first in first out, across requests', async () => {
    const log: string[] = [];
    const q = new CellQueue();
    await Promise.all([q.enqueue([cell('a', log, true, 20), cell('b', log)]), q.enqueue([cell('c', log)])]);
    assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
  });

  test('a failing cell cancels every cell queued after it, also from later requests', async () => {
    const log: string[] = [];
    const q = new CellQueue();
    await Promise.all([q.enqueue([cell('a', log), cell('b', log, false), cell('c', log)]), q.enqueue([cell('d', log)])]);
    assert.deepEqual(log, ['start a', 'end a', 'start b', 'end b', 'cancel c', 'cancel d']);
    await q.enqueue([cell('e', log)]); // the queue runs again afterwards
    assert.deepEqual(log.slice(-2), ['start e', 'end e']);
  });

  test('one waiting cell can be cancelled; the running one cannot', async () => {
    const log: string[] = [];
    const q = new CellQueue();
    const a = cell('a', log, true, 30);
    const b = cell('b', log);
    const done = q.enqueue([a, b]);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(q.cancel(a), false);
    assert.equal(q.cancel(b), true);
    await done;
    assert.deepEqual(log, ['start a', 'cancel b', 'end a']);
  });
});
