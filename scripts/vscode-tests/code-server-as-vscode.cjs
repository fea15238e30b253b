#!/usr/bin/env node
// A drop-in "VS Code executable" for @vscode/test-electron's runTests({ vscodeExecutablePath }) on
// machines that cannot download desktop VS Code. It takes the desktop command line that runTests
// passes ([folder] --extensionDevelopmentPath=... --extensionTestsPath=... --disable-extensions ...),
// runs the same tests in code-server (VS Code's server with a Node extension host) opened in a
// headless Chromium through playwright-core, prints the extension host's output, and exits with the
// tests' exit code.
//
// Environment:
//   VSCODE_TEST_SERVER      code-server install directory (required; see install-code-server.sh)
//   CHROMIUM_PATH           browser binary (default: chromium on PATH, as Debian's package installs it)
//   VSCODE_TEST_TIMEOUT_MS  limit for the whole test run (default: 600000; the trusted pass takes about 4 minutes on 2 busy cores)
//   VSCODE_TEST_VERBOSE=1   also print server, browser and workbench noise
//
// Each run gets a fresh user-data and extensions directory in a temporary folder: --user-data-dir
// and --extensions-dir are honoured only when given explicitly and --disable-extensions is not.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const util = require('node:util');
const { spawn } = require('node:child_process');

const TAG = '[code-server-as-vscode]';
const verbose = process.env.VSCODE_TEST_VERBOSE === '1';
const SERVER_START_TIMEOUT_MS = 60_000;

