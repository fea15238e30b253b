import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * Reaches into a webview's page from a test in the extension host, which VS Code's API does not
 * allow: on the code-server route the browser belongs to scripts/vscode-tests/code-server-as-vscode.cjs,
 * which reads the extension host's log, runs `fn` in the frame whose document holds `selector`
 * (called with that element and `arg`) and writes its answer to a file read back here. `fn` is sent
 * as source text: it may use only its arguments and the page's globals. Desktop VS Code has no such
 * route (`canProbeWebviews` is false there).
 */

export const canProbeWebviews = (): boolean => !!process.env.VSCODE_TEST_SERVER;

let probes = 0;

export async function probeWebview<A, R>(selector: string, fn: (element: Element, arg: A) => R | Promise<R>, arg: A, timeoutMs = 60_000): Promise<R> {
  if (!canProbeWebviews()) throw new Error('webview probes need the code-server route (VSCODE_TEST_SERVER)');
  const out = path.join(os.tmpdir(), `triplex-webview-probe-${process.pid}-${++probes}.json`);
  fs.rmSync(out, { force: true });
  console.log(`[webview-probe] ${JSON.stringify({ selector, script: fn.toString(), arg, out })}`);
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(out)) {
    if (Date.now() > deadline) throw new Error(`no answer to the webview probe on ${selector} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const answer = JSON.parse(fs.readFileSync(out, 'utf8')) as { result: R } | { error: string };
  fs.rmSync(out, { force: true });
  if ('error' in answer) throw new Error(`the webview probe on ${selector} failed: ${answer.error}`);
  return answer.result;
}
