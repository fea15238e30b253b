import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/** Headless Chromium (Debian's, installed by scripts/ensure-test-deps.sh) and a local server for built browser bundles. */

export function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch (err) {
    throw new Error('no Chromium: scripts/ensure-test-deps.sh installs it (apt-get install chromium), or set CHROMIUM_PATH', { cause: err });
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
}

/**
 * Serves files, and an empty page at `/`: `dir`'s files at the root, or each folder of a map at
 * its prefix ({ '/': dist, '/tiles': pyramid }). Resolves with the base URL and a close function.
 */
export async function serve(dirs: string | Record<string, string>): Promise<{ base: string; close: () => void }> {
  const mounts = Object.entries(typeof dirs === 'string' ? { '/': dirs } : dirs).sort((a, b) => b[0].length - a[0].length);
  const types: Record<string, string> = { '.js': 'text/javascript', '.png': 'image/png', '.jpeg': 'image/jpeg', '.jpg': 'image/jpeg', '.json': 'application/json', '.dzi': 'application/xml' };
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (name === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><html><head></head><body><div id="root"></div></body></html>');
      return;
    }
    const [prefix, dir] = mounts.find(([p]) => name.startsWith(p)) ?? ['/', ''];
    const file = path.join(dir, path.normalize(name.slice(prefix.length)));
    if (!dir || !file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' }).end(fs.readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => server.close() };
}

/** Theme variables as VS Code sets them in webviews, for a light, a dark and a high-contrast theme. */
export const THEMES = {
  light: { '--vscode-foreground': '#3b3b3b', '--vscode-editor-background': '#ffffff', '--vscode-charts-green': '#388a34', '--vscode-font-family': 'sans-serif', '--vscode-list-hoverBackground': '#e8e8e8', '--vscode-focusBorder': '#005fb8',
    '--vscode-input-background': '#ffffff', '--vscode-input-foreground': '#3b3b3b', '--vscode-input-border': '#cecece', '--vscode-dropdown-background': '#ffffff', '--vscode-dropdown-foreground': '#3b3b3b', '--vscode-dropdown-border': '#cecece', '--vscode-button-background': '#005fb8', '--vscode-button-foreground': '#ffffff', '--vscode-button-secondaryBackground': '#e5e5e5', '--vscode-button-secondaryForeground': '#3b3b3b', '--vscode-checkbox-background': '#f8f8f8', '--vscode-checkbox-border': '#cecece' },
  dark: { '--vscode-foreground': '#cccccc', '--vscode-editor-background': '#1f1f1f', '--vscode-charts-green': '#89d185', '--vscode-font-family': 'sans-serif', '--vscode-list-hoverBackground': '#2a2d2e', '--vscode-focusBorder': '#0078d4',
    '--vscode-input-background': '#313131', '--vscode-input-foreground': '#cccccc', '--vscode-input-border': '#3c3c3c', '--vscode-dropdown-background': '#313131', '--vscode-dropdown-foreground': '#cccccc', '--vscode-dropdown-border': '#3c3c3c', '--vscode-button-background': '#0078d4', '--vscode-button-foreground': '#ffffff', '--vscode-button-secondaryBackground': '#313131', '--vscode-button-secondaryForeground': '#cccccc', '--vscode-checkbox-background': '#313131', '--vscode-checkbox-border': '#3c3c3c' },
  'high-contrast': { '--vscode-foreground': '#ffffff', '--vscode-editor-background': '#000000', '--vscode-charts-green': '#89d185', '--vscode-font-family': 'sans-serif', '--vscode-list-hoverBackground': '#000000', '--vscode-focusBorder': '#f38518',
    '--vscode-contrastBorder': '#6fc3df', '--vscode-editorWidget-border': '#6fc3df', '--vscode-input-background': '#000000', '--vscode-input-foreground': '#ffffff', '--vscode-input-border': '#6fc3df', '--vscode-dropdown-background': '#000000', '--vscode-dropdown-foreground': '#ffffff', '--vscode-dropdown-border': '#6fc3df', '--vscode-button-background': '#000000', '--vscode-button-foreground': '#ffffff', '--vscode-button-border': '#6fc3df', '--vscode-button-secondaryBackground': '#000000', '--vscode-button-secondaryForeground': '#ffffff', '--vscode-checkbox-background': '#000000', '--vscode-checkbox-border': '#6fc3df' },
} as const;

/** The colours the tests expect under each theme: the "best" green and the foreground. */
export const EXPECTED: Record<keyof typeof THEMES, { green: string; foreground: string }> = {
  light: { green: 'rgb(56, 138, 52)', foreground: 'rgb(59, 59, 59)' },
  dark: { green: 'rgb(137, 209, 133)', foreground: 'rgb(204, 204, 204)' },
  'high-contrast': { green: 'rgb(137, 209, 133)', foreground: 'rgb(255, 255, 255)' },
};
