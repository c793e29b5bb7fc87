/**
 * One simulated device over simulated time: a machine with its own sensor, operating point and
 * condition, and optional drift scenarios that change them as time passes. The agent's
 * simulated source and the fleet simulator pull windows from it at whatever simulated times
 * they like.
 *
 * Contracts:
 * - `windowAt(t)` is a pure function of the options and `t` (integer milliseconds, floored):
 *   its generator is seeded from (seed, t), so windows can be drawn in any order, skipped or
 *   drawn twice, and two devices with different seeds never share noise.
 * - Scenario times are offsets from `startMs` (the device's simulated start). Before
 *   `startMs` the device is in its initial condition.
 * - One fault at a time: the device's own `fault` holds until a `fault_progression` scenario
 *   starts, which then replaces it. `truth` is the fault once its severity reaches
 *   FAULT_TRUTH_SEVERITY — below that the defect is not yet a maintenance finding and is
 *   labelled healthy — so evaluation against `truth` matches datasets generated with
 *   severities from FAULT_TRUTH_SEVERITY up (the default).
 *
 * Scenarios (defaults in DRIFT_SCENARIO_DEFAULTS):
 * - sensor_gain_drift: the sensor's gain grows linearly by `gainChange` (+60 %) over
 *   `durationMs` (10 min), then stays — a loosening mount or an ageing piezo element. Vibration
 *   levels (rms, peak) rise; the spectral shape does not.
 * - shaft_speed_change: the running speed moves linearly to `shaftHz` (default 1.3× nominal,
 *   outside the ±5 % of the training data) over `rampMs` (1 min): a new operating point.
 * - temperature_offset: the temperature rises by `offsetC` (+15 °C) over `rampMs` (5 min).
 * - fault_progression: a `fault` (default outer_race) grows from severity 0 to 1 linearly over
 *   `durationMs` (4 h): a healthy machine turning faulty.
 */
import { gaussian, mulberry32 } from '../random/prng.js';
import { FEATURE_PIPELINE } from '../features/vibration-features.js';
import { FAULT_CLASSES, isFaultMode, resolveMachine, simulateWindow, type FaultMode, type MachineType } from './machine.js';
import { deriveSeed } from './seed.js';

/** Severity from which a developing fault counts as present (see the header). */
export const FAULT_TRUTH_SEVERITY = 0.25;

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

export const DRIFT_SCENARIO_KINDS = ['sensor_gain_drift', 'shaft_speed_change', 'temperature_offset', 'fault_progression'] as const;
export type DriftScenarioKind = (typeof DRIFT_SCENARIO_KINDS)[number];

export type DriftScenario =
  | { kind: 'sensor_gain_drift'; startAfterMs?: number; durationMs?: number; gainChange?: number }
  | { kind: 'shaft_speed_change'; startAfterMs?: number; rampMs?: number; shaftHz?: number; speedFactor?: number }
  | { kind: 'temperature_offset'; startAfterMs?: number; rampMs?: number; offsetC?: number }
  | { kind: 'fault_progression'; startAfterMs?: number; durationMs?: number; fault?: Exclude<FaultMode, 'healthy'> };

export const DRIFT_SCENARIO_DEFAULTS = {
  sensor_gain_drift: { startAfterMs: 0, durationMs: 10 * MINUTE, gainChange: 0.6 },
  shaft_speed_change: { startAfterMs: 0, rampMs: 1 * MINUTE, speedFactor: 1.3 },
  temperature_offset: { startAfterMs: 0, rampMs: 5 * MINUTE, offsetC: 15 },
  fault_progression: { startAfterMs: 0, durationMs: 4 * HOUR, fault: 'outer_race' },
} as const;

export interface DeviceSignalOptions {
  machine: MachineType | string;
  seed: number;
  /** Simulated start (ms); scenario times count from here. Default 0. */
  startMs?: number;
  scenario?: DriftScenario | readonly DriftScenario[];
  /** The device's initial condition; by default healthy. */
  fault?: FaultMode;
  /** Severity of `fault` (0..1); default 0.6 for a faulty device. */
  severity?: number;
  /** Initial sensor gain; default drawn from the seed in [0.9, 1.1]. */
  sensorGain?: number;
  /** Initial temperature (°C); default drawn from the seed in [30, 45]. */
  temperatureC?: number;
  /** Noise standard deviation (g); default drawn from the seed in [0.015, 0.04]. */
  noiseStd?: number;
}

/** The device's condition at one instant. */
export interface DeviceConditions {
  sensorGain: number;
  /** Nominal running speed before window-to-window jitter (Hz). */
  shaftHz: number;
  temperatureC: number;
  fault: FaultMode;
  severity: number;
  /** What a correct model should say (see FAULT_TRUTH_SEVERITY). */
  truth: FaultMode;
}

export interface DeviceWindow {
  samples: Float32Array;
  temperatureC: number;
  truth: FaultMode;
  conditions: DeviceConditions;
}

export interface DeviceSignal {
  readonly machine: MachineType;
  readonly sampleRateHz: number;
  readonly windowSize: number;
  conditionsAt(tMs: number): DeviceConditions;
  windowAt(tMs: number): DeviceWindow;
}

/** 0 before `start`, 1 after `start + duration`, linear in between (a step when duration ≤ 0). */
function progress(elapsed: number, start: number, duration: number): number {
  if (elapsed < start) return 0;
  if (duration <= 0) return 1;
  return Math.min(1, (elapsed - start) / duration);
}

