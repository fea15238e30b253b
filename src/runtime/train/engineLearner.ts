import { DropoutStreams } from '../engine/dropout';
import type { Executor, Program } from '../engine/executor';
import { Graph, type HostArray, type Sym } from '../engine/graph';
import { compileTrainStep, initialState, type TrainState, type TrainStep } from '../engine/step';
import type { TriplexConfig, ViewName } from '../models/triplexConfig';
import { inputStatsFrom, inverseStd, type InputStats } from '../models/triplexInputs';
import { encodeGlobalInBlocks, queryRowsPerBlock } from '../models/globalBlocks';
import { bucket, globalLayout, type GlobalLayout } from '../models/globalLayout';
import { TRUNK_PREFIX, TriplexNet, type TargetSource } from '../models/triplex';
import type { StateDict } from '../weights/stateDict';
import { hostBatch, type HostBatch, type Pick } from './batches';
import { checkTensors, restoreState, stateFeeds, stateTensors } from './trainState';
import type { SectionInputs, TrainingData } from './data';
import { sectionWindow } from './featureRows';
import type { Learner, PredictOptions, StepOptions } from './learner';

/** The trunk of modes layer4 and full: which, and its starting weights (torchvision names; default torchvision's seeded initialisation). */
export interface TrunkStart {
  mode: 'layer4' | 'full';
  weights?: StateDict;
}

/**
 * The native learner: TRIPLEX on the engine (models/triplex.ts), each training step one compiled
 * graph (forward, loss, backward, Adam) per shape bucket, run on the given executor (onnxruntime,
 * or the engine's TF.js interpreter). A batch runs in one pass: onnxruntime has no 4 GB heap, and
 * in mode full batch norm then sees the whole batch, as the paper's. The target view takes frozen
 * token maps (mode frozen), cached layer3 maps through the trunk's layer4 (layer4), or crops
 * through the whole trunk (full); predictions of a trunk model come from crops.
 */
export class EngineLearner implements Learner {
  readonly engine: 'ort' | 'tfjs';
  readonly net: TriplexNet;
  private readonly trunkMode?: 'layer4' | 'full';
  /** What the training graphs' target input is. */
  private readonly trainSource: TargetSource;
  private state: TrainState;
  private stats = new Map<string, Float32Array>();
  private readonly streams = new DropoutStreams();
  /** The graphs this learner used, by shape key; they live in the process-wide cache below, asked for at every use. */
  private readonly steps = new Map<string, Promise<TrainStep>>();
  private readonly programs = new Map<string, Promise<Program>>();
  /** What makes two learners' graphs the same: executor, configuration and trunk mode (not the weights, which are inputs). */
  private readonly graphKey: string;

  constructor(readonly config: TriplexConfig, private readonly executor: Executor, seed = 0, trunk?: TrunkStart) {
    this.engine = executor.kind;
    this.net = new TriplexNet(config, seed, { trunk: trunk !== undefined });
    this.trunkMode = this.net.trunk ? trunk?.mode : undefined;
    this.trainSource = this.trunkMode === 'full' ? 'crops' : this.trunkMode === 'layer4' ? 'layer3' : 'tokens';
    const params = this.net.table.initialValues();
    const buffers = new Map<string, Float32Array>();
    if (this.net.trunk && trunk) {
      const seeded = this.net.trunk.initialValues(seed);
      const take = (n: string, fallback: Map<string, Float32Array>) => {
        if (!trunk.weights) return fallback.get(n)!;
        const t = trunk.weights.get(n);
        if (!t) throw new Error(`the trunk's starting weights lack ${n}`);
        return Float32Array.from(t.data);
      };
      for (const n of this.net.trunk.parameterShapes().keys()) params.set(TRUNK_PREFIX + n, take(n, seeded.params));
      for (const n of this.net.trunk.bufferShapes().keys()) buffers.set(TRUNK_PREFIX + n, take(n, seeded.buffers));
    }
    this.state = { ...initialState(params), buffers };
    this.graphKey = `${executor.describe()}|${JSON.stringify(config)}|${this.trunkMode ?? 'frozen'}`;
  }

  get hasTrunk(): boolean { return this.net.trunk !== undefined; }
  get views(): ViewName[] { return this.net.views; }
  get standardizedViews(): ViewName[] { return this.net.views.filter((v) => !(v === 'target' && this.hasTrunk)); }

