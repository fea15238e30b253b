// One panel of the slide viewer: the tiled H&E image and the spots, drawn on a canvas under a
// shared view transform (screen = image * scale + offset).
import type { TileSource } from '../../src/protocol/webviews';
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

/** Tiles shared by all panels: each image is loaded once. */
export class TileCache {
  private readonly images = new Map<string, HTMLImageElement>();
  private loading = 0;
  private readonly queue: string[] = [];

  constructor(readonly source: TileSource, private readonly onLoad: () => void) {}

  get(level: number, col: number, row: number): HTMLImageElement | undefined {
    const url = `${this.source.base}/${level}/${col}_${row}.${this.source.format}`;
    const img = this.images.get(url);
    if (img) return img.complete && img.naturalWidth > 0 ? img : undefined;
    const fresh = new Image();
    fresh.crossOrigin = 'anonymous'; // VS Code serves webview resources with CORS: exports may read the canvas back
    this.images.set(url, fresh);
    this.queue.push(url);
    this.pump();
    return undefined;
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

/** The visible tiles of the view, a coarse level first (exported images use it for their raster). */
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
        const img = tiles.get(l, c, r);
        if (!img) continue;
        const x = c * span * view.scale + view.tx;
        const y = r * span * view.scale + view.ty;
        // +0.5 px hides the seams between tiles at fractional scales.
        ctx.drawImage(img, x, y, img.naturalWidth * f * view.scale + 0.5, img.naturalHeight * f * view.scale + 0.5);
      }
    }
  }
}
