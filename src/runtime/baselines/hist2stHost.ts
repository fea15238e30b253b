/**
 * Hist2ST's host-side inputs: the spot graph the learner feeds (adjacency [n, n]) and the
 * augmented copies of a section's crops its self-distillation trains on.
 */

/**
 * The host's adjacency for `hist2stAdjacency`: the original's calcADJ(neighs = 4, prune 'Grid')
 * row-normalised as gs_block's mean aggregation does, with ties broken by index. A spot without a
 * neighbour within distance 2 keeps an all-zero row (its aggregate is 0; the original's 0/0 is
 * NaN, the spec's B11). Returns [n * n], row i = spot i's weights over the others.
 */
export function hist2stAdjacency(rows: readonly number[], cols: readonly number[], neighbours = 4, maxDistance = 2): Float32Array {
  const n = rows.length;
  if (cols.length !== n) throw new Error(`hist2stAdjacency: ${n} rows but ${cols.length} cols`);
  const adj = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    const others: { j: number; d: number }[] = [];
    for (let j = 0; j < n; j++) if (j !== i) others.push({ j, d: Math.hypot(rows[i] - rows[j], cols[i] - cols[j]) });
    others.sort((a, b) => a.d - b.d || a.j - b.j);
    const kept = others.slice(0, neighbours).filter((o) => o.d <= maxDistance);
    for (const o of kept) adj[i * n + o.j] = 1 / kept.length;
  }
  return adj;
}

/** Host augmentation of one copy (torchvision's RandomGrayscale, RandomRotation, RandomHorizontalFlip). */
export interface CopyAugmentation { grayscale: boolean; degrees: number; flip: boolean }

/**
 * One augmented copy of n crops [n, S, S, 3] (NHWC), the same transform for every crop (the
 * original transforms the section's 4-D stack at once), in Compose's order: grayscale with
 * torchvision's tensor weights (0.2989, 0.587, 0.114) replicated to 3 channels; rotation by
 * `degrees` counter-clockwise about the centre, nearest neighbour (torchvision's default for
 * RandomRotation), zero fill; horizontal flip.
 */
export function augmentCrops(crops: Float32Array, n: number, S: number, a: CopyAugmentation): Float32Array {
  const out = new Float32Array(n * S * S * 3);
  const t = (a.degrees * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const c = (S - 1) / 2;
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const xo = a.flip ? S - 1 - x : x; // flipped last: output x reads the rotated image at S-1-x
      // Inverse rotation (y down): the source of rotated pixel (xo, y).
      const sx = Math.round(cos * (xo - c) - sin * (y - c) + c);
      const sy = Math.round(sin * (xo - c) + cos * (y - c) + c);
      if (sx < 0 || sx >= S || sy < 0 || sy >= S) continue;
      for (let i = 0; i < n; i++) {
        const src = ((i * S + sy) * S + sx) * 3;
        const dst = ((i * S + y) * S + x) * 3;
        if (a.grayscale) {
          const l = 0.2989 * crops[src] + 0.587 * crops[src + 1] + 0.114 * crops[src + 2];
          out[dst] = l; out[dst + 1] = l; out[dst + 2] = l;
        } else {
          out[dst] = crops[src]; out[dst + 1] = crops[src + 1]; out[dst + 2] = crops[src + 2];
        }
      }
    }
  }
  return out;
}

