import { ByteBuffer } from 'flatbuffers';

/**
 * Arrow IPC metadata (schemas, footers, record-batch headers) is FlatBuffers, and the FlatBuffers
 * JavaScript runtime has no verifier: a damaged vector length is read as is. One flipped byte in a
 * footer then makes apache-arrow loop over two billion "fields" or "children" (it hung a features
 * cache check and `tableFromIPC`). This guard gives every vector the check a verifier makes first:
 * its entries (at least a byte each) must fit in the buffer it is read from. apache-arrow catches
 * nothing of it, so the RangeError reaches our readers, which name the file.
 *
 * It patches the one shared `flatbuffers` module that apache-arrow requires (it has no copy of its
 * own); a valid buffer never reaches the throw, so other users of the module see no difference.
 */
const guarded = Symbol.for('triplex.flatbuffers.vectorLengthGuard');

export function guardFlatbufferVectors(): void {
  const proto = ByteBuffer.prototype as ByteBuffer & { [guarded]?: true };
  if (proto[guarded]) return;
  const vectorLength = proto.__vector_len;
  proto.__vector_len = function (this: ByteBuffer, offset: number): number {
    const n = vectorLength.call(this, offset);
    const start = this.__vector(offset);
    if (!(n >= 0 && start >= 0 && start + n <= this.capacity())) {
      throw new RangeError(`damaged metadata: a list of ${n} entries at byte ${start} of a ${this.capacity()}-byte block`);
    }
    return n;
  };
  proto[guarded] = true;
}
