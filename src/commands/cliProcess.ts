import { execFile } from 'node:child_process';
import * as path from 'node:path';

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
