/**
 * A vibration simulator for rotating machines: the signal an accelerometer on a bearing housing
 * would see, for a machine type, a fault mode and its severity. Training data, the agent's
 * simulated source and the fleet simulator all draw from here, so the model is trained on the
 * same physics the demo devices produce.
 *
 * Signal model (acceleration in g, before the sensor gain):
 * - Shaft harmonics at 1×, 2×, 3× running speed with random phases and ±15 % natural amplitude
 *   variation per window. Imbalance is a rotating force at 1× and raises 1×; misalignment
 *   raises 2× (dominant) and 3× and slightly 1× — the textbook signatures (e.g. Randall,
 *   "Vibration-based Condition Monitoring", Wiley 2011, ch. 2).
 * - Localized bearing defects: each rolling-element pass over the defect is an impact that
 *   excites a structural resonance, seen as a decaying sinusoid A·e^(−t/τ)·sin(2πf_n t), with
 *   τ = 1/(ζ·2πf_n). Impacts repeat at the defect frequency (BPFO or BPFI, see
 *   `bearingDefectFrequencies`) with 1 % random jitter of each period (rolling elements slip,
 *   which is what makes real bearing signals cyclostationary rather than periodic). An outer-race
 *   defect is stationary in the load zone: constant impact amplitude. An inner-race defect
 *   rotates with the shaft through the load zone: its impact amplitude is modulated at the
 *   shaft rate, A·(1 − d + d·(1 + cos(2πf_r t + φ))/2) with depth d = 0.8 — the sidebands at
 *   BPFI ± f_r and the f_r line in the envelope spectrum (Randall & Antoni, "Rolling element
 *   bearing diagnostics — a tutorial", MSSP 25 (2011) 485–520).
 * - Running speed jitters by 0.3 % (one standard deviation) from window to window.
 * - Broadband Gaussian sensor/process noise with standard deviation `noiseStd`.
 * - Everything is multiplied by `sensorGain` (a sensor whose sensitivity drifted reads g·gain).
 *
 * Deterministic: the output is a pure function of the parameters and the state of `rng`
 * (a `mulberry32` from `random/prng.ts`). No Node-only API.
 */
import { gaussian, type Rng } from '../random/prng.js';

/** Rolling-element bearing geometry. Lengths in millimetres, angle in degrees. */
export interface BearingGeometry {
  /** Designation, for reports (e.g. 'SKF 6205'). */
  designation: string;
  /** Number of rolling elements n. */
  balls: number;
  /** Rolling-element diameter d (mm). */
  ballDiameterMm: number;
  /** Pitch diameter D (mm): the diameter of the circle through the rolling-element centres. */
  pitchDiameterMm: number;
  /** Contact angle φ (degrees); 0 for a deep-groove ball bearing under radial load. */
  contactAngleDeg: number;
}

export interface MachineType {
  name: string;
  description: string;
  /** Nominal running speed (Hz); rpm = 60·shaftHz. */
  shaftHz: number;
  bearing: BearingGeometry;
  /** The structural resonance that bearing impacts excite (Hz), and its damping ratio ζ. */
  resonanceHz: number;
  resonanceDamping: number;
  /** Healthy 1×, 2×, 3× acceleration amplitudes (g): residual imbalance and misalignment. */
  healthyHarmonicsG: readonly [number, number, number];
}

/** Characteristic bearing defect frequencies (Hz) at a running speed. */
export interface BearingDefectFrequencies {
  /** Ball pass frequency, outer race. */
  bpfo: number;
  /** Ball pass frequency, inner race. */
  bpfi: number;
  /** Ball spin frequency (one revolution of a ball about its own axis). */
  bsf: number;
  /** Fundamental train (cage) frequency. */
  ftf: number;
}

