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

  // Two launches: the suites in a trusted workspace, then Restricted Mode in an untrusted one
  // (workspace trust is a property of the whole window, so it needs its own).
  const passes = [
    { name: 'trusted workspace', workspace, env: {} },
    { name: 'Restricted Mode', workspace: restrictedWorkspace, env: { TRIPLEX_TEST_RESTRICTED: '1' } },
  ].filter((p) => !process.env.TRIPLEX_TEST_PASS || p.env.TRIPLEX_TEST_RESTRICTED === (process.env.TRIPLEX_TEST_PASS === 'restricted' ? '1' : undefined));
  let status = 0;
  for (const pass of passes) {
    if (pass.env.TRIPLEX_TEST_RESTRICTED && !env.VSCODE_TEST_SERVER) {
      log('Restricted Mode is tested on the code-server route only (desktop VS Code would prompt for trust).');
      continue;
    }
    log(`${pass.name}: ${path.relative(root, pass.workspace)}`);
    try {
      await runTests({
        vscodeExecutablePath,
        extensionDevelopmentPath: root,
        extensionTestsPath: testsPath,
        extensionTestsEnv: { ...env, ...pass.env },
        launchArgs: [
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
