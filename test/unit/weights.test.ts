import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { unzipSync, zipSync, Unzipped } from 'fflate';
import {
  HostTensor,
  loadStateDict,
  readPytorchCheckpoint,
  readSafetensors,
  StateDict,
  stripKeyPrefixes,
  WeightFileError,
} from '../../src/runtime/weights';

function repoRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no package.json above ${from}`);
  }
}

const FIXTURES = path.join(repoRoot(__dirname), 'test', 'fixtures', 'weights');
const fixture = (name: string): string => path.join(FIXTURES, name);

/** Written by scripts/fixtures/make_weight_fixtures.py from the tensors it saved. */
interface ExpectedTensor {
  shape: number[];
  dtype: string;
  /** Row-major, as float32 values. */
  values: number[];
}
const expected: Record<string, Record<string, ExpectedTensor>> = JSON.parse(readFileSync(fixture('expected.json'), 'utf8'));

function assertMatches(sd: StateDict, want: Record<string, ExpectedTensor>): void {
  assert.deepEqual([...sd.keys()], Object.keys(want));
  for (const [key, tensor] of sd) {
    assert.deepEqual(tensor.shape, want[key].shape, key);
    assert.equal(tensor.sourceDtype, want[key].dtype, key);
    assert.ok(tensor.data instanceof Float32Array, key);
    // deepEqual tells -0 from 0, so the float16/bfloat16 conversions are checked bit for bit.
    assert.deepEqual(Array.from(tensor.data), want[key].values, key);
  }
}

/** A temporary folder for broken or rewritten copies of the fixtures. */
let scratch: string;
before(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'triplex-weights-'));
});
after(() => {
  rmSync(scratch, { recursive: true, force: true });
});

function editZip(name: string, edit: (records: Unzipped) => void): Uint8Array {
  const records = unzipSync(readFileSync(fixture(name)));
  edit(records);
  return zipSync(records, { level: 0 });
}

/** The zip record name ending with `suffix`, so the tests do not depend on torch's archive folder name. */
function recordEnding(records: Unzipped, suffix: string): string {
  const found = Object.keys(records).find((name) => name.endsWith(suffix));
  assert.ok(found, `no zip record ends with ${suffix}`);
  return found;
}

function swapBytes(bytes: Uint8Array, itemSize: number): Uint8Array<ArrayBuffer> {
  const swapped = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) swapped[i] = bytes[i - (i % itemSize) + itemSize - 1 - (i % itemSize)];
  return swapped;
}

void describe('weight readers: good files', () => {
  for (const [name, want] of Object.entries(expected)) {
    const direct = name.endsWith('.safetensors') ? readSafetensors : readPytorchCheckpoint;
    void it(`${name}: loadStateDict gives every key with its exact shape, dtype and values`, async () => {
      assertMatches(await loadStateDict(fixture(name)), want);
    });
    void it(`${name}: the format's own reader agrees`, async () => {
      assertMatches(await direct(fixture(name)), want);
    });
  }

  void it('copies tensors that share a storage into separate arrays', async () => {
    const sd = await loadStateDict(fixture('strided.pth'));
    const a = sd.get('shared.a');
    const b = sd.get('shared.b');
    assert.ok(a && b);
    assert.notEqual(a.data.buffer, b.data.buffer);
  });

  void it('honours a byteorder record saying big (written by PyTorch >= 2.1 on big-endian machines)', async () => {
    // strided.pth holds float32 storages only, so every record swaps in 4-byte items.
    const bigEndian = editZip('strided.pth', (records) => {
      for (const name of Object.keys(records)) {
        if (/\/data\/\d+$/.test(name)) records[name] = swapBytes(records[name], 4);
      }
      records[recordEnding(records, '/data.pkl').replace(/data\.pkl$/, 'byteorder')] = new TextEncoder().encode('big');
    });
    const file = path.join(scratch, 'big-endian.pth');
    writeFileSync(file, bigEndian);
    assertMatches(await loadStateDict(file), expected['strided.pth']);
  });
});

void describe('stripKeyPrefixes', () => {
  let lightning: StateDict;
  before(async () => {
    lightning = await loadStateDict(fixture('lightning.ckpt'));
  });

  const stripped = [
    'conv1.weight', 'conv1.bias', 'bn1.weight', 'bn1.bias', 'bn1.running_mean', 'bn1.running_var',
    'bn1.num_batches_tracked', 'fc.weight', 'fc.bias',
  ];
  for (const prefixes of [['model.', 'resnet.'], ['resnet.', 'model.'], ['model.resnet.', 'model.']]) {
    void it(`strips ${JSON.stringify(prefixes)} from the Lightning keys, keeping order and tensors`, () => {
      const sd = stripKeyPrefixes(lightning, prefixes);
      assert.deepEqual([...sd.keys()], stripped);
      assert.equal(sd.get('conv1.weight'), lightning.get('model.resnet.conv1.weight'));
    });
  }

  void it('never strips a key to nothing', () => {
    const tensor: HostTensor = { shape: [1], data: new Float32Array(1), sourceDtype: 'float32' };
    assert.deepEqual([...stripKeyPrefixes(new Map([['model.', tensor]]), ['model.']).keys()], ['model.']);
  });

  void it('names both keys when two collide', () => {
    const tensor: HostTensor = { shape: [1], data: new Float32Array(1), sourceDtype: 'float32' };
    const sd: StateDict = new Map([['model.fc.weight', tensor], ['fc.weight', tensor]]);
    assert.throws(
      () => stripKeyPrefixes(sd, ['model.'], 'net.ckpt'),
      (error: unknown) =>
        error instanceof WeightFileError &&
        error.message.includes('net.ckpt') &&
        error.message.includes("'model.fc.weight'") &&
        error.message.includes("'fc.weight'"),
    );
  });
});

