import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { initCompute } from '../../src/runtime/compute/backend';
import { gradients } from '../../src/runtime/engine/autodiff';
import type { Executor } from '../../src/runtime/engine/executor';
import { Graph, type Sym } from '../../src/runtime/engine/graph';
import type { Mode } from '../../src/runtime/engine/nn';
import { createOrtExecutor } from '../../src/runtime/engine/ort';
import { compileTrainStep, initialState } from '../../src/runtime/engine/step';
import { createTfjsExecutor } from '../../src/runtime/engine/tfjs';
import { ResNet18Trunk } from '../../src/runtime/models/resnet18';
import { relativeError } from './helpers/compare';
import { torchReference, torchSkip } from './helpers/torch';
import { DropoutStreams } from '../../src/runtime/engine/dropout';

/**
 * The engine's ResNet18 trunk against torchvision's (float64 reference from the same float32
 * weights and input): tokens, the loss sum(tokens * r) and every parameter's gradient in both
 * batch-norm modes, the running statistics after a training step, and mode layer4's gradients
 * with conv1 .. layer3 as buffers; at 224x224 on onnxruntime, at 64x64 on TF.js (its cpu
 * backend's convolutions are plain loops). Every tensor within 1e-4 relative (max |diff| / max |ref|).
 */

type Ref = Map<string, Float32Array>;

function readRef(dir: string): Ref {
  const index = JSON.parse(fs.readFileSync(path.join(dir, 'tensors.json'), 'utf8')) as Record<string, [number, number[]]>;
  const b = fs.readFileSync(path.join(dir, 'tensors.f32'));
  const all = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  return new Map(Object.entries(index).map(([k, [offset, shape]]) => [k, all.subarray(offset, offset + shape.reduce((p, d) => p * d, 1))]));
}

const get = (ref: Ref, key: string) => {
  const v = ref.get(key);
  if (!v) throw new Error(`reference lacks ${key}`);
  return v;
};

const trunk = new ResNet18Trunk();
const modeOf = (m: 'eval' | 'train'): Mode => (m === 'eval' ? 'inference' : 'train');

/** A graph whose ReLUs multiply by masks fed as `mask:<k>` (the k-th call), from the reference. */
class MaskedReluGraph extends Graph {
  private calls = 0;
  override relu(x: Sym): Sym {
    return this.mul(x, this.input(`mask:${this.calls++}`, x.shape));
  }
}

/**
 * Tokens and the loss sum(tokens * r) with real ReLUs, and the gradients of the trainable tensors
 * on the reference's activation pattern (see the fixture: a float32 forward flips about one ReLU
 * whose float64 input is within rounding of 0, and in layer3/layer4 one flip moves a weight
 * gradient by 1e-2; the ReLU rule itself is checked by finite differences).
 */
function parityGraphs(size: number, mode: Mode, trainable?: (name: string) => boolean) {
  const record = (g: Graph) => {
    const tokens = trunk.apply(g, g.input('x', [2, 3, size, size]), mode, { trainable }); // [2, 512, S/32, S/32]
    return { tokens, loss: g.sum(g.mul(tokens, g.input('r', tokens.shape)), [0, 1, 2, 3]) };
  };
  const g = new Graph('float32');
  const forward = record(g);
  const masked = new MaskedReluGraph('float32');
  const { loss } = record(masked);
  const params = masked.params();
  const grads = gradients(loss, [...params.values()]);
  const gradOutputs: Record<string, Sym> = {};
  [...params.keys()].forEach((n, i) => { gradOutputs[`grad/${n}`] = grads[i]; });
  return { g, forward, masked, gradOutputs };
}

function feedsOf(g: Graph, ref: Ref): Record<string, Float32Array> {
  const feeds: Record<string, Float32Array> = { x: get(ref, 'x'), r: get(ref, 'r') };
  for (const n of g.params().keys()) feeds[`param:${n}`] = get(ref, `param/${n}`);
  for (const n of g.buffers().keys()) feeds[`buffer:${n}`] = get(ref, n.includes('running') ? `buffer/${n}` : `param/${n}`);
  return feeds;
}

