/**
 * The machinery of the fuzz corpus (test/unit/fuzzCorpus.test.ts): running the CLI with a time
 * limit, snapshots of a folder tree (path, kind, size, sha256) to prove that a refused run wrote
 * nothing, and the corruptions that turn a valid file into a hostile one.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { Footer } from 'apache-arrow/fb/footer';
import { ByteBuffer } from 'flatbuffers';
import { mulberry32 } from '../../../src/runtime/util/random';
import { repoRoot } from './paths';

export interface CliResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs `node dist/cli.js ...args` in `cwd`, killed after `timeoutMs` (then `signal` is set). */
export function runCli(args: string[], cwd: string, timeoutMs: number): Promise<CliResult> {
  const env = { ...process.env };
  delete env.TRIPLEX_DEBUG;
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot(), 'dist', 'cli.js'), ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

/** sha256 of files, remembered by identity (inode, size, mtime, ctime): a write changes them. */
const hashes = new Map<string, string>();
function sha256(file: string, st: fs.Stats): string {
  const key = `${file}\0${st.ino}\0${st.size}\0${st.mtimeMs}\0${st.ctimeMs}`;
  let h = hashes.get(key);
  if (!h) {
    h = createHash('sha256').update(fs.readFileSync(file)).digest('hex');
    hashes.set(key, h);
  }
  return h;
}

/**
 * Every entry under `root` (not following links: a symlink loop is an entry, not a hang) as
 * `relative path -> kind, size, sha256`, leaving out `exclude` (a path under root) and what is
 * under it.
 */
