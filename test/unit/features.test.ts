// The FFT and the vibration feature pipeline against signals whose answers are known in closed
// form: sines, sums of harmonics, amplitude-modulated carriers and white noise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BAND_EDGES_HZ,
  FEATURE_COUNT,
  FEATURE_NAMES,
  FEATURE_PIPELINE,
  FeatureInputError,
  dtftAt,
  extractFeatures,
  featureIndex,
  featurePipelineDescriptor,
  fftInPlace,
  gaussianArray,
  hannWindow,
  magnitudeSpectrum,
  mulberry32,
  realFft,
} from '@cairn/shared';

const FS = FEATURE_PIPELINE.sampleRateHz;
const N = FEATURE_PIPELINE.windowSize;
const BIN_HZ = FS / N;

/** Σ amplitude·sin(2π·f·t + phase) sampled at FS, as float32 like a real source. */
function tones(parts: { hz: number; amplitude: number; phase?: number }[], n = N): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const p of parts) v += p.amplitude * Math.sin((2 * Math.PI * p.hz * i) / FS + (p.phase ?? 0));
    out[i] = v;
  }
  return out;
}

const feature = (v: Float32Array, name: string): number => v[featureIndex(name)]!;
const features = (x: ArrayLike<number>, temperatureC?: number | null): Float32Array => extractFeatures(x, { sampleRateHz: FS, temperatureC });
const near = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

function naiveDft(x: ArrayLike<number>, im: ArrayLike<number> = new Float64Array(x.length)): { re: Float64Array; im: Float64Array } {
  const n = x.length;
  const re = new Float64Array(n);
  const out = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    for (let t = 0; t < n; t++) {
      const a = (-2 * Math.PI * k * t) / n;
      re[k] = re[k]! + x[t]! * Math.cos(a) - im[t]! * Math.sin(a);
      out[k] = out[k]! + x[t]! * Math.sin(a) + im[t]! * Math.cos(a);
    }
  }
  return { re, im: out };
}

test('the complex FFT equals a direct DFT and inverts exactly', () => {
  const rng = mulberry32(11);
  for (const n of [2, 4, 8, 64, 256]) {
    const xr = Float64Array.from({ length: n }, () => rng() * 2 - 1);
    const xi = Float64Array.from({ length: n }, () => rng() * 2 - 1);
    const expected = naiveDft(xr, xi);
    const re = Float64Array.from(xr);
    const im = Float64Array.from(xi);
    fftInPlace(re, im);
    for (let k = 0; k < n; k++) {
      near(re[k]!, expected.re[k]!, 1e-9 * n, `re[${k}] (n=${n})`);
      near(im[k]!, expected.im[k]!, 1e-9 * n, `im[${k}] (n=${n})`);
    }
    fftInPlace(re, im, true);
    for (let t = 0; t < n; t++) {
      near(re[t]!, xr[t]!, 1e-12, `round trip re[${t}]`);
      near(im[t]!, xi[t]!, 1e-12, `round trip im[${t}]`);
    }
  }
});

test('the real-input FFT equals the first half of the complex transform', () => {
  const rng = mulberry32(12);
  for (const n of [4, 8, 32, 1024]) {
    const x = Float64Array.from({ length: n }, () => rng() * 2 - 1);
    const re = Float64Array.from(x);
    const im = new Float64Array(n);
    fftInPlace(re, im);
    const half = realFft(x);
    assert.equal(half.re.length, n / 2 + 1);
    for (let k = 0; k <= n / 2; k++) {
      near(half.re[k]!, re[k]!, 1e-9 * n, `re[${k}] (n=${n})`);
      near(half.im[k]!, im[k]!, 1e-9 * n, `im[${k}] (n=${n})`);
    }
    const dtft = dtftAt(x, 3 / n);
    near(dtft.re, re[3]!, 1e-9 * n, 'DTFT at a bin = the bin (re)');
    near(dtft.im, im[3]!, 1e-9 * n, 'DTFT at a bin = the bin (im)');
  }
});

