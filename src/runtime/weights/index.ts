// Model weights from the files users have (torch.save checkpoints, safetensors), read in plain
// Node with no Python at run time. Never imports `vscode`.
import { readWeightFile } from './decode';
import { decodePytorchCheckpoint, looksLikeZip } from './pytorch';
import { decodeSafetensors } from './safetensors';
import { StateDict, WeightFileError } from './stateDict';

export { decodeLightningCheckpoint, decodePytorchCheckpoint, readPytorchCheckpoint } from './pytorch';
export type { HyperParameter, LightningCheckpoint } from './pytorch';
export { decodeSafetensors, encodeSafetensors, readSafetensors, safetensorsMetadata } from './safetensors';
export { stripKeyPrefixes, WeightFileError } from './stateDict';
export type { HostTensor, StateDict, WeightDtype } from './stateDict';

const ACCEPTED =
  'accepted are PyTorch checkpoints written by torch.save in its zip format (PyTorch >= 1.6; .pt, .pth, .ckpt, .bin) ' +
  'and .safetensors files';

/**
 * Loads a state dict as float32 tensors, choosing the reader by the file's content rather than its
 * name. Throws a WeightFileError naming the file (and the tensor, when one is at fault).
 */
export async function loadStateDict(file: string): Promise<StateDict> {
  return decodeStateDict(await readWeightFile(file), file);
}

/** Like loadStateDict, for the file's bytes already in memory; `file` is used in error messages. */
export function decodeStateDict(bytes: Uint8Array, file: string): StateDict {
  if (looksLikeZip(bytes)) return decodePytorchCheckpoint(bytes, file);
  if (looksLikeSafetensors(bytes)) return decodeSafetensors(bytes, file);
  // A pickle (PROTO opcode first): the legacy torch.save format, which the PyTorch reader explains.
  if (bytes[0] === 0x80) return decodePytorchCheckpoint(bytes, file);
  throw new WeightFileError(file, undefined, `is neither a PyTorch checkpoint nor a safetensors file; ${ACCEPTED}`);
}

/** An 8-byte header length, then a JSON object. The length is checked against the file later, so a
 * truncated safetensors file is reported as such rather than as an unknown format. */
function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 9 || bytes[8] !== 0x7b /* { */) return false;
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  return headerLength >= 2n && headerLength < 2n ** 32n;
}
