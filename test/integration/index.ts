import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

/**
 * Entry point that VS Code's extension host loads (--extensionTestsPath): runs every
 * `*.test.js` beside this file with mocha and rejects when any test fails, which makes VS Code
 * exit with a non-zero code.
 */
export async function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'tdd',
    reporter: 'spec',
    // The output is relayed through the extension host's console, where escape codes are noise.
    color: false,
    // The first test of a run waits for the extension host and the CLI to start.
    timeout: 60_000,
    // TRIPLEX_TEST_GREP=<text> runs only the tests whose title contains it (while working on them).
    ...(process.env.TRIPLEX_TEST_GREP ? { grep: process.env.TRIPLEX_TEST_GREP } : {}),
  });
  // The Restricted Mode launch runs restricted.test.js alone, the installed-package launch
  // installed.test.js alone; the trusted one everything else.
  const only = process.env.TRIPLEX_TEST_RESTRICTED === '1' ? 'restricted.test.js' : process.env.TRIPLEX_TEST_INSTALLED ? 'installed.test.js' : undefined;
  const ownPass = new Set(['restricted.test.js', 'installed.test.js']);
  const files = fs.readdirSync(__dirname).filter((name) => name.endsWith('.test.js') && (only ? name === only : !ownPass.has(name))).sort();
  if (files.length === 0) throw new Error(`No *.test.js files in ${__dirname}; was test/integration compiled?`);
  for (const name of files) mocha.addFile(path.join(__dirname, name));

  const failures = await new Promise<number>((resolve) => mocha.run(resolve));
  if (failures > 0) throw new Error(`${failures} integration test(s) failed.`);
}
