import { mulberry32 } from '../util/random';

/**
 * Cross-validation folds for the paper's protocol. Sections of one patient are near-duplicates
 * (serial cuts of the same tumour), so every split is made between patients: a patient's
 * sections are all on the test side or all on the training side. The only exception is
 * `bySection`, which exists for comparison and says so in a warning.
 *
 * Everything here is deterministic: patients are taken in natural name order (P2 before P10)
 * and a seed, where one is accepted, only reorders what the rules leave open.
 */

/** A section as the fold builders need it; `spots` lets k-fold balance spots instead of sections. */
export interface SectionRef {
  id: string;
  patient: string;
  spots?: number;
}

export interface Fold {
  index: number;
  /** Section ids, in input order. */
  test: string[];
  train: string[];
  testPatients: string[];
}

/** How a fold scheme is written on the command line or in a notebook. */
export type FoldSpec = 'lopo' | `kfold:${number}` | 'section';

export type FoldScheme = { kind: 'lopo' } | { kind: 'kfold'; k: number } | { kind: 'section' };

const SPEC_HELP = "pass 'lopo' (leave one patient out), 'kfold:<k>' (k folds grouped by patient, e.g. kfold:8) " +
  "or 'section' (one fold per section; sections of one patient then sit on both sides)";

/** Parses a fold spec; `(string & {})` keeps editor completion for the known forms. */
export function parseFolds(spec: FoldSpec | (string & {})): FoldScheme {
  const s = spec.trim().toLowerCase();
  if (s === 'lopo') return { kind: 'lopo' };
  if (s === 'section') return { kind: 'section' };
  const m = /^kfold:(.*)$/.exec(s);
  if (m) {
    const k = Number(m[1]);
    if (!Number.isInteger(k) || k < 2) throw new Error(`fold spec '${spec}': k must be an integer of at least 2, e.g. kfold:8`);
    return { kind: 'kfold', k };
  }
  throw new Error(`unknown fold spec '${spec}'; ${SPEC_HELP}`);
}

/** Builds the folds of a scheme; `warnings` are for the caller to print. */
export function makeFolds(sections: readonly SectionRef[], scheme: FoldScheme | FoldSpec, seed?: number): { folds: Fold[]; warnings: string[] } {
  const s = typeof scheme === 'string' ? parseFolds(scheme) : scheme;
  switch (s.kind) {
    case 'lopo':
      return { folds: leaveOnePatientOut(sections), warnings: [] };
    case 'kfold':
      return { folds: groupedKFold(sections, s.k, seed), warnings: [] };
    case 'section': {
      const { folds, warning } = bySection(sections);
      return { folds, warnings: warning ? [warning] : [] };
    }
  }
}

/** One fold per patient, in natural patient order. */
export function leaveOnePatientOut(sections: readonly SectionRef[]): Fold[] {
  const patients = patientsOf(sections);
  if (patients.size < 2) {
    throw new Error(`leave-one-patient-out needs at least 2 patients; the dataset has 1 (${[...patients.keys()].join('')}) and would leave nothing to train on`);
  }
  return checkFolds([...patients.keys()].map((p, index) => foldOf(sections, index, new Set([p]))), sections);
}

/**
 * k folds grouped by patient, balanced by weight: a patient weighs the number of its sections,
 * or its number of spots when every section gives `spots`. Rule (greedy longest-first): patients
 * are sorted by weight, heaviest first, equal weights in natural name order (or in a seeded
 * shuffle of it when `seed` is given); each goes to the fold with the smallest weight so far,
 * ties to the fold with fewer patients, then to the lower index. Every fold gets a patient.
 */
export function groupedKFold(sections: readonly SectionRef[], k: number, seed?: number): Fold[] {
  const patients = patientsOf(sections);
  if (!Number.isInteger(k) || k < 2) throw new Error(`k-fold needs an integer k of at least 2, got ${k}`);
  if (k > patients.size) {
    throw new Error(`kfold:${k} asks for more folds than there are patients (${patients.size}: ${[...patients.keys()].join(', ')}); ` +
      `pass kfold:${patients.size} or fewer, or 'lopo'`);
  }
  const bySpots = sections.every((s) => s.spots !== undefined);
  const weight = new Map([...patients].map(([p, list]) => [p, bySpots ? list.reduce((n, s) => n + (s.spots ?? 0), 0) : list.length]));
  let order = [...patients.keys()];
  if (seed !== undefined) order = shuffled(order, seed);
  order = order.map((p, i) => ({ p, i })).sort((a, b) => weight.get(b.p)! - weight.get(a.p)! || a.i - b.i).map((x) => x.p);

  const load = new Array<number>(k).fill(0);
  const members: string[][] = Array.from({ length: k }, () => []);
  for (const p of order) {
    let best = 0;
    for (let f = 1; f < k; f++) {
      if (load[f] < load[best] || (load[f] === load[best] && members[f].length < members[best].length)) best = f;
    }
    load[best] += weight.get(p)!;
    members[best].push(p);
  }
  return checkFolds(members.map((ps, index) => foldOf(sections, index, new Set(ps))), sections);
}

/**
 * One fold per section. Only for an explicit request: the other sections of the test section's
 * patient stay in training, so scores come out higher than between patients.
 */
