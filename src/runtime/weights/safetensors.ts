// Reader for Hugging Face's safetensors format, written by hand: the format is an 8-byte
// little-endian header length, a JSON header, then the raw tensors back to back, and there is
// no well-kept npm package that reads it in Node.
import { contiguousStrides, gatherFloat32, itemSize, numelOf, readWeightFile, SourceDtype } from './decode';
import { StateDict, WeightFileError } from './stateDict';

const DTYPES = new Map<string, SourceDtype>([
  ['F32', 'float32'], ['F16', 'float16'], ['BF16', 'bfloat16'], ['F64', 'float64'],
  ['I64', 'int64'], ['I32', 'int32'], ['I16', 'int16'], ['I8', 'int8'],
  ['U64', 'uint64'], ['U32', 'uint32'], ['U16', 'uint16'], ['U8', 'uint8'], ['BOOL', 'bool'],
]);

/** Loads every tensor of a .safetensors file as float32. */
export async function readSafetensors(file: string): Promise<StateDict> {
  return decodeSafetensors(await readWeightFile(file), file);
}

/** Like readSafetensors, for the file's bytes already in memory; `file` is used in error messages. */
export function decodeSafetensors(bytes: Uint8Array, file: string): StateDict {
  const fail = (message: string, key?: string): WeightFileError => new WeightFileError(file, key, message);
  if (bytes.length < 8) throw fail(`is ${bytes.length} bytes long, too short for a safetensors file`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    throw fail(
      `safetensors header claims ${headerLength} bytes but the file has only ${bytes.length - 8} after the ` +
        'length field: the file is truncated or not safetensors',
    );
  }
  const dataStart = 8 + Number(headerLength);
  const header = parseHeader(bytes.subarray(8, dataStart), file);
  const data = bytes.subarray(dataStart);

  const sd: StateDict = new Map();
  for (const [key, entry] of Object.entries(header)) {
    if (key === '__metadata__') continue;
    if (!isRecord(entry)) throw fail('header entry is not an object', key);
    const dtype = typeof entry.dtype === 'string' ? DTYPES.get(entry.dtype) : undefined;
    if (dtype === undefined) {
      throw fail(`unknown or unsupported dtype ${JSON.stringify(entry.dtype)} (readable: ${[...DTYPES.keys()].join(', ')})`, key);
    }
    const shape = entry.shape;
    if (!isIndexList(shape)) throw fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, key);
    const offsets = entry.data_offsets;
    if (!isIndexList(offsets) || offsets.length !== 2 || offsets[0] > offsets[1]) {
      throw fail(`data_offsets ${JSON.stringify(offsets)} is not a [begin, end] pair`, key);
    }
    const [begin, end] = offsets;
    if (end > data.length) {
      throw fail(`data_offsets [${begin}, ${end}] lie outside the data area (${data.length} bytes): the file is truncated`, key);
    }
    const expectedBytes = numelOf(shape) * itemSize(dtype);
    if (end - begin !== expectedBytes) {
      throw fail(`data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape.join(', ')}] of ${entry.dtype} needs ${expectedBytes}`, key);
    }
    const layout = { offset: 0, shape, strides: contiguousStrides(shape) };
    sd.set(key, gatherFloat32(data.subarray(begin, end), dtype, layout, true));
  }
  return sd;
}

function parseHeader(headerBytes: Uint8Array, file: string): Record<string, unknown> {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new WeightFileError(file, undefined, `safetensors header is not valid UTF-8 JSON (${reason})`, { cause: error });
  }
  if (!isRecord(header)) throw new WeightFileError(file, undefined, 'safetensors header is not a JSON object');
  return header;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIndexList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
}

/**
 * A state dict as safetensors bytes (float32, tensors in map order, 8-byte aligned header), with
 * string `metadata` under `__metadata__`: what our checkpoints are written as.
 */
export function encodeSafetensors(sd: StateDict, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [key, t] of sd) {
    const bytes = t.data.length * 4;
    header[key] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const t of sd.values()) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  return out;
}

/** The `__metadata__` strings of safetensors bytes (empty when there are none). */
export function safetensorsMetadata(bytes: Uint8Array, file: string): Record<string, string> {
  if (bytes.length < 8) throw new WeightFileError(file, undefined, `is ${bytes.length} bytes long, too short for a safetensors file`);
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) throw new WeightFileError(file, undefined, 'the safetensors header runs past the end of the file: the file is truncated or not safetensors');
  const meta = parseHeader(bytes.subarray(8, 8 + Number(headerLength)), file).__metadata__;
  return isRecord(meta) ? Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, String(v)])) : {};
}
