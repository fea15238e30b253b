import type { Command } from 'commander';
import type { ComputeOptions } from '../runtime/compute/backend';

/** The global compute options given before the subcommand (`triplex --backend cpu info`). */
export function computeOptions(cmd: Command): ComputeOptions {
  const root = cmd.parent ?? cmd;
  const o = root.opts<{ backend?: ComputeOptions['backend']; threads?: number }>();
  return { backend: o.backend, threads: o.threads };
}
