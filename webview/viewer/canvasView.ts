// One panel of the slide viewer: the tiled H&E image and the spots, drawn on a canvas under a
// shared view transform (screen = image * scale + offset).
import { MAX_TILE_REQUESTS, type TileSource } from '../../src/protocol/webviews';
import { bucket, CATEGORIES } from './colormap';

export interface View { scale: number; tx: number; ty: number }

/**
 * Extra drawing over a panel's spots (a selection's outline, a categorical overlay): called after
 * the spots with the context in CSS pixels, the view, the panel's size and its layer.
 */
export type OverlayDraw = (ctx: CanvasRenderingContext2D, view: View, size: { width: number; height: number }, layer: SpotLayer) => void;

export interface SpotLayer {
  x: number[];
  y: number[];
  values?: number[];
  lo: number;
  hi: number;
  lut: string[];
  radius: number;
  /** Annotation category per spot (-1 none), drawn as rings when shown. */
  categories?: number[];
  /** Drawn over the spots, in order. */
  overlays?: OverlayDraw[];
  /** Spot opacity (1 when absent). */
  opacity?: number;
}

/** Screen radius of the layer's spots (never under 1.5 px, so that a zoomed-out slide still shows them). */
export const screenRadius = (spots: SpotLayer, view: View) => Math.max(1.5, spots.radius * view.scale);

/** Calls `fn` for each spot inside a w x h panel, with its screen position and radius. */
export function forEachVisible(spots: SpotLayer, view: View, w: number, h: number, fn: (i: number, sx: number, sy: number, r: number) => void): void {
  const r = screenRadius(spots, view);
  for (let i = 0; i < spots.x.length; i++) {
    const sx = spots.x[i] * view.scale + view.tx;
    const sy = spots.y[i] * view.scale + view.ty;
    if (sx < -r || sy < -r || sx > w + r || sy > h + r) continue;
    fn(i, sx, sy, r);
  }
}

/**
 * Tiles shared by all panels: each image is loaded once. A whole slide's tiles above its written
 * levels (source.onDemand) are not on disk until the extension cuts them: a frame notes those it
 * shows and lacks (`get`), and `endFrame` asks for the nearest MAX_TILE_REQUESTS of them, only
 * when that list changes (the extension drops what is no longer asked for); `answered` marks one
 * cut, and it loads like any other.
 */
export class TileCache {
  private readonly images = new Map<string, HTMLImageElement>();
  private loading = 0;
  private readonly queue: string[] = [];
  /** On-demand tiles: cut (loadable), failed (the extension said why), and those this frame lacks (by distance from the view's centre). */
  private readonly ready = new Set<string>();
  private readonly failed = new Map<string, string>();
  private readonly wanted = new Map<string, number>();
  private asked: string[] = [];
  /** Since when the view lacks on-demand tiles (0: it lacks none), and when the first of them was drawn. */
  private lackingSince = 0;
  private firstDrawn = 0;
  private drawnOnDemand = 0;
  /** On-demand tiles of this frame cut but still loading. */
  private loadingOnDemand = 0;

  constructor(readonly source: TileSource, private readonly onLoad: () => void, private readonly ask?: (tiles: string[]) => void,
    private readonly onDrawn?: (report: { tiles: number; firstMs: number; allMs: number }) => void) {}

  /** Whether tiles of `level` are cut on demand. */
  onDemand(level: number): boolean {
    return !!this.source.onDemand && level > (this.source.writtenLevels ?? this.source.maxLevel);
  }

  /** A tile's image once loaded; asks for it otherwise (`distance`: how far from the view's centre, to ask for the nearest first). */
  get(level: number, col: number, row: number, distance = 0): HTMLImageElement | undefined {
    if (this.onDemand(level)) {
      const name = `${level}/${col}_${row}`;
      if (!this.ready.has(name)) {
        if (!this.failed.has(name)) this.wanted.set(name, Math.min(distance, this.wanted.get(name) ?? Infinity));
        return undefined;
      }
    }
    const url = this.url(level, col, row);
    const img = this.images.get(url);
    if (img) {
      if (!(img.complete && img.naturalWidth > 0)) {
        if (this.onDemand(level)) this.loadingOnDemand++;
        return undefined;
      }
      if (this.lackingSince && this.onDemand(level)) {
        this.firstDrawn ||= performance.now();
        this.drawnOnDemand++;
      }
      return img;
    }
    const fresh = new Image();
    fresh.crossOrigin = 'anonymous'; // VS Code serves webview resources with CORS: exports may read the canvas back
    this.images.set(url, fresh);
    if (this.onDemand(level)) this.loadingOnDemand++;
    this.queue.push(url);
    this.pump();
    return undefined;
  }

