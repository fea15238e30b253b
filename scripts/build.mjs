#!/usr/bin/env node
// One build, two kinds of target: Node (extension host, CLI, benchmark; CommonJS, `vscode` and all
// npm packages external so TF.js stays a single instance and its .wasm files resolve from
// node_modules) and the browser (webview bundles).
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
// --outdir=<dir>: where the bundles go (default dist/; scripts/package.mjs builds into its staging).
const outRoot = process.argv.find((a) => a.startsWith('--outdir='))?.slice('--outdir='.length) ?? 'dist';

// tfjs-core's CommonJS entry registers no gradients; its ESM `dist/register_all_gradients` does
// but cannot be required from Node (extensionless ESM imports). Bundle that deep import, as the
// @tensorflow/tfjs umbrella does: the registries it fills are global, shared with the main copy.
const bundleTfjsDeepImports = {
  name: 'bundle-tfjs-core-deep-imports',
  setup(build) {
    build.onResolve({ filter: /^@tensorflow\/tfjs-core\/dist\// }, async (args) => {
      const r = await build.resolve(`./${args.path.slice('@tensorflow/tfjs-core/'.length)}.js`, {
        kind: args.kind, resolveDir: tfjsCoreDir,
      });
      return { path: r.path, external: false };
    });
  },
};
// d3-scale-chromatic (the colour maps the viewer and the runtime's SVG figures share) is an ES
// module only, which a CommonJS bundle cannot require on every Node the kernel runs on: bundle it
// and its d3 dependencies into the Node targets as the browser targets do.
const bundleD3 = {
  name: 'bundle-d3',
  setup(build) {
    build.onResolve({ filter: /^d3-[a-z-]+$/ }, (args) => ({
      path: createRequire(path.join(args.resolveDir, 'index.js')).resolve(args.path),
      external: false,
    }));
  },
};
const tfjsCoreDir = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/package.json'));

const node = {
  plugins: [bundleTfjsDeepImports, bundleD3],
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
  { ...node, entryPoints: { extension: 'src/extension.ts' }, outdir: outRoot },
  { ...node, entryPoints: { cli: 'src/cli/main.ts', bench: 'bench/main.ts' }, outdir: outRoot },
  // The notebook kernel process, and the runtime that its cells import as 'triplex'.
  { ...node, entryPoints: { kernel: 'src/kernel/main.ts', runtime: 'src/runtime/index.ts' }, outdir: outRoot },
  {
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    entryPoints: { 'webview/main': 'webview/main.ts', 'webview/results': 'webview/results/main.ts', 'webview/viewer': 'webview/viewer/main.ts' },
    outdir: outRoot,
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
  },
  {
    // Notebook renderers: an ES module that VS Code imports; plotly is split off and loaded on
    // the first plot, so tables render without it.
    bundle: true,
    platform: 'browser',
    format: 'esm',
    splitting: true,
    target: 'es2022',
    entryPoints: { index: 'webview/renderers/index.ts' },
    outdir: path.join(outRoot, 'renderers'),
    sourcemap: !production,
    minify: production,
    logLevel: 'warning',
  },
];

// Tests are bundled like the code they test (same module graph), one file per test.
if (process.argv.includes('--tests')) {
  const tests = (dir) => fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.ts')).map((f) => path.join(dir, f)) : [];
  targets.push({ ...node, entryPoints: [...tests('test/unit'), ...tests('test/integration')], outdir: 'out', outbase: '.' });
}

if (watch) {
  for (const t of targets) await (await esbuild.context(t)).watch();
} else {
  await Promise.all(targets.map((t) => esbuild.build(t)));
}
