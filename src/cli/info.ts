import { Command } from 'commander';
import { initCompute, type ComputeReport } from '../runtime/compute/backend';
import { engineReport } from '../runtime/engine/choice';
import { openSlideStatus } from '../runtime/image/openslide';
import { computeOptions } from './options';

type InfoReport = ComputeReport & { openslide: ReturnType<typeof openSlideStatus> };

function formatReport(r: InfoReport): string {
  const lines = [
    ...(r.engine ? [`training    ${r.engine.training} (${r.engine.detail})`, `inference   ${r.engine.inference}`] : []),
    ...(r.engine?.provider ? [`provider    ${r.engine.provider}${r.engine.providerWhy ? ` (no GPU provider: ${r.engine.providerWhy})` : ''}`] : []),
    `backend     ${r.backend} ${r.version}${r.simd ? ' (SIMD)' : ''} (TF.js: notebook tensors, the fallback engine)`,
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
  const os = r.openslide;
  lines.push(`openslide   ${os.available ? `${os.version ?? 'version unknown'} from ${os.library}` : `unavailable: ${os.reason}`}`);
  lines.push(`${''.padEnd(12)}for NDPI, MRXS and JPEG 2000 SVS slides (pyramidal TIFF, OME-TIFF and JPEG SVS need no OpenSlide)`);
  lines.push(`node        ${r.node}`);
  return lines.join('\n');
}

export function infoCommand(): Command {
  return new Command('info')
    .description('show the engine that trains and predicts, the TF.js backend, their threads, which optional engines are available, and the OpenSlide library whole slides use')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const report: InfoReport = { ...(await initCompute(computeOptions(cmd))), engine: await engineReport(), openslide: openSlideStatus() };
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatReport(report));
    });
}