  /** A tile's image if it is loaded, without asking for it. */
  peek(level: number, col: number, row: number): HTMLImageElement | undefined {
    const img = this.images.get(this.url(level, col, row));
    return img?.complete && img.naturalWidth > 0 ? img : undefined;
  }

  /**
   * Before the panels draw: the on-demand tiles lacking are counted again. When a view that lacked
   * some lacks none, `onDrawn` says how long its first and its last took since the view lacked them.
   */
  beginFrame(): void {
    this.wanted.clear();
    this.drawnOnDemand = 0;
    this.loadingOnDemand = 0;
  }

  /** After the panels drew: asks for the nearest tiles lacking, if that list changed (an empty list cancels what was asked). */
  endFrame(): void {
    const now = performance.now();
    const lacking = this.wanted.size + this.loadingOnDemand;
    if (lacking && !this.lackingSince) [this.lackingSince, this.firstDrawn] = [now, 0];
    if (!lacking && this.lackingSince) {
      // (a view left before its tiles came, zoomed out or panned to written levels, reports nothing)
      if (this.drawnOnDemand) this.onDrawn?.({ tiles: this.drawnOnDemand, firstMs: (this.firstDrawn || now) - this.lackingSince, allMs: now - this.lackingSince });
      this.lackingSince = 0;
    }
    const list = [...this.wanted].sort((a, b) => a[1] - b[1]).slice(0, MAX_TILE_REQUESTS).map(([name]) => name);
    if (list.join() === this.asked.join()) return;
    this.asked = list;
    this.ask?.(list);
  }

  /** The extension's answer for an on-demand tile: cut (it loads at the next frame), or why not (not asked for again). */
  answered(tile: string, error?: string): void {
    if (error === undefined) this.ready.add(tile);
    else this.failed.set(tile, error);
    this.onLoad();
  }

  private url(level: number, col: number, row: number): string {
    return `${this.source.base}/${level}/${col}_${row}.${this.source.format}`;
  }

  private pump(): void {
    while (this.loading < 8 && this.queue.length) {
      const url = this.queue.pop() as string; // newest first: what the view shows now
      const img = this.images.get(url) as HTMLImageElement;
      this.loading++;
      img.onload = img.onerror = () => {
        this.loading--;
        this.onLoad();
        this.pump();
      };
      img.src = url;
    }
  }
}

/** Draws one panel: the image (at `imageOpacity`), the spots bucketed by colour, annotation rings, then the overlays. */
export function drawPanel(canvas: HTMLCanvasElement, view: View, tiles: TileCache | undefined, spots: SpotLayer, showAnnotations: boolean, imageOpacity = 1): void {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  if (tiles && imageOpacity > 0) {
    ctx.globalAlpha = imageOpacity;
    drawTiles(ctx, view, tiles, w, h, dpr);
    ctx.globalAlpha = 1;
  }

  // Spots bucketed by colour: one path per colour instead of one fill per spot.
  const paths = new Map<number, Path2D>();
  const rings = new Map<number, Path2D>();
  let ringRadius = 0;
  forEachVisible(spots, view, w, h, (i, sx, sy, r) => {
    const b = spots.values ? bucket(spots.values[i], spots.lo, spots.hi) : 128;
    let p = paths.get(b);
    if (!p) paths.set(b, (p = new Path2D()));
    p.moveTo(sx + r, sy);
    p.arc(sx, sy, r, 0, 2 * Math.PI);
    const c = spots.categories?.[i] ?? -1;
    if (showAnnotations && c >= 0) {
      let q = rings.get(c);
      if (!q) rings.set(c, (q = new Path2D()));
      q.moveTo(sx + r + 1.5, sy);
      q.arc(sx, sy, r + 1.5, 0, 2 * Math.PI);
      ringRadius = r;
    }
  });
  ctx.globalAlpha = spots.opacity ?? 1;
  for (const [b, p] of paths) {
    ctx.fillStyle = b < 0 ? MISSING : spots.lut[b];
    ctx.fill(p);
  }
  ctx.globalAlpha = 1;
  ctx.lineWidth = Math.max(1, Math.min(3, ringRadius * 0.3));
  for (const [c, q] of rings) {
    ctx.strokeStyle = CATEGORIES[c % CATEGORIES.length];
    ctx.stroke(q);
  }
  for (const overlay of spots.overlays ?? []) {
    ctx.save();
    overlay(ctx, view, { width: w, height: h }, spots);
    ctx.restore();
  }
}