test('FFT lengths must be powers of two', () => {
  assert.throws(() => fftInPlace(new Float64Array(12), new Float64Array(12)), RangeError);
  assert.throws(() => fftInPlace(new Float64Array(8), new Float64Array(4)), RangeError);
  assert.throws(() => realFft(new Float64Array(1000)), /power of two/);
});

test('the periodic Hann window has coherent gain N/2 and zero at the start', () => {
  const w = hannWindow(N);
  assert.equal(w[0], 0);
  near(w[N / 2]!, 1, 1e-15, 'centre');
  near(
    w.reduce((s, v) => s + v, 0),
    N / 2,
    1e-9,
    'Σw',
  );
});

test('the spectrum of a sine peaks at its bin with its amplitude', () => {
  const hann = hannWindow(N);
  for (const bin of [3, 17, 80, 200, 411]) {
    const amplitude = 0.7;
    const x = tones([{ hz: bin * BIN_HZ, amplitude, phase: 0.3 }]);
    const spectrum = magnitudeSpectrum(Float64Array.from(x, (v, i) => v * hann[i]!));
    let peak = 0;
    for (let k = 1; k < spectrum.length; k++) if (spectrum[k]! > spectrum[peak]!) peak = k;
    assert.equal(peak, bin, `sine at ${bin * BIN_HZ} Hz`);
    near((2 * spectrum[bin]!) / (N / 2), amplitude, 1e-5, 'amplitude from the scaled peak');
  }
});

test('a pure sine has the textbook time-domain features', () => {
  // 1000 Hz is exactly 80 cycles of the window, so the window mean is 0 and no cycle is cut.
  for (const amplitude of [0.05, 1, 7.5]) {
    const v = features(tones([{ hz: 1000, amplitude }]));
    near(feature(v, 'rms_g') / (amplitude / Math.SQRT2), 1, 1e-3, 'rms = A/√2');
    near(feature(v, 'peak_g') / amplitude, 1, 1e-3, 'peak = A');
    near(feature(v, 'crest_factor'), Math.SQRT2, 1e-3, 'crest factor = √2');
    near(feature(v, 'kurtosis'), -1.5, 1e-3, 'excess kurtosis of a sine = −1.5');
    near(feature(v, 'skewness'), 0, 1e-3, 'skewness of a sine');
    near(feature(v, 'spectral_centroid_hz'), 1000, 1e-3, 'centroid of a sine on a bin');
  }
  // Off the bin grid and not a whole number of cycles the same holds approximately.
  const v = features(tones([{ hz: 437.3, amplitude: 2, phase: 1 }]));
  near(feature(v, 'rms_g') / Math.SQRT2, 1, 1e-2, 'rms of an off-grid sine');
  near(feature(v, 'kurtosis'), -1.5, 2e-2, 'kurtosis of an off-grid sine');
});

test('each band takes the power of a sine at its centre', () => {
  for (let b = 0; b < BAND_EDGES_HZ.length - 1; b++) {
    const lo = BAND_EDGES_HZ[b]!;
    const hi = BAND_EDGES_HZ[b + 1]!;
    // A bin in the middle of the band: the Hann window leaks only into the two neighbours.
    const hz = Math.round((lo + hi) / 2 / BIN_HZ) * BIN_HZ;
    const v = features(tones([{ hz, amplitude: 1 }]));
    for (let other = 0; other < BAND_EDGES_HZ.length - 1; other++) {
      const name = `band_${BAND_EDGES_HZ[other]}_${BAND_EDGES_HZ[other + 1]}_hz`;
      const fraction = feature(v, name);
      if (other === b) assert.ok(fraction > 0.999, `${hz} Hz: ${name} holds ${fraction}`);
      else assert.ok(fraction < 1e-3, `${hz} Hz leaks ${fraction} into ${name}`);
    }
  }
  // Two tones of equal amplitude in different bands split the power evenly.
  const v = features(tones([{ hz: 300, amplitude: 1 }, { hz: 2400, amplitude: 1 }]));
  near(feature(v, 'band_200_400_hz'), 0.5, 1e-3, 'half the power at 300 Hz');
  near(feature(v, 'band_1600_3200_hz'), 0.5, 1e-3, 'half the power at 2400 Hz');
});