  /** Whether a tensor is trained in this mode (layer4: the trunk's conv1..layer3 stay as they are). */
  private trained(name: string): boolean {
    return this.trunkMode !== 'layer4' || !name.startsWith(TRUNK_PREFIX) || name.startsWith(`${TRUNK_PREFIX}layer4.`);
  }

  /** Every tensor a checkpoint of this model holds (parameters, then buffers), with its shape. */
  private tensorShapes(): Map<string, readonly number[]> {
    const shapes = new Map<string, readonly number[]>([...this.net.table.specs].map(([n, s]) => [n, s.shape]));
    if (this.net.trunk) {
      for (const [n, s] of this.net.trunk.parameterShapes()) shapes.set(TRUNK_PREFIX + n, s);
      for (const [n, s] of this.net.trunk.bufferShapes()) shapes.set(TRUNK_PREFIX + n, s);
    }
    return shapes;
  }
  get step(): number { return this.state.step; }

  /** The graphs compiled so far (one per shape bucket): key, nodes and session build time. */
  async compiled(): Promise<{ key: string; nodes: number; buildMs: number }[]> {
    const out: { key: string; nodes: number; buildMs: number }[] = [];
    for (const [key, s] of this.steps) { const p = (await s).program; out.push({ key: `train ${key}`, nodes: p.nodeCount, buildMs: p.buildMs }); }
    for (const [key, p] of this.programs) { const q = await p; out.push({ key, nodes: q.nodeCount, buildMs: q.buildMs }); }
    return out;
  }

  setHeadBias(values: Float32Array): void {
    if (values.length !== this.config.genes) throw new Error(`setHeadBias: ${values.length} values for ${this.config.genes} genes`);
    for (const n of this.state.params.keys()) if (/^fc(_\w+)?\.bias$/.test(n)) this.state.params.set(n, values.slice());
  }

  setInputStats(stats: InputStats): void {
    if (!this.config.standardizeInputs) throw new Error('this configuration does not standardise its inputs');
    for (const v of this.standardizedViews) {
      const s = stats[v];
      if (!s || s.mean.length !== this.config.dim || s.std.length !== this.config.dim) throw new Error(`input statistics for the ${v} view are missing or not ${this.config.dim} wide`);
      this.stats.set(`norm:${v}:mean`, Float32Array.from(s.mean));
      this.stats.set(`norm:${v}:inv`, inverseStd(s.std));
    }
  }

  private normFeeds(): Record<string, Float32Array> {
    if (!this.config.standardizeInputs) return {};
    if (this.stats.size === 0) throw new Error('this model standardises its inputs, but has no statistics for them (set them, or load a checkpoint that has them)');
    return Object.fromEntries(this.stats);
  }

  private layoutOf(slides: readonly SectionInputs[], exact = false): GlobalLayout {
    return globalLayout(slides.map((s) => ({ n: s.n, grid: s.grid })), this.config.global.positionEncoding, this.config.global.kernelSize, exact);
  }

  /** Feeds of the global view for laid-out slides. */
  private globalFeeds(slides: readonly SectionInputs[], layout: GlobalLayout): Record<string, HostArray> {
    const d = this.config.dim;
    const features = new Float32Array(layout.tokens * d);
    slides.forEach((s, k) => features.set(s.global!, layout.offsets[k] * d));
    return {
      'global:features': features, 'global:valid': layout.valid, 'global:keep': layout.keep, 'global:cells': layout.cells,
      ...(layout.bias ? { 'global:bias': layout.bias } : {}),
    };
  }

  private batchFeeds(h: HostBatch, layout?: GlobalLayout): Record<string, HostArray> {
    const feeds: Record<string, HostArray> = { ...this.normFeeds() };
    if (h.target) feeds.target = h.target;
    if (h.neighbors) { feeds.neighbors = h.neighbors; feeds.mask = h.mask!; }
    if (layout) {
      Object.assign(feeds, this.globalFeeds(h.slides, layout));
      feeds['global:rows'] = BigInt64Array.from(h.globalRows!, BigInt);
    }
    return feeds;
  }

