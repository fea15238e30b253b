import * as vscode from 'vscode';
import { computeEnv } from '../notebook/controller';
import { runCliJson } from './cliProcess';
import type { ComputeReport } from '../runtime/compute/report';

/**
 * "TRIPLEX: Show Compute Backend": asks the runtime, in a separate Node process (as the notebook
 * kernel and training will run), which engine it computes on, and shows the answer.
 * Returns the report so that tests and other commands can use it.
 */
export function registerComputeInfoCommand(context: vscode.ExtensionContext): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('triplex.showComputeInfo', async (): Promise<ComputeReport> => {
      const report = await runCliJson<ComputeReport>(context.extensionPath, ['info', '--json'], computeEnv());
      const unavailable = report.engines.filter((e) => !e.available).map((e) => `${e.name}: ${e.reason ?? 'unavailable'}`);
      const engine = report.engine ? `TRIPLEX trains and predicts on ${report.engine.detail}; ` : '';
      const message = `${engine}TF.js computes on ${report.backend} ${report.version} with ${report.threads} thread(s).`;
      void vscode.window.showInformationMessage(unavailable.length ? `${message} Not available: ${unavailable.join('; ')}` : message);
      return report;
    }),
  );
}
