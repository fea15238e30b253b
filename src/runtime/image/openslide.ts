import * as fs from 'node:fs';
import * as path from 'node:path';
import { ImageFileError } from './imageError';
import { levelForDownsample, startRegion } from './slideRegion';
import { squarePixels, type FileScale, type Scale } from './scale';
import type { SlideLevel, WholeSlide } from './wsi';

/**
 * Whole slides read by the system's OpenSlide (3.4's libopenslide.so.0, Debian's libopenslide0, or
 * 4.x's libopenslide.so.1; TRIPLEX_OPENSLIDE names another library or folder), called
 * through the optional npm package koffi (an FFI with prebuilt binaries). Used for what geotiff.js
 * cannot read: NDPI, MRXS and the other vendor formats, and Aperio SVS with JPEG 2000 tiles. When
 * either is missing, `openSlideLibrary()` says which and the caller keeps its "install OpenSlide"
 * error. Regions are read in strips of at most STRIP_PIXELS, so a read holds its RGB result and
 * one strip's ARGB; OpenSlide's own tile cache is bounded (32 MiB by default).
 */

/** Pixels OpenSlide decodes per call into one ARGB strip (16 MiB). */
const STRIP_PIXELS = 4 * 2 ** 20;

type Handle = unknown;
type Callback<T> = (err: unknown, result: T) => void;

interface OpenSlideLib {
  open(path: string): Handle | null;
  error(osr: Handle): string | null;
  levelCount(osr: Handle): number;
  levelDimensions(osr: Handle, level: number, w: number[], h: number[]): void;
  levelDownsample(osr: Handle, level: number): number;
  property(osr: Handle, name: string): string | null;
  readRegion: { async(osr: Handle, dest: Uint32Array, x: number, y: number, level: number, w: number, h: number, cb: Callback<void>): void };
  close(osr: Handle): void;
}

/** The part of koffi used here, typed locally so that the project builds without the optional package. */
interface Koffi {
  load(path: string): { func(signature: string): unknown };
  opaque(name: string): unknown;
}

/** OpenSlide's shared library as 4.x and 3.4 name it, newest first (the functions used here are in both). */
const LIBRARY_NAMES: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libopenslide.so.1', 'libopenslide.so.0'],
  darwin: ['libopenslide.1.dylib', 'libopenslide.0.dylib'],
  win32: ['libopenslide-1.dll', 'libopenslide-0.dll'],
};

/** Names the OpenSlide library to load: a library file, or a folder holding one under LIBRARY_NAMES. */
export const OPENSLIDE_ENV = 'TRIPLEX_OPENSLIDE';

/**
 * The libraries to try, in order: with TRIPLEX_OPENSLIDE, that file, or the platform's names in that
 * folder (nothing else, so that a wrong setting is said rather than passed over); without it, the
 * platform's names, which the system's loader looks up on its own search path.
 */
export function openSlideCandidates(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] {
  const names = LIBRARY_NAMES[platform] ?? LIBRARY_NAMES.linux!;
  const given = env[OPENSLIDE_ENV];
  if (!given) return names;
  let folder = false;
  try {
    folder = fs.statSync(given).isDirectory();
  } catch {
    // not there: koffi says so, naming it
  }
  return folder ? names.map((n) => path.join(given, n)) : [given];
}

export interface OpenSlideAvailability {
  lib?: OpenSlideLib;
  /** The candidate that loaded (a name the loader found, or a path from TRIPLEX_OPENSLIDE). */
  library?: string;
  /** openslide_get_version(): "3.4.1", "4.0.0". */
  version?: string;
  /** Why OpenSlide cannot be used, with what to install. */
  missing?: string;
}

let loaded: OpenSlideAvailability | undefined;

/** OpenSlide through koffi and which library was loaded, or why it cannot be had (koffi not installed, no library found). */
export function openSlideLibrary(): OpenSlideAvailability {
  loaded ??= load();
  return loaded;
}

