import { DropoutStreams } from '../engine/dropout';
import type { Executor, Program } from '../engine/executor';
import { Graph, type HostArray, type Sym } from '../engine/graph';
import { compileTrainStep, initialState, type TrainState, type TrainStep } from '../engine/step';
import { cropFeed, sizeFactors, spotPositions } from '../baselines/feeds';
import { hist2stAdjacency } from '../baselines/hist2stHost';
import { declareInputs, type BaselineNet, type InputName } from '../baselines/model';
import { References } from '../baselines/references';
import { bucket } from '../models/globalLayout';
import { gatherRows } from '../util/numeric';
import type { StateDict } from '../weights/stateDict';
import type { Pick } from './batches';
import type { SectionInputs, TrainingData } from './data';
import { cached, explainMemoryError } from './engineLearner';
import { checkTensors, restoreState, stateFeeds, stateTensors } from './trainState';
import type { FoldLearner, PredictOptions, StepOptions } from './learner';

/**
 * A baseline (baselines/model.ts) on the engine, trained by the one trainer: each training step
 * one compiled graph per batch shape (forward, loss, backward, Adam), predictions from inference
 * graphs, and for the retrieval models the training fold's reference spots (baselines/references.ts)
 * kept with the weights, so that a checkpoint predicts on its own. The batch's inputs are
 * assembled on the host from the sections: crops at the model's size (augmented for spot models),
 * labels, positions, counts and size factors, the spot graph, exemplars.
 */
export class BaselineLearner implements FoldLearner {
  readonly engine: 'ort' | 'tfjs';
  private state: TrainState;
  private readonly streams = new DropoutStreams();
  private readonly graphKey: string;
  /** The training fold's reference spots (BLEEP's labels, EGN's exemplar pool); set by prepare or load. */
  private references?: References;
  /** The training sections the references come from, in order, and their patients (a checkpoint's `train` and `trainPatients`). */
  private train: { sections: readonly string[]; patients: readonly string[] } = { sections: [], patients: [] };

  constructor(readonly net: BaselineNet, private readonly executor: Executor, start?: Map<string, Float32Array>) {
    this.engine = executor.kind;
    const params = net.table.initialValues();
    const buffers = net.initialBuffers?.() ?? new Map<string, Float32Array>();
    for (const [n, v] of start ?? []) {
      const into = params.has(n) ? params : buffers.has(n) ? buffers : undefined;
      if (!into) throw new Error(`${net.name}: the starting weights name ${n}, which the model does not have`);
      if (into.get(n)!.length !== v.length) throw new Error(`${net.name}: the starting weights' ${n} has ${v.length} values, the model's ${into.get(n)!.length}`);
      into.set(n, Float32Array.from(v));
    }
    this.state = { ...initialState(params), buffers };
    this.graphKey = `${executor.describe()}|${net.name}|${JSON.stringify(net.config)}|${JSON.stringify(net.dims)}`;
  }

  get step(): number { return this.state.step; }
  get hasTrunk(): boolean { return false; }
  private get usesReferences(): boolean { return this.net.retrieval !== undefined || this.net.needs.includes('exemplars'); }

  /** Starts the output layer's bias at `values` [G] (the training mean: `--init mean-bias`). */
  setHeadBias(values: Float32Array): void {
    const name = this.net.headBias;
    if (!name) throw new Error(`${this.net.name} has no output bias to start at the training mean (it predicts by retrieval)`);
    if (values.length !== this.net.dims.genes) throw new Error(`setHeadBias: ${values.length} values for ${this.net.dims.genes} genes`);
    this.state.params.set(name, values.slice());
  }

  /** Reads what the model needs of the sections beyond labels: crops, the frozen global features of EGN, and for training the raw counts. */
  async prepareInputs(data: TrainingData, sections: readonly SectionInputs[], training = false): Promise<void> {
    const needs = new Set(this.net.needs);
    if (needs.has('crops')) {
      const { loadTargetCrops } = await import('./targetCrops');
      await loadTargetCrops(data, sections, `${this.net.name} takes the spots' crops`);
    }
    if (training && needs.has('counts')) {
      const { loadCounts } = await import('./data');
      loadCounts(data, sections);
    }
    if (needs.has('own') && sections.some((s) => !s.global)) throw new Error(`${this.net.name} needs the store's frozen global features; load them with the global view`);
  }

  /** Before training: the reference spots of the training fold (retrieval models). */
  async prepare(data: TrainingData, train: readonly SectionInputs[], evaluated: readonly SectionInputs[]): Promise<void> {
    await this.prepareInputs(data, train, true);
    await this.prepareInputs(data, evaluated);
    this.train = { sections: train.map((s) => s.id), patients: train.map((s) => s.patient) };
    if (this.usesReferences) this.references = References.fromSections(train, data.genes.length, this.net.needs.includes('own'));
  }

