// Reader for checkpoints written by torch.save in its zip format (PyTorch >= 1.6), with no Python:
// the zip holds <archive>/data.pkl (the pickled object graph), one raw little-endian storage per
// <archive>/data/<key>, <archive>/version, and since PyTorch 2.1 <archive>/byteorder.
//
// Unpickling runs no code: every global the pickle names becomes an inert placeholder except the
// few torch functions that rebuild tensors, and those only record where a tensor's bytes lie.
// Storages are read afterwards, and only those of the state dict (not the optimizer's, say).
import { unzipSync, Unzipped } from 'fflate';
import { NameRegistry, Parser } from 'pickleparser';
import { gatherFloat32, itemSize, readWeightFile, requiredElements, SourceDtype, StridedLayout } from './decode';
import { HostTensor, StateDict, WeightFileError } from './stateDict';

/** Loads the state dict of a torch.save checkpoint (.pt, .pth, .ckpt, .bin) as float32 tensors. */
export async function readPytorchCheckpoint(file: string): Promise<StateDict> {
  return decodePytorchCheckpoint(await readWeightFile(file), file);
}

/** Whether the bytes start like a zip archive (a local file header). */
export function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/**
 * Like readPytorchCheckpoint, for the file's bytes already in memory; `file` is used in messages.
 * The state dict is the top-level object if it is a dict of tensors, else the one under
 * 'state_dict' (Lightning), 'model', 'model_state_dict' or 'net'.
 */
export function decodePytorchCheckpoint(bytes: Uint8Array, file: string): StateDict {
  if (!looksLikeZip(bytes)) {
    throw new WeightFileError(
      file,
      undefined,
      'is not a PyTorch zip checkpoint (legacy torch.save format or another file); re-save it with ' +
        'torch.save(..., _use_new_zipfile_serialization=True) or convert it to safetensors',
    );
  }
  const archive = openArchive(bytes, file);
  return readEntries(bytes, archive, findStateDict(unpickle(archive, file), file), file);
}

/** What a PyTorch Lightning checkpoint holds besides its weights (scalars only; the rest is ignored). */
export interface LightningCheckpoint {
  stateDict: StateDict;
  epoch?: number;
  globalStep?: number;
  /** `pytorch-lightning_version`. */
  version?: string;
  /** The plain values (numbers, strings, booleans, lists of numbers) of `hyper_parameters`, when it is a dict. */
  hyperParameters: Map<string, HyperParameter>;
}

export type HyperParameter = number | string | boolean | number[];

/**
 * A checkpoint written by PyTorch Lightning (`trainer.save_checkpoint`, ModelCheckpoint): a dict
 * with the model's tensors under 'state_dict'. Anything else (a bare state dict, a whole pickled
 * module) is refused naming the file and what it holds; optimizer states are never read.
 */
export function decodeLightningCheckpoint(bytes: Uint8Array, file: string): LightningCheckpoint {
  if (!looksLikeZip(bytes)) return { stateDict: decodePytorchCheckpoint(bytes, file), hyperParameters: new Map() }; // refuses, saying why
  const archive = openArchive(bytes, file);
  const root = asStringMap(unpickle(archive, file));
  const entries = asTensorDict(root?.get('state_dict'));
  if (root === undefined || entries === undefined) {
    const holds = root === undefined ? 'it does not hold a dict' : `its top-level keys are ${[...root.keys()].slice(0, 8).join(', ') || 'none'}`;
    throw new WeightFileError(file, undefined, `is not a PyTorch Lightning checkpoint: it has no 'state_dict' dict of tensors (${holds}); ` +
      'give the .ckpt file that Lightning\'s ModelCheckpoint wrote');
  }
  const count = (v: unknown) => (typeof v === 'number' && Number.isSafeInteger(v) ? v : typeof v === 'bigint' ? Number(v) : undefined);
  const version = root.get('pytorch-lightning_version');
  return {
    stateDict: readEntries(bytes, archive, entries, file),
    epoch: count(root.get('epoch')),
    globalStep: count(root.get('global_step')),
    version: typeof version === 'string' ? version : undefined,
    hyperParameters: plainValues(root.get('hyper_parameters')),
  };
}

