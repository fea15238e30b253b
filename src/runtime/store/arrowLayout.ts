import { MessageHeader } from 'apache-arrow';
import { Footer } from 'apache-arrow/ipc/metadata/file';
import { Message, type RecordBatch } from 'apache-arrow/ipc/metadata/message';
import { guardFlatbufferVectors } from './flatbufferGuard';

/**
 * The frame of an Arrow IPC *file*, checked before apache-arrow decodes it: magic at both ends, a
 * footer that fits, and every block the footer lists inside the file and holding the message it
 * should (a record batch whose buffers lie inside its body). apache-arrow trusts all of it: a block
 * that holds no record batch (one flipped byte of its continuation marker) makes its file reader
 * read the same block forever, and damaged flatbuffer lists loop too (see flatbufferGuard.ts).
 * Errors say what is wrong; the callers name the file.
 */

guardFlatbufferVectors();

export const ARROW_MAGIC = Buffer.from('ARROW1');
/** Magic padded to 8 at the start; int32 footer length and magic at the end. */
const HEAD = 8;
const TAIL = 4 + ARROW_MAGIC.length;

/** Whether the bytes start as an Arrow IPC file (not a stream). */
export const isArrowFileFormat = (bytes: Uint8Array): boolean => bytes.length >= ARROW_MAGIC.length && ARROW_MAGIC.equals(bytes.subarray(0, ARROW_MAGIC.length));

/**
 * Where the footer lies in a file of `size` bytes, given its first 6 and last 10 bytes.
 */
export function locateFooter(size: number, head: Uint8Array, tail: Uint8Array): { start: number; length: number } {
  if (size < HEAD + TAIL) throw new Error(`${size} bytes, shorter than any Arrow IPC file`);
  if (!ARROW_MAGIC.equals(head.subarray(0, ARROW_MAGIC.length))) throw new Error('no Arrow magic at the start');
  if (!ARROW_MAGIC.equals(tail.subarray(4, TAIL))) throw new Error('no Arrow magic at the end (cut short?)');
  const length = Buffer.from(tail.buffer, tail.byteOffset, 4).readInt32LE(0);
  if (!(length > 0 && length <= size - HEAD - TAIL)) throw new Error(`footer length ${length} does not fit in ${size} bytes`);
  return { start: size - TAIL - length, length };
}

/** Decodes a footer (its flatbuffer lists bounds-checked). */
export function decodeFooter(bytes: Uint8Array): Footer {
  return Footer.decode(bytes);
}

/** Checks the whole frame of an Arrow IPC file held in memory; throws what is wrong. */
export function checkArrowFile(bytes: Uint8Array): void {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { start, length } = locateFooter(view.length, view.subarray(0, HEAD), view.subarray(view.length - TAIL));
  const footer = decodeFooter(view.subarray(start, start + length));
  const blocks = [
    ...Array.from({ length: footer.numDictionaries }, (_, i) => ({ what: `dictionary batch ${i}`, header: MessageHeader.DictionaryBatch, block: footer.getDictionaryBatch(i) })),
    ...Array.from({ length: footer.numRecordBatches }, (_, i) => ({ what: `record batch ${i}`, header: MessageHeader.RecordBatch, block: footer.getRecordBatch(i) })),
  ];
  for (const { what, header, block } of blocks) {
    if (!block) throw new Error(`the footer lists no block for ${what}`);
    checkBlockPlace(what, block, start, view.length);
    checkBlockMessage(what, header, view.subarray(block.offset, block.offset + block.metaDataLength), block);
  }
}

/** Where a footer's block lies: offset and the lengths of its metadata and body. */
export interface BlockPlace { offset: number; metaDataLength: number; bodyLength: number }

/** Checks that a block lies in the data of a `size`-byte file whose footer starts at `footerStart`. */
export function checkBlockPlace(what: string, block: BlockPlace, footerStart: number, size: number): void {
  const { offset, metaDataLength, bodyLength } = block;
  const end = offset + metaDataLength + bodyLength;
  if (!(Number.isSafeInteger(end) && offset >= HEAD && metaDataLength >= 8 && bodyLength >= 0 && end <= footerStart)) {
    throw new Error(`${what} (bytes ${offset} + ${metaDataLength} + ${bodyLength}) lies outside the data of a ${size}-byte file`);
  }
}

/**
 * Checks a block's metadata bytes (from its start, `metaDataLength` of them): a message of the
 * expected type whose body length is the footer's and whose buffers lie inside the body. Returns
 * the record batch header (for a dictionary batch, its data's).
 */
export function checkBlockMessage(what: string, header: MessageHeader, meta: Uint8Array, block: BlockPlace): RecordBatch {
  const { offset, bodyLength } = block;
  const view = Buffer.from(meta.buffer, meta.byteOffset, meta.byteLength);
  // A message: continuation marker -1, int32 metadata length, the Message flatbuffer, the body.
  if (view.length < 8 || view.readInt32LE(0) !== -1) throw new Error(`${what} at byte ${offset} does not start with a message marker`);
  const messageLength = view.readInt32LE(4);
  if (!(messageLength > 0 && 8 + messageLength <= view.length)) throw new Error(`${what}: message length ${messageLength} does not fit its ${view.length}-byte block`);
  const message = Message.decode(view.subarray(8, 8 + messageLength));
  if (message.headerType !== header) throw new Error(`${what} at byte ${offset} holds a message of type ${MessageHeader[message.headerType] ?? message.headerType}`);
  if (message.bodyLength !== bodyLength) throw new Error(`${what}: its message says ${message.bodyLength} body bytes, the footer ${bodyLength}`);
  const batch = (header === MessageHeader.RecordBatch ? message.header() : (message.header() as { data: RecordBatch }).data) as RecordBatch;
  for (const b of batch.buffers) {
    if (!(b.offset >= 0 && b.length >= 0 && b.offset + b.length <= bodyLength)) throw new Error(`${what}: a buffer (bytes ${b.offset} + ${b.length}) lies outside its ${bodyLength}-byte body`);
  }
  return batch;
}