  /** The inputs `names` of a set of spots of one section or several, as feeds. */
  private feeds(picks: readonly Pick[], names: readonly InputName[], augment?: () => number): Record<string, HostArray> {
    const G = this.net.dims.genes;
    const out: Record<string, HostArray> = {};
    const bySection = (f: (s: SectionInputs, spots: number[]) => Float32Array, width: number): Float32Array => {
      const values = new Float32Array(picks.length * width);
      let at = 0;
      for (let i = 0; i < picks.length;) {
        const s = picks[i].section;
        let j = i;
        while (j < picks.length && picks[j].section === s) j++;
        values.set(f(s, picks.slice(i, j).map((p) => p.spot)), at);
        at += (j - i) * width;
        i = j;
      }
      return values;
    };
    const S = this.net.cropSize;
    for (const name of names) {
      if (name === 'crops') out.crops = bySection((s, spots) => cropFeed(s, spots, S, this.net.unit === 'spot' ? augment : undefined), S * S * 3);
      else if (name === 'truth') out.truth = bySection((s, spots) => gatherRows(s.values, G, spots), G);
      else if (name === 'counts') out.counts = bySection((s, spots) => gatherRows(countsOf(s), G, spots), G);
      else if (name === 'sizeFactors') out.sizeFactors = bySection((s, spots) => gatherRows(sizeFactors(countsOf(s), s.n, G), 1, spots), 1);
      else if (name === 'rows' || name === 'cols') {
        const of = new Map<SectionInputs, { rows: Int32Array; cols: Int32Array }>();
        const at = (sec: SectionInputs) => of.get(sec) ?? of.set(sec, this.positionsOf(sec)).get(sec)!;
        out[name] = BigInt64Array.from(picks, (p) => BigInt(at(p.section)[name][p.spot]));
      } else if (name === 'adjacency') {
        out.adjacency = this.sectionOnly(picks, (s) => sectionAdjacency(s));
      } else if (name === 'own') {
        out.own = bySection((s, spots) => gatherRows(s.global!, this.net.dims.featureDim, spots), this.net.dims.featureDim);
      }
    }
    if (names.includes('exemplars') || names.includes('exemplarTargets')) {
      if (!this.references) throw new Error(`${this.net.name}: no exemplar pool (train the model, or load a checkpoint that has one)`);
      const ex = this.references.exemplars(picks, this.net.exemplarCount ?? 0);
      out.exemplars = ex.features;
      out.exemplarTargets = ex.labels;
    }
    return out;
  }

  /** A section's array positions, checked against the slots of the model's position embeddings. */
  private positionsOf(s: SectionInputs): { rows: Int32Array; cols: Int32Array } {
    const p = spotPositions(s);
    const slots = (this.net.config as { positions?: number }).positions;
    if (slots !== undefined && (s.grid.height > slots || s.grid.width > slots)) {
      throw new Error(`section ${s.id} spans ${s.grid.height} array rows and ${s.grid.width} columns, more than the ${slots} slots of ${this.net.name}'s position embeddings (the paper's ST arrays need 64, Visium 128); use a preset with more positions`);
    }
    return p;
  }

  /** A feed that exists for a whole section only (the spot graph): the picks must be one section, in order. */
  private sectionOnly(picks: readonly Pick[], f: (s: SectionInputs) => Float32Array): Float32Array {
    const s = picks[0].section;
    if (picks.length !== s.n || picks.some((p, i) => p.section !== s || p.spot !== i)) throw new Error(`${this.net.name} takes whole sections, in spot order`);
    return f(s);
  }

  async trainBatch(picks: readonly Pick[], o: StepOptions): Promise<number> {
    const n = picks.length;
    const net = this.net;
    const step = cached(`${this.graphKey}|train|${n}`, () => compileTrainStep(this.executor, (g) => net.loss(g, declareInputs(g, net, n)), undefined, `${net.name}_train_${n}`), (t: TrainStep) => t.program.dispose());
    const feeds = this.feeds(picks, net.needs, o.augment);
    if (net.trainingFeeds) {
      if (!feeds.crops) throw new Error(`${net.name}: its training inputs are made from crops`);
      Object.assign(feeds, net.trainingFeeds(feeds.crops as Float32Array, n, o.augment));
    }
    this.streams.reseed(o.dropoutSeed, net.table.dropoutLayers);
    try {
      return await (await step).run(this.state, feeds, o.learningRate, this.streams);
    } catch (e) {
      throw explainMemoryError(e, `a ${net.name} training step over ${n} spots${net.unit === 'section' ? ' (one whole section)' : ''}`, net.unit === 'section' ? 'use a smaller --preset' : 'lower --batch');
    }
  }

  private program(key: string, build: (g: Graph) => Record<string, Sym>): Promise<Program> {
    return cached(`${this.graphKey}|${key}`, () => this.executor.compile(build(new Graph('float32')), `${this.net.name}_${key.replace(/\W/g, '_')}`), (q: Program) => q.dispose());
  }

