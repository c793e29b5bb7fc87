/**
 * The vibration feature pipeline `cairn.vibration` 1.0.0: one window of accelerometer samples
 * in, a short fixed-order feature vector out. The same function runs when a dataset is built
 * for training and on the device before every inference, so the model never sees features
 * computed differently from those it was trained on. A bundle's manifest names the pipeline
 * (`featurePipelineDescriptor()`); any change to what a feature means, to their order, to the
 * window size or to the sample rate is a new version.
 *
 * Input contract: exactly `windowSize` (1024) finite samples, in g, at `sampleRateHz`
 * (12 800 Hz: an 80 ms window, 12.5 Hz bins, Nyquist 6.4 kHz), and optionally a finite
 * temperature in °C. A source at another rate must resample first: bands are defined in Hz,
 * so a silent mismatch would shift every spectral feature. Violations throw a
 * `FeatureInputError` whose `problem` names the rule broken.
 *
 * Features, in order. x is the window minus its mean (accelerometers are AC-coupled; a DC
 * offset is a sensor artefact, not vibration), N = 1024, P_k = |X_k|² the power of bin k
 * (f_k = k·12.5 Hz) of the Hann-windowed x, bins 1..N/2.
 *
 *  0 rms_g                 √(Σx²/N): RMS acceleration (g); equals the standard deviation.
 *  1 peak_g                max |x| (g).
 *  2 crest_factor          peak / rms (1). Sine √2; Gaussian noise ≈ 3–4 over a window;
 *                          bearing impacts higher.
 *  3 kurtosis              EXCESS kurtosis m4/m2² − 3 with population central moments
 *                          m_j = Σx^j/N (1). Gaussian 0, sine −1.5, impulsive signals ≫ 0.
 *  4 skewness              m3/m2^1.5 (1). Symmetric signals ≈ 0.
 *  5–12 band_<lo>_<hi>_hz  fraction of the spectral power Σ P_k in each band, lo ≤ f_k < hi
 *                          (the last band includes Nyquist) (1; the eight sum to 1). Octaves
 *                          from 50 Hz (BAND_EDGES_HZ): below 200 Hz the running-speed
 *                          harmonics (1× of slow machines in 0–50, 2×/3× and fast 1× above),
 *                          200–800 Hz bearing defect lines, 1.6–6.4 kHz the structural
 *                          resonances that bearing impacts ring. Fractions, not absolute
 *                          energies: a sensor whose gain drifts changes rms and peak but not
 *                          the spectral shape.
 * 13 spectral_centroid_hz  Σ f_k·P_k / Σ P_k (Hz).
 * 14 dominant_low_hz       frequency of the strongest line between 10 and 160 Hz (Hz): the
 *                          largest P_k there, refined within ±1 bin on a 2 Hz grid by
 *                          Hann-weighted least-squares sine fits (sine, cosine and constant
 *                          together, scored by the variance they explain), with a parabola
 *                          through the best scores. The running speed on a healthy, imbalanced
 *                          or bearing-faulty machine; twice it under misalignment (2× leads).
 * 15 harmonic_envelope_cv  std/mean of the envelope of the 10–400 Hz band over the central half
 *                          of the window (1). The envelope is the magnitude of the analytic
 *                          signal, obtained by keeping the band's positive-frequency bins of the
 *                          window mirrored to twice its length (so the transform sees no jump at
 *                          the edges). One harmonic (imbalance: 1×) has a flat envelope, ≤ 0.15
 *                          (not 0: a window holds 1.6 cycles of a 20 Hz shaft, too few for the
 *                          transform to settle); several harmonics of one shaft (misalignment:
 *                          1×, 2×, 3×) beat at the running speed and make it fluctuate (> 0.3).
 *                          Unlike a ratio of band energies this needs no knowledge of the speed,
 *                          and an 80 ms window cannot resolve 1× from 2× of a 20 Hz shaft.
 * 16 envelope_modulation   modulation index of the 1–6.4 kHz envelope at dominant_low_hz (1):
 *                          e = |analytic signal of the band| (bins masked, no mirroring),
 *                          ē its Hann-weighted mean, index = 2·|Σ w_n (e_n − ē) e^(−2πi f n/fs)|
 *                          / (Σ w_n · ē). Bearing impacts ring in that band (envelope analysis,
 *                          Randall & Antoni, MSSP 25 (2011)). An inner-race defect turns with
 *                          the shaft through the load zone, so its impacts are
 *                          amplitude-modulated at the running speed (index ≈ 0.5); an
 *                          outer-race defect sits still in the load zone (≈ 0).
 * 17 temperature_c         temperature at the sensor (°C), 0 when absent.
 * 18 temperature_present   1 when a temperature was given, else 0.
 *
 * A window with no variation (every sample equal) has rms 0; its other signal features are
 * defined as 0 rather than NaN. No Node-only API: this also runs on small runtimes.
 */