export function snapshot(root: string, exclude?: string): Map<string, string> {
  const out = new Map<string, string>();
  const skip = exclude ? path.resolve(exclude) : undefined;
  const walk = (dir: string) => {
    for (const name of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      if (skip && (p === skip || p.startsWith(skip + path.sep))) continue;
      const st = fs.lstatSync(p);
      const rel = path.relative(root, p);
      if (st.isSymbolicLink()) out.set(rel, `link -> ${fs.readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(rel, 'folder');
        walk(p);
      } else if (st.isFile()) out.set(rel, `file ${st.size} ${sha256(p, st)}`);
      else out.set(rel, st.isFIFO() ? 'fifo' : 'other');
    }
  };
  if (fs.existsSync(root)) walk(root);
  return out;
}

/** What changed between two snapshots, as lines (empty: nothing). */
export function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [p, v] of after) if (before.get(p) !== v) lines.push(`${before.has(p) ? 'changed' : 'added'}: ${p} (${v})`);
  for (const p of before.keys()) if (!after.has(p)) lines.push(`removed: ${p}`);
  return lines;
}

/** Seeded random numbers of a case. */
export const seeded = (seed: number) => mulberry32(seed);

/** Keeps the first `bytes` bytes of a file (negative: drops that many from its end). */
export function truncate(file: string, bytes: number): void {
  const b = fs.readFileSync(file);
  fs.writeFileSync(file, b.subarray(0, bytes < 0 ? b.length + bytes : bytes));
}

/**
 * Makes an Arrow IPC file's footer claim `entries` schema metadata entries (it has one or two):
 * the damage one flipped byte can do, made deterministic. apache-arrow read it unchecked and
 * looped without end.
 */
export function inflateArrowFooterMetadata(file: string, entries = 0x7fffffff): void {
  const b = fs.readFileSync(file);
  const footerLength = b.readInt32LE(b.length - 10);
  const start = b.length - 10 - footerLength;
  const bb = new ByteBuffer(new Uint8Array(b.buffer, b.byteOffset + start, footerLength));
  const schema = Footer.getRootAsFooter(bb).schema();
  // custom_metadata is the schema table's third field: vtable slot 8.
  const slot = schema ? bb.__offset(schema.bb_pos, 8) : 0;
  if (!schema || !slot) throw new Error(`${file}: no schema metadata in the footer to inflate`);
  const lengthAt = schema.bb_pos + slot + bb.readInt32(schema.bb_pos + slot);
  b.writeInt32LE(entries, start + lengthAt);
  fs.writeFileSync(file, b);
}

/** Flips `count` seeded bytes (xor with a non-zero value) within [from, to) of a file. */
export function flipBytes(file: string, seed: number, count: number, from = 0, to?: number): void {
  const b = fs.readFileSync(file);
  const end = Math.min(to ?? b.length, b.length);
  const rnd = seeded(seed);
  for (let i = 0; i < count; i++) {
    const at = from + Math.floor(rnd() * (end - from));
    b[at] ^= 1 + Math.floor(rnd() * 255);
  }
  fs.writeFileSync(file, b);
}

/** Rewrites a text file through `edit` (a gzip file is unzipped and zipped again). */
export function editText(file: string, edit: (text: string) => string): void {
  const gz = file.endsWith('.gz');
  const text = gz ? zlib.gunzipSync(fs.readFileSync(file)).toString('utf8') : fs.readFileSync(file, 'utf8');
  const next = edit(text);
  fs.writeFileSync(file, gz ? zlib.gzipSync(next) : next);
}

/** Replaces field `col` of line `line` (0-based, split by `sep`). */
export const setField = (text: string, line: number, col: number, value: string, sep: string): string => {
  const lines = text.split('\n');
  const f = lines[line].split(sep);
  f[col] = value;
  lines[line] = f.join(sep);
  return lines.join('\n');
};

/** A safetensors file's parts: its JSON header and its data. */
export function readSafetensorsParts(file: string): { header: Record<string, unknown>; data: Buffer } {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  return { header: JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: b.subarray(8 + n) };
}

/** Writes a safetensors file from a header (as JSON text or object) and data. */
export function writeSafetensorsParts(file: string, header: Record<string, unknown> | string, data: Buffer): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, data]));
}

/** Edits a TRIPLEX checkpoint's recorded info (the JSON in its metadata). */
export function editCheckpointInfo(file: string, edit: (info: Record<string, unknown>) => void): void {
  const { header, data } = readSafetensorsParts(file);
  const meta = header.__metadata__ as Record<string, string>;
  const info = JSON.parse(meta.info) as Record<string, unknown>;
  edit(info);
  meta.info = JSON.stringify(info);
  writeSafetensorsParts(file, header, data);
}

function crc32(bytes: Uint8Array): number {
  let c = ~0;
  for (const byte of bytes) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A real PNG whose IHDR is edited to say 200,000 px square (its CRC made right again). */
export function bigPng(small: string): Buffer {
  const png = fs.readFileSync(small);
  png.writeUInt32BE(200_000, 16);
  png.writeUInt32BE(200_000, 20);
  png.writeUInt32BE(crc32(png.subarray(12, 29)), 29);
  return png;
}

/** A PNG of `width` x `height` px whose IHDR says so (and nothing else: no pixels), CRC right. */
export function pngHeader(width: number, height: number): Buffer {
  const b = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b, 0);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'latin1');
  b.writeUInt32BE(width, 16);
  b.writeUInt32BE(height, 20);
  b.set([8, 2, 0, 0, 0], 24);
  b.writeUInt32BE(crc32(b.subarray(12, 29)), 29);
  return b;
}

/** Sets a JPEG's frame header (SOF) height and width, keeping its data. */
export function setJpegSize(file: string, width: number, height: number): void {
  const jpeg = fs.readFileSync(file);
  for (let pos = 2; pos + 4 < jpeg.length;) {
    const marker = jpeg[pos + 1];
    if (marker >= 0xc0 && marker <= 0xc2) {
      jpeg.writeUInt16BE(height, pos + 5);
      jpeg.writeUInt16BE(width, pos + 7);
      fs.writeFileSync(file, jpeg);
      return;
    }
    pos += 2 + jpeg.readUInt16BE(pos + 2);
  }
  throw new Error(`${file}: no SOF marker`);
}
