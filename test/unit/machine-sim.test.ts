// The machine simulator, drift scenarios and dataset generator: determinism, bearing kinematics
// against published values, the physical signature of every fault mode, drift in the intended
// direction, and a dataset whose classes a trivial classifier can already tell apart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FAULT_CLASSES,
  FAULT_TRUTH_SEVERITY,
  FEATURE_NAMES,
  FEATURE_PIPELINE,
  MACHINE_TYPES,
  MACHINE_TYPE_NAMES,
  bearingDefectFrequencies,
  createDeviceSignal,
  deriveSeed,
  dtftAt,
  extractFeatures,
  featureIndex,
  fftInPlace,
  generateDataset,
  hannWindow,
  magnitudeSpectrum,
  mulberry32,
  realFft,
  resolveMachine,
  simulateWindow,
  type FaultMode,
  type MachineType,
  type SimulatedWindow,
  type VibrationDataset,
} from '@cairn/shared';

const FS = FEATURE_PIPELINE.sampleRateHz;
const N = FEATURE_PIPELINE.windowSize;
const HANN = hannWindow(N);
const near = (actual: number, expected: number, tolerance: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} is not within ${tolerance} of ${expected}`);

function simulate(machine: MachineType, fault: FaultMode, seed: number, overrides: { severity?: number; sensorGain?: number; noiseStd?: number } = {}): SimulatedWindow {
  return simulateWindow({
    machine,
    fault,
    severity: overrides.severity ?? 0.6,
    sensorGain: overrides.sensorGain ?? 1,
    temperatureC: 35,
    noiseStd: overrides.noiseStd ?? 0.03,
    sampleRateHz: FS,
    windowSize: N,
    rng: mulberry32(seed),
  });
}

/** Amplitude (g) of the line at `hz`, from the Hann-windowed DTFT (coherent gain N/2). */
function lineAmplitude(samples: Float32Array, hz: number): number {
  let mean = 0;
  for (const v of samples) mean += v / samples.length;
  const { re, im } = dtftAt(
    Float64Array.from(samples, (v) => v - mean),
    hz / FS,
    HANN,
  );
  return (2 * Math.hypot(re, im)) / (N / 2);
}

/** Share of the Hann-windowed power within ±20 % of `hz`. */
function powerShareAround(samples: Float32Array, hz: number): number {
  const spectrum = magnitudeSpectrum(Float64Array.from(samples, (v, i) => v * HANN[i]!));
  let inside = 0;
  let total = 0;
  for (let k = 1; k < spectrum.length; k++) {
    const p = spectrum[k]! ** 2;
    total += p;
    if (Math.abs((k * FS) / N - hz) <= 0.2 * hz) inside += p;
  }
  return inside / total;
}

/** Magnitude envelope spectrum (bins 0..80, 12.5 Hz each) of the 1–6.4 kHz band. */
function envelopeSpectrum(samples: Float32Array): Float64Array {
  const re = Float64Array.from(samples);
  const im = new Float64Array(N);
  fftInPlace(re, im);
  const lo = Math.ceil(1000 / (FS / N));
  for (let k = 0; k < N; k++) {
    const keep = k >= lo && k < N / 2;
    re[k] = keep ? 2 * re[k]! : 0;
    im[k] = keep ? 2 * im[k]! : 0;
  }
  fftInPlace(re, im, true);
  const env = Float64Array.from(re, (r, i) => Math.hypot(r, im[i]!));
  const mean = env.reduce((s, v) => s + v, 0) / N;
  const spectrum = realFft(env.map((v, i) => (v - mean) * HANN[i]!));
  return Float64Array.from({ length: 81 }, (_, k) => Math.hypot(spectrum.re[k]!, spectrum.im[k]!));
}

const mean = (values: number[]): number => values.reduce((s, v) => s + v, 0) / values.length;
const featureOf = (w: { samples: Float32Array; temperatureC: number }, name: string): number =>
  extractFeatures(w.samples, { sampleRateHz: FS, temperatureC: w.temperatureC })[featureIndex(name)]!;

const SIGNATURE_MACHINES = ['fan-1200', 'pump-1800', 'motor-3600'].map(resolveMachine);
const SEEDS = Array.from({ length: 12 }, (_, i) => 100 + i);

test('defect frequencies of an SKF 6205 match the published multiples of running speed', () => {
  // The Case Western Reserve bearing data's drive-end bearing (9 balls, d = 7.94 mm,
  // D = 39.04 mm) lists BPFI 5.4152, BPFO 3.5848, FTF 0.39828 and "BSF" 4.7135 (= 2 × spin).
  const geometry = MACHINE_TYPES['pump-1800'].bearing;
  const perHz = bearingDefectFrequencies(1, geometry);
  near(perHz.bpfi / 5.4152, 1, 1e-4, 'BPFI');
  near(perHz.bpfo / 3.5848, 1, 1e-4, 'BPFO');
  near(perHz.ftf / 0.39828, 1, 1e-4, 'FTF');
  near((2 * perHz.bsf) / 4.7135, 1, 1e-4, '2 × BSF');
  // At their 1797 rpm, by hand: r = 7.94/39.04 = 0.20338, fr = 29.95 Hz,
  // BPFO = 4.5·29.95·(1 − r) = 107.364 Hz, BPFI = 4.5·29.95·(1 + r) = 162.186 Hz.
  const at1797 = bearingDefectFrequencies(1797 / 60, geometry);
  near(at1797.bpfo, 107.364, 1e-3, 'BPFO at 1797 rpm');
  near(at1797.bpfi, 162.186, 1e-3, 'BPFI at 1797 rpm');
  // With a contact angle (SKF 7205 BE, 13 balls, d = 7.938, D = 38.5, φ = 40°) at 100 Hz:
  // r = 0.206182·cos 40° = 0.157945, BPFO = 650·(1 − r) = 547.336, BPFI = 650·(1 + r) = 752.664.
  const angular = bearingDefectFrequencies(100, MACHINE_TYPES['spindle-6000'].bearing);
  near(angular.bpfo, 547.336, 1e-3, 'BPFO with contact angle');
  near(angular.bpfi, 752.664, 1e-3, 'BPFI with contact angle');
  near(angular.ftf, 42.1028, 1e-3, 'FTF with contact angle');
  // BPFO + BPFI = n · fr always.
  near(angular.bpfo + angular.bpfi, 1300, 1e-9, 'BPFO + BPFI = n·fr');
  assert.throws(() => bearingDefectFrequencies(30, { ...geometry, ballDiameterMm: 50 }), RangeError);
});

test('every machine preset keeps its physics below the pipeline’s Nyquist frequency', () => {
  assert.deepEqual(MACHINE_TYPE_NAMES, Object.keys(MACHINE_TYPES));
  for (const name of MACHINE_TYPE_NAMES) {
    const m = MACHINE_TYPES[name];
    const d = bearingDefectFrequencies(m.shaftHz, m.bearing);
    assert.ok(m.resonanceHz < FS / 2 && d.bpfi < 1000 && 3 * m.shaftHz < 400, name);
    assert.equal(resolveMachine(name), m);
  }
  assert.throws(() => resolveMachine('turbine-9000'), /unknown machine type 'turbine-9000'; known: fan-1200/);
  assert.deepEqual([...FAULT_CLASSES], ['healthy', 'imbalance', 'misalignment', 'outer_race', 'inner_race']);
});

test('the simulator is deterministic for a seed', () => {
  const machine = resolveMachine('pump-1800');
  for (const fault of FAULT_CLASSES) {
    const a = simulate(machine, fault, 42);
    const b = simulate(machine, fault, 42);
    assert.deepEqual(a.samples, b.samples, `${fault}: same seed, same samples`);
    assert.equal(a.shaftHz, b.shaftHz);
    const c = simulate(machine, fault, 43);
    assert.notDeepEqual(a.samples, c.samples, `${fault}: another seed, other samples`);
    assert.equal(a.samples.length, N);
    assert.ok(a.samples.every(Number.isFinite));
  }
});

test('the simulator refuses parameters outside their ranges', () => {
  const machine = resolveMachine('fan-1200');
  const base = { machine, fault: 'healthy' as FaultMode, severity: 0, sensorGain: 1, temperatureC: 20, noiseStd: 0.02, sampleRateHz: FS, windowSize: N, rng: mulberry32(1) };
  assert.throws(() => simulateWindow({ ...base, severity: 1.5 }), /severity must be in \[0, 1\]/);
  assert.throws(() => simulateWindow({ ...base, noiseStd: -1, sensorGain: Number.NaN }), /sensorGain must be finite.*noiseStd must be finite/);
  assert.throws(() => simulateWindow({ ...base, shaftHzOffset: -25 }), /running speed must be positive/);
  assert.throws(() => simulateWindow({ ...base, fault: 'cavitation' as FaultMode }), /unknown fault 'cavitation'/);
});

test('sensor gain scales the whole signal', () => {
  const machine = resolveMachine('motor-3600');
  const a = simulate(machine, 'outer_race', 9, { sensorGain: 1 });
  const b = simulate(machine, 'outer_race', 9, { sensorGain: 1.6 });
  for (let i = 0; i < N; i += 97) near(b.samples[i]!, 1.6 * a.samples[i]!, 1e-5, `sample ${i}`);
});

test('imbalance raises 1×, misalignment raises 2× (and 3×)', () => {
  for (const machine of SIGNATURE_MACHINES) {
    const harmonics = (fault: FaultMode, h: number): number => mean(SEEDS.map((s) => { const w = simulate(machine, fault, s); return lineAmplitude(w.samples, h * w.shaftHz); }));
    const healthy1 = harmonics('healthy', 1);
    const healthy2 = harmonics('healthy', 2);
    const healthy3 = harmonics('healthy', 3);
    assert.ok(harmonics('imbalance', 1) > 3 * healthy1, `${machine.name}: imbalance 1× ${harmonics('imbalance', 1)} vs healthy ${healthy1}`);
    assert.ok(harmonics('misalignment', 2) > 3 * healthy2, `${machine.name}: misalignment 2× ${harmonics('misalignment', 2)} vs healthy ${healthy2}`);
    assert.ok(harmonics('misalignment', 3) > 3 * healthy3, `${machine.name}: misalignment 3×`);
    assert.ok(harmonics('misalignment', 2) > harmonics('misalignment', 1), `${machine.name}: 2× dominates under misalignment`);
    assert.ok(harmonics('imbalance', 1) > 4 * harmonics('imbalance', 2), `${machine.name}: 1× dominates under imbalance`);
  }
});

test('bearing faults are impulsive and ring the structural resonance', () => {
  for (const machine of SIGNATURE_MACHINES) {
    const stats = (fault: FaultMode): { kurtosis: number; resonance: number } => {
      const windows = SEEDS.map((s) => simulate(machine, fault, s));
      return {
        kurtosis: mean(windows.map((w) => featureOf(w, 'kurtosis'))),
        resonance: mean(windows.map((w) => powerShareAround(w.samples, machine.resonanceHz))),
      };
    };
    const healthy = stats('healthy');
    for (const fault of ['outer_race', 'inner_race'] as const) {
      const faulty = stats(fault);
      assert.ok(faulty.kurtosis > healthy.kurtosis + 2, `${machine.name} ${fault}: kurtosis ${faulty.kurtosis} vs healthy ${healthy.kurtosis}`);
      assert.ok(faulty.resonance > 5 * healthy.resonance && faulty.resonance > 0.3, `${machine.name} ${fault}: resonance share ${faulty.resonance} vs healthy ${healthy.resonance}`);
    }
  }
});

test('the envelope spectrum shows BPFO for an outer-race defect, BPFI and shaft-rate modulation for an inner-race one', () => {
  const binHz = FS / N;
  for (const machine of SIGNATURE_MACHINES) {
    const defects = bearingDefectFrequencies(machine.shaftHz, machine.bearing);
    const averaged = (fault: FaultMode): Float64Array => {
      const sum = new Float64Array(81);
      for (const s of SEEDS) envelopeSpectrum(simulate(machine, fault, s).samples).forEach((v, k) => (sum[k] = sum[k]! + v));
      return sum;
    };
    const strongest = (spectrum: Float64Array): number => {
      let best = 1;
      for (let k = 2; k < spectrum.length; k++) if (spectrum[k]! > spectrum[best]!) best = k;
      return best * binHz;
    };
    near(strongest(averaged('outer_race')), defects.bpfo, binHz, `${machine.name}: outer race envelope peak at BPFO ${defects.bpfo.toFixed(1)} Hz`);
    near(strongest(averaged('inner_race')), defects.bpfi, binHz, `${machine.name}: inner race envelope peak at BPFI ${defects.bpfi.toFixed(1)} Hz`);
    const modulation = (fault: FaultMode): number => mean(SEEDS.map((s) => featureOf(simulate(machine, fault, s), 'envelope_modulation')));
    const inner = modulation('inner_race');
    const outer = modulation('outer_race');
    assert.ok(inner > 0.3 && inner > 4 * outer, `${machine.name}: envelope modulation at the running speed, inner ${inner} vs outer ${outer}`);
  }
});

test('a device signal is a pure function of seed and time', () => {
  const t0 = 1_700_000_000_000;
  const device = createDeviceSignal({ machine: 'pump-1800', seed: 77, startMs: t0 });
  const forward = [0, 80, 5_000, 3_600_000].map((dt) => device.windowAt(t0 + dt));
  const backward = [3_600_000, 5_000, 80, 0].map((dt) => device.windowAt(t0 + dt)).reverse();
  for (let i = 0; i < forward.length; i++) {
    assert.deepEqual(forward[i]!.samples, backward[i]!.samples, 'order does not matter');
    assert.equal(forward[i]!.temperatureC, backward[i]!.temperatureC);
  }
  assert.notDeepEqual(forward[0]!.samples, forward[1]!.samples, 'successive windows differ');
  const other = createDeviceSignal({ machine: 'pump-1800', seed: 78, startMs: t0 });
  assert.notDeepEqual(other.windowAt(t0).samples, forward[0]!.samples, 'another device, other noise');
  assert.equal(forward[0]!.truth, 'healthy');
  assert.equal(device.windowSize, N);
  assert.equal(device.sampleRateHz, FS);
  assert.notEqual(deriveSeed(1, 2), deriveSeed(1, 3));
  assert.notEqual(deriveSeed(1, t0), deriveSeed(1, t0 + 2 ** 32), 'high bits of a timestamp count');
});

/** Mean of a feature over `count` windows one second apart from `t`. */
function featureAt(device: ReturnType<typeof createDeviceSignal>, t: number, name: string, count = 16): number {
  return mean(Array.from({ length: count }, (_, i) => featureOf(device.windowAt(t + i * 1000), name)));
}

test('sensor gain drift raises the vibration level, not the spectral shape', () => {
  const t0 = 5_000;
  const device = createDeviceSignal({ machine: 'motor-3600', seed: 3, startMs: t0, scenario: { kind: 'sensor_gain_drift' } });
  const before = device.conditionsAt(t0).sensorGain;
  near(device.conditionsAt(t0 + 5 * 60_000).sensorGain / before, 1.3, 1e-9, 'half way (+30 %)');
  near(device.conditionsAt(t0 + 10 * 60_000).sensorGain / before, 1.6, 1e-9, 'after 10 min (+60 %)');
  near(device.conditionsAt(t0 + 60 * 60_000).sensorGain / before, 1.6, 1e-9, 'then it stays');
  const later = t0 + 12 * 60_000;
  const ratio = featureAt(device, later, 'rms_g') / featureAt(device, t0, 'rms_g');
  assert.ok(ratio > 1.45 && ratio < 1.75, `rms grew ×${ratio}`);
  assert.ok(featureAt(device, later, 'peak_g') > 1.4 * featureAt(device, t0, 'peak_g'), 'peak grew');
  near(featureAt(device, later, 'band_50_100_hz'), featureAt(device, t0, 'band_50_100_hz'), 0.05, 'spectral shape unchanged');
  near(featureAt(device, later, 'kurtosis'), featureAt(device, t0, 'kurtosis'), 0.3, 'kurtosis unchanged');
});

test('a shaft speed change moves the running-speed features', () => {
  const device = createDeviceSignal({ machine: 'pump-1800', seed: 4, scenario: { kind: 'shaft_speed_change', startAfterMs: 60_000, shaftHz: 40 } });
  near(featureAt(device, 0, 'dominant_low_hz'), 30, 1.5, 'running speed before');
  assert.equal(device.conditionsAt(90_000).shaftHz, 35, 'half way through the one-minute ramp');
  near(featureAt(device, 10 * 60_000, 'dominant_low_hz'), 40, 1.5, 'running speed after');
  const byFactor = createDeviceSignal({ machine: 'pump-1800', seed: 4, scenario: { kind: 'shaft_speed_change' } });
  near(byFactor.conditionsAt(120_000).shaftHz, 39, 1e-9, 'default: 1.3 × nominal');
});

test('a temperature offset raises the temperature feature by 15 °C', () => {
  const device = createDeviceSignal({ machine: 'fan-1200', seed: 5, temperatureC: 35, scenario: { kind: 'temperature_offset', startAfterMs: 60_000 } });
  near(device.conditionsAt(60_000 + 150_000).temperatureC, 42.5, 1e-9, 'half way through the five-minute ramp');
  near(featureAt(device, 0, 'temperature_c'), 35, 0.1, 'before');
  near(featureAt(device, 30 * 60_000, 'temperature_c'), 50, 0.1, 'after');
  near(featureAt(device, 30 * 60_000, 'rms_g'), featureAt(device, 0, 'rms_g'), 0.01, 'vibration unchanged');
});

test('fault progression turns a healthy machine faulty over hours', () => {
  const hour = 3_600_000;
  const device = createDeviceSignal({ machine: 'pump-1800', seed: 6, scenario: { kind: 'fault_progression', startAfterMs: hour, durationMs: 4 * hour, fault: 'inner_race' } });
  assert.equal(device.windowAt(0).truth, 'healthy');
  assert.equal(device.conditionsAt(0).severity, 0);
  assert.equal(device.conditionsAt(3 * hour).severity, 0.5);
  assert.equal(device.conditionsAt(3 * hour).truth, 'inner_race');
  assert.equal(device.conditionsAt(hour + 0.2 * 4 * hour).truth, 'healthy', `below severity ${FAULT_TRUTH_SEVERITY} it is not yet a finding`);
  assert.equal(device.windowAt(10 * hour).truth, 'inner_race');
  const k = [0, 2, 3, 5].map((h) => featureAt(device, h * hour, 'kurtosis', 8));
  for (let i = 1; i < k.length; i++) assert.ok(k[i]! > k[i - 1]!, `kurtosis grows with severity: ${k.join(', ')}`);
  assert.ok(featureAt(device, 5 * hour, 'band_1600_3200_hz') > 5 * featureAt(device, 0, 'band_1600_3200_hz'), 'the resonance band fills');
  assert.ok(featureAt(device, 5 * hour, 'envelope_modulation') > 0.3, 'inner-race modulation appears');
});

test('drift scenarios are validated', () => {
  assert.throws(() => createDeviceSignal({ machine: 'pump-1800', seed: 1, scenario: { kind: 'sensor_gain_drift', gainChange: Number.NaN } }), /gainChange must be a finite number/);
  assert.throws(() => createDeviceSignal({ machine: 'pump-1800', seed: 1, scenario: { kind: 'fault_progression', fault: 'healthy' as 'outer_race' } }), /fault must be one of imbalance/);
  assert.throws(() => createDeviceSignal({ machine: 'pump-1800', seed: 1, scenario: { kind: 'meltdown' } as never }), /unknown drift scenario 'meltdown'/);
  assert.throws(() => createDeviceSignal({ machine: 'nope', seed: 1 }), /unknown machine type/);
});

test('datasets are deterministic, balanced and interleaved', () => {
  const machines = ['fan-1200', 'pump-1800', 'motor-3600'];
  const a = generateDataset({ seed: 1, machines, windowsPerClass: 30 });
  const b = generateDataset({ seed: 1, machines, windowsPerClass: 30 });
  const c = generateDataset({ seed: 2, machines, windowsPerClass: 30 });
  assert.deepEqual(a.features, b.features);
  assert.deepEqual(a.labels, b.labels);
  assert.notDeepEqual(a.features, c.features);
  assert.equal(a.count, 150);
  assert.equal(a.featureCount, FEATURE_NAMES.length);
  assert.equal(a.classCount, FAULT_CLASSES.length);
  assert.equal(a.features.length, a.count * a.featureCount);
  assert.deepEqual(a.featureNames, FEATURE_NAMES);
  assert.deepEqual(a.classes, FAULT_CLASSES);
  assert.ok(a.features.every(Number.isFinite));
  const perCell = new Map<string, number>();
  for (let r = 0; r < a.count; r++) {
    assert.equal(a.labels[r], r % FAULT_CLASSES.length, 'rows cycle through the classes');
    const key = `${a.labels[r]}/${a.machines[r]}`;
    perCell.set(key, (perCell.get(key) ?? 0) + 1);
  }
  assert.equal(perCell.size, FAULT_CLASSES.length * machines.length);
  for (const [key, n] of perCell) assert.equal(n, 10, `${key} has ${n} rows`);
  // A row does not depend on how many rows precede it.
  const longer = generateDataset({ seed: 1, machines, windowsPerClass: 40 });
  assert.deepEqual(longer.features.subarray(0, a.features.length), a.features);
  assert.throws(() => generateDataset({ seed: 1, machines: [], windowsPerClass: 3 }), /at least one machine/);
  assert.throws(() => generateDataset({ seed: 1, machines, windowsPerClass: 3, severityRange: [0.5, 2] }), /severityRange/);
  assert.throws(() => generateDataset({ seed: 1, machines, windowsPerClass: 0 }), /windowsPerClass/);
});

/** Accuracy of a nearest-centroid classifier on standardized features, trained on one dataset and tested on another. */
function nearestCentroidAccuracy(train: VibrationDataset, heldOut: VibrationDataset): number {
  const F = train.featureCount;
  const mu = new Float64Array(F);
  const sd = new Float64Array(F);
  for (let r = 0; r < train.count; r++) for (let j = 0; j < F; j++) mu[j] = mu[j]! + train.features[r * F + j]! / train.count;
  for (let r = 0; r < train.count; r++) for (let j = 0; j < F; j++) sd[j] = sd[j]! + (train.features[r * F + j]! - mu[j]!) ** 2 / train.count;
  for (let j = 0; j < F; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const centroids = Array.from({ length: train.classCount }, () => new Float64Array(F));
  const counts = new Float64Array(train.classCount);
  for (let r = 0; r < train.count; r++) {
    const c = train.labels[r]!;
    counts[c] = counts[c]! + 1;
    for (let j = 0; j < F; j++) centroids[c]![j] = centroids[c]![j]! + (train.features[r * F + j]! - mu[j]!) / sd[j]!;
  }
  centroids.forEach((centroid, c) => centroid.forEach((v, j) => (centroid[j] = v / counts[c]!)));
  let correct = 0;
  for (let r = 0; r < heldOut.count; r++) {
    let best = -1;
    let bestDistance = Infinity;
    centroids.forEach((centroid, c) => {
      let d = 0;
      for (let j = 0; j < F; j++) d += ((heldOut.features[r * F + j]! - mu[j]!) / sd[j]! - centroid[j]!) ** 2;
      if (d < bestDistance) {
        bestDistance = d;
        best = c;
      }
    });
    if (best === heldOut.labels[r]) correct++;
  }
  return correct / heldOut.count;
}

test('the fault classes are separable: nearest centroid on a held-out seed', (t) => {
  for (const machines of [['fan-1200', 'pump-1800', 'motor-3600'], [...MACHINE_TYPE_NAMES]]) {
    const train = generateDataset({ seed: 1, machines, windowsPerClass: 150 });
    const heldOut = generateDataset({ seed: 2, machines, windowsPerClass: 150 });
    const accuracy = nearestCentroidAccuracy(train, heldOut);
    t.diagnostic(`nearest centroid, ${machines.length} machine types, ${heldOut.count} held-out windows: ${(accuracy * 100).toFixed(1)} % (chance 20 %)`);
    assert.ok(accuracy > 0.85, `accuracy ${accuracy}`);
  }
});