/**
 * The standard kinematic formulas (no slip), with f_r the shaft frequency, n the number of
 * rolling elements, d/D the ball-to-pitch diameter ratio and φ the contact angle — e.g.
 * Randall & Antoni (2011), eqs. 1–4:
 *   FTF  = f_r/2 · (1 − (d/D)·cos φ)
 *   BPFO = n·f_r/2 · (1 − (d/D)·cos φ)
 *   BPFI = n·f_r/2 · (1 + (d/D)·cos φ)
 *   BSF  = f_r·D/(2d) · (1 − ((d/D)·cos φ)²)
 * BSF is the spin frequency; a ball defect strikes both races once per spin, so its impacts
 * repeat at 2·BSF (what some tables, e.g. Case Western's bearing data, list as "BSF").
 */
export function bearingDefectFrequencies(shaftHz: number, geometry: BearingGeometry): BearingDefectFrequencies {
  const { balls, ballDiameterMm: d, pitchDiameterMm: D, contactAngleDeg } = geometry;
  if (!(shaftHz >= 0) || !(d > 0) || !(D > d) || !(balls >= 1)) {
    throw new RangeError(`bearing geometry or speed out of range: shaft ${shaftHz} Hz, n=${balls}, d=${d} mm, D=${D} mm`);
  }
  const r = (d / D) * Math.cos((contactAngleDeg * Math.PI) / 180);
  return {
    ftf: (shaftHz / 2) * (1 - r),
    bpfo: ((balls * shaftHz) / 2) * (1 - r),
    bpfi: ((balls * shaftHz) / 2) * (1 + r),
    bsf: ((shaftHz * D) / (2 * d)) * (1 - r * r),
  };
}

/**
 * Machine presets. Bearing dimensions are the catalogue values of the named bearings (ball
 * diameter and pitch diameter as used in the bearing-fault literature); resonances and
 * healthy levels are plausible values for such machines, chosen so that every preset's defect
 * frequencies, harmonics and resonance fall below the 6.4 kHz Nyquist frequency of the
 * feature pipeline.
 */
export const MACHINE_TYPES = {
  'fan-1200': {
    name: 'fan-1200',
    description: 'belt-driven ventilation fan, 1200 rpm',
    shaftHz: 20,
    bearing: { designation: 'SKF 6206', balls: 9, ballDiameterMm: 9.525, pitchDiameterMm: 46.0, contactAngleDeg: 0 },
    resonanceHz: 2300,
    resonanceDamping: 0.05,
    healthyHarmonicsG: [0.06, 0.025, 0.012],
  },
  'pump-1800': {
    name: 'pump-1800',
    description: 'centrifugal pump on a 4-pole motor, 1800 rpm (60 Hz grid)',
    shaftHz: 30,
    bearing: { designation: 'SKF 6205', balls: 9, ballDiameterMm: 7.94, pitchDiameterMm: 39.04, contactAngleDeg: 0 },
    resonanceHz: 3100,
    resonanceDamping: 0.05,
    healthyHarmonicsG: [0.08, 0.03, 0.015],
  },
  'motor-3600': {
    name: 'motor-3600',
    description: '2-pole induction motor, 3600 rpm (60 Hz grid)',
    shaftHz: 60,
    bearing: { designation: 'SKF 6203', balls: 8, ballDiameterMm: 6.747, pitchDiameterMm: 28.5, contactAngleDeg: 0 },
    resonanceHz: 4200,
    resonanceDamping: 0.04,
    healthyHarmonicsG: [0.1, 0.035, 0.018],
  },
  'compressor-2950': {
    name: 'compressor-2950',
    description: 'screw compressor on a 2-pole motor, 2950 rpm (50 Hz grid)',
    shaftHz: 2950 / 60,
    bearing: { designation: 'SKF 6308', balls: 8, ballDiameterMm: 15.081, pitchDiameterMm: 65.0, contactAngleDeg: 0 },
    resonanceHz: 2700,
    resonanceDamping: 0.05,
    healthyHarmonicsG: [0.09, 0.035, 0.02],
  },
  'spindle-6000': {
    name: 'spindle-6000',
    description: 'machine-tool spindle on angular-contact bearings, 6000 rpm',
    shaftHz: 100,
    bearing: { designation: 'SKF 7205 BE', balls: 13, ballDiameterMm: 7.938, pitchDiameterMm: 38.5, contactAngleDeg: 40 },
    resonanceHz: 5200,
    resonanceDamping: 0.04,
    healthyHarmonicsG: [0.05, 0.02, 0.01],
  },
} as const satisfies Record<string, MachineType>;

