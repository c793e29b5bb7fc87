/**
 * Seeded pseudo-random numbers for everything Cairn generates that must be reproducible:
 * initial weights, demo models, synthetic training data, simulated inputs and fleets. The same seed gives the same sequence
 * on every platform and Node version (pure 32-bit integer arithmetic, no Math.random), which is
 * what makes "same seed → identical model bytes" hold.
 *
 * mulberry32 is not cryptographic and has a 2^32 period; that is plenty for weights and data.
 */

/** A generator of uniform numbers in [0, 1). */
export type Rng = () => number;

/** mulberry32 (Tommy Ettinger). `seed` is reduced to an unsigned 32-bit integer. */
export function mulberry32(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A standard normal sample (Box–Muller). Uses two uniforms per call and discards the second
 * normal, so the number of uniforms consumed per sample is fixed and sequences stay aligned.
 */
export function gaussian(rng: Rng): number {
  // 1 - u keeps the logarithm's argument in (0, 1].
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** A Float32Array of `length` normal samples with the given standard deviation. */
export function gaussianArray(rng: Rng, length: number, std = 1): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = gaussian(rng) * std;
  return out;
}

/** FNV-1a of a string: a stable 32-bit seed from a name such as a device id. */
export function seedFromString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