function load(): OpenSlideAvailability {
  let koffi: Koffi;
  try {
    const moduleName = 'koffi'; // a variable keeps bundlers from trying to inline the optional package
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    koffi = require(moduleName) as Koffi;
  } catch (e) {
    return { missing: `the optional npm package koffi cannot be loaded (${messageOf(e)}; npm install koffi)` };
  }
  let so: ReturnType<Koffi['load']> | undefined;
  let library: string | undefined;
  const failures: string[] = [];
  const candidates = openSlideCandidates(process.platform, process.env);
  for (const name of candidates) {
    try {
      so = koffi.load(name);
      library = name;
      break;
    } catch (e) {
      failures.push(messageOf(e));
    }
  }
  if (!so) {
    const where = process.env[OPENSLIDE_ENV] ? `${OPENSLIDE_ENV}=${process.env[OPENSLIDE_ENV]} gives no OpenSlide library (tried ${candidates.join(', ')})` : `tried ${candidates.join(', ')}`;
    return { missing: `the system's OpenSlide library cannot be loaded (${where}: ${failures[0]}; Debian/Ubuntu: apt-get install libopenslide0, or set ${OPENSLIDE_ENV} to the library or its folder)` };
  }
  koffi.opaque('openslide_t');
  const lib: OpenSlideLib = {
    open: so.func('openslide_t *openslide_open(const char *filename)') as OpenSlideLib['open'],
    error: so.func('const char *openslide_get_error(openslide_t *osr)') as OpenSlideLib['error'],
    levelCount: so.func('int32_t openslide_get_level_count(openslide_t *osr)') as OpenSlideLib['levelCount'],
    levelDimensions: so.func('void openslide_get_level_dimensions(openslide_t *osr, int32_t level, _Out_ int64_t *w, _Out_ int64_t *h)') as OpenSlideLib['levelDimensions'],
    levelDownsample: so.func('double openslide_get_level_downsample(openslide_t *osr, int32_t level)') as OpenSlideLib['levelDownsample'],
    property: so.func('const char *openslide_get_property_value(openslide_t *osr, const char *name)') as OpenSlideLib['property'],
    readRegion: so.func('void openslide_read_region(openslide_t *osr, _Out_ uint32_t *dest, int64_t x, int64_t y, int32_t level, int64_t w, int64_t h)') as OpenSlideLib['readRegion'],
    close: so.func('void openslide_close(openslide_t *osr)') as OpenSlideLib['close'],
  };
  const version = (so.func('const char *openslide_get_version(void)') as () => string | null)() ?? undefined;
  return { lib, library, ...(version ? { version } : {}) };
}

/** What `triplex info` says of OpenSlide: the library loaded and its version, or why there is none. */
export function openSlideStatus(): { available: boolean; library?: string; version?: string; reason?: string } {
  const { lib, library, version, missing } = openSlideLibrary();
  return lib ? { available: true, library, ...(version ? { version } : {}) } : { available: false, reason: missing };
}

/** Opens `path` with OpenSlide (which must be available: see openSlideLibrary); `stripPixels` is for tests. */
export function openWithOpenSlide(lib: OpenSlideLib, path: string, regionPixels: number, stripPixels = STRIP_PIXELS): WholeSlide {
  const osr = lib.open(path);
  if (!osr) throw new ImageFileError(path, 'is not a slide OpenSlide recognises (nor one geotiff.js reads); is it complete, and a whole-slide format?');
  try {
    const problem = lib.error(osr);
    if (problem) throw new ImageFileError(path, `OpenSlide cannot read it: ${problem}`);
    const count = lib.levelCount(osr);
    const levels: SlideLevel[] = [];
    const downsamples: number[] = [];
    for (let k = 0; k < count; k++) {
      const [w, h] = [[0], [0]];
      lib.levelDimensions(osr, k, w, h);
      const tile = (axis: 'width' | 'height') => Number(lib.property(osr, `openslide.level[${k}].tile-${axis}`)) || 256;
      const level: SlideLevel = { width: Number(w[0]), height: Number(h[0]), tileWidth: tile('width'), tileHeight: tile('height'), downsample: 1 };
      level.downsample = (levels[0]?.width ?? level.width) / level.width;
      levels.push(level);
      downsamples.push(lib.levelDownsample(osr, k));
    }
    if (levels.length === 0 || !(levels[0].width > 0 && levels[0].height > 0)) throw new ImageFileError(path, `OpenSlide cannot read it: ${lib.error(osr) ?? 'it has no levels'}`);
    const vendor = lib.property(osr, 'openslide.vendor') ?? '';
    const { scale, nonSquare } = scaleOf(lib, osr, path);
    const slide = new OpenSlideSlide(lib, osr, path, vendor === 'aperio' ? 'svs' : 'openslide', levels, downsamples, scale, { regionPixels, stripPixels });
    if (nonSquare) slide.nonSquare = nonSquare;
    return slide;
  } catch (e) {
    lib.close(osr);
    throw e;
  }
}

