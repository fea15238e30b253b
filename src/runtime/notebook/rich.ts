import { inspect } from 'node:util';
import type { Table } from 'apache-arrow';
import { MIME, type Cell, type MimeBundle, type TablePayload } from '../../protocol/outputs';

/**
 * Rich outputs for notebook cells. Each builder returns a `RichOutput`: a MIME bundle with a
 * vendor type that the extension's renderers draw, and a `text/plain` fallback for Jupyter,
 * GitHub and the command line (figures also carry `image/svg+xml`: see ./outputs). The kernel shows one when a cell's last expression evaluates to it,
 * or when a cell calls `display(...)`. This module is light (no TF.js, no apache-arrow at run
 * time) because the kernel loads it at start.
 */

/** Symbol.for, so that a bundle made by another copy of this module is still recognised. */
export const RICH_OUTPUT = Symbol.for('triplex.richOutput');

export interface RichOutput {
  readonly [RICH_OUTPUT]: MimeBundle;
}

export function richOutput(bundle: MimeBundle): RichOutput {
  return {
    [RICH_OUTPUT]: bundle,
    [inspect.custom]: () => String(bundle['text/plain'] ?? '[rich output]'),
  } as RichOutput;
}

export function isRichOutput(value: unknown): value is RichOutput {
  return typeof value === 'object' && value !== null && RICH_OUTPUT in value;
}

/** Duck test for an Arrow table (another copy of apache-arrow has another Table class). */
export function isArrowTable(value: unknown): value is Table {
  const t = value as Partial<Table> | null;
  return typeof t === 'object' && t !== null && typeof t.numRows === 'number' && typeof t.getChildAt === 'function' && Array.isArray(t.schema?.fields);
}

const VECTOR_PREVIEW = 4;

function cellValue(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'bigint') return Number(value);
  if (value instanceof Date) return value.toISOString();
  const list = value as { length?: number; toArray?: () => ArrayLike<unknown> };
  if (typeof list.toArray === 'function' || ArrayBuffer.isView(value)) {
    const items = Array.from(typeof list.toArray === 'function' ? list.toArray() : (value as unknown as ArrayLike<unknown>));
    const shown = items.slice(0, VECTOR_PREVIEW).map((v) => (typeof v === 'number' ? Number(v.toPrecision(4)) : v)).join(', ');
    return `[${shown}${items.length > VECTOR_PREVIEW ? `, … ${items.length} values` : ''}]`;
  }
  return String(value);
}

/** An Arrow table (or rows of plain objects) as a paged table; at most `maxRows` rows are kept. */
export function tableOutput(source: Table | readonly Record<string, unknown>[], options: { title?: string; maxRows?: number } = {}): RichOutput {
  const maxRows = options.maxRows ?? 5000;
  let payload: TablePayload;
  if (isArrowTable(source)) {
    const fields = source.schema.fields;
    const n = Math.min(source.numRows, maxRows);
    const columns = fields.map((f, c) => ({ name: f.name, vector: source.getChildAt(c) }));
    const rows: Cell[][] = [];
    for (let i = 0; i < n; i++) rows.push(columns.map((c) => cellValue(c.vector?.get(i))));
    payload = { title: options.title, columns: fields.map((f) => ({ name: f.name, type: String(f.type) })), rows, totalRows: source.numRows };
  } else {
    const names = [...new Set(source.flatMap((r) => Object.keys(r)))];
    const kept = source.slice(0, maxRows);
    payload = {
      title: options.title,
      columns: names.map((name) => ({ name, type: typeof kept.find((r) => r[name] !== undefined && r[name] !== null)?.[name] })),
      rows: kept.map((r) => names.map((name) => cellValue(r[name]))),
      totalRows: source.length,
    };
  }
  return richOutput({ [MIME.table]: payload, 'text/plain': tableText(payload) });
}


function tableText(t: TablePayload, rows = 10): string {
  const head = t.columns.map((c) => c.name);
  const body = t.rows.slice(0, rows).map((r) => r.map((v) => (v === null ? '' : String(v))));
  const widths = head.map((h, i) => Math.min(40, Math.max(h.length, ...body.map((r) => r[i].length))));
  const line = (r: string[]) => r.map((v, i) => v.slice(0, 40).padEnd(widths[i])).join('  ').trimEnd();
  const more = t.totalRows > body.length ? `\n… ${t.totalRows} rows` : '';
  return [t.title, line(head), ...body.map(line)].filter((s) => s !== undefined).join('\n') + more;
}
