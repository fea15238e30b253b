import { inspect } from 'node:util';
import type { MimeBundle } from '../protocol/outputs';
import { isArrowTable, isRichOutput, RICH_OUTPUT, tableOutput } from '../runtime/notebook/rich';

/**
 * What a value looks like in a cell's output: a rich output as its own bundle, an Arrow table as a
 * paged table, a list of rich outputs as one output each, anything else as `util.inspect` text
 * (as the Node REPL prints it).
 */
export function bundlesOf(value: unknown): MimeBundle[] {
  if (isRichOutput(value)) return [value[RICH_OUTPUT]];
  if (isArrowTable(value)) return [tableOutput(value)[RICH_OUTPUT]];
  if (Array.isArray(value) && value.length > 0 && value.every(isRichOutput)) return value.map((v) => v[RICH_OUTPUT]);
  if (typeof value === 'string') return [{ 'text/plain': value }];
  return [{ 'text/plain': inspect(value, { depth: 4, colors: false, maxArrayLength: 100, breakLength: 100 }) }];
}
