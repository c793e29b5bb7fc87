/**
 * The FFT behind Cairn's vibration features: an iterative, in-place radix-2 Cooley–Tukey
 * transform over separate real/imaginary Float64Arrays, a real-input transform built on it, a
 * magnitude spectrum and the Hann window.
 *
 * Contracts:
 * - Lengths are powers of two (≥ 2 for the complex transform, ≥ 4 for real input); anything
 *   else throws a RangeError. Windows are fixed-size, so there is no need for mixed radices.
 * - `fftInPlace` computes X[k] = Σ x[n]·e^(−2πikn/N) (no scaling); `inverse: true` computes
 *   Σ X[k]·e^(+2πikn/N)/N, so a forward then inverse transform returns the input.
 * - `realFft` packs N real samples into N/2 complex ones (even samples real, odd imaginary),
 *   transforms at half length and untangles the bins (the standard "two-for-one" trick), so a
 *   real window costs half a complex transform. It returns bins 0..N/2 (the rest mirror them).
 * - Twiddle factors and bit-reversal tables are computed once per length and cached; the
 *   functions are otherwise pure and use no Node-only API (they also run on small runtimes).
 */

interface FftTables {
  /** cos(2πk/N) and sin(2πk/N) for k < N/2. */
  cos: Float64Array;
  sin: Float64Array;
  /** Bit-reversed index of every position. */
  reversed: Uint32Array;
}

const tables = new Map<number, FftTables>();

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && (n & (n - 1)) === 0;
}

function tablesFor(n: number): FftTables {
  let t = tables.get(n);
  if (t) return t;
  const half = n >>> 1;
  const cos = new Float64Array(half);
  const sin = new Float64Array(half);
  for (let k = 0; k < half; k++) {
    cos[k] = Math.cos((2 * Math.PI * k) / n);
    sin[k] = Math.sin((2 * Math.PI * k) / n);
  }
  const bits = Math.log2(n);
  const reversed = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let b = 0, v = i; b < bits; b++, v >>>= 1) r = (r << 1) | (v & 1);
    reversed[i] = r;
  }
  t = { cos, sin, reversed };
  tables.set(n, t);
  return t;
}

/** Complex FFT of `re + i·im` in place (see the header for sign and scaling). */
export function fftInPlace(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (im.length !== n) throw new RangeError(`fft: real part has ${n} values, imaginary part ${im.length}`);
  if (n < 2 || !isPowerOfTwo(n)) throw new RangeError(`fft: length must be a power of two ≥ 2, got ${n}`);
  const { cos, sin, reversed } = tablesFor(n);
  for (let i = 0; i < n; i++) {
    const j = reversed[i]!;
    if (j > i) {
      const tr = re[i]!;
      re[i] = re[j]!;
      re[j] = tr;
      const ti = im[i]!;
      im[i] = im[j]!;
      im[j] = ti;
    }
  }
  // Forward uses e^(−iθ): w = cos θ − i sin θ; inverse flips the sign of the sine.
  const sign = inverse ? 1 : -1;
  for (let size = 2; size <= n; size <<= 1) {
    const half = size >>> 1;
    const step = n / size;
    for (let k = 0; k < half; k++) {
      const wr = cos[k * step]!;
      const wi = sign * sin[k * step]!;
      for (let a = k; a < n; a += size) {
        const b = a + half;
        const br = re[b]!;
        const bi = im[b]!;
        const xr = br * wr - bi * wi;
        const xi = br * wi + bi * wr;
        const ar = re[a]!;
        const ai = im[a]!;
        re[b] = ar - xr;
        im[b] = ai - xi;
        re[a] = ar + xr;
        im[a] = ai + xi;
      }
    }
  }
  if (inverse) {
    for (let i = 0; i < n; i++) {
      re[i] = re[i]! / n;
      im[i] = im[i]! / n;
    }
  }
}

/**
 * The DFT of a real signal: bins 0..N/2 as `{re, im}` (each N/2 + 1 long). `input` is not
 * modified.
 */