function readEntries(bytes: Uint8Array, archive: Archive, entries: Map<string, unknown>, file: string): StateDict {
  const storages = readStorages(bytes, archive, entries.values(), file);
  const sd: StateDict = new Map();
  for (const [key, value] of entries) sd.set(key, materialize(key, value, storages, archive, file));
  return sd;
}

/** A dict's (or a dict subclass's, such as Lightning's AttributeDict) plain values. */
function plainValues(value: unknown): Map<string, HyperParameter> {
  const dict = asStringMap(value instanceof PickledObject ? value.items : value) ?? new Map<string, unknown>();
  const plain = new Map<string, HyperParameter>();
  for (const [key, v] of dict) {
    const n = typeof v === 'bigint' ? Number(v) : v;
    if (typeof n === 'number' || typeof n === 'string' || typeof n === 'boolean') plain.set(key, n);
    else if (Array.isArray(n) && n.every((x) => typeof x === 'number')) plain.set(key, n as number[]);
  }
  return plain;
}

// ---- The zip archive ----

interface Archive {
  /** Folder of data.pkl inside the zip, with its trailing slash ('' when at the root). */
  prefix: string;
  pickle: Uint8Array;
  littleEndian: boolean;
}

function openArchive(bytes: Uint8Array, file: string): Archive {
  const names: string[] = [];
  const records = unzip(bytes, file, (name) => {
    names.push(name);
    return name.endsWith('data.pkl') || name.endsWith('byteorder');
  });
  const pickleName = names.find((name) => /^([^/]+\/)?data\.pkl$/.test(name));
  const pickle = pickleName === undefined ? undefined : records[pickleName];
  if (pickleName === undefined || pickle === undefined) {
    const shown = names.slice(0, 8).join(', ') + (names.length > 8 ? ', ...' : '');
    throw new WeightFileError(
      file,
      undefined,
      `zip archive has no <archive>/data.pkl record (it holds: ${shown || 'nothing'}), so it was not written by ` +
        'torch.save or is incomplete; copy the checkpoint again or convert it to safetensors',
    );
  }
  const prefix = pickleName.slice(0, -'data.pkl'.length);
  return { prefix, pickle, littleEndian: readByteOrder(records[`${prefix}byteorder`], file) };
}

/** PyTorch before 2.1 wrote no byteorder record and only little-endian storages. */
function readByteOrder(record: Uint8Array | undefined, file: string): boolean {
  if (record === undefined) return true;
  const order = new TextDecoder().decode(record).trim();
  if (order === 'little' || order === 'big') return order === 'little';
  throw new WeightFileError(file, undefined, `byteorder record says '${order}', expected 'little' or 'big'`);
}

/** fflate's unzipSync, with its errors (truncated or damaged zips) turned into WeightFileErrors. */
function unzip(bytes: Uint8Array, file: string, keep: (name: string) => boolean): Unzipped {
  try {
    return unzipSync(bytes, { filter: (info) => keep(info.name) });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new WeightFileError(
      file,
      undefined,
      `is not a readable zip archive (${reason}); it may be truncated or damaged: copy or download it again`,
      { cause: error },
    );
  }
}

function readStorages(bytes: Uint8Array, archive: Archive, values: Iterable<unknown>, file: string): Map<string, Uint8Array> {
  const wanted = new Set<string>();
  for (const value of values) {
    if (value instanceof TensorRef && value.storage instanceof StorageRef) wanted.add(storageRecord(archive, value.storage));
  }
  return new Map(Object.entries(unzip(bytes, file, (name) => wanted.has(name))));
}

function storageRecord(archive: Archive, storage: StorageRef): string {
  return `${archive.prefix}data/${storage.key}`;
}

// ---- The pickle ----

/** A storage named by the persistent id ('storage', storage_type, key, location, numel). */
class StorageRef {
  constructor(
    readonly key: string,
    /** Qualified name of storage_type, e.g. 'torch.FloatStorage'. */
    readonly storageType: string,
  ) {}
}