export type MachineTypeName = keyof typeof MACHINE_TYPES;

/** Preset names in a fixed order (datasets cycle through machines in this order). */
export const MACHINE_TYPE_NAMES = Object.keys(MACHINE_TYPES) as readonly MachineTypeName[];

/** A preset by name, or the machine itself; throws on an unknown name, listing the known ones. */
export function resolveMachine(machine: MachineType | string): MachineType {
  if (typeof machine !== 'string') return machine;
  const found = (MACHINE_TYPES as Record<string, MachineType>)[machine];
  if (!found) throw new RangeError(`unknown machine type '${machine}'; known: ${MACHINE_TYPE_NAMES.join(', ')}`);
  return found;
}

/** The classes a vibration model predicts, in the fixed order of its output vector. */
export const FAULT_CLASSES = ['healthy', 'imbalance', 'misalignment', 'outer_race', 'inner_race'] as const;
export type FaultMode = (typeof FAULT_CLASSES)[number];

export function isFaultMode(value: string): value is FaultMode {
  return (FAULT_CLASSES as readonly string[]).includes(value);
}

/**
 * Fault amplitudes at severity 1 (g). At severity s a fault adds s times these to the healthy
 * levels; bearing impacts have peak amplitude s·bearingImpactG.
 */
export const FAULT_AMPLITUDES = {
  imbalance1x: 0.7,
  misalignment1x: 0.12,
  misalignment2x: 0.55,
  misalignment3x: 0.3,
  bearingImpactG: 1.5,
  innerRaceModulationDepth: 0.8,
  /** Standard deviation of each impact period, as a fraction of it (rolling-element slip). */
  bearingSlip: 0.01,
  /** Standard deviation of the running speed from window to window, as a fraction. */
  speedJitter: 0.003,
} as const;

export interface SimulateWindowParams {
  machine: MachineType;
  fault: FaultMode;
  /** 0 (no defect) to 1 (severe). Ignored for 'healthy'. */
  severity: number;
  /** Sensor sensitivity relative to nominal (1 = calibrated). */
  sensorGain: number;
  /** Temperature at the sensor (°C), passed through to the result. */
  temperatureC: number;
  /** Added to the machine's nominal running speed (Hz): a different operating point. */
  shaftHzOffset?: number;
  /** Standard deviation of the broadband noise (g, before gain). */
  noiseStd: number;
  sampleRateHz: number;
  windowSize: number;
  rng: Rng;
}

export interface SimulatedWindow {
  /** Acceleration (g × sensor gain), `windowSize` samples at `sampleRateHz`. */
  samples: Float32Array;
  temperatureC: number;
  /** The running speed this window was simulated at (Hz, jitter included). */
  shaftHz: number;
}

function checkParams(p: SimulateWindowParams): void {
  const problems: string[] = [];
  if (!(p.severity >= 0 && p.severity <= 1)) problems.push(`severity must be in [0, 1], got ${p.severity}`);
  if (!(p.sensorGain >= 0) || !Number.isFinite(p.sensorGain)) problems.push(`sensorGain must be finite and ≥ 0, got ${p.sensorGain}`);
  if (!Number.isFinite(p.temperatureC)) problems.push(`temperatureC must be finite, got ${p.temperatureC}`);
  if (!(p.noiseStd >= 0) || !Number.isFinite(p.noiseStd)) problems.push(`noiseStd must be finite and ≥ 0, got ${p.noiseStd}`);
  if (!(p.sampleRateHz > 0) || !Number.isFinite(p.sampleRateHz)) problems.push(`sampleRateHz must be positive, got ${p.sampleRateHz}`);
  if (!Number.isInteger(p.windowSize) || p.windowSize < 1) problems.push(`windowSize must be a positive integer, got ${p.windowSize}`);
  const shaftHz = p.machine.shaftHz + (p.shaftHzOffset ?? 0);
  if (!(shaftHz > 0)) problems.push(`running speed must be positive, got ${shaftHz} Hz`);
  if (!isFaultMode(p.fault)) problems.push(`unknown fault '${String(p.fault)}'; known: ${FAULT_CLASSES.join(', ')}`);
  if (problems.length > 0) throw new RangeError(`simulateWindow: ${problems.join('; ')}`);
}

