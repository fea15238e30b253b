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

/** Resolves the engine: TRIPLEX_ENGINE, else `requested`, else auto. */
export async function selectEngine(requested?: EngineChoice): Promise<EngineSelection> {
  const choice = parseEngineChoice(process.env.TRIPLEX_ENGINE, 'TRIPLEX_ENGINE') ?? requested ?? 'auto';
  if (choice === 'tfjs') return { kind: 'tfjs', reason: `TF.js (engine forced to tfjs${process.env.TRIPLEX_ENGINE ? ' by TRIPLEX_ENGINE' : ''})` };
  const e = await ortExecutor();
  if ('unavailable' in e) {
    if (choice === 'ort') throw new Error(`the onnxruntime engine was asked for, but ${onnxRuntimeStatus().name} is unavailable: ${e.unavailable}`);
    return { kind: 'tfjs', reason: `TF.js: onnxruntime is unavailable (${e.unavailable})` };
  }
  return { kind: 'ort', executor: e, reason: e.describe() };
}