import { dtftAt, fftInPlace, hannWindow, realFft } from './fft.js';

export const BAND_EDGES_HZ = [0, 50, 100, 200, 400, 800, 1600, 3200, 6400] as const;
const LOW_SEARCH_HZ = [10, 160] as const;
const REFINE_STEP_HZ = 2;
const HARMONIC_BAND_HZ = [10, 400] as const;
const RESONANCE_BAND_HZ = [1000, 6400] as const;

export const FEATURE_PIPELINE = {
  name: 'cairn.vibration',
  version: '1.0.0',
  sampleRateHz: 12_800,
  windowSize: 1024,
  window: 'hann-periodic',
  kurtosis: 'excess',
  bandEdgesHz: BAND_EDGES_HZ,
  harmonicBandHz: HARMONIC_BAND_HZ,
  resonanceBandHz: RESONANCE_BAND_HZ,
  temperatureUnit: 'degC',
} as const;

export const FEATURE_NAMES: readonly string[] = Object.freeze([
  'rms_g',
  'peak_g',
  'crest_factor',
  'kurtosis',
  'skewness',
  ...BAND_EDGES_HZ.slice(0, -1).map((lo, i) => `band_${lo}_${BAND_EDGES_HZ[i + 1]!}_hz`),
  'spectral_centroid_hz',
  'dominant_low_hz',
  'harmonic_envelope_cv',
  'envelope_modulation',
  'temperature_c',
  'temperature_present',
]);

export const FEATURE_COUNT = FEATURE_NAMES.length;

/** Index of a feature by name; throws on an unknown name. */
export function featureIndex(name: string): number {
  const i = FEATURE_NAMES.indexOf(name);
  if (i < 0) throw new RangeError(`unknown feature '${name}'; known: ${FEATURE_NAMES.join(', ')}`);
  return i;
}

/** What a bundle manifest's `features` section records about the pipeline. */
export interface FeaturePipelineDescriptor {
  name: string;
  version: string;
  sampleRateHz: number;
  windowSize: number;
  featureNames: string[];
}

export function featurePipelineDescriptor(): FeaturePipelineDescriptor {
  return {
    name: FEATURE_PIPELINE.name,
    version: FEATURE_PIPELINE.version,
    sampleRateHz: FEATURE_PIPELINE.sampleRateHz,
    windowSize: FEATURE_PIPELINE.windowSize,
    featureNames: [...FEATURE_NAMES],
  };
}

export type FeatureInputProblem = 'window_size' | 'sample_rate' | 'non_finite' | 'temperature';

