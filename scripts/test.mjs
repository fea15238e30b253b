#!/usr/bin/env node
// `npm test`: everything, in order, on a fresh machine.
//   1. system packages the tests need (PyTorch for the reference checks; the integration
//      runner installs its own: code-server, Chromium) when missing;
//   2. type check and lint (the lint forbids `vscode` in the runtime, CLI and unit tests);
//   3. unit tests in plain Node (node:test), bundled by scripts/build.mjs --tests;
//   4. integration tests in a real VS Code through @vscode/test-electron.
// Prints one closing line, "tests: N passed, M failed", over both suites.
import { spawn } from 'node:child_process';

const steps = [
  ['system packages for the tests', 'sh', ['scripts/ensure-test-deps.sh']],
  ['type check', 'npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']],
  ['lint', 'npx', ['eslint', '.']],
  ['build', 'node', ['scripts/build.mjs', '--tests']],
  ['unit tests', 'node', ['--test', '--test-reporter=spec', 'out/test/unit/']],
  ['integration tests in VS Code', 'node', ['scripts/vscode-tests/run.mjs']],
];

const counts = { passed: 0, failed: 0 };
function count(text) {
  // node:test spec reporter ("ℹ pass 12") and mocha ("12 passing", "1 failing")
  for (const [, kind, n] of text.matchAll(/^ℹ (pass|fail) (\d+)$/gm)) counts[kind === 'pass' ? 'passed' : 'failed'] += Number(n);
  for (const [, n, kind] of text.matchAll(/^\s*(\d+) (passing|failing)/gm)) counts[kind === 'passing' ? 'passed' : 'failed'] += Number(n);
}

function run(title, cmd, args) {
  console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { process.stdout.write(d); out += d; });
    child.on('close', (code) => { count(out); resolve(code ?? 1); });
  });
}

let status = 0;
for (const [title, cmd, args] of steps) {
  const code = await run(title, cmd, args);
  if (code !== 0) {
    console.error(`\n=== ${title} failed (exit ${code})`);
    status = 1;
    if (!title.includes('tests')) break; // nothing after a failed setup, build or lint can be trusted
  }
}
console.log(`\ntests: ${counts.passed} passed, ${counts.failed} failed`);
process.exit(status);
