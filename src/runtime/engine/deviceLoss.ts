/**
 * A GPU that goes away under a running session: what onnxruntime's GPU providers report when it
 * happens. The patterns are the messages of the libraries themselves:
 * - WebGPU (Dawn, inside onnxruntime-node): the device-lost callback ("WebGPU device lost (2): ..."),
 *   then every buffer read fails in onnxruntime's buffer manager ("Failed to download data from
 *   buffer: ... [Device] is lost." / "Device is lost"), or Dawn drops its instance ("A valid
 *   external Instance reference no longer exists");
 * - CUDA (onnxruntime's CUDA_CALL: "CUDA failure 719: unspecified launch failure ; GPU=0 ; ..."):
 *   a launch failure or illegal address (the context is unusable afterwards), an uncorrectable
 *   ECC error, devices busy or unavailable, a GPU that "has fallen off the bus"; the driver API's
 *   names (CUDA_ERROR_LAUNCH_FAILED, ...) too. Out of memory is not a loss: it is the batch's
 *   size (engineLearner.ts's explainMemoryError says what to lower);
 * - Vulkan's VK_ERROR_DEVICE_LOST, and DirectX's removed, reset or hung device (DXGI_ERROR_DEVICE_*,
 *   0x887A0005-7), under Dawn or DirectML.
 */
const LOSS = [
  /\bdevice (?:is |was |has been )?lost\b/i,
  /\[Device\][^.\n]* is lost/i,
  /\bDeviceLost\b/,
  /Instance reference no longer exists/i,
  /unspecified launch failure/i,
  /an illegal memory access was encountered/i,
  /uncorrectable ECC error/i,
  /all CUDA-capable devices are busy or unavailable/i,
  /fallen off the bus/i,
  /\bCUDA_ERROR_(?:LAUNCH_FAILED|ILLEGAL_ADDRESS|ECC_UNCORRECTABLE|DEVICE_UNAVAILABLE|DEVICE_NOT_LICENSED|HARDWARE_STACK_ERROR|ILLEGAL_INSTRUCTION|NO_DEVICE)\b/,
  /\bcudaError(?:LaunchFailure|IllegalAddress|ECCUncorrectable|DevicesUnavailable|NoDevice)\b/,
  /\bVK_ERROR_DEVICE_LOST\b/,
  /\bDXGI_ERROR_DEVICE_(?:REMOVED|RESET|HUNG)\b/,
  /\b0x887A000[567]\b/i,
];

/** The first line of an error's message, and of its causes (an explained error keeps the provider's own as its cause). */
function messages(e: unknown): string[] {
  const out: string[] = [];
  for (let x: unknown = e, depth = 0; x !== undefined && depth < 4; depth++) {
    out.push(x instanceof Error ? x.message : String(x));
    x = x instanceof Error ? x.cause : undefined;
  }
  return out;
}

/** Whether an error of a GPU provider's session says the device is gone (not a bug, not a lack of memory). */
export function isDeviceLoss(e: unknown): boolean {
  return messages(e).some((m) => LOSS.some((p) => p.test(m)));
}

/** What the error said, on one line, short enough for a log line. */
export function errorLine(e: unknown): string {
  const line = messages(e)[0].split('\n').find((l) => l.trim()) ?? '';
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** A GPU provider: the one kind of executor whose device can be lost. */
export const onGpu = (provider: string | undefined): provider is string => provider !== undefined && provider !== 'cpu';
