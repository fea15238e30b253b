/** The TF.js backends TRIPLEX can compute on, fastest first. */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
/** What a user may ask for: one backend, or the fastest that loads. */
export type BackendChoice = BackendName | 'auto';

/** Whether one compute engine can be used here, and why not when it cannot. */
export interface EngineStatus {
  /** npm package that provides the engine. */
  name: string;
  /** What TRIPLEX uses it for. */
  role: string;
  available: boolean;
  version?: string;
  reason?: string;
}

/** What `triplex info --json` prints and the "Show Compute Backend" command returns. */
export interface ComputeReport {
  backend: BackendName;
  /** Version of the package behind the active backend. */
  version: string;
  threads: number;
  simd: boolean;
  requested: BackendChoice;
  /** Where the request came from. */
  requestedBy: 'option' | 'environment' | 'default';
  /** Why the active backend is not the requested or fastest one, when it is not. */
  fallbackReason?: string;
  engines: EngineStatus[];
  /** The engine that trains and predicts (set by `triplex info`). */
  engine?: { training: 'onnxruntime' | 'tfjs'; inference: 'onnxruntime' | 'tfjs'; detail: string; provider?: string; providerWhy?: string };
  node: string;
  cores: number;
}
