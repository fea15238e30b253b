import * as vscode from 'vscode';
import type { TriplexController } from './controller';
import { NOTEBOOK_TYPE } from './serializer';

const KINDS = { function: vscode.CompletionItemKind.Function, class: vscode.CompletionItemKind.Class, value: vscode.CompletionItemKind.Property } as const;

/**
 * Completion from the kernel's live values, as Jupyter kernels complete: after `name.` the
 * properties of what `name` holds now, and inside `import { … } from 'triplex'` the runtime's
 * exports. It asks the notebook's kernel (and starts none: without a kernel, the editor's own
 * TypeScript completion remains).
 */
export function registerCompletion(controller: TriplexController): vscode.Disposable {
  return vscode.languages.registerCompletionItemProvider(
    [{ notebookType: NOTEBOOK_TYPE, language: 'typescript' }, { notebookType: NOTEBOOK_TYPE, language: 'javascript' }],
    {
      async provideCompletionItems(document, position) {
        const notebook = vscode.workspace.notebookDocuments.find((nb) => nb.getCells().some((c) => c.document === document));
        const kernel = notebook && await controller.kernelOf(notebook);
        if (!kernel) return undefined;
        const before = document.getText(new vscode.Range(new vscode.Position(0, 0), position));
        const line = before.slice(before.lastIndexOf('\n') + 1);
        const member = /([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.[\w$]*$/.exec(line);
        const importing = /import\s*(?:type\s*)?\{[^}]*$/.exec(before);
        let expression: string | undefined;
        if (member) expression = member[1];
        else if (importing && /^[^;]*\}\s*from\s*['"]triplex['"]/.test(document.getText().slice(document.offsetAt(position)))) expression = 'require("triplex")';
        if (!expression) return undefined;
        const items = await kernel.complete(expression);
        return items.map((i) => new vscode.CompletionItem(i.name, KINDS[i.kind]));
      },
    },
    '.', '{', ',',
  );
}