export function realFft(input: ArrayLike<number>): { re: Float64Array; im: Float64Array } {
  const n = input.length;
  if (n < 4 || !isPowerOfTwo(n)) throw new RangeError(`realFft: length must be a power of two ≥ 4, got ${n}`);
  const m = n >>> 1;
  const zr = new Float64Array(m);
  const zi = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    zr[i] = input[2 * i]!;
    zi[i] = input[2 * i + 1]!;
  }
  fftInPlace(zr, zi);
  // With Z = FFT(z), the transforms of the even and odd samples are
  //   E[k] = (Z[k] + conj Z[m−k]) / 2,  O[k] = (Z[k] − conj Z[m−k]) / 2i,
  // and X[k] = E[k] + e^(−2πik/N)·O[k] for k = 0..m (Z[m] ≡ Z[0]).
  const { cos, sin } = tablesFor(n);
  const re = new Float64Array(m + 1);
  const im = new Float64Array(m + 1);
  for (let k = 0; k <= m; k++) {
    const a = k % m;
    const b = (m - k) % m;
    const er = (zr[a]! + zr[b]!) / 2;
    const ei = (zi[a]! - zi[b]!) / 2;
    const or = (zi[a]! + zi[b]!) / 2;
    const oi = -(zr[a]! - zr[b]!) / 2;
    // e^(−2πik/N) = cos − i sin; for k = m it is −1 (outside the half-length table).
    const wr = k < m ? cos[k]! : -1;
    const wi = k < m ? -sin[k]! : 0;
    re[k] = er + (or * wr - oi * wi);
    im[k] = ei + (or * wi + oi * wr);
  }
  return { re, im };
}

/** |X[k]| for k = 0..N/2 of a real signal, unscaled. */
export function magnitudeSpectrum(input: ArrayLike<number>): Float64Array {
  const { re, im } = realFft(input);
  const out = new Float64Array(re.length);
  for (let k = 0; k < out.length; k++) out[k] = Math.sqrt(re[k]! * re[k]! + im[k]! * im[k]!);
  return out;
}

/**
 * The periodic ("DFT-even") Hann window w[n] = 0.5 − 0.5·cos(2πn/N). Periodic rather than
 * symmetric because it is used for spectral analysis: a sine on an exact bin then leaks only
 * into its two neighbours, and Σw = N/2 exactly (the coherent gain used to scale amplitudes).
 */
export function hannWindow(n: number): Float64Array {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`hannWindow: length must be a positive integer, got ${n}`);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
  return w;
}

/**
 * The DTFT of `x[n]·w[n]` at one frequency (cycles per sample, need not be a bin), as
 * `{re, im}` of Σ x[n]·w[n]·e^(−2πi·f·n). For the few off-grid frequencies a feature needs, a
 * direct sum is cheaper than a zero-padded transform. `w` defaults to rectangular.
 */
export function dtftAt(x: ArrayLike<number>, cyclesPerSample: number, w?: ArrayLike<number>): { re: number; im: number } {
  const n = x.length;
  if (w && w.length !== n) throw new RangeError(`dtftAt: window has ${w.length} values, signal ${n}`);
  // Rotate a unit phasor instead of calling cos/sin per sample; renormalize every 64 steps so
  // rounding cannot accumulate.
  const c = Math.cos(2 * Math.PI * cyclesPerSample);
  const s = -Math.sin(2 * Math.PI * cyclesPerSample);
  let pr = 1;
  let pi = 0;
  let re = 0;
  let im = 0;
  for (let i = 0; i < n; i++) {
    const v = w ? x[i]! * w[i]! : x[i]!;
    re += v * pr;
    im += v * pi;
    const nr = pr * c - pi * s;
    pi = pr * s + pi * c;
    pr = nr;
    if ((i & 63) === 63) {
      const m = Math.sqrt(pr * pr + pi * pi);
      pr /= m;
      pi /= m;
    }
  }
  return { re, im };
}