  async trainBatch(picks: readonly Pick[], o: StepOptions): Promise<number> {
    const c = this.config;
    const source = this.trainSource;
    const h = hostBatch(picks, { views: this.views, dim: c.dim, genes: c.genes, augment: o.augment, target: source });
    const layout = c.views.global ? this.layoutOf(h.slides) : undefined;
    const B = h.size;
    const key = `${B}|${layout?.key ?? '-'}`;
    const step = cached(`${this.graphKey}|train|${key}`, () => compileTrainStep(this.executor, (g) => {
      const inputs = this.net.declareInputs(g, B, layout, false, source);
      return this.net.loss(g, this.net.forward(g, inputs, 'train', source), g.input('truth', [B, c.genes]));
    }, undefined, `triplex_train_${key.replace(/\W/g, '_')}`), (t) => t.program.dispose());
    this.steps.set(key, step);
    this.streams.reseed(o.dropoutSeed, this.net.table.dropoutLayers);
    try {
      return await (await step).run(this.state, { ...this.batchFeeds(h, layout), truth: h.truth }, o.learningRate, this.streams);
    } catch (e) {
      throw explainMemoryError(e, `a training step over a batch of ${B} spots${this.trunkMode === 'full' ? ' (224 px crops through the whole ResNet18)' : ''}`, 'lower --batch');
    }
  }

  private program(key: string, build: (g: Graph) => Record<string, Sym>): Promise<Program> {
    const p = cached(`${this.graphKey}|${key}`, () => this.executor.compile(build(new Graph('float32')), `triplex_${key.replace(/\W/g, '_')}`), (q) => q.dispose());
    this.programs.set(key, p);
    return p;
  }

  async predict(_data: TrainingData, sections: readonly SectionInputs[], o: PredictOptions = {}): Promise<Map<string, Float32Array>> {
    const c = this.config;
    const source: TargetSource = this.hasTrunk ? (o.target === 'layer3' ? 'layer3' : 'crops') : 'tokens';
    const batchSize = o.batchSize ?? (this.hasTrunk ? 32 : 256);
    const out = new Map<string, Float32Array>();
    const params = stateFeeds(this.state);
    for (const section of sections) {
      const pred = new Float32Array(section.n * c.genes);
      let tokens: Float32Array | undefined;
      if (c.views.global) {
        let layout = this.layoutOf([section]);
        // Attention in blocks of query rows when the whole slide's logits would pass the budget (or when asked),
        // over the slide's own spots: no padding to a shape bucket (the programs are the slide's own), no masked keys.
        const rows = o.globalQueryRows ?? queryRowsPerBlock(layout.tokens, c.global.heads);
        if (rows < layout.tokens) layout = this.layoutOf([section], true);
        const feeds = { ...params, ...this.normFeeds(), ...this.globalFeeds([section], layout) };
        if (rows < layout.tokens) {
          tokens = await encodeGlobalInBlocks(this.net, layout, feeds['global:features'] as Float32Array, feeds, (key, build) => this.program(key, build), rows);
        } else {
          const encode = await this.program(`encode:${layout.key}`, (g) => ({ tokens: this.net.encodeGlobal(g, this.net.declareGlobalInputs(g, layout), 'inference') }));
          tokens = (await encode.run(feeds)).tokens as Float32Array;
        }
      }
      try {
        await this.predictBatches(section, pred, tokens, source, batchSize, params);
      } finally {
        // A section too large for its crops held them by window: its image is let go.
        section.cropSource?.close();
      }
      out.set(section.id, pred);
    }
    return out;
  }

  /** The batch views over a section's spots in order, `batchSize` at a time, into `pred`; `tokens`: its global view's output. */
  private async predictBatches(section: SectionInputs, pred: Float32Array, tokens: Float32Array | undefined, source: TargetSource, batchSize: number, params: Record<string, HostArray>): Promise<void> {
    const c = this.config;
    for (let from = 0; from < section.n; from += batchSize) {
      const n = Math.min(batchSize, section.n - from);
      // The last batch is padded to a bucket (repeating its first spot): spots are independent in inference.
      const padded = bucket(n, 8);
      // The batch views read the window's spots (from the features file and the image, for a section read by rows).
      const window = await sectionWindow(section, from, n, c.dim);
      const picks = Array.from({ length: padded }, (_, i) => ({ section: window, spot: i < n ? i : 0 }));
      const h = hostBatch(picks, { views: this.views.filter((v) => v !== 'global'), dim: c.dim, genes: c.genes, target: source });
      const feeds: Record<string, HostArray> = { ...params, ...this.batchFeeds(h) };
      if (tokens) {
        const rows = new Float32Array(padded * c.dim);
        picks.forEach((p, i) => rows.set(tokens.subarray((from + p.spot) * c.dim, (from + p.spot + 1) * c.dim), i * c.dim));
        feeds['global:tokens'] = rows;
      }
      const predict = await this.program(`predict:${padded}:${source}`, (g) => {
        const inputs = this.net.declareInputs(g, padded, undefined, true, source);
        return { fusion: this.net.forward(g, inputs, 'inference', source).fusion };
      });
      const values = (await predict.run(feeds)).fusion as Float32Array;
      pred.set(values.subarray(0, n * c.genes), from * c.genes);
    }
  }

