import type { Pick } from '../train/batches';
import type { SectionInputs } from '../train/data';
import type { StateDict } from '../weights/stateDict';
import { bleepPredictFromRetrieval } from './bleep';
import { nearest } from './retrieval';
import { gatherRows } from '../util/numeric';

/**
 * The reference spots of a retrieval model: every spot of the fold's TRAINING sections, never a
 * test or validation spot. BLEEP predicts the mean label of the k training spots whose projected
 * spot embeddings are most cosine-similar to a query's projected image embedding (spec 6, with
 * bug B2 avoided); EGN takes as exemplars the K training spots nearest in frozen global features
 * (spec 5), and while training never one of the query's own PATIENT (bug B10: a training spot
 * would otherwise see exemplars from its patient's other sections, which a test spot never can).
 * Kept in checkpoints as reference.labels [m, G], reference.features [m, D] (EGN),
 * reference.section [m] (index into the checkpoint's training sections, whose patients the
 * checkpoint's metadata names).
 */

const PREFIX = 'reference.';

export class References {
  private constructor(
    /** Labels [m, G]. */
    readonly labels: Float32Array,
    /** Frozen global features [m, D] (EGN), empty when not kept. */
    readonly features: Float32Array,
    readonly genes: number,
    readonly featureDim: number,
    /** Each row's section id and patient. */
    readonly sections: readonly string[],
    readonly patients: readonly string[],
  ) {}

  get size(): number { return this.sections.length; }

  static owns(name: string): boolean { return name.startsWith(PREFIX); }

  /** Every spot of the training sections. */
  static fromSections(train: readonly SectionInputs[], genes: number, withFeatures: boolean): References {
    const m = train.reduce((n, s) => n + s.n, 0);
    const labels = new Float32Array(m * genes);
    const D = withFeatures ? train[0]?.global!.length / train[0].n : 0;
    const features = new Float32Array(m * D);
    let at = 0;
    for (const s of train) {
      labels.set(s.values, at * genes);
      if (withFeatures) {
        if (!s.global) throw new Error(`section ${s.id}: its frozen global features are not loaded`);
        features.set(s.global, at * D);
      }
      at += s.n;
    }
    return new References(labels, features, genes, D, train.flatMap((s) => s.spotIds.map(() => s.id)), train.flatMap((s) => s.spotIds.map(() => s.patient)));
  }

  /** Exemplar rows [n, K] of each section queried so far (its spots' nearest references), by section id. */
  private readonly exemplarRows = new Map<string, Int32Array>();

  /**
   * For each pick, its K exemplars' features [n, K, D] and labels [n, K, G], nearest first
   * (Euclidean, as torch.cdist). Training and evaluation alike draw from other patients only:
   * T excludes only the query's own section, so a training spot leans on its patient's other
   * sections while a test spot cannot (the spec's B10); here both see other patients' spots.
   * Computed once per section and kept.
   */
  exemplars(picks: readonly Pick[], K: number): { features: Float32Array; labels: Float32Array } {
    const D = this.featureDim;
    const G = this.genes;
    if (D === 0) throw new Error('these reference spots keep no features to retrieve exemplars by');
    // The pool rows of every pick's exemplars, pick by pick, nearest first: [n * K].
    const rows = picks.flatMap((p) => Array.from(this.exemplarRowsOf(p.section, K).subarray(p.spot * K, (p.spot + 1) * K)));
    return { features: gatherRows(this.features, D, rows), labels: gatherRows(this.labels, G, rows) };
  }

  private exemplarRowsOf(section: SectionInputs, K: number): Int32Array {
    const known = this.exemplarRows.get(section.id);
    if (known && known.length === section.n * K) return known;
    const D = this.featureDim;
    if (!section.global || section.global.length !== section.n * D) throw new Error(`section ${section.id}: its frozen global features are not loaded or not ${D} wide`);
    let rows: Int32Array;
    try {
      rows = nearest(section.global, section.n, this.features, this.size, D, K, 'euclidean', (_, key) => this.patients[key] !== section.patient && this.sections[key] !== section.id);
    } catch (e) {
      throw new Error(`section ${section.id} (patient ${section.patient}) cannot get ${K} exemplars from other patients' training spots; EGN needs training sections of at least two patients`, { cause: e });
    }
    this.exemplarRows.set(section.id, rows);
    return rows;
  }

  /** BLEEP's prediction: the mean label of the k reference spots most cosine-similar to each query embedding [n, P]. */
  retrieve(queries: Float32Array, n: number, keys: Float32Array, width: number, k: number): Float32Array {
    const G = this.genes;
    const hits = nearest(queries, n, keys, this.size, width, Math.min(k, this.size), 'cosine');
    return bleepPredictFromRetrieval(hits, this.labels, G, Math.min(k, this.size));
  }

  writeTo(sd: StateDict, trainSections: readonly string[]): void {
    const m = this.size;
    sd.set(`${PREFIX}labels`, { shape: [m, this.genes], data: this.labels, sourceDtype: 'float32' });
    if (this.featureDim) sd.set(`${PREFIX}features`, { shape: [m, this.featureDim], data: this.features, sourceDtype: 'float32' });
    sd.set(`${PREFIX}section`, { shape: [m], data: Float32Array.from(this.sections, (s) => trainSections.indexOf(s)), sourceDtype: 'float32' });
  }

  /** The reference spots a checkpoint keeps, checked against the model's sizes; `train` names their sections and patients. */
  static readFrom(sd: StateDict, source: string, genes: number, featureDim: number, train: { sections: readonly string[]; patients: readonly string[] }): References {
    const labels = sd.get(`${PREFIX}labels`);
    const section = sd.get(`${PREFIX}section`);
    if (!labels || !section) throw new Error(`${source}: has no reference spots (reference.labels); a retrieval model's checkpoint keeps its training fold's spots`);
    const m = section.data.length;
    if (labels.data.length !== m * genes) throw new Error(`${source}: reference.labels holds ${labels.data.length} values, not ${m} spots x ${genes} genes`);
    const features = sd.get(`${PREFIX}features`);
    if (featureDim && (!features || features.data.length !== m * featureDim)) throw new Error(`${source}: reference.features is missing or not [${m}, ${featureDim}]`);
    if (section.data.some((i) => !(i >= 0 && i < train.sections.length))) throw new Error(`${source}: reference.section names a section outside the checkpoint's ${train.sections.length} training sections`);
    return new References(Float32Array.from(labels.data), featureDim ? Float32Array.from(features!.data) : new Float32Array(0), genes, featureDim,
      Array.from(section.data, (i) => train.sections[i]), Array.from(section.data, (i) => train.patients[i] ?? ''));
  }
}