export function bySection(sections: readonly SectionRef[]): { folds: Fold[]; warning?: string } {
  const patients = patientsOf(sections);
  const folds = sections.map((s, index) => ({
    index, test: [s.id], train: sections.filter((o) => o.id !== s.id).map((o) => o.id), testPatients: [s.patient],
  }));
  checkFolds(folds, sections, { allowSharedPatients: true });
  const shared = [...patients.values()].filter((l) => l.length > 1).length;
  const warning = shared === 0 ? undefined
    : `folds by section: ${shared} of ${patients.size} patients have several sections, which are near-duplicates of one another; ` +
      'each test section has siblings in training, so scores are optimistic and not comparable with the paper (use lopo or kfold:<k>)';
  return warning ? { folds, warning } : { folds };
}

export interface ValidationSplit {
  train: string[];
  validation: string[];
  validationPatients: string[];
  /** Set when the split had to fall back to sections of a single patient. */
  warning?: string;
}

/**
 * A validation split inside a fold's training sections (pass `fold.train`, never the test
 * sections), for early stopping without looking at the test fold. Patients are drawn whole, in a
 * seeded order, until the validation share is closest to `fraction` of the sections (default
 * 0.15): always at least one patient, never all of them. With a single training patient the
 * split falls back to its sections, with a warning; with a single training section it fails.
 */
export function validationSplit(trainSections: readonly SectionRef[], opts: { fraction?: number; seed: number }): ValidationSplit {
  const fraction = opts.fraction ?? 0.15;
  if (!(fraction > 0 && fraction < 1)) throw new Error(`validation fraction must lie strictly between 0 and 1, got ${fraction}`);
  const patients = patientsOf(trainSections);
  const target = fraction * trainSections.length;

  if (patients.size === 1) {
    const [patient] = patients.keys();
    if (trainSections.length < 2) {
      throw new Error(`cannot hold out validation data: training has one section (${trainSections[0].id}); ` +
        'give the fold at least two training patients, or train for a fixed number of epochs without early stopping');
    }
    const n = Math.min(trainSections.length - 1, Math.max(1, Math.round(target)));
    const held = new Set(shuffled(trainSections.map((s) => s.id), opts.seed).slice(0, n));
    return {
      ...splitBy(trainSections, (s) => held.has(s.id)),
      validationPatients: [patient],
      warning: `only one training patient (${patient}): validation uses ${n} of its ${trainSections.length} sections, which are ` +
        'near-duplicates of its training sections, so early stopping will be optimistic; add patients for an honest split',
    };
  }

  const chosen: string[] = [];
  let count = 0;
  for (const p of shuffled([...patients.keys()], opts.seed)) {
    if (chosen.length === patients.size - 1) break;
    const w = patients.get(p)!.length;
    if (chosen.length > 0 && Math.abs(count + w - target) >= Math.abs(count - target)) break;
    chosen.push(p);
    count += w;
  }
  const held = new Set(chosen);
  return { ...splitBy(trainSections, (s) => held.has(s.patient)), validationPatients: naturalSort(chosen) };
}

/**
 * Checks folds against their sections: every fold has test and training sections, test sides
 * have patients, every section is on exactly one side, and (unless allowed) no patient is on both.
 */
export function checkFolds(folds: Fold[], sections: readonly SectionRef[], opts: { allowSharedPatients?: boolean } = {}): Fold[] {
  const patientOf = new Map(sections.map((s) => [s.id, s.patient]));
  for (const f of folds) {
    if (f.test.length === 0 || f.testPatients.length === 0) throw new Error(`fold ${f.index} has no test patient; every fold needs at least one test section`);
    if (f.train.length === 0) throw new Error(`fold ${f.index} has no training sections; the dataset needs sections from more than one patient`);
    const seen = new Set([...f.test, ...f.train]);
    if (seen.size !== f.test.length + f.train.length || seen.size !== sections.length || [...seen].some((id) => !patientOf.has(id))) {
      throw new Error(`fold ${f.index} does not put each of the ${sections.length} sections on exactly one side`);
    }
    if (!opts.allowSharedPatients) {
      const testPatients = new Set(f.test.map((id) => patientOf.get(id)));
      const leak = f.train.find((id) => testPatients.has(patientOf.get(id)));
      if (leak) throw new Error(`fold ${f.index}: patient ${patientOf.get(leak)} has sections on both sides (${leak} in training)`);
    }
  }
  return folds;
}

/** Sections grouped by patient, patients in natural order; validates the list. */
function patientsOf(sections: readonly SectionRef[]): Map<string, SectionRef[]> {
  if (sections.length === 0) throw new Error('the dataset has no sections; preprocess a dataset first (`triplex preprocess`)');
  const ids = new Set<string>();
  const groups = new Map<string, SectionRef[]>();
  for (const s of sections) {
    if (ids.has(s.id)) throw new Error(`section ${s.id} is listed twice`);
    ids.add(s.id);
    if (!s.patient) throw new Error(`section ${s.id} has no patient; folds are grouped by patient, so every section needs one`);
    const list = groups.get(s.patient) ?? [];
    list.push(s);
    groups.set(s.patient, list);
  }
  return new Map(naturalSort([...groups.keys()]).map((p) => [p, groups.get(p)!]));
}

function foldOf(sections: readonly SectionRef[], index: number, testPatients: Set<string>): Fold {
  const { validation: test, train } = splitBy(sections, (s) => testPatients.has(s.patient));
  return { index, test, train, testPatients: naturalSort([...testPatients]) };
}

function splitBy(sections: readonly SectionRef[], held: (s: SectionRef) => boolean): { train: string[]; validation: string[] } {
  return { train: sections.filter((s) => !held(s)).map((s) => s.id), validation: sections.filter(held).map((s) => s.id) };
}

function naturalSort(names: string[]): string[] {
  return [...names].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** Fisher-Yates with a seeded generator: the same seed always gives the same order. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rand = mulberry32(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