test('white noise has near-zero skewness and excess kurtosis and a flat spectrum', () => {
  const rng = mulberry32(2024);
  const windows = 64;
  let kurtosis = 0;
  let skewness = 0;
  let highBand = 0;
  let crest = 0;
  for (let w = 0; w < windows; w++) {
    const v = features(gaussianArray(rng, N, 0.3));
    kurtosis += feature(v, 'kurtosis') / windows;
    skewness += feature(v, 'skewness') / windows;
    highBand += feature(v, 'band_3200_6400_hz') / windows;
    crest += feature(v, 'crest_factor') / windows;
    near(feature(v, 'rms_g'), 0.3, 0.03, 'rms of noise with σ = 0.3');
  }
  // The largest of 1024 |N(0, 1)| samples is about 3.4σ on average.
  assert.ok(crest > 3 && crest < 4, `mean crest factor of noise ${crest}`);
  // Standard errors over 64 windows of 1024: √(24/N)/8 ≈ 0.019 and √(6/N)/8 ≈ 0.010.
  near(kurtosis, 0, 0.08, 'mean excess kurtosis of Gaussian noise');
  near(skewness, 0, 0.04, 'mean skewness of Gaussian noise');
  // The top octave is half the spectrum.
  near(highBand, 0.5, 0.02, 'share of the top octave');
});

test('dominant_low_hz finds the running speed and harmonic_envelope_cv tells one harmonic from several', () => {
  for (const shaftHz of [20, 29.5, 60, 100]) {
    const single = features(tones([{ hz: shaftHz, amplitude: 0.5, phase: 0.4 }]));
    near(feature(single, 'dominant_low_hz'), shaftHz, 0.5, `running speed ${shaftHz} Hz`);
    assert.ok(feature(single, 'harmonic_envelope_cv') < 0.15, `one harmonic at ${shaftHz} Hz: cv ${feature(single, 'harmonic_envelope_cv')}`);
    const several = features(
      tones([
        { hz: shaftHz, amplitude: 0.2, phase: 0.1 },
        { hz: 2 * shaftHz, amplitude: 0.5, phase: 1.3 },
        { hz: 3 * shaftHz, amplitude: 0.3, phase: 2.2 },
      ]),
    );
    // Lines 20 Hz apart are within one Hann main lobe of each other in 80 ms, so they pull a
    // little. The search stops at 160 Hz: a 100 Hz shaft's 2× is out of range, its 1× is found.
    const expected = 2 * shaftHz <= 160 ? 2 * shaftHz : shaftHz;
    near(feature(several, 'dominant_low_hz'), expected, 2.5, `1×+2×+3× at ${shaftHz} Hz`);
    assert.ok(feature(several, 'harmonic_envelope_cv') > 0.3, `1×+2×+3× at ${shaftHz} Hz: cv ${feature(several, 'harmonic_envelope_cv')}`);
  }
});

test('envelope_modulation measures amplitude modulation of the resonance band at the running speed', () => {
  const shaftHz = 30;
  const carrierHz = 3000;
  for (const depth of [0, 0.25, 0.5, 0.8]) {
    const x = new Float32Array(N);
    for (let i = 0; i < N; i++) {
      const t = i / FS;
      x[i] = 0.3 * Math.sin(2 * Math.PI * shaftHz * t) + 0.5 * (1 + depth * Math.cos(2 * Math.PI * shaftHz * t + 0.7)) * Math.sin(2 * Math.PI * carrierHz * t);
    }
    near(feature(features(x), 'envelope_modulation'), depth, 0.03, `modulation depth ${depth}`);
  }
});

