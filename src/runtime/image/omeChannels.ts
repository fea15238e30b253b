import { isTiledDirectory, TAG, tagValue, type TiffDirectory, type TiffLayout } from './tiffLayout';

/**
 * OME-TIFF RGB stored as three greyscale images, one a channel (OME-XML SizeC="3", one sample per
 * pixel; what tifffile and Bio-Formats write for channel-first RGB): the main IFD chain holds the
 * channels' full-resolution images in order, each with its reduced levels as SubIFDs. Interleaved
 * RGB (one IFD, SamplesPerPixel 3) and RGB planes in one IFD (PlanarConfiguration 2) need nothing
 * of this: geotiff.js reads both.
 */

/** Whether an OME-XML description is one image of three channels stored one per IFD (no Z or T planes to pick from). */
export function omeSeparateRgb(description: string): boolean {
  if (!/<OME[\s>]/.test(description)) return false;
  const pixels = /<(?:\w+:)?Pixels\b[^>]*>/.exec(description)?.[0] ?? '';
  const size = (axis: string) => Number(new RegExp(`\\bSize${axis}\\s*=\\s*"(\\d+)"`).exec(pixels)?.[1]);
  return size('C') === 3 && size('Z') === 1 && size('T') === 1 && !/\bSamplesPerPixel\s*=\s*"3"/.test(description);
}

/**
 * Each channel's pyramid (largest level first): the first three tiled images of the main chain
 * with their tiled SubIFDs. Channels whose levels differ in number or size are refused with
 * `fail(problem)`.
 */
export function channelPyramids(layout: TiffLayout, fail: (problem: string) => Error): TiffDirectory[][] {
  const images = layout.directories.filter(isTiledDirectory);
  if (images.length < 3) throw fail(`its OME-XML says 3 channels, stored one per image, but it has ${images.length} tiled image(s); the file is incomplete`);
  const sides = (d: TiffDirectory) => {
    const [w, h, tw, th] = [TAG.width, TAG.height, TAG.tileWidth, TAG.tileHeight].map((t) => tagValue(d, t) ?? 0);
    return `${w} x ${h} px in ${tw} x ${th} px tiles`;
  };
  const pyramids = images.slice(0, 3).map((d) => [d, ...d.subIfds.filter(isTiledDirectory)].sort((a, b) => (tagValue(b, TAG.width) ?? 0) - (tagValue(a, TAG.width) ?? 0)));
  for (const [c, p] of pyramids.entries()) {
    const differ = p.length !== pyramids[0].length ? `pyramid has ${p.length} levels, channel 0's ${pyramids[0].length}` :
      p.map((d, k) => (sides(d) === sides(pyramids[0][k]) ? '' : `level ${k} is ${sides(d)}, channel 0's ${sides(pyramids[0][k])}`)).find(Boolean);
    if (differ) throw fail(`its 3 colour channels are stored one per image, and channel ${c}'s ${differ}: they must match; the file is damaged or not one RGB slide`);
  }
  return pyramids;
}