/**
 * A tensor as torch._utils._rebuild_tensor_v2 would build it. Its arguments are checked only when
 * it turns out to belong to the state dict, so that odd tensors elsewhere never stop loading.
 */
class TensorRef {
  constructor(
    readonly storage: unknown,
    readonly offset: unknown,
    readonly size: unknown,
    readonly stride: unknown,
    /** The dtype argument of _rebuild_tensor_v3, whose storage is untyped. */
    readonly dtype?: unknown,
  ) {}
}

/**
 * Stand-in for an object of a class this reader does not know (hyper-parameter objects,
 * argparse.Namespace, Lightning's AttributeDict, optimizer classes, ...). pickleparser fills objects
 * through these methods (BUILD: __setstate__, NEWOBJ_EX: __setnewargs_ex__, SETITEM(S): set,
 * APPEND(S): push), so instances of unknown dict and list subclasses load too.
 */
class PickledObject {
  readonly items = new Map<unknown, unknown>();
  readonly elements: unknown[] = [];
  state: unknown = undefined;
  keywordArgs: unknown = undefined;

  constructor(
    readonly className: string,
    readonly args: readonly unknown[],
  ) {}

  __setstate__(state: unknown): void {
    this.state = state;
  }

  __setnewargs_ex__(keywordArgs: unknown): void {
    this.keywordArgs = keywordArgs;
  }

  set(key: unknown, value: unknown): void {
    this.items.set(key, value);
  }

  push(...values: unknown[]): number {
    return this.elements.push(...values);
  }
}

/** Qualified names of the placeholders handed out for unknown globals (storage types, dtypes, ...). */
const placeholderNames = new WeakMap<object, string>();

function placeholder(qualifiedName: string): (...args: unknown[]) => PickledObject {
  // A plain function, not a class: pickle calls globals (REDUCE) as well as constructing them
  // (NEWOBJ), and `new` on a function that returns an object yields that object.
  const make = function (...args: unknown[]): PickledObject {
    return new PickledObject(qualifiedName, args);
  };
  placeholderNames.set(make, qualifiedName);
  return make;
}

function qualifiedNameOf(global: unknown): string | undefined {
  return typeof global === 'function' ? placeholderNames.get(global) : undefined;
}

// The torch functions a state dict needs, as function declarations: REDUCE calls them, NEWOBJ
// would construct them. Trailing arguments (requires_grad, backward_hooks, metadata) do not matter.
function rebuildTensor(storage: unknown, offset: unknown, size: unknown, stride: unknown): TensorRef {
  return new TensorRef(storage, offset, size, stride);
}

/** _rebuild_tensor_v3(storage, offset, size, stride, requires_grad, backward_hooks, dtype, ...). */
function rebuildTensorV3(
  storage: unknown, offset: unknown, size: unknown, stride: unknown, _requiresGrad: unknown, _hooks: unknown, dtype: unknown,
): TensorRef {
  return new TensorRef(storage, offset, size, stride, dtype);
}

/** _rebuild_parameter(data, requires_grad, backward_hooks[, state]): a Parameter is its data. */
function rebuildParameter(data: unknown): unknown {
  return data;
}

/** torch._tensor._rebuild_from_type_v2(func, new_type, args, state): tensor subclasses, tensors with attributes. */
function rebuildFromType(func: unknown, newType: unknown, args: unknown, state: unknown): unknown {
  if (typeof func === 'function' && Array.isArray(args)) return Reflect.apply(func, undefined, args);
  return new PickledObject('torch._tensor._rebuild_from_type_v2', [func, newType, args, state]);
}

/** OrderedDict() (Python 3 pickles the items afterwards with SETITEMS) or OrderedDict([(k, v), ...]). */
function orderedDict(items?: unknown): Map<unknown, unknown> {
  const dict = new Map<unknown, unknown>();
  if (Array.isArray(items)) {
    for (const pair of items) if (Array.isArray(pair) && pair.length === 2) dict.set(pair[0], pair[1]);
  }
  return dict;
}

