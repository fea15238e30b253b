import * as vscode from 'vscode';

/** "TRIPLEX: Get Started": opens the walkthrough (contributes.walkthroughs) from the palette. */
export const WALKTHROUGH = 'triplex-notebooks.triplex-notebooks#triplex.gettingStarted';

export function registerGetStartedCommand(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('triplex.getStarted', () =>
    vscode.commands.executeCommand('workbench.action.openWalkthrough', WALKTHROUGH, false)));
}