  /** The inference graph's output for spots of one section: predictions [n, G] (BLEEP: projected embeddings). */
  private async infer(section: SectionInputs, batchSize: number): Promise<{ values: Float32Array; width: number }> {
    const net = this.net;
    const names = net.needs.filter((n) => n !== 'truth' && n !== 'counts' && n !== 'sizeFactors');
    const params = stateFeeds(this.state);
    if (net.unit === 'section') {
      const picks = Array.from({ length: section.n }, (_, spot) => ({ section, spot }));
      const p = await this.program(`predict:${section.n}`, (g) => ({ out: net.predict(g, declareInputs(g, net, section.n)) }));
      const values = (await p.run({ ...params, ...this.feeds(picks, names) })).out as Float32Array;
      return { values, width: values.length / section.n };
    }
    const values = await inChunks(section.n, batchSize, async (spots) => {
      const p = await this.program(`predict:${spots.length}`, (g) => ({ out: net.predict(g, declareInputs(g, net, spots.length)) }));
      return (await p.run({ ...params, ...this.feeds(spots.map((spot) => ({ section, spot })), names) })).out as Float32Array;
    });
    return { values, width: values.length / Math.max(section.n, 1) };
  }

  async predict(data: TrainingData, sections: readonly SectionInputs[], o: PredictOptions = {}): Promise<Map<string, Float32Array>> {
    await this.prepareInputs(data, sections);
    const batchSize = o.batchSize ?? 64;
    const out = new Map<string, Float32Array>();
    const retrieval = this.net.retrieval;
    let keys: Float32Array | undefined;
    if (retrieval) {
      if (!this.references) throw new Error(`${this.net.name}: no reference spots to retrieve from (train the model, or load a checkpoint that has them)`);
      keys = await this.embedReferences(retrieval.embedSpots.bind(retrieval), batchSize);
    }
    for (const section of sections) {
      const { values, width } = await this.infer(section, batchSize);
      out.set(section.id, keys && retrieval ? this.references!.retrieve(values, section.n, keys, width, retrieval.k) : values);
    }
    return out;
  }

  /** The reference labels through the spot encoder, [m, P], in chunks. */
  private embedReferences(embed: (g: Graph, truth: Sym) => Sym, batchSize: number): Promise<Float32Array> {
    const refs = this.references!;
    const G = this.net.dims.genes;
    const params = stateFeeds(this.state);
    return inChunks(refs.size, Math.max(batchSize, 256), async (rows) => {
      const p = await this.program(`embed:${rows.length}`, (g) => ({ out: embed(g, g.input('truth', [rows.length, G])) }));
      return (await p.run({ ...params, truth: gatherRows(refs.labels, G, rows) })).out as Float32Array;
    });
  }

  /** Every tensor a checkpoint of this model holds (parameters, then buffers), with its shape. */
  private tensorShapes(): Map<string, readonly number[]> {
    const shapes = new Map<string, readonly number[]>([...this.net.table.specs].map(([n, s]) => [n, s.shape]));
    for (const [n, v] of this.state.buffers ?? []) shapes.set(n, [v.length]); // running statistics: [C]
    return shapes;
  }

  stateDict(withOptimizer: boolean): Promise<StateDict> {
    const sd = stateTensors(this.state, this.tensorShapes(), withOptimizer);
    this.references?.writeTo(sd, this.train.sections);
    return Promise.resolve(sd);
  }

  /** Loads weights (all or nothing); a retrieval model's reference spots too, whose sections and patients `train` (the checkpoint's) names. */
  load(sd: StateDict, source: string, optimizerStep?: number, train = this.train): void {
    checkTensors(sd, this.tensorShapes(), source, this.net.name, (k) => References.owns(k));
    const references = this.usesReferences ? References.readFrom(sd, source, this.net.dims.genes, this.net.needs.includes('own') ? this.net.dims.featureDim : 0, train) : undefined;
    // Everything is checked (restoreState checks the moments before anything is replaced); only now is the state replaced.
    this.state = restoreState(sd, source, this.state, optimizerStep);
    // A resumed run keeps the references prepare() made from its sections (they know each spot's patient).
    if (references && !this.references) {
      this.references = references;
      this.train = train;
    }
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * `run` over rows [0, count) in chunks of at most `chunk` rows, each padded to a shape bucket by
 * repeating its first row (rows are independent in inference, and fewer shapes mean fewer graphs);
 * the chunks' output rows, padding dropped, concatenated: [count, width].
 */
async function inChunks(count: number, chunk: number, run: (rows: number[]) => Promise<Float32Array>): Promise<Float32Array> {
  let out: Float32Array | undefined;
  for (let from = 0; from < count; from += chunk) {
    const n = Math.min(chunk, count - from);
    const rows = Array.from({ length: bucket(n, 8) }, (_, i) => from + (i < n ? i : 0));
    const values = await run(rows);
    const width = values.length / rows.length;
    out ??= new Float32Array(count * width);
    out.set(values.subarray(0, n * width), from * width);
  }
  return out ?? new Float32Array(0);
}

function countsOf(s: SectionInputs): Float32Array {
  if (!s.counts) throw new Error(`section ${s.id}: its raw counts are not loaded`);
  return s.counts;
}

/** The section's spot graph (Hist2ST), made once per section. */
function sectionAdjacency(s: SectionInputs): Float32Array {
  if (!s.adjacency) {
    const { rows, cols } = spotPositions(s);
    s.adjacency = hist2stAdjacency(Array.from(rows), Array.from(cols));
  }
  return s.adjacency;
}
