import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';

/**
 * The page of a webview: Content-Security-Policy `default-src 'none'`, our one script allowed by
 * a fresh nonce from `crypto`, styles and images only from the webview's own resource roots.
 */
export function webviewHtml(webview: vscode.Webview, options: { title: string; script: vscode.Uri; imgFromRoots?: boolean }): string {
  const nonce = randomBytes(16).toString('base64');
  const csp = [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    // The toolkit's components and plotly set inline styles; no script can be injected through them.
    `style-src ${webview.cspSource} 'unsafe-inline'`,
    `img-src ${webview.cspSource}${options.imgFromRoots ? ' blob:' : ''}`,
    `font-src ${webview.cspSource}`,
  ].join('; ');
  const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escape(options.title)}</title>
</head>
<body>
<div id="root"></div>
<script nonce="${nonce}" src="${webview.asWebviewUri(options.script).toString()}"></script>
</body>
</html>`;
}

/** Sends a typed message to a webview. */
export function post<M, K extends keyof M & string>(webview: vscode.Webview, type: K, payload: M[K]): Thenable<boolean> {
  return webview.postMessage({ type, payload });
}