/** Resolves pickled globals: the functions above, and an inert placeholder for everything else. */
class CheckpointNames extends NameRegistry {
  constructor() {
    super();
    // Without this, SETITEMS on the OrderedDict placeholder would fail (it calls dict.set).
    this.register('collections', 'OrderedDict', orderedDict)
      .register('torch._utils', '_rebuild_tensor', rebuildTensor)
      .register('torch._utils', '_rebuild_tensor_v2', rebuildTensor)
      .register('torch._utils', '_rebuild_tensor_v3', rebuildTensorV3)
      .register('torch._utils', '_rebuild_parameter', rebuildParameter)
      .register('torch._utils', '_rebuild_parameter_with_state', rebuildParameter)
      .register('torch._tensor', '_rebuild_from_type_v2', rebuildFromType);
  }

  override onMissingName(module: string, name: string): (...args: unknown[]) => PickledObject {
    return placeholder(`${module}.${name}`);
  }
}

function resolvePersistentId(pid: unknown): unknown {
  if (isList(pid) && pid[0] === 'storage' && typeof pid[2] === 'string') {
    return new StorageRef(pid[2], qualifiedNameOf(pid[1]) ?? String(pid[1]));
  }
  return new PickledObject('persistent id', [pid]);
}

function unpickle(archive: Archive, file: string): unknown {
  const parser = new Parser({
    nameResolver: new CheckpointNames(),
    persistentResolver: { resolve: resolvePersistentId },
    // Maps keep non-string keys (optimizer state is keyed by parameter index) and key order.
    unpicklingTypeOfDictionary: 'Map',
  });
  try {
    return parser.parse<unknown>(archive.pickle);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new WeightFileError(
      file,
      undefined,
      `cannot unpickle ${archive.prefix}data.pkl (${reason}); the checkpoint is damaged or uses a pickle feature this reader lacks`,
      { cause: error },
    );
  }
}

// ---- Finding the state dict ----

const NESTED_STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict', 'net'];

/** The entries to load, keyed by parameter name; their values are checked by materialize. */
function findStateDict(root: unknown, file: string): Map<string, unknown> {
  const rootDict = asStringMap(root);
  const candidates = [root, ...NESTED_STATE_DICT_KEYS.map((key) => rootDict?.get(key))];
  for (const candidate of candidates) {
    const entries = asTensorDict(candidate);
    if (entries !== undefined) return entries;
  }
  const module = [root, rootDict?.get('model')].find((value) => value instanceof PickledObject);
  if (module instanceof PickledObject) {
    throw new WeightFileError(
      file,
      undefined,
      `holds a pickled ${module.className} object (torch.save(model) saves the whole module), not a state dict; ` +
        'save model.state_dict() instead, or convert it to safetensors',
    );
  }
  const where = rootDict === undefined ? `it holds a ${describe(root)}` : `top-level keys: ${[...rootDict.keys()].join(', ')}`;
  throw new WeightFileError(
    file,
    undefined,
    `has no state dict: expected a dict of tensors at the top level or under ${NESTED_STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')} (${where})`,
  );
}

/**
 * A non-empty dict whose values are all tensors, apart from modules' `_extra_state` entries (which
 * may hold anything and are left out). Tensors in forms this reader cannot convert (quantized,
 * sparse, ...) are kept so that materialize reports them by name.
 */
function asTensorDict(value: unknown): Map<string, unknown> | undefined {
  const dict = asStringMap(value);
  if (dict === undefined) return undefined;
  const entries = new Map<string, unknown>();
  for (const [key, entry] of dict) {
    if (isTensorLike(entry)) entries.set(key, entry);
    else if (!key.endsWith('_extra_state')) return undefined;
  }
  return [...entries.values()].some((entry) => entry instanceof TensorRef) ? entries : undefined;
}

function isTensorLike(value: unknown): boolean {
  return value instanceof TensorRef || (value instanceof PickledObject && /^torch\..*\._rebuild_/.test(value.className));
}

