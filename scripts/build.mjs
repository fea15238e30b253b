#!/usr/bin/env node
// One build, two kinds of target: Node (extension host, CLI, benchmark; CommonJS, `vscode` and all
// npm packages external so TF.js stays a single instance and its .wasm files resolve from
// node_modules) and the browser (webview bundles).
import * as esbuild from 'esbuild';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const node = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  packages: 'external',
  external: ['vscode'],
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

const targets = [
  { ...node, entryPoints: { extension: 'src/extension.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli/main.ts', bench: 'bench/main.ts' }, outdir: 'dist' },
  {
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    entryPoints: { 'webview/main': 'webview/main.ts' },
    outdir: 'dist',
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
  },
];

if (watch) {
  for (const t of targets) await (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
}
