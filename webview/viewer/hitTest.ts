// Which spots a lasso (a polygon) or a rectangle holds, in image pixels. Pure: no DOM, so the
// unit tests and the viewer run the same code. A point on the outline counts as inside, so a spot
// centred on the edge of a drawn rectangle is selected whichever way the outline was drawn.

export interface Point { x: number; y: number }
export interface Rect { x0: number; y0: number; x1: number; y1: number }

/** How far from an edge (image pixels) a point still counts as on it. */
const ON_EDGE = 1e-9;

const ON = 2;
const CROSSES = 1;
/**
 * The edge a-b against the point: ON when the point lies on it, CROSSES when the ray from the point
 * to +x crosses it (half-open in y, so a vertex on the ray counts once), else 0.
 */
function edgeHit(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  if (px >= Math.min(ax, bx) - ON_EDGE && px <= Math.max(ax, bx) + ON_EDGE && py >= Math.min(ay, by) - ON_EDGE && py <= Math.max(ay, by) + ON_EDGE) {
    const cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax);
    if (cross * cross <= ON_EDGE * ON_EDGE * Math.max(1, (bx - ax) ** 2 + (by - ay) ** 2)) return ON;
  }
  return (ay > py) !== (by > py) && px < ((bx - ax) * (py - ay)) / (by - ay) + ax ? CROSSES : 0;
}

/**
 * Whether (px, py) lies inside the polygon or on its outline (even-odd rule: a self-crossing lasso
 * excludes the parts it encloses twice). The polygon is closed implicitly (last vertex to first).
 */
export function inPolygon(px: number, py: number, polygon: readonly Point[]): boolean {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const hit = edgeHit(px, py, polygon[i].x, polygon[i].y, polygon[j].x, polygon[j].y);
    if (hit === ON) return true;
    if (hit === CROSSES) inside = !inside;
  }
  return inside;
}

/**
 * Indices of the spots whose centre is in the polygon, outline included (fewer than 3 vertices:
 * none). The edges are sorted into horizontal bands, so a spot is tested against the few edges
 * level with it, not the whole lasso: a 400-point lasso over 5,000 spots in a few milliseconds.
 */
export function spotsInPolygon(xs: readonly number[], ys: readonly number[], polygon: readonly Point[]): number[] {
  const n = polygon.length;
  if (n < 3) return [];
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const p of polygon) {
    x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y);
  }
  const bands: number[][] = Array.from({ length: Math.max(1, Math.ceil(Math.sqrt(n) * 2)) }, () => []);
  const height = (y1 - y0) / bands.length || 1;
  const band = (y: number) => Math.max(0, Math.min(bands.length - 1, Math.floor((y - y0) / height)));
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const lo = band(Math.min(polygon[i].y, polygon[j].y) - ON_EDGE);
    const hi = band(Math.max(polygon[i].y, polygon[j].y) + ON_EDGE);
    for (let b = lo; b <= hi; b++) bands[b].push(i);
  }
  const out: number[] = [];
  for (let s = 0; s < xs.length; s++) {
    const x = xs[s];
    const y = ys[s];
    // The bounding box first: most spots of a section are far from a lasso.
    if (x < x0 - ON_EDGE || x > x1 + ON_EDGE || y < y0 - ON_EDGE || y > y1 + ON_EDGE) continue;
    let inside = false;
    for (const i of bands[band(y)]) {
      const a = polygon[i];
      const b = polygon[(i + n - 1) % n];
      const hit = edgeHit(x, y, a.x, a.y, b.x, b.y);
      if (hit === ON) { inside = true; break; }
      if (hit === CROSSES) inside = !inside;
    }
    if (inside) out.push(s);
  }
  return out;
}

/** Indices of the spots whose centre is in the rectangle, edges included (corners in any order). */
export function spotsInRect(xs: readonly number[], ys: readonly number[], rect: Rect): number[] {
  const x0 = Math.min(rect.x0, rect.x1), x1 = Math.max(rect.x0, rect.x1);
  const y0 = Math.min(rect.y0, rect.y1), y1 = Math.max(rect.y0, rect.y1);
  const out: number[] = [];
  for (let i = 0; i < xs.length; i++) if (xs[i] >= x0 && xs[i] <= x1 && ys[i] >= y0 && ys[i] <= y1) out.push(i);
  return out;
}

/** A rectangle as the polygon of its four corners (to draw it as a lasso is drawn). */
export const rectPolygon = (r: Rect): Point[] => [{ x: r.x0, y: r.y0 }, { x: r.x1, y: r.y0 }, { x: r.x1, y: r.y1 }, { x: r.x0, y: r.y1 }];
