import type * as tf from '@tensorflow/tfjs-core';
import type { OnnxAttribute } from './onnxProto';
import type { DType, Graph, Sym } from './graph';

/**
 * Ops defined outside the core set (convolution, pooling, batch norm, ...): each one's backward
 * rule and its lowerings for both executors, side by side in the file that defines it, registered
 * when that file is imported. The core ops of graph.ts keep their rules in autodiff.ts and their
 * lowerings in onnx.ts and tfjs.ts.
 */

/** Input gradients (undefined: none) from the output's gradient. */
export type BackwardRule = (g: Graph, y: Sym, dy: Sym) => readonly (Sym | undefined)[];

/** What an ONNX lowering may use: node emission and small constants. */
export interface OnnxEmitter {
  /** Emits one node; returns its output name. */
  node(type: string, inputs: string[], output: string, attrs?: Record<string, OnnxAttribute>, domain?: string): string;
  /** Emits one node with several outputs (MaxPool's values and indices); returns their names. */
  nodeOutputs(type: string, inputs: string[], outputs: string[], attrs?: Record<string, OnnxAttribute>): string[];
  /** A fresh value name for an intermediate result. */
  temp(): string;
  /** An int64 vector constant. */
  int64s(values: readonly number[]): string;
  /** A scalar constant of a dtype. */
  scalar(dtype: DType, value: number): string;
}

export interface OpDefinition {
  backward?: BackwardRule;
  /** Emits the nodes computing `s` into `out` from its inputs' names. */
  onnx(e: OnnxEmitter, s: Sym, inputs: string[], out: string): void;
  /** Computes `s` on TF.js from its inputs' tensors. */
  tfjs(s: Sym, inputs: tf.Tensor[]): tf.Tensor;
}

const definitions = new Map<string, OpDefinition>();

export function defineOp(name: string, definition: OpDefinition): void {
  if (definitions.has(name)) throw new Error(`op ${name} is defined twice`);
  definitions.set(name, definition);
}

export const opDefinition = (name: string): OpDefinition | undefined => definitions.get(name);
