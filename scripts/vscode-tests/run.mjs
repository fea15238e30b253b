#!/usr/bin/env node
// `npm run test:integration`: runs out/test/integration/ inside a real VS Code 1.100.3 with
// @vscode/test-electron, picking the VS Code it can get:
//   1. VSCODE_TEST_SERVER set: code-server from that directory (installed there when missing),
//      driven by headless Chromium through code-server-as-vscode.cjs;
//   2. desktop VS Code, when already in .vscode-test/ or update.code.visualstudio.com answers
//      within a few seconds (on Linux only with an X display, e.g. under `xvfb-run -a`);
//   3. otherwise code-server from the npm registry, installed into .vscode-test/code-server.
// Expects a build first: `node scripts/build.mjs --tests` puts the tests in out/test/integration/.
import { spawnSync } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { downloadAndUnzipVSCode, runTests, TestRunFailedError } from '@vscode/test-electron';

const VSCODE_VERSION = '1.100.3'; // the VS Code inside code-server 4.100.3; keep the two equal
const UPDATE_HOST = 'update.code.visualstudio.com';
const PROBE_TIMEOUT_MS = 4000;
const DOWNLOAD_IDLE_TIMEOUT_MS = 20_000;

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const cachePath = path.join(root, '.vscode-test');
const defaultServerDir = path.join(cachePath, 'code-server');
const shim = path.join(here, 'code-server-as-vscode.cjs');
const testsPath = path.join(root, 'out', 'test', 'integration', 'index.js');
const workspace = path.join(root, 'test', 'integration', 'workspace');
const restrictedWorkspace = path.join(root, 'test', 'integration', 'restricted-workspace');
const installedHost = path.join(root, 'test', 'integration', 'installed-host');

const log = (message) => console.log(`[test:integration] ${message}`);

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** True when the VS Code update service answers; false fast when DNS or HTTPS fails. */
async function updateServiceReachable() {
  const proxied = ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY'].some((name) => process.env[name]);
  // Behind a proxy the host may not resolve locally; let the download itself (proxy-aware) decide.
  if (proxied) return true;
  try {
    await withTimeout(lookup(UPDATE_HOST), PROBE_TIMEOUT_MS, `DNS lookup of ${UPDATE_HOST}`);
    await withTimeout(new Promise((resolve, reject) => {
      const request = https.request({ host: UPDATE_HOST, path: '/api/releases/stable', method: 'HEAD', timeout: PROBE_TIMEOUT_MS }, (response) => {
        response.resume();
        resolve(response.statusCode);
      });
      request.on('timeout', () => request.destroy(new Error('timed out')));
      request.on('error', reject);
      request.end();
    }), PROBE_TIMEOUT_MS, `HTTPS request to ${UPDATE_HOST}`);
    return true;
  } catch (err) {
    log(`${UPDATE_HOST} is not reachable (${err.message}).`);
    return false;
  }
}

function desktopAlreadyDownloaded() {
  const entries = fs.existsSync(cachePath) ? fs.readdirSync(cachePath) : [];
  return entries.some((name) => name.startsWith('vscode-') && name.endsWith(`-${VSCODE_VERSION}`)
    && fs.existsSync(path.join(cachePath, name, 'is-complete')));
}

/** Path of desktop VS Code, or undefined (with the reason logged) when it cannot be had. */
async function desktopVSCode() {
  if (process.platform === 'linux' && !process.env.DISPLAY) {
    log('No X display, so no desktop VS Code (run under `xvfb-run -a` to use it).');
    return undefined;
  }
  if (!desktopAlreadyDownloaded() && !(await updateServiceReachable())) return undefined;
  try {
    return await downloadAndUnzipVSCode({ version: VSCODE_VERSION, cachePath, timeout: DOWNLOAD_IDLE_TIMEOUT_MS });
  } catch (err) {
    log(`Downloading desktop VS Code ${VSCODE_VERSION} failed (${err.message}).`);
    return undefined;
  }
}

