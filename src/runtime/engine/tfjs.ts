import * as tf from '@tensorflow/tfjs-core';
import { checkFeeds, type Executor, type Feeds, type Program } from './executor';
import type { DType, HostArray, Shape, Sym } from './graph';
import { planProgram, type Plan } from './tfjsPlan';

/**
 * The fallback engine: the same recording interpreted op by op on the current TF.js backend
 * (wasm, cpu, or tfjs-node where a user has it), following a plan made once per graph
 * (tfjsPlan.ts: fused products with bias, broadcasts left to the ops that use them, every
 * intermediate freed after its last use). TF.js computes in float32 (int32 for indices), so
 * float64 graphs are refused; int64 feeds are narrowed to int32.
 */

const FLOAT_ONLY = 'the TF.js engine computes in float32; build the graph with new Graph(\'float32\')';

const toTensor = (v: HostArray, s: Sym): tf.Tensor =>
  (s.dtype === 'int64' ? tf.tensor(Int32Array.from(v as BigInt64Array, Number), [...s.shape], 'int32') : tf.tensor(v as Float32Array, [...s.shape]));

/** Time spent per op (with its operands' shapes), while profiling (profileTfjsOps). */
let profile: Map<string, { ms: number; n: number }> | undefined;

/**
 * Starts (true) or stops (false) timing every step of the TF.js engine's programs, by op and
 * operand shapes; stopping returns the figures. Steps are timed on the calling thread, which is
 * exact for the synchronous wasm and cpu backends.
 */
export function profileTfjsOps(on: boolean): Map<string, { ms: number; n: number }> | undefined {
  const taken = profile;
  profile = on ? new Map() : undefined;
  return taken;
}

function record(key: () => string, ms: number): void {
  if (!profile) return;
  const k = key();
  const r = profile.get(k) ?? { ms: 0, n: 0 };
  r.ms += ms;
  r.n++;
  profile.set(k, r);
}

const describeStep = (s: Sym, reads: readonly Sym[]) => `${s.op}${reads.length !== s.inputs.length || reads.some((r, i) => r !== s.inputs[i]) ? `<-${reads.map((r) => r.op).join(',')}` : ''} ${reads.map((r) => `[${r.shape.join(',')}]`).join('')}`;

class TfjsProgram implements Program {
  readonly buildMs = 0;
  private readonly declared: ReadonlyMap<string, { shape: Shape; dtype: DType }>;

  constructor(
    private readonly plan: Plan,
    private readonly outputs: Readonly<Record<string, Sym>>,
    private readonly constants: ReadonlyMap<number, tf.Tensor>,
  ) {
    this.declared = new Map(plan.inputs.map((s) => [s.attrs.name as string, { shape: s.shape, dtype: s.dtype }] as const));
  }

  get nodeCount(): number { return this.plan.steps.length; }

  async run(feeds: Feeds): Promise<Record<string, HostArray>> {
    checkFeeds(this.declared, feeds);
    const values = new Map<number, tf.Tensor>(this.constants);
    const owned = (id: number) => !this.constants.has(id);
    try {
      for (const s of this.plan.inputs) values.set(s.id, toTensor(feeds[s.attrs.name as string], s));
      for (const step of this.plan.steps) {
        const t0 = profile ? performance.now() : 0;
        const x = step.reads.map((r) => values.get(r.id) as tf.Tensor);
        let y = tf.tidy(() => step.run(x));
        // A value is freed at its last use: a step that passes an operand through gets its own handle (no copy).
        if (x.includes(y)) y = tf.clone(y);
        values.set(step.sym.id, y);
        for (const id of step.frees) {
          (values.get(id) as tf.Tensor).dispose();
          values.delete(id);
        }
        if (profile) record(() => describeStep(step.sym, step.reads), performance.now() - t0);
      }
      const t0 = profile ? performance.now() : 0;
      const out: Record<string, HostArray> = {};
      // An output may be named twice (a single-view model's prediction is its view's head): read each tensor once.
      const read = new Map<number, HostArray>();
      // wasm's reads are copies out of its heap already; the cpu backend's may be the very arrays fed.
      const copy = tf.getBackend() !== 'wasm';
      for (const [name, s] of Object.entries(this.outputs)) {
        let host = read.get(s.id);
        if (!host) {
          const data = await (values.get(s.id) as tf.Tensor).data();
          host = data instanceof Int32Array ? BigInt64Array.from(data, BigInt) : copy ? Float32Array.from(data as Float32Array) : data as Float32Array;
          read.set(s.id, host);
        }
        out[name] = host;
      }
      if (profile) record(() => 'read outputs', performance.now() - t0);
      return out;
    } finally {
      for (const [id, t] of values) if (owned(id)) t.dispose();
    }
  }

  async dispose(): Promise<void> {
    for (const t of this.constants.values()) t.dispose();
  }
}

/** The TF.js executor on whatever backend TF.js has set. */
export function createTfjsExecutor(): Executor {
  return {
    kind: 'tfjs',
    describe: () => `TF.js ${tf.version_core} (${tf.getBackend()} backend)`,
    async compile(outputs: Readonly<Record<string, Sym>>): Promise<Program> {
      const syms = Object.values(outputs);
      const graph = syms[0].graph;
      if (graph.floatType !== 'float32') throw new Error(FLOAT_ONLY);
      const plan = planProgram(syms);
      const constants = new Map(plan.constants.map((s) => [s.id, tf.keep(toTensor(graph.constants.get(s.id) as HostArray, s))] as const));
      return new TfjsProgram(plan, outputs, constants);
    },
  };
}
