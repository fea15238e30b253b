import type { HostTensor, StateDict } from '../weights/stateDict';
import { WeightFileError, stripKeyPrefixes } from '../weights/stateDict';
import { mulberry32, normal } from '../util/random';
import { ResNet18Trunk } from './resnet18';

/**
 * The ResNet18 trunk's weights as users have them (torchvision state dicts, possibly under a
 * training wrapper's prefix) and as `triplex extract` starts without a weights file (the seeded
 * initialisation). Pure: no engine, no TF.js.
 */

/** Key prefixes put in front of the trunk's names by training wrappers (Lightning, DataParallel). */
export const RESNET_KEY_PREFIXES = ['model.', 'resnet.', 'module.', 'backbone.', 'encoder.'];

/** Expected torchvision shape of every tensor the trunk needs: parameters and running statistics. */
export function resnet18ParameterShapes(): Map<string, number[]> {
  const trunk = new ResNet18Trunk();
  return new Map([...trunk.parameterShapes(), ...trunk.bufferShapes()].map(([k, s]) => [k, [...s]]));
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Picks the trunk's tensors out of a checkpoint's state dict: strips wrapper prefixes, keeps the
 * keys torchvision's resnet18 trunk has, and checks every shape, naming the file and the key.
 */
export function resnet18TensorsFrom(sd: StateDict, source: string): Map<string, HostTensor> {
  const shapes = resnet18ParameterShapes();
  // Only the candidates for trunk tensors: a checkpoint's other heads may collide once stripped.
  const candidates: StateDict = new Map([...sd].filter(([key]) => [...shapes.keys()].some((k) => key === k || key.endsWith(`.${k}`))));
  const stripped = stripKeyPrefixes(candidates, RESNET_KEY_PREFIXES, source);
  const missing = [...shapes.keys()].filter((k) => !stripped.has(k));
  if (missing.length) {
    const shown = missing.slice(0, 5).join(', ') + (missing.length > 5 ? `, and ${missing.length - 5} more` : '');
    const found = [...sd.keys()].slice(0, 3).join(', ');
    throw new WeightFileError(source, missing[0],
      `${source} lacks ${missing.length} of the ${shapes.size} ResNet18 trunk tensors (${shown}); its keys start ${found || '(none)'}. Expected a torchvision resnet18 state dict, possibly under model./resnet./module. prefixes.`);
  }
  const picked = new Map<string, HostTensor>();
  for (const [key, shape] of shapes) {
    const t = stripped.get(key) as HostTensor;
    if (!sameShape(t.shape, shape)) {
      throw new WeightFileError(source, key, `${source}: tensor ${key} has shape [${t.shape.join(', ')}], the ResNet18 trunk needs [${shape.join(', ')}]`);
    }
    picked.set(key, t);
  }
  return picked;
}

/** [kh, kw, in, out] -> [out, in, kh, kw]. */
function hwioToOihw(data: Float32Array, [h, w, i, o]: readonly number[]): Float32Array {
  const out = new Float32Array(data.length);
  for (let hh = 0; hh < h; hh++) {
    for (let ww = 0; ww < w; ww++) {
      for (let ii = 0; ii < i; ii++) {
        for (let oo = 0; oo < o; oo++) out[((oo * i + ii) * h + hh) * w + ww] = data[((hh * w + ww) * i + ii) * o + oo];
      }
    }
  }
  return out;
}

/**
 * PyTorch's initial ResNet18 weights (Kaiming-normal fan-out convolutions, batch norm 1/0, running
 * statistics 0/1), seeded, as a state dict: what `triplex extract` encodes with when no weights
 * file is given (its features folders are keyed by it: keep the draw order). Each convolution's
 * values are drawn in [kh, kw, in, out] order, then laid out as torchvision's [out, in, kh, kw].
 */
export function seededResNet18StateDict(seed = 0): StateDict {
  const rand = mulberry32(seed);
  const sd: StateDict = new Map();
  const host = (shape: number[], data: Float32Array): HostTensor => ({ shape, data, sourceDtype: 'float32' });
  const trunk = new ResNet18Trunk();
  for (const c of trunk.convolutions()) {
    const std = Math.sqrt(2 / (c.outC * c.k * c.k));
    const hwio = normal(rand, c.k * c.k * c.inC * c.outC, std);
    sd.set(`${c.name}.weight`, host([c.outC, c.inC, c.k, c.k], hwioToOihw(hwio, [c.k, c.k, c.inC, c.outC])));
    sd.set(`${c.bn}.weight`, host([c.outC], new Float32Array(c.outC).fill(1)));
    sd.set(`${c.bn}.bias`, host([c.outC], new Float32Array(c.outC)));
    sd.set(`${c.bn}.running_mean`, host([c.outC], new Float32Array(c.outC)));
    sd.set(`${c.bn}.running_var`, host([c.outC], new Float32Array(c.outC).fill(1)));
  }
  return sd;
}
