#!/usr/bin/env node
'use strict';
// The CLI is bundled by `npm run build` (run automatically by `npm install` through `prepare`).
try {
  require.resolve('../dist/cli.js');
} catch {
  console.error('triplex: dist/cli.js is missing; run `npm run build` in the TRIPLEX Notebooks folder first.');
  process.exit(1);
}
require('../dist/cli.js');