function checkScenario(s: DriftScenario): void {
  if (!(DRIFT_SCENARIO_KINDS as readonly string[]).includes(s.kind)) {
    throw new RangeError(`unknown drift scenario '${String(s.kind)}'; known: ${DRIFT_SCENARIO_KINDS.join(', ')}`);
  }
  for (const [key, value] of Object.entries(s)) {
    if (key === 'kind' || key === 'fault' || value === undefined) continue;
    if (!Number.isFinite(value)) throw new RangeError(`drift scenario ${s.kind}: ${key} must be a finite number, got ${String(value)}`);
  }
  if (s.kind === 'shaft_speed_change' && ((s.shaftHz !== undefined && !(s.shaftHz > 0)) || (s.speedFactor !== undefined && !(s.speedFactor > 0)))) {
    throw new RangeError('drift scenario shaft_speed_change: shaftHz and speedFactor must be positive');
  }
  if (s.kind === 'fault_progression' && s.fault !== undefined && (!isFaultMode(s.fault) || (s.fault as string) === 'healthy')) {
    throw new RangeError(`drift scenario fault_progression: fault must be one of ${FAULT_CLASSES.slice(1).join(', ')}, got '${String(s.fault)}'`);
  }
}

export function createDeviceSignal(options: DeviceSignalOptions): DeviceSignal {
  const machine = resolveMachine(options.machine);
  const startMs = options.startMs ?? 0;
  const scenarios: readonly DriftScenario[] = options.scenario === undefined ? [] : Array.isArray(options.scenario) ? options.scenario : [options.scenario as DriftScenario];
  scenarios.forEach(checkScenario);
  const draw = mulberry32(deriveSeed(options.seed, 0x5eed));
  const base = {
    sensorGain: options.sensorGain ?? 0.9 + 0.2 * draw(),
    temperatureC: options.temperatureC ?? 30 + 15 * draw(),
    noiseStd: options.noiseStd ?? 0.015 + 0.025 * draw(),
    fault: options.fault ?? 'healthy',
    severity: options.fault && options.fault !== 'healthy' ? (options.severity ?? 0.6) : 0,
  };
  if (!(base.severity >= 0 && base.severity <= 1)) throw new RangeError(`createDeviceSignal: severity must be in [0, 1], got ${base.severity}`);
  const { sampleRateHz, windowSize } = FEATURE_PIPELINE;

  const conditionsAt = (tMs: number): DeviceConditions => {
    const elapsed = Math.max(0, Math.floor(tMs) - startMs);
    let sensorGain = base.sensorGain;
    let shaftHz = machine.shaftHz;
    let temperatureC = base.temperatureC;
    let fault: FaultMode = base.fault;
    let severity = base.severity;
    for (const s of scenarios) {
      switch (s.kind) {
        case 'sensor_gain_drift': {
          const d = DRIFT_SCENARIO_DEFAULTS.sensor_gain_drift;
          sensorGain *= 1 + (s.gainChange ?? d.gainChange) * progress(elapsed, s.startAfterMs ?? d.startAfterMs, s.durationMs ?? d.durationMs);
          break;
        }
        case 'shaft_speed_change': {
          const d = DRIFT_SCENARIO_DEFAULTS.shaft_speed_change;
          const target = s.shaftHz ?? machine.shaftHz * (s.speedFactor ?? d.speedFactor);
          shaftHz += (target - machine.shaftHz) * progress(elapsed, s.startAfterMs ?? d.startAfterMs, s.rampMs ?? d.rampMs);
          break;
        }
        case 'temperature_offset': {
          const d = DRIFT_SCENARIO_DEFAULTS.temperature_offset;
          temperatureC += (s.offsetC ?? d.offsetC) * progress(elapsed, s.startAfterMs ?? d.startAfterMs, s.rampMs ?? d.rampMs);
          break;
        }
        case 'fault_progression': {
          const d = DRIFT_SCENARIO_DEFAULTS.fault_progression;
          const start = s.startAfterMs ?? d.startAfterMs;
          if (elapsed >= start) {
            fault = s.fault ?? d.fault;
            severity = progress(elapsed, start, s.durationMs ?? d.durationMs);
          }
          break;
        }
      }
    }
    const truth: FaultMode = fault !== 'healthy' && severity >= FAULT_TRUTH_SEVERITY ? fault : 'healthy';
    return { sensorGain, shaftHz, temperatureC, fault, severity, truth };
  };

  const windowAt = (tMs: number): DeviceWindow => {
    const conditions = conditionsAt(tMs);
    const rng = mulberry32(deriveSeed(options.seed, tMs));
    const window = simulateWindow({
      machine,
      fault: conditions.fault,
      severity: conditions.severity,
      sensorGain: conditions.sensorGain,
      temperatureC: conditions.temperatureC,
      shaftHzOffset: conditions.shaftHz - machine.shaftHz,
      noiseStd: base.noiseStd,
      sampleRateHz,
      windowSize,
      rng,
    });
    // A temperature sensor reads to about ±0.1 °C.
    const temperatureC = window.temperatureC + 0.1 * gaussian(rng);
    return { samples: window.samples, temperatureC, truth: conditions.truth, conditions };
  };

  return { machine, sampleRateHz, windowSize, conditionsAt, windowAt };
}
