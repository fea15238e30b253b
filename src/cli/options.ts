import { InvalidArgumentError, type Command } from 'commander';
import type { ComputeOptions } from '../runtime/compute/backend';
import { parseDecimal } from '../runtime/data/numbers';

/** The global compute options given before the subcommand (`triplex --backend cpu info`). */
export function computeOptions(cmd: Command): ComputeOptions {
  const root = cmd.parent ?? cmd;
  const o = root.opts<{ backend?: ComputeOptions['backend']; threads?: number }>();
  return { backend: o.backend, threads: o.threads };
}

/*
 * Option values checked when the command line is parsed, before any work: `--micro-batch 0`
 * once failed with "divide by zero", `--epochs -1` was reported as an interrupted run, and
 * `--lr NaN` failed only after a whole epoch. Commander names the option and the value, and
 * main.ts exits with 2, the usual code of a usage error.
 */

const between = (min: number, max: number) => (max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`);

/** A parser for a whole-number option in [min, max]. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text) => {
    const v = /^\s*[+-]?\d+\s*$/.test(text) ? Number(text) : NaN;
    if (!(Number.isSafeInteger(v) && v >= min && v <= max)) throw new InvalidArgumentError(`expected a whole number ${between(min, max)}.`);
    return v;
  };
}

/** A parser for a decimal option in [min, max] (or (min, max] / [min, max) when told); NaN, Infinity and hex refused. */
export function decimalNumber(min: number, max: number, open: { min?: boolean; max?: boolean } = {}): (text: string) => number {
  const range = `${open.min ? 'greater than' : 'at least'} ${min}${Number.isFinite(max) ? ` and ${open.max ? 'below' : 'at most'} ${max}` : ''}`;
  return (text) => {
    const v = parseDecimal(text);
    const ok = v !== undefined && (open.min ? v > min : v >= min) && (open.max ? v < max : v <= max);
    if (!ok) throw new InvalidArgumentError(`expected a decimal number ${range}.`);
    return v;
  };
}
