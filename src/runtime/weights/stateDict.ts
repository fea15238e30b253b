/** The element type of every tensor the weight readers return. */
export type WeightDtype = 'float32';

/**
 * One tensor in host memory, in row-major (C) order, always converted to float32.
 * Integer and bool tensors (e.g. BatchNorm's int64 `num_batches_tracked`) are converted too, exactly
 * up to 2^24; `sourceDtype` says what was stored so that callers can skip them.
 */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
  /** The dtype as stored: 'float32', 'float16', 'bfloat16', 'float64', 'int64', 'bool', ... */
  sourceDtype: string;
}

/** Parameter and buffer names, in file order, mapped to their tensors. */
export type StateDict = Map<string, HostTensor>;

/** A weight file that cannot be read; the message names the file and, when known, the tensor. */
export class WeightFileError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${file}: ${key === undefined ? '' : `tensor '${key}': `}${message}`, options);
    this.name = 'WeightFileError';
  }
}

/**
 * Strips the given prefixes from the front of every key, as often as one of them matches (longest
 * first), so that `model.resnet.conv1.weight` with `['model.', 'resnet.']` becomes `conv1.weight`.
 * A key is never stripped to nothing. Throws a WeightFileError, naming `file`, when two keys collide.
 */
export function stripKeyPrefixes(sd: StateDict, prefixes: readonly string[], file = '(state dict)'): StateDict {
  const longestFirst = prefixes.filter((p) => p.length > 0).sort((a, b) => b.length - a.length);
  const stripped: StateDict = new Map();
  const originalOf = new Map<string, string>();
  for (const [key, tensor] of sd) {
    const short = stripPrefixes(key, longestFirst);
    const earlier = originalOf.get(short);
    if (earlier !== undefined) {
      throw new WeightFileError(
        file,
        short,
        `keys '${earlier}' and '${key}' both become '${short}' after stripping ${JSON.stringify(prefixes)}; ` +
          'strip fewer prefixes or pick the sub-model first',
      );
    }
    originalOf.set(short, key);
    stripped.set(short, tensor);
  }
  return stripped;
}

function stripPrefixes(key: string, longestFirst: readonly string[]): string {
  let rest = key;
  for (;;) {
    const prefix = longestFirst.find((p) => rest.startsWith(p) && rest.length > p.length);
    if (prefix === undefined) return rest;
    rest = rest.slice(prefix.length);
  }
}
