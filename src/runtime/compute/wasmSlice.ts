import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-wasm 4.22's Slice first copies its WHOLE input out of the wasm heap (readSync,
 * `HEAPU8.slice` of a shared buffer when threaded) and then copies the part asked for: 0.45 s for
 * one third (13 MB) of a 39 MB tensor here, against 1 ms for the part alone. The engine's TF.js executor
 * slices at every step (attention's heads, a few large batched products entry by entry, the
 * pieces of a concatenation's gradient), so this replaces the kernel by one that copies the part
 * straight from a view of the heap: contiguous runs of the innermost axes, one `set` each. Its
 * Unpack (tf.unstack) and SplitV (tf.split) call its Slice directly, so they are replaced too
 * (unstacking 8 x 640 x 640 values: 0.5 s before).
 */

interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array | Int32Array | Uint8Array;
}

/** x[begin : begin + size] into `out`, both row-major, copying runs of whole innermost axes. */
export function copySlice(x: ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> }, shape: readonly number[], begin: readonly number[], size: readonly number[], out: { set(a: ArrayLike<number>, at: number): void }): void {
  const rank = shape.length;
  // The innermost axis cut short: it and every axis after it form one contiguous run per index of the axes before it.
  let cut = rank - 1;
  while (cut > 0 && begin[cut] === 0 && size[cut] === shape[cut]) cut--;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const run = rank === 0 ? 1 : size[cut] * strides[cut];
  const outer = size.slice(0, cut).reduce((a, b) => a * b, 1);
  const at = Array.from({ length: cut }, () => 0);
  for (let n = 0; n < outer; n++) {
    let from = rank === 0 ? 0 : begin[cut] * strides[cut];
    for (let i = 0; i < cut; i++) from += (begin[i] + at[i]) * strides[i];
    out.set(x.subarray(from, from + run), n * run);
    for (let i = cut - 1; i >= 0 && ++at[i] === size[i]; i--) at[i] = 0;
  }
}

/** x[begin : begin + size] as a new wasm tensor. */
function sliceOut(backend: WasmHeap, x: tf.TensorInfo, begin: readonly number[], size: number[]): tf.TensorInfo {
  const out = backend.makeOutput(size, x.dtype);
  if (size.some((d) => d === 0)) return out;
  // Views after makeOutput: an allocation may grow the heap and replace its buffer.
  copySlice(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
  return out;
}

const slice: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs.x as tf.TensorInfo;
  const a = attrs as unknown as { begin: number | number[]; size: number | number[] };
  const [begin, size] = tf.slice_util.parseSliceParams(x as tf.Tensor, a.begin, a.size);
  return sliceOut(backend as unknown as WasmHeap, x, begin, size);
};

/** tf.unstack: every entry along an axis (the wasm kernel slices with its own Slice). */
const unpack: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs.value as tf.TensorInfo;
  const axis = tf.util.parseAxisParam((attrs as unknown as { axis: number }).axis, x.shape)[0];
  const size = [...x.shape];
  size[axis] = 1;
  const shape = x.shape.filter((_, i) => i !== axis);
  return Array.from({ length: x.shape[axis] }, (_, i) => {
    const { dataId, dtype } = sliceOut(backend as unknown as WasmHeap, x, x.shape.map((_, k) => (k === axis ? i : 0)), size);
    return { dataId, dtype, shape };
  });
};

/** tf.split: consecutive pieces along an axis (the wasm kernel slices with its own Slice). */
const splitV: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const x = inputs.x as tf.TensorInfo;
  const a = attrs as unknown as { numOrSizeSplits: number | number[]; axis: number };
  const axis = tf.util.parseAxisParam(a.axis, x.shape)[0];
  const begin = x.shape.map(() => 0);
  return tf.backend_util.prepareSplitSize(x as tf.Tensor, a.numOrSizeSplits, axis).map((n) => {
    const size = [...x.shape];
    size[axis] = n;
    const piece = sliceOut(backend as unknown as WasmHeap, x, begin, size);
    begin[axis] += n;
    return piece;
  });
};

let registered = false;

/** Registers Slice, Unpack and SplitV on the wasm backend (idempotent); string tensors keep the original kernels. */
export function registerWasmSliceKernels(): void {
  if (registered || !tf.getKernel(tf.Slice, 'wasm')) return; // done, or the wasm backend is not registered
  registered = true;
  for (const [kernelName, kernelFunc, input] of [[tf.Slice, slice, 'x'], [tf.Unpack, unpack, 'value'], [tf.SplitV, splitV, 'x']] as const) {
    const original = tf.getKernel(kernelName, 'wasm');
    if (!original) continue;
    tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({
      ...original,
      kernelFunc: (args) => ((args.inputs[input] as tf.TensorInfo).dtype === 'string' ? original.kernelFunc(args) : kernelFunc(args)),
    });
  }
}
