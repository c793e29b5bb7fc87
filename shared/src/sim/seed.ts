/**
 * Derived seeds: one 32-bit seed from a base seed and integer coordinates (a row index, a
 * timestamp), so that a generator for "row 812" or "the window at t" can be built directly,
 * independently of how many random numbers anything else consumed. Mixing is MurmurHash3's
 * finalizer applied after each part, so nearby coordinates give unrelated seeds.
 */

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * A seed from `seed` and `parts`. Parts are floored to integers; values up to ±2^53 (e.g.
 * epoch milliseconds) are mixed in full, as two 32-bit halves.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = fmix32((seed >>> 0) ^ 0x9e3779b9);
  for (const part of parts) {
    const v = Math.floor(part);
    const lo = v >>> 0;
    const hi = Math.floor(v / 4294967296) >>> 0;
    h = fmix32((h ^ Math.imul(lo, 0xcc9e2d51)) >>> 0);
    h = fmix32((h ^ Math.imul(hi, 0x1b873593) ^ 0x6b43a9b5) >>> 0);
  }
  return h;
}
