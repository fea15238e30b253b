import type { CompiledCell } from './compiler';

/** The file name a cell's script runs under; its frames are mapped back to the cell. */
export const CELL_FILE = (id: number): string => `triplex-cell-${id}.js`;
const CELL_FRAME = /triplex-cell-(\d+)\.js:(\d+):(\d+)/;
/** Frames of the kernel itself and of Node's internals say nothing about the user's code. */
const NOISE = /\((?:node:|.*[\\/]dist[\\/]kernel\.js:)|at (?:node:|.*[\\/]dist[\\/]kernel\.js:)|at new Promise \(<anonymous>\)|at Script\.runInThisContext|at Object\.runInThisContext/;

export interface CellRecord { label: string; compiled: CompiledCell }

/**
 * An error's stack with every frame in a cell rewritten to the cell's own line and column
 * ("at add (Cell 2:3:9)"), and the kernel's and Node's internal frames dropped.
 */
export function mapStack(stack: string, cells: ReadonlyMap<number, CellRecord>): string {
  const lines = stack.split('\n').flatMap((line) => {
    if (!/^\s+at /.test(line)) return [line];
    const m = CELL_FRAME.exec(line);
    if (!m) return NOISE.test(line) ? [] : [line];
    const cell = cells.get(Number(m[1]));
    const at = cell?.compiled.original(Number(m[2]), Number(m[3]));
    const where = cell ? `${cell.label}:${at ? `${at.line}:${at.column}` : '?'}` : m[0];
    return [line.replace(m[0], where).replace(/at (?:async )?(?:<anonymous>|Object\.<anonymous>) \((.*)\)$/, 'at $1')];
  });
  // The cell's wrapper and the script that calls it map to the same place: say it once.
  return lines.filter((line, i) => line !== lines[i - 1]).join('\n');
}
