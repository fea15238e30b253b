import * as tf from '@tensorflow/tfjs-core';
import { showShape, type Graph, type Sym } from '../graph';
import { defineOp } from '../registry';

/**
 * Max pooling over k x k windows, NCHW, with stride and padding (padded cells never win: they
 * count as -inf, as in nn.MaxPool2d), and its backward as an op of its own: the gradient goes to
 * each window's first maximum (PyTorch's, onnxruntime's and TF.js's tie rule alike).
 * ONNX: the backward recomputes MaxPool with its Indices output (cheaper than keeping the int64
 * indices of every training step alive) and adds dy at them with ScatterElements(reduction add)
 * over each (n, c) plane; the indices are taken modulo H*W, so whether a runtime counts them per
 * plane or over the whole tensor does not matter. TF.js: tf.maxPool and the MaxPoolGrad kernel,
 * which the cpu and wasm backends both have.
 */

export interface PoolOptions {
  kernel: number;
  stride: number;
  pad: number;
}

/** [N, C, H, W] -> [N, C, Ho, Wo], Ho = floor((H + 2 pad - k) / stride) + 1. */
export function maxPool2d(g: Graph, x: Sym, o: PoolOptions): Sym {
  const [N, C, H, W] = x.shape;
  const { kernel: k, stride, pad } = o;
  if (x.rank !== 4 || 2 * pad > k) throw new Error(`maxPool2d: input ${showShape(x.shape)}, kernel ${k}, padding ${pad} (at most half the kernel)`);
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  return g.node('maxPool2d', [x], { kernel: k, stride, pad }, [N, C, Ho, Wo], x.dtype);
}

const onnxAttrs = (o: PoolOptions) => ({ kernel_shape: { ints: [o.kernel, o.kernel] }, strides: { ints: [o.stride, o.stride] }, pads: { ints: [o.pad, o.pad, o.pad, o.pad] } });
const nhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]) as tf.Tensor4D;
const nchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);

defineOp('maxPool2d', {
  backward: (g, y, dy) => [g.node('maxPool2dGrad', [y.inputs[0], dy], y.attrs, y.inputs[0].shape, dy.dtype)],
  onnx: (e, s, [x], out) => { e.node('MaxPool', [x], out, onnxAttrs(s.attrs as unknown as PoolOptions)); },
  tfjs: (s, [x]) => {
    const o = s.attrs as unknown as PoolOptions;
    return nchw(tf.maxPool(nhwc(x), o.kernel, o.stride, o.pad, 'floor'));
  },
});

defineOp('maxPool2dGrad', {
  onnx: (e, s, [x, dy], out) => {
    const [N, C, H, W] = s.shape;
    const [, , Ho, Wo] = s.inputs[1].shape;
    const [, indices] = e.nodeOutputs('MaxPool', [x], [e.temp(), e.temp()], onnxAttrs(s.attrs as unknown as PoolOptions)); // int64 [N, C, Ho, Wo]
    const inPlane = e.node('Reshape', [e.node('Mod', [indices, e.scalar('int64', H * W)], e.temp()), e.int64s([N, C, Ho * Wo])], e.temp());
    const zeros = e.node('Expand', [e.scalar(s.dtype, 0), e.int64s([N, C, H * W])], e.temp());
    const updates = e.node('Reshape', [dy, e.int64s([N, C, Ho * Wo])], e.temp());
    const added = e.node('ScatterElements', [zeros, inPlane, updates], e.temp(), { axis: { i: 2 }, reduction: { s: 'add' } }); // [N, C, H*W]
    e.node('Reshape', [added, e.int64s([N, C, H, W])], out);
  },
  tfjs: (s, [x, dy]) => {
    const o = s.attrs as unknown as PoolOptions;
    const input = nhwc(x);
    const output = tf.maxPool(input, o.kernel, o.stride, o.pad, 'floor');
    const attrs = { filterSize: o.kernel, strides: o.stride, pad: o.pad, dimRoundingMode: 'floor' };
    return nchw(tf.engine().runKernel('MaxPoolGrad', { dy: nhwc(dy), input, output }, attrs) as tf.Tensor);
  },
});
