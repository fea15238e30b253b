import type { ViewerOutbound } from '../protocol/webviews';

/**
 * The bytes of a view the slide viewer exported: a PNG (sent as a base64 data: URL) or SVG text.
 * Refuses anything else, so that a file named .png holds a PNG and a .svg an SVG document.
 */
export function viewExportBytes(payload: ViewerOutbound['exportView']): Buffer {
  if (payload.format === 'png') {
    const m = /^data:image\/png;base64,([A-Za-z0-9+/=]+)$/.exec(payload.data);
    const bytes = m ? Buffer.from(m[1], 'base64') : undefined;
    if (!bytes || bytes.length < 8 || bytes.readUInt32BE(0) !== 0x89504e47) throw new Error('the viewer sent a PNG export that is not a PNG image');
    return bytes;
  }
  if (!/^<svg[\s>]/.test(payload.data) || !payload.data.trimEnd().endsWith('</svg>')) throw new Error('the viewer sent an SVG export that is not an SVG document');
  return Buffer.from(payload.data, 'utf8');
}
