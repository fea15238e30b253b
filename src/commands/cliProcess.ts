import { execFile, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

/**
 * Runs the bundled `triplex` CLI in a child Node process and parses its JSON output. Heavy compute
 * never runs in the extension host: a crash or a long computation must not take the editor down.
 */
export function runCliJson<T>(extensionPath: string, args: string[], env: Record<string, string>): Promise<T> {
  const cli = path.join(extensionPath, 'dist', 'cli.js');
  return new Promise<T>((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env, ELECTRON_RUN_AS_NODE: '1' }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`triplex ${args.join(' ')} failed: ${stderr.trim() || error.message}`, { cause: error }));
          return;
        }
        try {
          resolve(JSON.parse(stdout) as T);
        } catch (cause) {
          reject(new Error(`triplex ${args.join(' ')} printed output that is not JSON: ${stdout.slice(0, 200)}`, { cause }));
        }
      });
  });
}

/** A `triplex` child process that can be stopped; `exited` resolves once it has ended. */
export interface CliChild {
  exited: Promise<{ code: number | null; stdout: string[]; tail: string[] }>;
  /**
   * SIGINT (the CLI stops at its next check and keeps what it wrote whole); SIGKILL if it has not
   * ended after `graceMs`. False when there was nothing to stop (already cancelled or ended).
   */
  cancel(): boolean;
  readonly cancelled: boolean;
}

/**
 * Starts the bundled `triplex` CLI in a child Node process, handing each line it prints to
 * `onLine` as it comes, and keeping stdout's lines and the last lines of both streams (the
 * reason, when it fails), except those `onLine` took as progress (returned true for).
 */
export function startCli(extensionPath: string, args: string[], env: Record<string, string>, onLine: (line: string, stream: 'stdout' | 'stderr') => boolean | void = () => undefined, graceMs = 60_000): CliChild {
  const child = spawn(process.execPath, [path.join(extensionPath, 'dist', 'cli.js'), ...args], { env: { ...process.env, ...env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  const tail: string[] = [];
  const remember = (line: string) => {
    tail.push(line);
    if (tail.length > 5) tail.shift();
  };
  const streams = [['stdout', child.stdout], ['stderr', child.stderr]] as const;
  const closed = streams.map(([name, stream]) => new Promise<void>((resolve) => {
    readline.createInterface({ input: stream }).on('line', (line) => {
      if (onLine(line, name) === true) return; // progress, reported already
      if (name === 'stdout') stdout.push(line);
      remember(line);
    }).on('close', resolve);
  }));
  let cancelled = false;
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      remember(err.message);
      resolve(null);
    });
    child.on('exit', (code) => resolve(code));
  }).then(async (code) => {
    if (child.pid !== undefined) await Promise.all(closed); // every line read before the end is reported
    return { code, stdout, tail };
  });
  return {
    exited,
    get cancelled() { return cancelled; },
    cancel() {
      if (cancelled || child.exitCode !== null || child.signalCode !== null) return false;
      cancelled = true;
      child.kill('SIGINT');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, graceMs).unref();
      return true;
    },
  };
}
