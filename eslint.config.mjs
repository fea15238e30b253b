// Layering is enforced here: the TRIPLEX runtime and the CLI run in plain Node (notebook kernels,
// the command line, unit tests), so they may never import `vscode`.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'out/', '.vscode-test/', 'scripts/', 'bin/', 'eslint.config.mjs', 'test/fixtures/', 'test/.tmp/', '.package/', 'vsix/'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': ['error', {
        // node:test's describe/test return promises the runner itself awaits.
        allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'test', 'it', 'suite', 'before', 'after'] }],
      }],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The kernel runs in its own Node process; nbformat and the message types are shared with it.
    files: ['src/runtime/**/*.ts', 'src/cli/**/*.ts', 'src/kernel/**/*.ts', 'src/protocol/**/*.ts', 'src/notebook/nbformat.ts', 'bench/**/*.ts', 'test/unit/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: 'vscode', message: 'The TRIPLEX runtime, kernel, CLI and unit tests run without VS Code.' }] }],
    },
  },
  {
    files: ['webview/**/*.ts'],
    rules: {
      // Browser code; of src/ it may import only the message and payload types, and the one
      // Pearson correlation (src/runtime/eval/pearson.ts imports nothing), so that a selection's
      // PCC in the viewer is the slide's PCC of the runtime, not a second copy.
      'no-restricted-imports': ['error', { patterns: [
        { group: ['vscode', 'node:*', 'fs', 'path', 'child_process'], message: 'Webview code runs in the browser.' },
        { regex: '(^|/)src/(?!protocol/|runtime/eval/pearson$)', message: 'Webview code may import only src/protocol (shared types) and src/runtime/eval/pearson from the extension.' },
      ] }],
    },
  },
);