/** Start-up chatter of the web workbench, printed on every run; hidden unless verbose. */
const NOISE = [
  /^Resolv(ing|ed) connection token \(/,
  /^Creating a socket \(renderer-/,
  /^Updating additional builtin extensions cache$/,
  /^Ignoring fetching additional builtin extensions from gallery as it is disabled\.$/,
  /^\[Service Worker\] registered$/,
  /^ChatSessionStore: /,
];

/** Reads the subset of the desktop command line that matters here; other flags are ignored. */
function parseArgs(argv) {
  const args = { developmentPaths: [], testsPath: undefined, folder: undefined, userDataDir: undefined, extensionsDir: undefined, disableExtensions: false };
  for (const arg of argv) {
    const flag = /^--([^=]+)(?:=(.*))?$/.exec(arg);
    if (!flag) {
      args.folder = path.resolve(arg);
      continue;
    }
    const [, name, value] = flag;
    if (name === 'extensionDevelopmentPath') args.developmentPaths.push(path.resolve(value));
    else if (name === 'extensionTestsPath') args.testsPath = path.resolve(value);
    else if (name === 'user-data-dir') args.userDataDir = path.resolve(value);
    else if (name === 'extensions-dir') args.extensionsDir = path.resolve(value);
    else if (name === 'disable-extensions') args.disableExtensions = true;
  }
  if (!args.testsPath || args.developmentPaths.length === 0) {
    throw new Error(`${TAG} needs --extensionTestsPath= and --extensionDevelopmentPath= (got: ${argv.join(' ')})`);
  }
  return args;
}

function findServerEntry() {
  const dir = process.env.VSCODE_TEST_SERVER;
  if (!dir) throw new Error(`${TAG} VSCODE_TEST_SERVER is not set; it must name a code-server install directory.`);
  const candidates = ['node_modules/code-server/out/node/entry.js', 'out/node/entry.js'].map((p) => path.resolve(dir, p));
  const entry = candidates.find((p) => fs.existsSync(p));
  if (!entry) throw new Error(`${TAG} no code-server under VSCODE_TEST_SERVER=${dir}; run scripts/vscode-tests/install-code-server.sh ${dir}`);
  return entry;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function findOnPath(names) {
  for (const dir of (process.env.PATH || '').split(path.delimiter).filter(Boolean)) {
    for (const name of names) {
      const candidate = path.join(dir, name);
      try {
        fs.accessSync(candidate, fs.constants.X_OK);
        return candidate;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

function isNoise(line) {
  return !verbose && NOISE.some((re) => re.test(line));
}

/** Settings that keep the workbench quiet and off the network. */
const USER_SETTINGS = {
  'workbench.startupEditor': 'none',
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'extensions.ignoreRecommendations': true,
  'workbench.enableExperiments': false,
  'security.workspace.trust.enabled': false,
};

/**
 * TRIPLEX_TEST_RESTRICTED=1: workspace trust on and the folder left untrusted (no prompt), to
 * test Restricted Mode.
 */
const restricted = process.env.TRIPLEX_TEST_RESTRICTED === '1';
if (restricted) {
  Object.assign(USER_SETTINGS, {
    'security.workspace.trust.enabled': true,
    'security.workspace.trust.startupPrompt': 'never',
    'security.workspace.trust.emptyWindow': false,
    'security.workspace.trust.banner': 'never',
  });
}

/** Owns the temporary folder, the server process group and the browser; `stop` is idempotent. */
class Session {
  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'triplex-vscode-test-'));
    this.server = undefined;
    this.browser = undefined;
    this.serverLog = [];
    /** Called with { code, signal } when the server reports that an extension host process ended. */
    this.onExtensionHostExit = undefined;
  }

  /** XDG folders inside the temporary folder: nothing is written to ~/.config, ~/.cache, ~/.local. */
  privateHome() {
    return { XDG_CONFIG_HOME: path.join(this.tmp, 'config'), XDG_CACHE_HOME: path.join(this.tmp, 'cache'), XDG_DATA_HOME: path.join(this.tmp, 'data') };
  }

  async startServer(entry, args) {
    const userDataDir = args.userDataDir && !args.disableExtensions ? args.userDataDir : path.join(this.tmp, 'user-data');
    const extensionsDir = args.extensionsDir && !args.disableExtensions ? args.extensionsDir : path.join(this.tmp, 'extensions');
    fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
    fs.mkdirSync(extensionsDir, { recursive: true });
    const settingsFile = path.join(userDataDir, 'User', 'settings.json');
    if (!fs.existsSync(settingsFile)) fs.writeFileSync(settingsFile, JSON.stringify(USER_SETTINGS, null, 2));
    const serverTmp = path.join(this.tmp, 'tmp');
    fs.mkdirSync(serverTmp);
    const config = path.join(this.tmp, 'config.yaml');
    fs.writeFileSync(config, 'auth: none\n');

    const port = await freePort();
    // detached: the server gets its own process group, so that its children (wrapper, file watcher,
    // extension host, CLI processes started by tests) can be ended together.
    this.server = spawn(process.execPath, [entry,
      '--config', config, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`,
      '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir,
      '--disable-telemetry', '--disable-update-check', ...(restricted ? [] : ['--disable-workspace-trust']),
      '--disable-getting-started-override', '--ignore-last-opened',
    ], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      // TMPDIR: the sockets VS Code leaves in the temp folder (vscode-ipc-*, vscode-git-*) go too.
      // EXTENSIONS_GALLERY: no gallery (open-vsx.org by default), so no extension queries at all.
      env: { ...process.env, ...this.privateHome(), TMPDIR: serverTmp, EXTENSIONS_GALLERY: '{}' },
    });

    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${TAG} code-server did not start within ${SERVER_START_TIMEOUT_MS} ms:\n${this.serverLog.join('')}`)), SERVER_START_TIMEOUT_MS);
      const onLine = (line) => {
        this.serverLog.push(`${line}\n`);
        if (verbose) process.stderr.write(`[server] ${line}\n`);
        const exit = /Extension Host Process exited with code: (\S+), signal: ([^.\s]+)/.exec(line);
        if (exit) this.onExtensionHostExit?.({ code: exit[1], signal: exit[2] });
        if (line.includes('HTTP server listening')) {
          clearTimeout(timer);
          resolve();
        }
      };
      for (const stream of [this.server.stdout, this.server.stderr]) {
        let partial = '';
        stream.on('data', (chunk) => {
          const lines = (partial + chunk.toString()).split('\n');
          partial = lines.pop();
          lines.forEach(onLine);
        });
      }
      this.server.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${TAG} code-server exited (${code ?? signal}) before it was ready:\n${this.serverLog.join('')}`));
      });
    });
    return port;
  }

  async openBrowser() {
    const { chromium } = require('playwright-core');
    const executablePath = process.env.CHROMIUM_PATH || findOnPath(['chromium', 'chromium-browser']);
    if (!executablePath || !fs.existsSync(executablePath)) {
      throw new Error(`${TAG} no Chromium found (CHROMIUM_PATH=${process.env.CHROMIUM_PATH ?? ''}); install Debian's chromium (scripts/vscode-tests/ensure-system-deps.sh) or set CHROMIUM_PATH.`);
    }
    this.browser = await chromium.launch({
      executablePath,
      headless: true,
      env: { ...process.env, ...this.privateHome() },
      // Signals are handled below, so that the server group and temp folder go too.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: false,
      args: [
        '--no-sandbox', // running as root in CI containers
        '--disable-gpu',
        '--disable-dev-shm-usage', // small /dev/shm in containers
        '--no-first-run',
        // Nothing in the browser may reach the internet: no background requests, no updates.
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--disable-quic',
        '--disable-domain-reliability',
        '--disable-features=Translate,OptimizationHints,MediaRouter',
        '--metrics-recording-only',
      ],
    });
    const context = await this.browser.newContext();
    // The tests must not depend on the network: refuse every request that leaves the machine.
    await context.route((url) => !['127.0.0.1', 'localhost'].includes(url.hostname) && /^https?:$/.test(url.protocol), (route) => route.abort());
    return context.newPage();
  }

  /** Ends the browser and the server's whole process group, and removes the temporary folder. */
  stop() {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  async stopOnce() {
    if (this.browser) await this.browser.close().catch((err) => console.error(`${TAG} closing the browser failed:`, err.message));
    const server = this.server;
    if (server && server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      killGroup(server.pid, 'SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    }
    // Children of the server (extension host, file watcher) may outlive it; end the group regardless.
    if (server) killGroup(server.pid, 'SIGKILL');
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (err.code !== 'ESRCH') console.error(`${TAG} could not send ${signal} to process group ${pid}:`, err.message);
  }
}

/**
 * Webview probes: a test in the extension host cannot reach a webview's page, which lives in this
 * browser; it logs `[webview-probe] {"selector", "script", "arg", "out"}` and the answer is written
 * to `out` as JSON, `{ "result": ... }` or `{ "error": message }`: `script`, a function's source,
 * called in the frame whose document holds `selector` with that element and `arg`
 * (test/integration/webviewProbe.ts). Only the code-server route has this.
 */
const PROBE_MARK = '[webview-probe] ';
const PROBE_FRAME_TIMEOUT_MS = 30_000;

async function answerProbe(page, text) {
  let request;
  try {
    request = JSON.parse(text);
  } catch {
    console.error(`${TAG} a malformed webview probe: ${text.slice(0, 200)}`);
    return;
  }
  const { selector, script, arg, out } = request;
  let answer;
  try {
    const deadline = Date.now() + PROBE_FRAME_TIMEOUT_MS;
    let frame;
    while (!frame) {
      for (const f of page.frames()) {
        if (await f.$(selector).then((h) => !!h, () => false)) {
          frame = f;
          break;
        }
      }
      if (!frame && Date.now() > deadline) throw new Error(`no frame of the workbench holds ${selector} after ${PROBE_FRAME_TIMEOUT_MS} ms`);
      if (!frame) await new Promise((resolve) => setTimeout(resolve, 250));
    }
    answer = { result: await frame.evaluate(`(${script})(document.querySelector(${JSON.stringify(selector)}), ${JSON.stringify(arg ?? null)})`) };
  } catch (err) {
    answer = { error: err.message };
  }
  fs.writeFileSync(`${out}.part`, JSON.stringify(answer));
  fs.renameSync(`${out}.part`, out);
}

async function runTestsInBrowser(session, args, port) {
  const page = await session.openBrowser();
  let report;
  const outcome = new Promise((resolve) => (report = resolve));
  // The web workbench hands extension-host console output and the final exit code to these two
  // functions, as in VS Code's own browser integration tests. Both must exist before it loads.
  await page.exposeFunction('codeAutomationLog', (type, parts) => {
    const line = util.format(...parts);
    if (line.startsWith(PROBE_MARK)) {
      void answerProbe(page, line.slice(PROBE_MARK.length));
      return;
    }
    if (isNoise(line)) return;
    (type === 'error' ? console.error : console.log)(line);
  });
  await page.exposeFunction('codeAutomationExit', (code) => report(code));
  page.on('crash', () => report('the page crashed'));
  page.on('close', () => report('the page closed'));
  // The workbench reports exit code 0 even when the extension host was killed, so its own exit
  // status, which the server logs, is checked too. A host that dies without the workbench
  // reporting anything must not keep the run waiting for the whole timeout either.
  let hostExit;
  let hostExited;
  const hostExitSeen = new Promise((resolve) => (hostExited = resolve));
  session.onExtensionHostExit = (exit) => {
    hostExit ??= exit;
    hostExited();
    setTimeout(() => report('the extension host exited without reporting an exit code'), 10_000).unref();
  };
  page.on('pageerror', (err) => console.error(`${TAG} page error:`, err.message));
  page.on('console', (message) => {
    if (verbose) console.log(`[browser] ${message.text()}`);
  });

  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = [
    ...args.developmentPaths.map((p) => ['extensionDevelopmentPath', remote(p)]),
    ['extensionTestsPath', remote(args.testsPath)],
    ['skipWelcome', 'true'],
    ['skipReleaseNotes', 'true'],
    ...(args.disableExtensions ? [['disableExtensions', 'true']] : []),
  ];
  const target = args.folder ? `folder=${encodeURIComponent(args.folder)}` : 'ew=true';
  await page.goto(`http://127.0.0.1:${port}/?${target}&payload=${encodeURIComponent(JSON.stringify(payload))}`);

  const timeoutMs = Number(process.env.VSCODE_TEST_TIMEOUT_MS || 600_000);
  let timer;
  const timedOut = new Promise((resolve) => (timer = setTimeout(() => resolve(`no result within ${timeoutMs} ms`), timeoutMs)));
  const result = await Promise.race([outcome, timedOut]);
  clearTimeout(timer);
  if (typeof result === 'number') await Promise.race([hostExitSeen, new Promise((resolve) => setTimeout(resolve, 3000))]);
  return { result, hostExit };
}

let session;
let exiting;

/** Stops everything, once, then exits; a second call (a signal during shutdown) waits for the first. */
function shutdown(code) {
  exiting ??= Promise.resolve(session?.stop())
    .catch((err) => console.error(`${TAG} cleanup failed:`, err))
    .finally(() => process.exit(code));
  return exiting;
}

async function main() {
  const started = Date.now();
  const args = parseArgs(process.argv.slice(2));
  const entry = findServerEntry();
  session = new Session();

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      console.error(`${TAG} ${signal}: stopping VS Code`);
      void shutdown(128 + os.constants.signals[signal]);
    });
  }
  // Leave no server behind when whoever started this process goes away (runTests killed, the
  // output pipe closed): an orphan gets a new parent, and writes to a closed pipe fail with EPIPE.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void shutdown(1);
  }, 1000).unref();
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => void shutdown(1));

  const port = await session.startServer(entry, args);
  console.log(`${TAG} code-server on 127.0.0.1:${port} after ${Date.now() - started} ms`);
  const { result, hostExit } = await runTestsInBrowser(session, args, port);
  if (exiting) return 1; // interrupted; the reason is already printed
  console.log(`${TAG} tests finished (${result}) after ${Date.now() - started} ms`);
  if (typeof result !== 'number') {
    console.error(`${TAG} the extension host never reported an exit code: ${result}. Server log:\n${session.serverLog.join('')}`);
    return 1;
  }
  if (hostExit && (hostExit.code !== '0' || hostExit.signal !== 'null')) {
    console.error(`${TAG} the extension host ended abnormally (exit code ${hostExit.code}, signal ${hostExit.signal}).`);
    return 1;
  }
  return result === 0 ? 0 : 1;
}

main().then(shutdown, (err) => {
  console.error(err && err.stack ? err.stack : err);
  return shutdown(1);
});