export class FeatureInputError extends Error {
  override readonly name = 'FeatureInputError';
  constructor(
    readonly problem: FeatureInputProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface ExtractFeaturesOptions {
  sampleRateHz: number;
  /** Temperature at the sensor (°C); omit it (or pass null) when the device has none. */
  temperatureC?: number | null;
}

const hann = hannWindow(FEATURE_PIPELINE.windowSize);
const pipelineLabel = `${FEATURE_PIPELINE.name} ${FEATURE_PIPELINE.version}`;

function validate(window: ArrayLike<number>, opts: ExtractFeaturesOptions): void {
  const { windowSize, sampleRateHz } = FEATURE_PIPELINE;
  if (window.length !== windowSize) {
    throw new FeatureInputError('window_size', `${pipelineLabel} needs windows of exactly ${windowSize} samples, got ${window.length}`);
  }
  if (opts.sampleRateHz !== sampleRateHz) {
    throw new FeatureInputError('sample_rate', `${pipelineLabel} is defined at ${sampleRateHz} Hz, got ${opts.sampleRateHz} Hz: resample the source first`);
  }
  for (let i = 0; i < window.length; i++) {
    if (!Number.isFinite(window[i]!)) throw new FeatureInputError('non_finite', `sample ${i} of the window is ${window[i]}; every sample must be finite`);
  }
  if (opts.temperatureC != null && !Number.isFinite(opts.temperatureC)) {
    throw new FeatureInputError('temperature', `temperatureC must be finite when given, got ${opts.temperatureC}`);
  }
}

/** The feature vector of one window (order and definitions in the header). */
export function extractFeatures(window: ArrayLike<number>, opts: ExtractFeaturesOptions): Float32Array {
  validate(window, opts);
  const n = window.length;
  const fs = opts.sampleRateHz;
  const out = new Float32Array(FEATURE_COUNT);
  let f = 0;

  // Time domain, on the mean-removed window.
  let mean = 0;
  for (let i = 0; i < n; i++) mean += window[i]!;
  mean /= n;
  const x = new Float64Array(n);
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  let peak = 0;
  for (let i = 0; i < n; i++) {
    const v = window[i]! - mean;
    x[i] = v;
    const v2 = v * v;
    m2 += v2;
    m3 += v2 * v;
    m4 += v2 * v2;
    if (Math.abs(v) > peak) peak = Math.abs(v);
  }
  m2 /= n;
  m3 /= n;
  m4 /= n;
  const rms = Math.sqrt(m2);
  // Rounding leaves a constant window with a tiny nonzero m2; treat it as flat.
  const flat = !(rms > 1e-12 * (Math.abs(mean) + 1));
  out[f++] = flat ? 0 : rms;
  out[f++] = flat ? 0 : peak;
  out[f++] = flat ? 0 : peak / rms;
  out[f++] = flat ? 0 : m4 / (m2 * m2) - 3;
  out[f++] = flat ? 0 : m3 / Math.pow(m2, 1.5);

  // Power spectrum of the Hann-windowed window: band fractions and centroid.
  const windowed = new Float64Array(n);
  for (let i = 0; i < n; i++) windowed[i] = x[i]! * hann[i]!;
  const { re, im } = realFft(windowed);
  const binHz = fs / n;
  const power = new Float64Array(n / 2 + 1);
  let total = 0;
  let weighted = 0;
  const bands = new Float64Array(BAND_EDGES_HZ.length - 1);
  for (let k = 1, band = 0; k <= n / 2; k++) {
    const p = re[k]! * re[k]! + im[k]! * im[k]!;
    power[k] = p;
    const hz = k * binHz;
    while (band < bands.length - 1 && hz >= BAND_EDGES_HZ[band + 1]!) band++;
    bands[band] = bands[band]! + p;
    total += p;
    weighted += hz * p;
  }
  const spectral = !flat && total > 0;
  for (let b = 0; b < bands.length; b++) out[f++] = spectral ? bands[b]! / total : 0;
  out[f++] = spectral ? weighted / total : 0;

  const lowHz = spectral ? dominantLowHz(x, power, fs) : 0;
  out[f++] = lowHz;
  out[f++] = spectral ? harmonicEnvelopeCv(x, fs) : 0;
  out[f++] = spectral ? envelopeModulation(bandEnvelope(x, fs, RESONANCE_BAND_HZ, false), lowHz / fs) : 0;

  const hasTemperature = opts.temperatureC != null;
  out[f++] = hasTemperature ? (opts.temperatureC as number) : 0;
  out[f++] = hasTemperature ? 1 : 0;
  return out;
}

/** Feature 14: the strongest bin in the search range, refined by sine fits (see header). */
function dominantLowHz(x: Float64Array, power: Float64Array, fs: number): number {
  const binHz = fs / x.length;
  const [lo, hi] = LOW_SEARCH_HZ;
  let bestBin = -1;
  for (let k = Math.ceil(lo / binHz); k * binHz <= hi; k++) {
    if (bestBin < 0 || power[k]! > power[bestBin]!) bestBin = k;
  }
  const from = Math.max(lo, Math.ceil((bestBin - 1) * binHz));
  const to = Math.min(hi, Math.floor((bestBin + 1) * binHz));
  const scores: number[] = [];
  for (let hz = from; hz <= to; hz += REFINE_STEP_HZ) scores.push(sineFitScore(x, hz / fs));
  let best = 0;
  for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
  let delta = 0;
  if (best > 0 && best < scores.length - 1) {
    const a = scores[best - 1]!;
    const b = scores[best]!;
    const c = scores[best + 1]!;
    const denom = a - 2 * b + c;
    if (denom < 0) delta = Math.max(-0.5, Math.min(0.5, (0.5 * (a - c)) / denom));
  }
  return from + (best + delta) * REFINE_STEP_HZ;
}

/**
 * How well a sine at f fits: the Hann-weighted least-squares fit x ≈ a·cos θ + b·sin θ + c,
 * θ = 2π·f·n, scored by the weighted variance it explains.
 * Fitting the constant and both quadratures together is what keeps a line a few bins above DC
 * unbiased: a plain DTFT there is pulled by the window's DC leakage and by the line's own
 * negative-frequency image (on a 20 Hz shaft, by more than a hertz).
 */
function sineFitScore(x: Float64Array, cyclesPerSample: number): number {
  const rc = Math.cos(2 * Math.PI * cyclesPerSample);
  const rs = Math.sin(2 * Math.PI * cyclesPerSample);
  let cos = 1;
  let sin = 0;
  let sw = 0, swc = 0, sws = 0, swcc = 0, swss = 0, swcs = 0, swx = 0, swxc = 0, swxs = 0;
  for (let i = 0; i < x.length; i++) {
    const w = hann[i]!;
    const v = x[i]!;
    const wc = w * cos;
    const ws = w * sin;
    sw += w;
    swc += wc;
    sws += ws;
    swcc += wc * cos;
    swss += ws * sin;
    swcs += wc * sin;
    swx += w * v;
    swxc += wc * v;
    swxs += ws * v;
    const next = cos * rc - sin * rs;
    sin = sin * rc + cos * rs;
    cos = next;
  }
  // Normal equations [[cc, cs, c], [cs, ss, s], [c, s, w]]·[a, b, c] = [xc, xs, x], solved by
  // Cramer's rule (the matrix is symmetric).
  const det3 = (a11: number, a12: number, a13: number, a21: number, a22: number, a23: number, a31: number, a32: number, a33: number): number =>
    a11 * (a22 * a33 - a23 * a32) - a12 * (a21 * a33 - a23 * a31) + a13 * (a21 * a32 - a22 * a31);
  const det = det3(swcc, swcs, swc, swcs, swss, sws, swc, sws, sw);
  if (!(Math.abs(det) > 0)) return 0;
  const a = det3(swxc, swcs, swc, swxs, swss, sws, swx, sws, sw) / det;
  const b = det3(swcc, swxc, swc, swcs, swxs, sws, swc, swx, sw) / det;
  const c = det3(swcc, swcs, swxc, swcs, swss, swxs, swc, sws, swx) / det;
  // Weighted variance explained beyond the constant alone (the generalized Lomb–Scargle
  // periodogram). Not the amplitude a²+b²: below a cycle per window a large sine fitted to a
  // fragment of the signal can have more amplitude than the true line, but never explains more.
  return Math.max(0, a * swxc + b * swxs + c * swx - (swx * swx) / sw);
}

/**
 * The envelope (magnitude of the analytic signal) of `x` restricted to a band: transform, keep
 * the band's positive-frequency bins doubled, zero the rest, transform back. With `mirror` the
 * transform runs over x followed by x reversed, which removes the jump between the window's
 * ends that would otherwise ring through a narrow low band.
 */
function bandEnvelope(x: Float64Array, fs: number, [loHz, hiHz]: readonly [number, number], mirror: boolean): Float64Array {
  const n = x.length;
  const len = mirror ? 2 * n : n;
  const re = new Float64Array(len);
  const im = new Float64Array(len);
  for (let i = 0; i < n; i++) {
    re[i] = x[i]!;
    if (mirror) re[len - 1 - i] = x[i]!;
  }
  fftInPlace(re, im);
  const binHz = fs / len;
  const lo = Math.max(1, Math.ceil(loHz / binHz));
  const hi = Math.min(len / 2 - 1, Math.floor(hiHz / binHz));
  for (let k = 0; k < len; k++) {
    const keep = k >= lo && k <= hi;
    re[k] = keep ? 2 * re[k]! : 0;
    im[k] = keep ? 2 * im[k]! : 0;
  }
  fftInPlace(re, im, true);
  const env = new Float64Array(n);
  for (let i = 0; i < n; i++) env[i] = Math.sqrt(re[i]! * re[i]! + im[i]! * im[i]!);
  return env;
}

/** Feature 15 (see header). */
function harmonicEnvelopeCv(x: Float64Array, fs: number): number {
  const env = bandEnvelope(x, fs, HARMONIC_BAND_HZ, true);
  const from = env.length >> 2;
  const to = env.length - from;
  let s = 0;
  let s2 = 0;
  for (let i = from; i < to; i++) {
    s += env[i]!;
    s2 += env[i]! * env[i]!;
  }
  const m = s / (to - from);
  if (!(m > 0)) return 0;
  return Math.sqrt(Math.max(0, s2 / (to - from) - m * m)) / m;
}

/** Feature 16 (see header); `cyclesPerSample` is dominant_low_hz / fs. */
function envelopeModulation(env: Float64Array, cyclesPerSample: number): number {
  if (!(cyclesPerSample > 0)) return 0;
  let sw = 0;
  let swe = 0;
  for (let i = 0; i < env.length; i++) {
    sw += hann[i]!;
    swe += hann[i]! * env[i]!;
  }
  const mean = swe / sw;
  if (!(mean > 0)) return 0;
  const ac = new Float64Array(env.length);
  for (let i = 0; i < env.length; i++) ac[i] = env[i]! - mean;
  const { re, im } = dtftAt(ac, cyclesPerSample, hann);
  return (2 * Math.hypot(re, im)) / (sw * mean);
}