function runScript(script, args = []) {
  const result = spawnSync('sh', [path.join(here, script), ...args], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (${result.error?.message ?? `exit code ${result.status ?? result.signal}`})`);
}

/** Installs what code-server needs and returns the shim that runs it as a "VS Code executable". */
function codeServerVSCode(serverDir) {
  const installed = fs.existsSync(path.join(serverDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js'));
  // Once installed, only the browser is needed; the toolchain and headers only for the install.
  runScript('ensure-system-deps.sh', installed ? ['--run-only'] : []);
  runScript('install-code-server.sh', [serverDir]);
  // runTests executes the shim directly; a checkout may have lost its executable bit.
  try {
    fs.accessSync(shim, fs.constants.X_OK);
  } catch {
    fs.chmodSync(shim, 0o755);
  }
  return shim;
}

/**
 * Packages this platform's .vsix (scripts/package.mjs) and installs it with code-server's
 * --install-extension into fresh extensions and user-data folders under .vscode-test/installed/.
 */
function installPackage(serverDir) {
  const target = `${process.platform}-${process.arch}`;
  const dir = path.join(cachePath, 'installed');
  fs.rmSync(dir, { recursive: true, force: true });
  const folders = { vsixDir: path.join(dir, 'vsix'), extensionsDir: path.join(dir, 'extensions'), userDataDir: path.join(dir, 'user-data') };
  for (const folder of Object.values(folders)) fs.mkdirSync(folder, { recursive: true });
  const started = Date.now();
  runNode([path.join(root, 'scripts', 'package.mjs'), '--target', target, '--out', folders.vsixDir], 'packaging');
  const [vsix] = fs.readdirSync(folders.vsixDir).filter((f) => f.endsWith('.vsix')).map((f) => path.join(folders.vsixDir, f));
  log(`Packaged ${path.relative(root, vsix)} (${(fs.statSync(vsix).size / 2 ** 20).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
  const entry = path.join(serverDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  // A private HOME and XDG folders: the install writes nothing outside .vscode-test/installed/.
  const home = { HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'config'), XDG_DATA_HOME: path.join(dir, 'data'), XDG_CACHE_HOME: path.join(dir, 'cache'), EXTENSIONS_GALLERY: '{}' };
  runNode([entry, '--install-extension', vsix, '--extensions-dir', folders.extensionsDir, '--user-data-dir', folders.userDataDir], 'code-server --install-extension', home);
  return { ...folders, vsix };
}

function runNode(args, what, env = {}) {
  const result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${what} failed (${result.error?.message ?? `exit code ${result.status ?? result.signal}`})`);
}

async function main() {
  const started = Date.now();
  for (const [file, hint] of [[path.join(root, 'dist', 'extension.js'), 'node scripts/build.mjs'], [testsPath, 'node scripts/build.mjs --tests']]) {
    if (!fs.existsSync(file)) throw new Error(`${path.relative(root, file)} is missing; run \`${hint}\` first.`);
  }

  const serverDir = process.env.VSCODE_TEST_SERVER ? path.resolve(process.env.VSCODE_TEST_SERVER) : undefined;
  let vscodeExecutablePath = serverDir ? undefined : await desktopVSCode();
  let target = `desktop VS Code ${VSCODE_VERSION}`;
  let env = {};
  if (!vscodeExecutablePath) {
    vscodeExecutablePath = codeServerVSCode(serverDir ?? defaultServerDir);
    target = `code-server (VS Code ${VSCODE_VERSION}) in headless Chromium`;
    env = { VSCODE_TEST_SERVER: serverDir ?? defaultServerDir }; // read by the shim
  }
  log(`Running the tests in ${target}.`);

  // Three launches: the suites in a trusted workspace; Restricted Mode in an untrusted one
  // (workspace trust is a property of the whole window, so it needs its own); and the .vsix that
  // `npm run package` makes for this platform, installed into an extensions folder of its own,
  // with an empty extension as the development path so that the installed copy is the one that runs.
  // TRIPLEX_TEST_PASS=trusted|restricted|installed runs one of them.
  const passes = [
    { key: 'trusted', name: 'trusted workspace', workspace, env: {} },
    { key: 'restricted', name: 'Restricted Mode', workspace: restrictedWorkspace, env: { TRIPLEX_TEST_RESTRICTED: '1' } },
    { key: 'installed', name: 'installed package', workspace, env: { TRIPLEX_TEST_INSTALLED: '1' } },
  ].filter((p) => !process.env.TRIPLEX_TEST_PASS || p.key === process.env.TRIPLEX_TEST_PASS);
  let status = 0;
  for (const pass of passes) {
    if (pass.key !== 'trusted' && !env.VSCODE_TEST_SERVER) {
      log(`${pass.name} is tested on the code-server route only (desktop VS Code would prompt for trust or need its own CLI).`);
      continue;
    }
    log(`${pass.name}: ${path.relative(root, pass.workspace)}`);
    try {
      const installed = pass.key === 'installed' ? installPackage(env.VSCODE_TEST_SERVER) : undefined;
      if (installed) Object.assign(pass.env, { TRIPLEX_TEST_INSTALLED: installed.extensionsDir, TRIPLEX_TEST_VSIX: installed.vsix });
      await runTests({
        vscodeExecutablePath,
        extensionDevelopmentPath: installed ? installedHost : root,
        extensionTestsPath: testsPath,
        extensionTestsEnv: { ...env, ...pass.env },
        launchArgs: installed ? [pass.workspace, `--user-data-dir=${installed.userDataDir}`, `--extensions-dir=${installed.extensionsDir}`] : [
          pass.workspace,
          '--disable-extensions',
          `--user-data-dir=${path.join(cachePath, 'user-data')}`,
          `--extensions-dir=${path.join(cachePath, 'extensions')}`,
        ],
      });
    } catch (err) {
      if (!(err instanceof TestRunFailedError)) throw err;
      log(`${pass.name} failed: ${err.message}.`);
      status = err.code || 1;
    }
  }
  log(`${status === 0 ? 'Passed' : 'Failed'} in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
  return status;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`[test:integration] ${err.stack ?? err}`);
    process.exit(1);
  },
);
