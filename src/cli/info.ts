import { Command } from 'commander';
import { initCompute, type ComputeReport } from '../runtime/compute/backend';
import { computeOptions } from './options';

function formatReport(r: ComputeReport): string {
  const lines = [
    `backend     ${r.backend} ${r.version}${r.simd ? ' (SIMD)' : ''}`,
    `threads     ${r.threads} of ${r.cores} cores`,
    `requested   ${r.requested} (${r.requestedBy})`,
  ];
  if (r.fallbackReason) lines.push(`why         ${r.fallbackReason}`);
  lines.push('engines');
  for (const e of r.engines) {
    const state = e.available ? `available ${e.version ?? ''}`.trim() : `unavailable: ${e.reason ?? 'unknown reason'}`;
    lines.push(`  ${e.name.padEnd(30)} ${state}`);
    lines.push(`  ${''.padEnd(30)} for ${e.role}`);
  }
  lines.push(`node        ${r.node}`);
  return lines.join('\n');
}

export function infoCommand(): Command {
  return new Command('info')
    .description('show the compute backend in use, its threads, and which optional engines are available')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const report = await initCompute(computeOptions(cmd));
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
    });
}
