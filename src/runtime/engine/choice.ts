import * as fs from 'node:fs';
import { onnxRuntimeStatus } from '../onnx/engine';
import type { Executor } from './executor';
import { createOrtExecutor, probeProvider, type Provider } from './ort';

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
let providerOption: ProviderChoice | undefined;
let providerWhy: string | undefined;

export type ProviderChoice = 'auto' | Provider;
const PROVIDER_CHOICES: readonly ProviderChoice[] = ['auto', 'cpu', 'webgpu', 'cuda'];

/** The execution provider asked for by a command-line option (TRIPLEX_PROVIDER still wins). */
export function setProviderOption(choice: ProviderChoice | undefined): void {
  providerOption = choice;
}

/** GPU device nodes this machine shows: NVIDIA's, or a DRM render node (AMD, Intel, NVIDIA). */
function gpuDevices(): string[] {
  const dri = fs.existsSync('/dev/dri') ? fs.readdirSync('/dev/dri').filter((f) => f.startsWith('renderD')).map((f) => `/dev/dri/${f}`) : [];
  return [...(fs.existsSync('/dev/nvidia0') ? ['/dev/nvidia0'] : []), ...dri];
}

/**
 * The provider: TRIPLEX_PROVIDER, else the option, else auto: a GPU provider that builds a session
 * here (CUDA, then WebGPU), tried only where the machine shows a GPU device, else the CPU.
 */
async function selectProvider(): Promise<{ provider: Provider; why?: string }> {
  const env = process.env.TRIPLEX_PROVIDER;
  if (env && !(PROVIDER_CHOICES as readonly string[]).includes(env)) throw new Error(`TRIPLEX_PROVIDER: unknown execution provider '${env}'; choose one of ${PROVIDER_CHOICES.join(', ')}`);
  const choice = (env as ProviderChoice | undefined) ?? providerOption ?? 'auto';
  if (choice === 'cpu') return { provider: 'cpu', why: 'cpu asked for' };
  if (choice !== 'auto') {
    const why = await probeProvider(choice);
    if (why) throw new Error(`the ${choice} execution provider was asked for, but it cannot run here: ${why}`);
    return { provider: choice };
  }
  const devices = gpuDevices();
  if (devices.length === 0) return { provider: 'cpu', why: 'no GPU device here (/dev/nvidia0, /dev/dri/renderD*)' };
  const reasons: string[] = [];
  for (const p of ['cuda', 'webgpu'] as const) {
    const why = await probeProvider(p);
    if (!why) return { provider: p };
    reasons.push(why);
  }
  return { provider: 'cpu', why: reasons.join('; ') };
}

/** The engine asked for by a command-line option or a setting (TRIPLEX_ENGINE still wins). */
export function setEngineOption(choice: EngineChoice | undefined): void {
  optionChoice = choice;
}

/** The process's onnxruntime executor (threads: TRIPLEX_THREADS, else one per core; the provider of selectProvider). */
export function ortExecutor(): Promise<Executor | { unavailable: string }> {
  ort ??= selectProvider().then(({ provider, why }) => {
    providerWhy = why;
    return createOrtExecutor({ threads: Number(process.env.TRIPLEX_THREADS) || undefined, provider });
  });
  const chosen = ort;
  chosen.catch(() => { if (ort === chosen) ort = undefined; }); // a refused choice is not kept: the next call decides again
  return chosen;
}

/**
 * After a GPU device was lost mid-run: the process's onnxruntime executor becomes the CPU
 * provider's (with the lost executor's threads), so that what runs next (the run's resume, the
 * next folds, predictions) stays on the CPU; `info`'s provider line says why.
 */
export async function cpuAfterDeviceLoss(lost: Executor, why: string): Promise<Executor> {
  const cpu = await createOrtExecutor({ threads: lost.threads ?? (Number(process.env.TRIPLEX_THREADS) || undefined), provider: 'cpu' });
  if ('unavailable' in cpu) throw new Error(`the ${lost.provider ?? 'GPU'} device was lost and the CPU provider cannot take over: ${cpu.unavailable}`);
  providerWhy = `the ${lost.provider ?? 'GPU'} device was lost mid-run (${why}); the CPU took over`;
  ort = Promise.resolve(cpu);
  return cpu;
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
  /** onnxruntime's execution provider, and why not a GPU one. */
  provider?: string;
  providerWhy?: string;
}

export async function engineReport(): Promise<EngineReport> {
  const e = await selectEngine();
  const name = e.kind === 'ort' ? 'onnxruntime' : 'tfjs';
  return {
    training: name, inference: name, detail: e.reason,
    ...(e.executor ? { provider: e.executor.provider, ...(providerWhy ? { providerWhy } : {}) } : {}),
  };
}