/** The colour of a spot without a value. */
export const MISSING = 'rgba(128,128,128,0.5)';

/**
 * The visible tiles of the view, a coarse level first (exported images use it for their raster);
 * where a tile of the view's level is not loaded yet, the nearest lower level's tile that is
 * (for a whole slide, at least its top written level) is drawn scaled up, as map viewers do.
 */
export function drawTiles(ctx: CanvasRenderingContext2D, view: View, tiles: TileCache, w: number, h: number, dpr: number): void {
  const s = tiles.source;
  const want = Math.ceil(s.maxLevel + Math.log2(view.scale * dpr));
  const level = Math.max(0, Math.min(s.maxLevel, want));
  // A coarse level first (one or two tiles), so that nothing is blank while the sharp tiles load.
  const coarse = Math.max(0, Math.min(level, s.maxLevel - Math.max(0, Math.ceil(Math.log2(Math.max(s.width, s.height) / s.tileSize)))));
  for (const l of coarse < level ? [coarse, level] : [level]) {
    const f = 2 ** (s.maxLevel - l); // image pixels per tile pixel
    const span = s.tileSize * f; // image pixels per tile
    const cols = Math.ceil(s.width / span);
    const rows = Math.ceil(s.height / span);
    const c0 = Math.max(0, Math.floor(-view.tx / view.scale / span));
    const r0 = Math.max(0, Math.floor(-view.ty / view.scale / span));
    const c1 = Math.min(cols - 1, Math.floor((w - view.tx) / view.scale / span));
    const r1 = Math.min(rows - 1, Math.floor((h - view.ty) / view.scale / span));
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const x = c * span * view.scale + view.tx;
        const y = r * span * view.scale + view.ty;
        const size = span * view.scale;
        const img = tiles.get(l, c, r, Math.hypot(x + size / 2 - w / 2, y + size / 2 - h / 2));
        if (img) {
          // +0.5 px hides the seams between tiles at fractional scales.
          ctx.drawImage(img, x, y, img.naturalWidth * f * view.scale + 0.5, img.naturalHeight * f * view.scale + 0.5);
        } else if (l > coarse) {
          drawAncestor(ctx, tiles, l, coarse, c, r, x, y, view.scale);
        }
      }
    }
  }
}

/** Tile (c, r) of level l, drawn at (x, y) from the part of the nearest loaded lower level's tile above `coarse` that covers it. */
function drawAncestor(ctx: CanvasRenderingContext2D, tiles: TileCache, l: number, coarse: number, c: number, r: number, x: number, y: number, scale: number): void {
  const s = tiles.source;
  const top = s.onDemand ? (s.writtenLevels ?? 0) : -1;
  for (let k = 1; l - k > coarse; k++) {
    const al = l - k;
    const [ac, ar] = [c >> k, r >> k];
    // The top written level of a whole slide is loaded for this; other levels only if already shown.
    const img = al === top ? tiles.get(al, ac, ar) : tiles.peek(al, ac, ar);
    if (!img) continue;
    const part = s.tileSize / 2 ** k; // the tile's side in the ancestor's pixels
    const sx = (c - (ac << k)) * part;
    const sy = (r - (ar << k)) * part;
    const sw = Math.min(part, img.naturalWidth - sx);
    const sh = Math.min(part, img.naturalHeight - sy);
    if (sw <= 0 || sh <= 0) return;
    const f = 2 ** (s.maxLevel - al);
    ctx.drawImage(img, sx, sy, sw, sh, x, y, sw * f * scale + 0.5, sh * f * scale + 0.5);
    return;
  }
}