  stateDict(withOptimizer: boolean): Promise<StateDict> {
    const sd = stateTensors(this.state, this.tensorShapes(), withOptimizer, (n) => this.trained(n));
    for (const v of this.config.standardizeInputs ? this.standardizedViews : []) {
      const mean = this.stats.get(`norm:${v}:mean`);
      const inv = this.stats.get(`norm:${v}:inv`);
      if (!mean || !inv) continue;
      sd.set(`input_norm.${v}.mean`, { shape: [mean.length], data: mean, sourceDtype: 'float32' });
      sd.set(`input_norm.${v}.std`, { shape: [inv.length], data: Float32Array.from(inv, (x) => 1 / x), sourceDtype: 'float32' });
    }
    return Promise.resolve(sd);
  }

  load(sd: StateDict, source: string, optimizerStep?: number): void {
    const trunkKey = [...sd.keys()].find((k) => k.startsWith(TRUNK_PREFIX));
    if (trunkKey && !this.hasTrunk) throw new Error(`${source}: holds target_encoder.* weights (a fine-tuned trunk: mode full or layer4), but this model takes frozen target tokens`);
    if (!trunkKey && this.hasTrunk) throw new Error(`${source}: has no target_encoder.* weights, but this model trains the ResNet18 trunk`);
    checkTensors(sd, this.tensorShapes(), source, 'this model', (k) => k.startsWith('input_norm.'));
    const stats = this.config.standardizeInputs ? inputStatsFrom(sd, this.standardizedViews, source) : {};
    // Everything is checked (restoreState checks the moments before anything is replaced); only now is the state replaced.
    this.state = restoreState(sd, source, this.state, optimizerStep, (n) => this.trained(n));
    if (this.config.standardizeInputs) this.setInputStats(stats);
  }

  /** Forgets this learner's graphs; their sessions stay in the process-wide cache for the next fold or model. */
  dispose(): Promise<void> {
    this.steps.clear();
    this.programs.clear();
    return Promise.resolve();
  }
}

/**
 * Compiled graphs shared by every learner of the process: a cross-validation builds each shape
 * bucket once for all its folds (a session of the BC1 step takes about a second to build), and
 * an ablation grid once per variant. The oldest sessions are released past MAX_SESSIONS.
 */
const MAX_SESSIONS = 64;
const sessions = new Map<string, { value: Promise<unknown>; release: (v: unknown) => Promise<void> }>();

export function cached<T>(key: string, build: () => Promise<T>, release: (v: T) => Promise<void>): Promise<T> {
  const hit = sessions.get(key);
  if (hit) {
    sessions.delete(key); // most recently used last
    sessions.set(key, hit);
    return hit.value as Promise<T>;
  }
  const value = build();
  sessions.set(key, { value, release: release as (v: unknown) => Promise<void> });
  value.catch(() => sessions.delete(key)); // a failed build is not kept
  while (sessions.size > MAX_SESSIONS) {
    const [oldest, entry] = sessions.entries().next().value as [string, { value: Promise<unknown>; release: (v: unknown) => Promise<void> }];
    sessions.delete(oldest);
    void entry.value.then(entry.release, () => undefined);
  }
  return value;
}

/**
 * What an executor says when a step's tensors do not fit: onnxruntime's allocation failures, and
 * the TF.js wasm backend's (XNNPACK out of memory, see compute/wasmOutOfMemory.ts; the 4 GB heap
 * exhausted, which its allocator reports as `Aborted()` and its kernels as an access out of bounds).
 */
const OUT_OF_MEMORY = /bad_alloc|Failed to allocate|out of memory|Cannot allocate memory|memory access out of bounds|Cannot enlarge memory|Aborted\((OOM)?\)|Array buffer allocation failed/i;

/** An allocation failure of the executor as what it means for the user: what did not fit, and what to lower. */
export function explainMemoryError(e: unknown, what: string, remedy: string): unknown {
  const message = e instanceof Error ? e.message : String(e);
  if (!OUT_OF_MEMORY.test(message)) return e;
  return new Error(`${what} did not fit in memory (${message.split('\n')[0]}); ${remedy}`, { cause: e });
}