// ---- Bad input: each case writes a broken file and names what the error must say ----

interface BadCase {
  name: string;
  /** Bytes of the broken file, or the path of an existing fixture to read as it is. */
  input: () => Uint8Array | { fixture: string };
  read?: (file: string) => Promise<StateDict>;
  /** The tensor the error must name, when one is at fault. */
  key?: string;
  says: RegExp;
}

function half(name: string): Uint8Array {
  const bytes = readFileSync(fixture(name));
  return bytes.subarray(0, bytes.length >> 1);
}

/** Same-length text edits of the safetensors header, so the data offsets stay where they were. */
function editSafetensorsHeader(from: string, to: string): Uint8Array {
  assert.equal(from.length, to.length);
  const text = readFileSync(fixture('mixed.safetensors')).toString('latin1');
  assert.ok(text.includes(from), `header lacks ${from}`);
  return Buffer.from(text.replace(from, to), 'latin1');
}

const badCases: BadCase[] = [
  { name: 'a text file', input: () => Buffer.from('not weights\n'), says: /neither a PyTorch checkpoint nor a safetensors file.*accepted/ },
  { name: 'an empty file', input: () => new Uint8Array(0), says: /neither a PyTorch checkpoint nor a safetensors file/ },
  { name: 'a missing file', input: () => ({ fixture: 'no-such-file.pth' }), says: /cannot read the weight file/ },
  {
    name: 'a text file given to readPytorchCheckpoint',
    input: () => Buffer.from('not weights\n'),
    read: readPytorchCheckpoint,
    says: /not a PyTorch zip checkpoint .*safetensors/,
  },
  { name: 'a text file given to readSafetensors', input: () => Buffer.from('not weights\n'), read: readSafetensors, says: /header claims/ },
  { name: 'a legacy (non-zip) torch.save file', input: () => ({ fixture: 'legacy.pth' }), says: /legacy torch\.save format.*_use_new_zipfile_serialization=True/ },
  { name: 'a whole pickled module', input: () => ({ fixture: 'whole_module.pt' }), says: /TinyNet.*model\.state_dict\(\)/ },
  { name: 'a zip cut in half', input: () => half('tiny_model.pth'), says: /not a readable zip archive.*truncated/ },
  {
    name: 'a zip without data.pkl',
    input: () => editZip('tiny_model.pth', (records) => delete records[recordEnding(records, '/data.pkl')]),
    says: /no <archive>\/data\.pkl record/,
  },
  {
    name: 'a zip with a damaged data.pkl',
    input: () => editZip('tiny_model.pth', (records) => {
      const name = recordEnding(records, '/data.pkl');
      records[name] = records[name].subarray(0, 100);
    }),
    says: /cannot unpickle .*data\.pkl/,
  },
  {
    name: 'a zip missing a storage record',
    input: () => editZip('tiny_model.pth', (records) => delete records[recordEnding(records, '/data/0')]),
    key: 'conv1.weight',
    says: /storage '0' .*missing/,
  },
  {
    name: 'a storage too short for its tensor',
    input: () => editZip('tiny_model.pth', (records) => {
      const name = recordEnding(records, '/data/0');
      records[name] = records[name].subarray(0, 8);
    }),
    key: 'conv1.weight',
    says: /holds 2 float32 elements .*needs 24/,
  },
  {
    name: 'a shared storage too short for a strided view',
    input: () => editZip('strided.pth', (records) => {
      // shared.a and shared.b view one 20-element storage; keep 12 elements so only shared.b (offset 10, stride 2) overruns.
      const name = recordEnding(records, '/data/1');
      assert.equal(records[name].length, 80);
      records[name] = records[name].subarray(0, 48);
    }),
    key: 'shared.b',
    says: /storage '1' holds 12 float32 elements .*stride \[2\] at offset 10 needs 17/,
  },
  { name: 'a safetensors file cut in half', input: () => half('mixed.safetensors'), says: /header claims \d+ bytes .*truncated/ },
  {
    name: 'a safetensors file missing its last bytes',
    input: () => readFileSync(fixture('mixed.safetensors')).subarray(0, -2),
    key: 'scalar',
    says: /outside the data area .*truncated/,
  },
  { name: 'a safetensors dtype this reader does not know', input: () => editSafetensorsHeader('"F64"', '"F99"'), key: 'head.scale.f64', says: /unknown or unsupported dtype "F99"/ },
  {
    name: 'safetensors offsets that do not match the shape',
    input: () => editSafetensorsHeader('"shape":[2,3]', '"shape":[2,2]'),
    key: 'encoder.weight',
    says: /span 24 bytes but shape \[2, 2\] of F32 needs 16/,
  },
];

void describe('weight readers: bad input gives a WeightFileError naming the file', () => {
  badCases.forEach((bad, index) => {
    void it(bad.name, async () => {
      const input = bad.input();
      let file: string;
      if ('fixture' in input) {
        file = fixture(input.fixture);
      } else {
        file = path.join(scratch, `case-${index}.bin`);
        writeFileSync(file, input);
      }
      await assert.rejects((bad.read ?? loadStateDict)(file), (error: unknown) => {
        assert.ok(error instanceof WeightFileError, `expected a WeightFileError, got ${String(error)}`);
        assert.ok(error.message.includes(file), `message does not name the file: ${error.message}`);
        assert.equal(error.file, file);
        assert.equal(error.key, bad.key);
        if (bad.key !== undefined) assert.ok(error.message.includes(`'${bad.key}'`), `message does not name the key: ${error.message}`);
        assert.match(error.message, bad.says);
        return true;
      });
    });
  });
});
