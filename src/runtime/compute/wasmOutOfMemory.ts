import fs from 'node:fs';

/**
 * An XNNPACK operator of the wasm backend that could not get its memory from the wasm heap
 * (4 GB at most: a 32-bit address space).
 */
export class WasmOutOfMemoryError extends Error {
  constructor(readonly xnnMessage: string) {
    const op = /for (xnn_\w+)/.exec(xnnMessage)?.[1] ?? 'an operator';
    super(`the wasm backend ran out of memory (its heap is 4 GB at most) in ${op}: the work passed at once is too large; ` +
      'pass fewer spots at once (a smaller --batch), or install @tensorflow/tfjs-node, whose memory is not so bounded');
    this.name = 'WasmOutOfMemoryError';
  }
}

/** tfjs-backend-wasm's line for XNNPACK's xnn_status_out_of_memory. */
const OUT_OF_MEMORY = /^XNN status for \w+ is not successful\. Got status 6\b/;
let installed = false;

/**
 * When an XNNPACK operator cannot be created for want of memory, tfjs-backend-wasm 4.22 prints
 * "XNN status for ... Got status 6" and carries on without the operator, and the process then
 * spins at full CPU without end (seen with the BC1 preset and 128 spots in one pass). Emscripten
 * prints on the main thread, synchronously, through fs.writeSync(2, ...), in the middle of the
 * kernel call: throwing there unwinds out of the kernel, so the caller gets an error that says
 * what to do instead of a hung process. Other writes pass through unchanged.
 */
export function guardWasmOutOfMemory(): void {
  if (installed) return;
  installed = true;
  const write = fs.writeSync;
  fs.writeSync = function writeSync(this: unknown, fd: number, data: unknown, ...rest: unknown[]) {
    if (fd === 2 && typeof data === 'string' && OUT_OF_MEMORY.test(data)) throw new WasmOutOfMemoryError(data.trim());
    return (write as (...args: unknown[]) => number).call(this, fd, data, ...rest);
  } as typeof fs.writeSync;
}
