#!/usr/bin/env node
// `npm run package`: one .vsix per platform, each with only that platform's native binaries.
//
//   node scripts/package.mjs [--target linux-x64,darwin-arm64,...] [--out vsix]
//
// The extension's bundles (dist/, built here with --production) keep every npm package external,
// so the .vsix carries the production node_modules. Rather than ignore rules over the working
// tree, each target gets a staging folder (.package/<target>/) holding exactly what it ships:
// dist/ (no maps, no bench), bin/, media/ (with the 128x128 PNG icon made from media/triplex.svg),
// notebooks/, README, CHANGELOG, LICENSE, a manifest without devDependencies or scripts, and the
// closure of the production dependencies, pruned of sources, tests and other platforms' binaries:
//   - onnxruntime-node keeps bin/napi-v*/<os>/<arch> of the target only, koffi build/koffi/<os>_<arch>;
//   - sharp gets @img/sharp-<target> and @img/sharp-libvips-<target>; npm installs only the build
//     machine's, so the others are fetched with `npm pack` from the registry into .package/cache/;
//   - @tensorflow/tfjs-node (optional, native, downloaded by its own install script) is left out.
// `vsce package --target <target>` then packs the staging folder.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const work = path.join(root, '.package');
const cache = path.join(work, 'cache');

/** VS Code target -> koffi's and onnxruntime-node's binary folders and sharp's @img packages for it. */
const TARGETS = {
  'linux-x64': { koffi: 'linux_x64', ort: 'linux/x64', img: ['sharp-linux-x64', 'sharp-libvips-linux-x64'] },
  'linux-arm64': { koffi: 'linux_arm64', ort: 'linux/arm64', img: ['sharp-linux-arm64', 'sharp-libvips-linux-arm64'] },
  'darwin-x64': { koffi: 'darwin_x64', ort: 'darwin/x64', img: ['sharp-darwin-x64', 'sharp-libvips-darwin-x64'] },
  'darwin-arm64': { koffi: 'darwin_arm64', ort: 'darwin/arm64', img: ['sharp-darwin-arm64', 'sharp-libvips-darwin-arm64'] },
  // sharp's Windows package carries libvips' DLLs itself.
  'win32-x64': { koffi: 'win32_x64', ort: 'win32/x64', img: ['sharp-win32-x64'] },
};
/** Left out of every package (see the header). */
const NOT_SHIPPED = new Set(['@tensorflow/tfjs-node']);

function usage(message) {
  console.error(`package: ${message}\nusage: node scripts/package.mjs [--target ${Object.keys(TARGETS).join(',')}] [--out <dir>]`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { targets: Object.keys(TARGETS), out: path.join(root, 'vsix') };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s);
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === '--help') {
      console.log(`usage: node scripts/package.mjs [--target ${Object.keys(TARGETS).join(',')}] [--out <dir>]`);
      process.exit(0);
    } else if (flag === '--target') options.targets = value().split(',').filter(Boolean);
    else if (flag === '--out') options.out = path.resolve(value());
    else usage(`unknown option ${argv[i]}`);
  }
  const unknown = options.targets.filter((t) => !TARGETS[t]);
  if (unknown.length) usage(`unknown --target ${unknown.join(', ')}; the targets are ${Object.keys(TARGETS).join(', ')}`);
  return options;
}

const readJson = (file) => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Folder of `name` as Node resolves it from `fromDir` (nested node_modules first), or undefined. */
function packageDir(name, fromDir) {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
    if (dir === root || dir === path.dirname(dir)) return undefined;
  }
}