function scaleOf(lib: OpenSlideLib, osr: Handle, path: string): FileScale {
  const [x, y] = ['x', 'y'].map((axis) => Number(lib.property(osr, `openslide.mpp-${axis}`) ?? NaN));
  if (!Number.isFinite(x)) return {};
  return squarePixels(path, { um: x, name: 'openslide.mpp-x' }, Number.isFinite(y) ? { um: y, name: 'openslide.mpp-y' } : undefined, `the OpenSlide openslide.mpp-x of ${path}`);
}

class OpenSlideSlide implements WholeSlide {
  private reads = 0;
  private inFlight = 0;
  private closed = false;
  nonSquare?: string;

  constructor(private readonly lib: OpenSlideLib, private osr: Handle, readonly path: string, readonly format: WholeSlide['format'],
    readonly levels: readonly SlideLevel[], private readonly downsamples: readonly number[], readonly scale: Scale | undefined,
    private readonly limits: { regionPixels: number; stripPixels: number }) {}

  levelFor(downsample: number): number {
    return levelForDownsample(this.levels, downsample);
  }

  async readRegion(level: number, x: number, y: number, w: number, h: number): Promise<Uint8Array> {
    const { out, inside } = startRegion(this.path, this.closed, this.levels, this.limits.regionPixels, level, x, y, w, h);
    if (!inside) return out;
    const { left, top, right, bottom } = inside;
    const cols = right - left;
    const rowsPerStrip = Math.max(1, Math.floor(this.limits.stripPixels / cols));
    const argb = new Uint32Array(cols * Math.min(rowsPerStrip, bottom - top));
    for (let row = top; row < bottom; row += rowsPerStrip) {
      const rows = Math.min(rowsPerStrip, bottom - row);
      const strip = argb.subarray(0, cols * rows);
      await this.read(strip, level, left, row, cols, rows);
      for (let r = 0; r < rows; r++) argbToRgb(strip.subarray(r * cols, (r + 1) * cols), out, ((row + r - y) * w + (left - x)) * 3);
    }
    return out;
  }

  stats(): { decodes: number; residentBytes: number } {
    return { decodes: this.reads, residentBytes: 0 };
  }

  close(): void {
    this.closed = true;
    if (this.inFlight === 0) this.release();
  }

  /** One openslide_read_region of `level`'s pixels (OpenSlide takes the origin in level-0 pixels), off the main thread. */
  private async read(dest: Uint32Array, level: number, x: number, y: number, w: number, h: number): Promise<void> {
    const ds = this.downsamples[level];
    this.inFlight++;
    try {
      await new Promise<void>((resolve, reject) => {
        this.lib.readRegion.async(this.osr, dest, Math.round(x * ds), Math.round(y * ds), level, w, h, (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
      });
      this.reads++;
      const problem = this.lib.error(this.osr);
      if (problem) throw new ImageFileError(this.path, `level ${level}, region (${x}, ${y}) ${w} x ${h} px cannot be read by OpenSlide: ${problem}; the file is damaged or truncated, copy it again`);
    } finally {
      this.inFlight--;
      if (this.closed && this.inFlight === 0) this.release();
    }
  }

  private release(): void {
    if (this.osr === undefined) return;
    this.lib.close(this.osr);
    this.osr = undefined;
  }
}

/**
 * OpenSlide's premultiplied ARGB (one native-endian uint32 a pixel) composited over white, as RGB
 * into `out` from byte `at`: an opaque pixel is its colour, a transparent one (no scanned tissue,
 * e.g. between an MRXS's camera fields) is white.
 */
export function argbToRgb(argb: Uint32Array, out: Uint8Array, at: number): void {
  for (let i = 0; i < argb.length; i++) {
    const p = argb[i];
    const white = 255 - (p >>> 24);
    out[at + i * 3] = ((p >>> 16) & 255) + white;
    out[at + i * 3 + 1] = ((p >>> 8) & 255) + white;
    out[at + i * 3 + 2] = (p & 255) + white;
  }
}

/** The first line of an error's message (Node's module errors go on with their require stack). */
function messageOf(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0];
}
