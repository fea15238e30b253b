import * as vscode from 'vscode';
import { registerComputeInfoCommand } from './commands/computeInfo';
import { registerNotebooks, type NotebookApi } from './notebook/register';

/** Wires the extension's contributions together; each lives in its own module. */
export function activate(context: vscode.ExtensionContext): NotebookApi {
  registerComputeInfoCommand(context);
  return registerNotebooks(context);
}

export function deactivate(): void {
  // Everything registered is disposed through context.subscriptions (kernels included).
}