/** Installed folders of the production dependencies (dependencies + optional ones present), transitively. */
function productionClosure(manifest) {
  const found = new Set();
  const visit = (deps, optional, fromDir) => {
    for (const name of Object.keys(deps ?? {})) {
      if (NOT_SHIPPED.has(name) || name.startsWith('@img/sharp-')) continue; // platform packages: staged per target
      const dir = packageDir(name, fromDir);
      if (!dir) {
        if (optional.has(name)) continue;
        throw new Error(`${name}, a production dependency, is not installed under ${fromDir}; run \`npm ci\` first.`);
      }
      if (found.has(dir)) continue;
      found.add(dir);
      const pkg = readJson(path.join(dir, 'package.json'));
      visit({ ...pkg.dependencies, ...pkg.optionalDependencies }, new Set(Object.keys(pkg.optionalDependencies ?? {})), dir);
    }
  };
  visit({ ...manifest.dependencies, ...manifest.optionalDependencies }, new Set(Object.keys(manifest.optionalDependencies ?? {})), root);
  return [...found].sort();
}

/** True for files that no installed extension reads (relative path inside node_modules, '/'-separated). */
function pruned(rel, target) {
  if (/(^|\/)\.bin(\/|$)/.test(rel) || rel.endsWith('.map') || /(^|\/)tsconfig[^/]*\.json$/.test(rel)) return true;
  // TypeScript is the kernel's compiler: its own lib keeps its .d.ts files.
  if (rel.endsWith('.ts') && !rel.startsWith('typescript/')) return true;
  // Node loads TF.js's *.node.js bundles and the .wasm files; sources and browser builds stay out.
  if (/^@tensorflow\/[^/]+\/src\//.test(rel)) return true;
  if (/^@tensorflow\/[^/]+\/dist\/.+/.test(rel) && !/\.(node\.js|wasm)$/.test(rel)) return true;
  if (/^pickleparser\/(src|examples|test)\//.test(rel)) return true;
  const ort = /^onnxruntime-node\/bin\/napi-v\d+\/([^/]+\/[^/]+)(\/|$)/.exec(rel);
  if (ort && ort[1] !== TARGETS[target].ort) return true;
  // koffi (optional, OpenSlide's FFI) loads build/koffi/<os>_<arch>/koffi.node only: its C++ sources, docs and 17 other platforms' binaries stay out.
  if (/^koffi\/(src|vendor|doc)(\/|$)/.test(rel)) return true;
  const koffi = /^koffi\/build\/koffi\/([^/]+)(\/|$)/.exec(rel);
  if (koffi && koffi[1] !== TARGETS[target].koffi) return true;
  return false;
}

function copyPackage(from, stageModules, target) {
  const rel = path.relative(path.join(root, 'node_modules'), from).split(path.sep).join('/');
  fs.cpSync(from, path.join(stageModules, rel), {
    recursive: true,
    filter: (src) => {
      const inner = path.relative(path.join(root, 'node_modules'), src).split(path.sep).join('/');
      // Nested node_modules are copied as packages of their own, when they are in the closure.
      if (path.relative(from, src).split(path.sep).includes('node_modules')) return false;
      return !pruned(inner, target);
    },
  });
}

/** sharp's platform package `name`, at the version sharp asks for: installed, else from the registry. */
function stageImgPackage(name, stageModules) {
  const sharpDir = packageDir('sharp', root);
  const version = readJson(path.join(sharpDir, 'package.json')).optionalDependencies?.[`@img/${name}`];
  if (!version) throw new Error(`sharp ${readJson(path.join(sharpDir, 'package.json')).version} names no @img/${name}; update TARGETS in scripts/package.mjs.`);
  const dest = path.join(stageModules, '@img', name);
  const installed = packageDir(`@img/${name}`, sharpDir);
  if (installed && readJson(path.join(installed, 'package.json')).version === version) {
    fs.cpSync(installed, dest, { recursive: true });
    return;
  }
  const tarball = path.join(cache, `img-${name}-${version}.tgz`);
  if (!fs.existsSync(tarball)) {
    fs.mkdirSync(cache, { recursive: true });
    console.log(`package: fetching @img/${name}@${version} from the npm registry`);
    const file = execFileSync('npm', ['pack', `@img/${name}@${version}`, '--silent', '--pack-destination', cache], { cwd: cache, encoding: 'utf8' }).trim().split('\n').pop();
    fs.renameSync(path.join(cache, file), tarball);
  }
  fs.mkdirSync(dest, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', dest, '--strip-components=1']);
}

/** The manifest the .vsix carries: no devDependencies, no scripts (the build is done), an icon. */
function stagedManifest(manifest) {
  const staged = { ...manifest, icon: 'media/icon.png' };
  delete staged.devDependencies;
  delete staged.scripts;
  staged.optionalDependencies = Object.fromEntries(Object.entries(manifest.optionalDependencies ?? {}).filter(([name]) => !NOT_SHIPPED.has(name)));
  return staged;
}

async function stageCommon(into) {
  fs.rmSync(into, { recursive: true, force: true });
  fs.mkdirSync(into, { recursive: true });
  const built = path.join(into, 'dist');
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs'), '--production', `--outdir=${built}`], { cwd: root, stdio: 'inherit' });
  fs.rmSync(path.join(built, 'bench.js'), { force: true });
  for (const name of ['bin', 'media', 'notebooks', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
    fs.cpSync(path.join(root, name), path.join(into, name), { recursive: true });
  }
  const sharp = require('sharp');
  await sharp(path.join(root, 'media', 'triplex.svg'), { density: 300 }).resize(128, 128, { fit: 'contain', background: { r: 0, g: 0, b: 0, alpha: 0 } }).png().toFile(path.join(into, 'media', 'icon.png'));
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const manifest = readJson(path.join(root, 'package.json'));
  const closure = productionClosure(manifest);
  const common = path.join(work, 'common');
  await stageCommon(common);
  fs.mkdirSync(options.out, { recursive: true });
  const vsce = path.join(path.dirname(require.resolve('@vscode/vsce/package.json')), 'vsce');
  const made = [];
  for (const target of options.targets) {
    const stage = path.join(work, target);
    fs.rmSync(stage, { recursive: true, force: true });
    fs.cpSync(common, stage, { recursive: true });
    fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(stagedManifest(manifest), null, 2)}\n`);
    // Everything staged ships, but for the type declarations that some packages list as
    // dependencies: staged so that vsce's `npm list` finds the tree whole, left out of the .vsix.
    fs.writeFileSync(path.join(stage, '.vscodeignore'), '# Staged by scripts/package.mjs.\n.vscodeignore\nnode_modules/@types/**\n');
    const stageModules = path.join(stage, 'node_modules');
    for (const dir of closure) copyPackage(dir, stageModules, target);
    for (const name of TARGETS[target].img) stageImgPackage(name, stageModules);
    const ortBin = path.join(stageModules, 'onnxruntime-node', 'bin');
    const ortHere = fs.existsSync(ortBin) && fs.readdirSync(ortBin).some((napi) => fs.existsSync(path.join(ortBin, napi, ...TARGETS[target].ort.split('/'))));
    if (!ortHere) console.warn(`package: onnxruntime-node ships no ${TARGETS[target].ort} binary; on ${target} the engine falls back to TF.js (wasm).`);
    const vsix = path.join(options.out, `${manifest.name}-${manifest.version}-${target}.vsix`);
    execFileSync(process.execPath, [vsce, 'package', '--target', target, '--out', vsix, '--allow-missing-repository'], { cwd: stage, stdio: ['ignore', 'inherit', 'inherit'] });
    made.push({ target, vsix, bytes: fs.statSync(vsix).size });
  }
  for (const { target, vsix, bytes } of made) console.log(`package: ${target.padEnd(13)} ${(bytes / 2 ** 20).toFixed(1).padStart(6)} MiB  ${path.relative(process.cwd(), vsix)}`);
}

main().catch((err) => {
  console.error(`package: ${err.message}`);
  process.exit(1);
});
