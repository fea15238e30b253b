import { SVG_MIME, type MimeBundle } from '../../protocol/outputs';

export const PNG_MIME = 'image/png';

/**
 * A figure's bundle with an image/png drawn from its image/svg+xml (by librsvg, through sharp),
 * for Jupyter: JupyterLab does not draw the SVG of an untrusted notebook (its SVG renderer is not
 * "safe"), and a notebook saved outside Jupyter is untrusted there, so it would show only the
 * text. A 256-colour palette without dithering keeps the PNG small (about 60 KB for a map of 465
 * spots) and each spot one flat colour; quantisation effort 3 of 10 takes a third of the default's
 * time for 3% more bytes (about 0.3 s a map; 1 to 2 s for 5,000 spots, mostly librsvg). Bundles without SVG, or with a PNG already, come back as
 * they are. sharp is loaded on the first figure, not when the kernel starts.
 */
export async function withPng(bundle: MimeBundle): Promise<MimeBundle> {
  const svg = bundle[SVG_MIME];
  if (typeof svg !== 'string' || PNG_MIME in bundle) return bundle;
  const { default: sharp } = await import('sharp');
  const png = await sharp(Buffer.from(svg)).png({ palette: true, dither: 0, effort: 3, compressionLevel: 9 }).toBuffer();
  const out: MimeBundle = {};
  for (const [mime, value] of Object.entries(bundle)) {
    out[mime] = value;
    if (mime === SVG_MIME) out[PNG_MIME] = png.toString('base64');
  }
  return out;
}