function asStringMap(value: unknown): Map<string, unknown> | undefined {
  if (!(value instanceof Map)) return undefined;
  const source: Map<unknown, unknown> = value;
  const dict = new Map<string, unknown>();
  for (const [key, entry] of source) {
    if (typeof key !== 'string') return undefined;
    dict.set(key, entry);
  }
  return dict;
}

// ---- Reading one tensor ----

const STORAGE_DTYPES = new Map<string, SourceDtype>([
  ['FloatStorage', 'float32'], ['HalfStorage', 'float16'], ['BFloat16Storage', 'bfloat16'], ['DoubleStorage', 'float64'],
  ['LongStorage', 'int64'], ['IntStorage', 'int32'], ['ShortStorage', 'int16'], ['CharStorage', 'int8'],
  ['ByteStorage', 'uint8'], ['BoolStorage', 'bool'], ['UntypedStorage', 'uint8'],
]);

const TORCH_DTYPES = new Map<string, SourceDtype>([
  ['float32', 'float32'], ['float', 'float32'], ['float16', 'float16'], ['half', 'float16'], ['bfloat16', 'bfloat16'],
  ['float64', 'float64'], ['double', 'float64'], ['int64', 'int64'], ['long', 'int64'], ['int32', 'int32'], ['int', 'int32'],
  ['int16', 'int16'], ['short', 'int16'], ['int8', 'int8'], ['uint8', 'uint8'], ['bool', 'bool'],
  ['uint16', 'uint16'], ['uint32', 'uint32'], ['uint64', 'uint64'],
]);

function materialize(key: string, value: unknown, storages: Map<string, Uint8Array>, archive: Archive, file: string): HostTensor {
  const fail = (message: string): WeightFileError => new WeightFileError(file, key, message);
  if (!(value instanceof TensorRef)) {
    throw fail(`is built by ${describe(value)}, which this reader does not convert (only dense, non-quantized tensors)`);
  }
  const storage = value.storage;
  if (!(storage instanceof StorageRef)) throw fail(`its storage is a ${describe(storage)}, not a torch.save storage record`);
  const dtypeName = value.dtype === undefined ? storage.storageType : (qualifiedNameOf(value.dtype) ?? String(value.dtype));
  const dtype = value.dtype === undefined
    ? STORAGE_DTYPES.get(afterLastDot(storage.storageType))
    : TORCH_DTYPES.get(afterLastDot(dtypeName));
  if (dtype === undefined) throw fail(`is stored as ${dtypeName}, which this reader does not convert`);
  const layout = asLayout(value);
  if (layout === undefined) {
    throw fail(`has an invalid layout (offset ${String(value.offset)}, size ${JSON.stringify(value.size)}, stride ${JSON.stringify(value.stride)})`);
  }
  const record = storageRecord(archive, storage);
  const bytes = storages.get(record);
  if (bytes === undefined) {
    throw fail(`its storage '${storage.key}' (zip record ${record}) is missing from the archive; the checkpoint is incomplete`);
  }
  const needed = requiredElements(layout);
  const available = Math.floor(bytes.length / itemSize(dtype));
  if (needed > available) {
    throw fail(
      `storage '${storage.key}' holds ${available} ${dtype} elements but shape [${layout.shape.join(', ')}] with stride ` +
        `[${layout.strides.join(', ')}] at offset ${layout.offset} needs ${needed}; the checkpoint is damaged`,
    );
  }
  return gatherFloat32(bytes, dtype, layout, archive.littleEndian);
}

function asLayout(tensor: TensorRef): StridedLayout | undefined {
  const { offset, size, stride } = tensor;
  if (!isIndex(offset) || !isList(size) || !isList(stride) || size.length !== stride.length) return undefined;
  if (!size.every(isIndex) || !stride.every(isIndex)) return undefined;
  return { offset, shape: size, strides: stride };
}

function isIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function isList(value: unknown): value is unknown[] {
  return Array.isArray(value);
}

function afterLastDot(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

function describe(value: unknown): string {
  if (value instanceof PickledObject) return value.className;
  if (value instanceof Map) return 'dict';
  if (Array.isArray(value)) return 'list';
  if (value === null) return 'None';
  return typeof value;
}
