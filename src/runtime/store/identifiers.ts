import * as path from 'node:path';

/**
 * The one gate for identifiers that become file or folder names (section ids, patients): a
 * section id names `features/<id>.arrow`, so an id such as `../..` would write outside the store.
 *
 * Safe: letters, digits, '.', '_', '-' (and '%' only as the %XX escape that encodeId writes),
 * at most MAX_ID_LENGTH characters, not empty and not starting with '.' (so never '.', '..' or
 * a hidden file).
 */

/** Room for `<id>.arrow.chunks/<n>.arrow.partial-<pid>-<ms>` within a 255-byte file name. */
export const MAX_ID_LENGTH = 100;

const SAFE = /^(?:[A-Za-z0-9._-]|%[0-9A-F]{2})+$/;
const PLAIN = /[A-Za-z0-9._-]/;

/** Why `id` cannot name a file, or undefined when it can. */
export function unsafeIdReason(id: string): string | undefined {
  if (typeof id !== 'string') return `is ${typeof id}, not text`;
  if (id === '') return 'is empty';
  if (id.length > MAX_ID_LENGTH) return `is ${id.length} characters long, at most ${MAX_ID_LENGTH} are allowed`;
  if (id.startsWith('.')) return "starts with '.' (it would name '.', '..' or a hidden file)";
  if (!SAFE.test(id)) return "holds characters other than letters, digits, '.', '_' and '-'";
  return undefined;
}

/** Whether `id` passes the gate. */
export const isSafeId = (id: string): boolean => unsafeIdReason(id) === undefined;

/**
 * A name from a format that allows any text (AnnData `obs/sample`) as a safe id, reversibly:
 * every UTF-8 byte outside the safe alphabet, '%' itself and a leading '.' become %XX. Safe
 * names come back unchanged. The result may still be too long or empty: check it with
 * unsafeIdReason.
 */
export function encodeId(name: string): string {
  let out = '';
  for (const ch of name) {
    if (PLAIN.test(ch) && !(out === '' && ch === '.')) {
      out += ch;
      continue;
    }
    for (const byte of Buffer.from(ch, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The name an id was encoded from (decodeId(encodeId(n)) === n). */
export function decodeId(id: string): string {
  return decodeURIComponent(id);
}

/**
 * `path.join(dir, name)`, after checking that it resolves to an entry inside `dir` (never `dir`
 * itself or anything outside): the last check before a file named after an identifier is
 * written or read.
 */
export function pathInside(dir: string, name: string): string {
  const joined = path.join(dir, name);
  const rel = path.relative(path.resolve(dir), path.resolve(joined));
  if (rel === '' || rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
    throw new Error(`${JSON.stringify(name)} would name a file outside ${dir}; refusing to use it as a file name`);
  }
  return joined;
}