test('temperature is the last feature, with a presence flag', () => {
  const x = tones([{ hz: 100, amplitude: 1 }]);
  const last = FEATURE_COUNT - 1;
  const withT = features(x, 41.5);
  assert.equal(FEATURE_NAMES[last - 1], 'temperature_c');
  assert.equal(FEATURE_NAMES[last], 'temperature_present');
  near(withT[last - 1]!, 41.5, 1e-6, 'temperature');
  assert.equal(withT[last], 1);
  for (const absent of [undefined, null]) {
    const without = features(x, absent);
    assert.equal(without[last - 1], 0);
    assert.equal(without[last], 0);
    assert.deepEqual(without.subarray(0, last - 1), withT.subarray(0, last - 1), 'the signal features do not depend on temperature');
  }
});

test('bad input is refused with the rule it breaks', () => {
  const ok = tones([{ hz: 100, amplitude: 1 }]);
  const problem = (fn: () => unknown, expected: string, message: RegExp): void => {
    assert.throws(fn, (err: unknown) => {
      assert.ok(err instanceof FeatureInputError, `a FeatureInputError, got ${String(err)}`);
      assert.equal(err.problem, expected);
      assert.match(err.message, message);
      return true;
    });
  };
  problem(() => features(new Float32Array(1000)), 'window_size', /exactly 1024 samples, got 1000/);
  problem(() => features(new Float32Array(2048)), 'window_size', /got 2048/);
  problem(() => extractFeatures(ok, { sampleRateHz: 10_000 }), 'sample_rate', /12800 Hz, got 10000 Hz/);
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
    const x = Float32Array.from(ok);
    x[321] = bad;
    problem(() => features(x), 'non_finite', /sample 321/);
  }
  problem(() => features(ok, Number.NaN), 'temperature', /temperatureC must be finite/);
});

test('a constant window gives zeros, not NaN', () => {
  for (const level of [0, 0.1, -3]) {
    const v = features(new Float32Array(N).fill(level), 25);
    for (let i = 0; i < FEATURE_COUNT - 2; i++) assert.equal(v[i], 0, `${FEATURE_NAMES[i]} of a constant ${level}`);
    assert.equal(v[FEATURE_COUNT - 2], 25);
  }
});

test('features are deterministic and leave the input untouched; a DC offset changes nothing', () => {
  const rng = mulberry32(5);
  const x = gaussianArray(rng, N, 0.1);
  const copy = Float32Array.from(x);
  const a = features(x, 30);
  assert.deepEqual(x, copy);
  assert.deepEqual(features(x, 30), a);
  const shifted = features(Float64Array.from(x, (v) => v + 2.5), 30);
  for (let i = 0; i < FEATURE_COUNT; i++) near(shifted[i]!, a[i]!, 1e-4 * (1 + Math.abs(a[i]!)), `${FEATURE_NAMES[i]} with a DC offset`);
});

test('the pipeline descriptor names the pipeline, its window and its features in order', () => {
  const d = featurePipelineDescriptor();
  assert.deepEqual(Object.keys(d).sort(), ['featureNames', 'name', 'sampleRateHz', 'version', 'windowSize']);
  assert.equal(d.name, 'cairn.vibration');
  assert.equal(d.version, '1.0.0');
  assert.equal(d.sampleRateHz, 12_800);
  assert.equal(d.windowSize, 1024);
  assert.deepEqual(d.featureNames, [...FEATURE_NAMES]);
  assert.equal(new Set(FEATURE_NAMES).size, FEATURE_NAMES.length, 'names are unique');
  assert.ok(FEATURE_COUNT >= 12 && FEATURE_COUNT <= 20, `${FEATURE_COUNT} features`);
  d.featureNames.push('x');
  assert.equal(featurePipelineDescriptor().featureNames.length, FEATURE_COUNT, 'the descriptor is a copy');
  assert.throws(() => featureIndex('nope'), /unknown feature 'nope'/);
});