/** One window of simulated vibration (see the header for the signal model). */
export function simulateWindow(params: SimulateWindowParams): SimulatedWindow {
  checkParams(params);
  const { machine, fault, sensorGain, noiseStd, sampleRateHz: fs, windowSize: n, rng } = params;
  const severity = fault === 'healthy' ? 0 : params.severity;
  const A = FAULT_AMPLITUDES;
  const shaftHz = (machine.shaftHz + (params.shaftHzOffset ?? 0)) * (1 + A.speedJitter * gaussian(rng));
  const dt = 1 / fs;
  const x = new Float64Array(n);

  // Shaft harmonics.
  const harmonics = machine.healthyHarmonicsG.map((g) => g * (0.85 + 0.3 * rng()));
  if (fault === 'imbalance') harmonics[0] = harmonics[0]! + severity * A.imbalance1x;
  if (fault === 'misalignment') {
    harmonics[0] = harmonics[0]! + severity * A.misalignment1x;
    harmonics[1] = harmonics[1]! + severity * A.misalignment2x;
    harmonics[2] = harmonics[2]! + severity * A.misalignment3x;
  }
  for (let h = 0; h < 3; h++) {
    const amplitude = harmonics[h]!;
    const phase = 2 * Math.PI * rng();
    const w = 2 * Math.PI * (h + 1) * shaftHz * dt;
    for (let i = 0; i < n; i++) x[i] = x[i]! + amplitude * Math.sin(w * i + phase);
  }

  // Bearing impacts ringing the resonance.
  if ((fault === 'outer_race' || fault === 'inner_race') && severity > 0) {
    const defects = bearingDefectFrequencies(shaftHz, machine.bearing);
    const rate = fault === 'outer_race' ? defects.bpfo : defects.bpfi;
    const period = 1 / rate;
    const wn = 2 * Math.PI * machine.resonanceHz;
    const tau = 1 / (machine.resonanceDamping * wn);
    const ring = Math.min(n, Math.ceil((7 * tau) / dt)); // e^(−7) < 0.1 %: the rest is negligible
    const loadPhase = 2 * Math.PI * rng();
    const depth = A.innerRaceModulationDepth;
    const windowEnd = n * dt;
    // Start one ring-down before the window so impacts just before it still ring into it.
    let t = -ring * dt + rng() * period;
    while (t < windowEnd) {
      let amplitude = severity * A.bearingImpactG;
      if (fault === 'inner_race') amplitude *= 1 - depth + (depth * (1 + Math.cos(2 * Math.PI * shaftHz * t + loadPhase))) / 2;
      const first = Math.max(0, Math.ceil(t / dt));
      const last = Math.min(n, Math.ceil(t / dt) + ring);
      for (let i = first; i < last; i++) {
        const s = i * dt - t;
        x[i] = x[i]! + amplitude * Math.exp(-s / tau) * Math.sin(wn * s);
      }
      t += period * (1 + A.bearingSlip * gaussian(rng));
    }
  }

  const samples = new Float32Array(n);
  for (let i = 0; i < n; i++) samples[i] = (x[i]! + noiseStd * gaussian(rng)) * sensorGain;
  return { samples, temperatureC: params.temperatureC, shaftHz };
}
