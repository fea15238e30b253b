// Raw tensor bytes, shared by the PyTorch and safetensors readers: reading a weight file, and
// turning a (possibly strided) view of a storage of any supported dtype into a float32 HostTensor.
import { readFile } from 'node:fs/promises';
import { HostTensor, WeightFileError } from './stateDict';

/** The stored dtypes the readers convert to float32. */
export type SourceDtype =
  | 'float32' | 'float16' | 'bfloat16' | 'float64'
  | 'int64' | 'int32' | 'int16' | 'int8'
  | 'uint64' | 'uint32' | 'uint16' | 'uint8' | 'bool';

interface DtypeCodec {
  readonly itemSize: number;
  /** The element at `byteOffset`, as a number (rounded to float32 when stored). */
  read(view: DataView, byteOffset: number, littleEndian: boolean): number;
}

const CODECS: Record<SourceDtype, DtypeCodec> = {
  float32: { itemSize: 4, read: (v, o, le) => v.getFloat32(o, le) },
  float16: { itemSize: 2, read: (v, o, le) => halfToFloat(v.getUint16(o, le)) },
  bfloat16: { itemSize: 2, read: (v, o, le) => bfloat16ToFloat(v.getUint16(o, le)) },
  float64: { itemSize: 8, read: (v, o, le) => v.getFloat64(o, le) },
  int64: { itemSize: 8, read: (v, o, le) => Number(v.getBigInt64(o, le)) },
  int32: { itemSize: 4, read: (v, o, le) => v.getInt32(o, le) },
  int16: { itemSize: 2, read: (v, o, le) => v.getInt16(o, le) },
  int8: { itemSize: 1, read: (v, o) => v.getInt8(o) },
  uint64: { itemSize: 8, read: (v, o, le) => Number(v.getBigUint64(o, le)) },
  uint32: { itemSize: 4, read: (v, o, le) => v.getUint32(o, le) },
  uint16: { itemSize: 2, read: (v, o, le) => v.getUint16(o, le) },
  uint8: { itemSize: 1, read: (v, o) => v.getUint8(o) },
  bool: { itemSize: 1, read: (v, o) => (v.getUint8(o) === 0 ? 0 : 1) },
};

export function itemSize(dtype: SourceDtype): number {
  return CODECS[dtype].itemSize;
}

/** Where a tensor's elements lie in its storage, counted in elements (as torch does). */
export interface StridedLayout {
  offset: number;
  shape: number[];
  strides: number[];
}

/** Row-major strides of a contiguous tensor of this shape. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    strides[d] = step;
    step *= shape[d];
  }
  return strides;
}

export function numelOf(shape: readonly number[]): number {
  return shape.reduce((n, size) => n * size, 1);
}

/** How many elements the storage must hold for the layout to stay inside it (0 for empty tensors). */
export function requiredElements(layout: StridedLayout): number {
  if (numelOf(layout.shape) === 0) return 0;
  return layout.shape.reduce((last, size, d) => last + (size - 1) * layout.strides[d], layout.offset) + 1;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Copies the elements of `layout` out of `storage` in row-major order, converted to float32.
 * The caller has checked the layout against the storage size (see requiredElements).
 */
export function gatherFloat32(
  storage: Uint8Array,
  dtype: SourceDtype,
  layout: StridedLayout,
  littleEndian: boolean,
): HostTensor {
  const { offset, shape, strides } = layout;
  const codec = CODECS[dtype];
  const numel = numelOf(shape);
  const shapeCopy = [...shape];
  const packed = contiguousStrides(shape);
  const contiguous = strides.every((s, d) => shape[d] === 1 || s === packed[d]);
  if (dtype === 'float32' && contiguous && littleEndian === HOST_LITTLE_ENDIAN) {
    // The common case: one copy of the bytes (slice also realigns them for Float32Array).
    const start = storage.byteOffset + offset * 4;
    return { shape: shapeCopy, data: new Float32Array(storage.buffer.slice(start, start + numel * 4)), sourceDtype: dtype };
  }
  const view = new DataView(storage.buffer, storage.byteOffset, storage.byteLength);
  const data = new Float32Array(numel);
  const index = new Array<number>(shape.length).fill(0);
  let element = offset;
  for (let i = 0; i < numel; i++) {
    data[i] = codec.read(view, element * codec.itemSize, littleEndian);
    // Advance the row-major odometer over `index`, keeping `element` at its storage position.
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      element += strides[d];
      if (index[d] < shape[d]) break;
      element -= strides[d] * shape[d];
      index[d] = 0;
    }
  }
  return { shape: shapeCopy, data, sourceDtype: dtype };
}

let halfTable: Float32Array | undefined;

/** IEEE binary16 bits to a number, exactly (every half value is a float32 value). */
function halfToFloat(bits: number): number {
  halfTable ??= buildHalfTable();
  return halfTable[bits];
}

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) table[bits] = sign * fraction * 2 ** -24;
    else if (exponent === 31) table[bits] = fraction === 0 ? sign * Infinity : NaN;
    else table[bits] = sign * (1024 + fraction) * 2 ** (exponent - 25);
  }
  return table;
}

const bfloatScratch = new Float32Array(1);
const bfloatScratchBits = new Uint32Array(bfloatScratch.buffer);

/** bfloat16 is the top half of a float32. */
function bfloat16ToFloat(bits: number): number {
  bfloatScratchBits[0] = bits << 16;
  return bfloatScratch[0];
}

/** The whole file, or a WeightFileError naming it (missing, unreadable, a directory, ...). */
export async function readWeightFile(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new WeightFileError(file, undefined, `cannot read the weight file (${reason})`, { cause: error });
  }
}
