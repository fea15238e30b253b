import { onnxRuntimeStatus } from '../onnx/engine';
import type { Executor } from './executor';
import { createOrtExecutor } from './ort';

/**
 * Which engine trains and predicts: onnxruntime when it loads (the native engine), else TF.js.
 * `--engine`, TRIPLEX_ENGINE and the VS Code setting `triplex.engine` force one; the environment
 * variable wins over the others, as for the compute backend.
 */

export type EngineChoice = 'auto' | 'ort' | 'tfjs';
export const ENGINE_CHOICES: readonly EngineChoice[] = ['auto', 'ort', 'tfjs'];

export interface EngineSelection {
  kind: 'ort' | 'tfjs';
  /** The onnxruntime executor when kind is 'ort'. */
  executor?: Executor;
  /** One line: what runs, and why another does not. */
  reason: string;
}

let ort: Promise<Executor | { unavailable: string }> | undefined;
let optionChoice: EngineChoice | undefined;

/** The engine asked for by a command-line option or a setting (TRIPLEX_ENGINE still wins). */
export function setEngineOption(choice: EngineChoice | undefined): void {
  optionChoice = choice;
}

/** The process's onnxruntime executor (threads: TRIPLEX_THREADS, else one per core). */
export function ortExecutor(): Promise<Executor | { unavailable: string }> {
  ort ??= createOrtExecutor({ threads: Number(process.env.TRIPLEX_THREADS) || undefined });
  return ort;
}

export function parseEngineChoice(value: string | undefined, where: string): EngineChoice | undefined {
  if (value === undefined || value === '') return undefined;
  if (!(ENGINE_CHOICES as readonly string[]).includes(value)) throw new Error(`${where}: unknown engine '${value}'; choose one of ${ENGINE_CHOICES.join(', ')}`);
  return value as EngineChoice;
}

/** Resolves the engine: TRIPLEX_ENGINE, else `requested`, else the option, else auto. */
export async function selectEngine(requested?: EngineChoice): Promise<EngineSelection> {
  const fromEnv = parseEngineChoice(process.env.TRIPLEX_ENGINE, 'TRIPLEX_ENGINE');
  const choice = fromEnv ?? requested ?? optionChoice ?? 'auto';
  if (choice === 'tfjs') return { kind: 'tfjs', reason: `TF.js (tfjs asked for${fromEnv ? ' by TRIPLEX_ENGINE' : ''})` };
  const e = await ortExecutor();
  if ('unavailable' in e) {
    if (choice === 'ort') throw new Error(`the onnxruntime engine was asked for, but ${onnxRuntimeStatus().name} is unavailable: ${e.unavailable}`);
    return { kind: 'tfjs', reason: `TF.js: onnxruntime is unavailable (${e.unavailable})` };
  }
  return { kind: 'ort', executor: e, reason: e.describe() };
}

/** What `triplex info` says of the engines: which one trains and predicts, and why. */
export interface EngineReport {
  /** The engine TRIPLEX trains and predicts on in mode frozen. */
  training: 'onnxruntime' | 'tfjs';
  inference: 'onnxruntime' | 'tfjs';
  /** Engine, version, execution provider and threads, or why TF.js. */
  detail: string;
  /** Modes layer4 and full: the ResNet18 trunk still trains on TF.js. */
  trunk: string;
}

export async function engineReport(): Promise<EngineReport> {
  const e = await selectEngine();
  const name = e.kind === 'ort' ? 'onnxruntime' : 'tfjs';
  return { training: name, inference: name, detail: e.reason, trunk: 'TF.js (modes layer4 and full train the ResNet18 trunk on TF.js until it moves to the native engine)' };
}
