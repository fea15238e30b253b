import * as tf from '@tensorflow/tfjs-core';

/**
 * tfjs-backend-wasm 4.22's Slice first copies its WHOLE input out of the wasm heap (readSync,
 * `HEAPU8.slice` of a shared buffer when threaded) and then copies the part asked for: 0.45 s for
 * one third of a 13 MB tensor here, against 1 ms for the part alone. The engine's TF.js executor
 * slices at every step (attention's heads, a few large batched products entry by entry, the
 * pieces of a concatenation's gradient), so this replaces the kernel by one that copies the part
 * straight from a view of the heap: contiguous runs of the innermost axes, one `set` each.
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

let registered = false;

export function registerWasmSliceKernel(): void {
  if (registered) return;
  const original = tf.getKernel(tf.Slice, 'wasm');
  if (!original) return; // the wasm backend is not registered
  registered = true;
  const kernelFunc: tf.KernelFunc = (args) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return original.kernelFunc(args);
    const attrs = args.attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin, size] = tf.slice_util.parseSliceParams(x as tf.TensorInfo as tf.Tensor, attrs.begin, attrs.size);
    const backend = args.backend as unknown as WasmHeap;
    const out = backend.makeOutput(size, x.dtype);
    if (size.some((d) => d === 0)) return out;
    // Views after makeOutput: an allocation may grow the heap and replace its buffer.
    copySlice(backend.typedArrayFromHeap(x), x.shape, begin, size, backend.typedArrayFromHeap(out));
    return out;
  };
  tf.unregisterKernel(tf.Slice, 'wasm');
  tf.registerKernel({ ...original, kernelFunc });
}