async function checkParity(t: { diagnostic(s: string): void }, executor: Executor, ref: Ref, size: number, m: 'eval' | 'train', trainable?: (n: string) => boolean) {
  const { g, forward, masked, gradOutputs } = parityGraphs(size, modeOf(m), trainable);
  const got: Record<string, Float32Array> = {};
  for (const [graph, outputs] of [[g, forward], [masked, gradOutputs]] as const) {
    const feeds = feedsOf(graph, ref);
    for (const n of graph.inputs.keys()) if (n.startsWith('mask:')) feeds[n] = get(ref, `${m}/mask/${n.slice(5)}`);
    const program = await executor.compile(outputs);
    Object.assign(got, await program.run(feeds));
    await program.dispose();
  }
  let worst = 0;
  let worstKey = '';
  for (const key of Object.keys(got)) {
    const e = relativeError(got[key], get(ref, `${m}/${key}`));
    if (e > worst) [worst, worstKey] = [e, key];
  }
  t.diagnostic(`${executor.kind} ${size}x${size} ${m}${trainable ? ' (layer4 trained)' : ''}: ${Object.keys(got).length} tensors, worst relative error ${worst.toExponential(2)} (${worstKey})`);
  assert.ok(worst < 1e-4, `${worstKey}: relative error ${worst}`);
}

describe('engine ResNet18 trunk matches torchvision', { skip: torchSkip }, () => {
  const reference = torchReference('torchvision_resnet18_engine_reference.py');
  let ort: Executor;
  let tfjs: Executor;
  let ref224: Ref;
  let ref64: Ref;

  before(async () => {
    const e = await createOrtExecutor();
    if ('unavailable' in e) throw new Error(`onnxruntime-node is needed for the engine tests: ${e.unavailable}`);
    ort = e;
    await initCompute({ backend: 'cpu' });
    tfjs = createTfjsExecutor();
    ref224 = readRef(path.join(reference.dir(), '224'));
    ref64 = readRef(path.join(reference.dir(), '64'));
  });

  test('names and shapes are torchvision\'s', () => {
    const shapes = trunk.parameterShapes();
    assert.equal(shapes.size, 60, '20 convolutions and 20 batch norms (weight and bias)');
    assert.equal(trunk.bufferShapes().size, 40);
    for (const [n, s] of [...shapes, ...trunk.bufferShapes()]) assert.equal(get(ref224, `${n.includes('running') ? 'buffer' : 'param'}/${n}`).length, s.reduce((p, d) => p * d, 1), n);
  });

  for (const m of ['eval', 'train'] as const) {
    test(`onnxruntime, 224x224, ${m} mode: tokens, loss and every gradient`, async (t) => checkParity(t, ort, ref224, 224, m));
    test(`TF.js, 64x64, ${m} mode: tokens, loss and every gradient`, async (t) => checkParity(t, tfjs, ref64, 64, m));
  }

  test('onnxruntime, mode layer4: conv1 .. layer3 as buffers, inference batch norm, layer4 gradients', async (t) => checkParity(t, ort, ref224, 224, 'eval', (n) => n.startsWith('layer4.')));

  test('a training step on onnxruntime updates the running statistics as torchvision does', async (t) => {
    const step = await compileTrainStep(ort, (g) => {
      const tokens = trunk.apply(g, g.input('x', [2, 3, 224, 224]), 'train'); // [2, 512, 7, 7]
      return g.sum(g.mul(tokens, g.input('r', tokens.shape)), [0, 1, 2, 3]);
    });
    const params = new Map([...trunk.parameterShapes().keys()].map((n) => [n, get(ref224, `param/${n}`).slice()]));
    const state = { ...initialState(params), buffers: new Map([...trunk.bufferShapes().keys()].map((n) => [n, get(ref224, `buffer/${n}`).slice()])) };
    const loss = await step.run(state, { x: get(ref224, 'x'), r: get(ref224, 'r') }, 1e-3, new DropoutStreams());
    await step.program.dispose();
    const lossError = Math.abs(loss - get(ref224, 'train/loss')[0]) / Math.abs(get(ref224, 'train/loss')[0]);
    let worst = 0;
    for (const n of trunk.bufferShapes().keys()) worst = Math.max(worst, relativeError(state.buffers.get(n) as Float32Array, get(ref224, `train/buffer/${n}`)));
    t.diagnostic(`loss relative error ${lossError.toExponential(2)}; running statistics worst ${worst.toExponential(2)}; ${step.program.nodeCount} nodes`);
    assert.ok(lossError < 1e-4);
    assert.ok(worst < 1e-4, `running statistics: relative error ${worst}`);
  });
});
