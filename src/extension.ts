import * as vscode from 'vscode';
import { registerComputeInfoCommand } from './commands/computeInfo';

/** Wires the extension's contributions together; each lives in its own module. */
export function activate(context: vscode.ExtensionContext): void {
  registerComputeInfoCommand(context);
}

export function deactivate(): void {
  // Everything registered is disposed through context.subscriptions.
}
