/**
 * Labelled training and evaluation data from the machine simulator: windows simulated across
 * fault classes, machine types, severities, sensor gains and temperatures, turned into feature
 * vectors by the very `extractFeatures` the device runs.
 *
 * Contracts:
 * - Deterministic: the same options (seed included) give bit-identical arrays on every
 *   platform. Each row draws from its own generator, seeded from (seed, row), so the content
 *   of a row does not depend on how many random numbers earlier rows consumed.
 * - Balanced: exactly `windowsPerClass` rows per class, and within a class the machine types
 *   take turns (row i of a class uses `machines[i % machines.length]`).
 * - Interleaved: rows cycle through the classes in `FAULT_CLASSES` order (row r has label
 *   r mod 5), so every prefix of the dataset is balanced too.
 * - A row's nuisance parameters are drawn uniformly from the given ranges; the fault severity
 *   only for faulty classes (a healthy row has none). A `temperatureMissingRate` fraction of
 *   rows has no temperature, as a device without the sensor would send.
 * - The result is shaped like the trainer's `LabelledDataset`: features row-major
 *   `[count, featureCount]` float32, labels int32 indices into `classes`.
 */
import { mulberry32, type Rng } from '../random/prng.js';
import { extractFeatures, FEATURE_NAMES, FEATURE_PIPELINE } from '../features/vibration-features.js';
import { FAULT_CLASSES, resolveMachine, simulateWindow, type FaultMode, type MachineType } from './machine.js';
import { deriveSeed } from './seed.js';
import { FAULT_TRUTH_SEVERITY } from './scenarios.js';

export type NumericRange = readonly [min: number, max: number];

export interface DatasetOptions {
  seed: number;
  /** Machine presets (by name) or custom machines; at least one. */
  machines: readonly (MachineType | string)[];
  windowsPerClass: number;
  /** Fault severity of faulty rows; default [FAULT_TRUTH_SEVERITY, 1] = [0.25, 1]. */
  severityRange?: NumericRange;
  /** Sensor gain; default [0.8, 1.25]. */
  gainRange?: NumericRange;
  /** Temperature (°C); default [20, 70]. */
  temperatureRange?: NumericRange;
  /** Noise standard deviation (g) — a value or a range; default [0.01, 0.05]. */
  noiseStd?: number | NumericRange;
  /** Running speed as a fraction of nominal (variable-speed drives); default [0.95, 1.05]. */
  speedRange?: NumericRange;
  /** Fraction of rows without a temperature; default 0.05. */
  temperatureMissingRate?: number;
}

export const DATASET_DEFAULTS = {
  severityRange: [FAULT_TRUTH_SEVERITY, 1],
  gainRange: [0.8, 1.25],
  temperatureRange: [20, 70],
  noiseStd: [0.01, 0.05],
  speedRange: [0.95, 1.05],
  temperatureMissingRate: 0.05,
} as const;

export interface VibrationDataset {
  /** Row-major `[count, featureCount]`. */
  features: Float32Array;
  /** Index into `classes` for each row. */
  labels: Int32Array;
  classes: typeof FAULT_CLASSES;
  featureNames: readonly string[];
  count: number;
  featureCount: number;
  classCount: number;
  /** The machine type of each row (by name), for per-machine evaluation. */
  machines: string[];
}

function checkRange(name: string, range: NumericRange, min = -Infinity): void {
  const [lo, hi] = range;
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo > hi || lo < min) {
    throw new RangeError(`generateDataset: ${name} must be a finite [min, max] with min ≤ max${min > -Infinity ? ` and min ≥ ${min}` : ''}, got [${lo}, ${hi}]`);
  }
}

const uniform = (rng: Rng, [lo, hi]: NumericRange): number => lo + (hi - lo) * rng();


export function generateDataset(options: DatasetOptions): VibrationDataset {
  const severityRange = options.severityRange ?? DATASET_DEFAULTS.severityRange;
  const gainRange = options.gainRange ?? DATASET_DEFAULTS.gainRange;
  const temperatureRange = options.temperatureRange ?? DATASET_DEFAULTS.temperatureRange;
  const noise = options.noiseStd ?? DATASET_DEFAULTS.noiseStd;
  const noiseRange: NumericRange = typeof noise === 'number' ? [noise, noise] : noise;
  const speedRange = options.speedRange ?? DATASET_DEFAULTS.speedRange;
  const missingRate = options.temperatureMissingRate ?? DATASET_DEFAULTS.temperatureMissingRate;
  if (!Number.isInteger(options.windowsPerClass) || options.windowsPerClass < 1) {
    throw new RangeError(`generateDataset: windowsPerClass must be a positive integer, got ${options.windowsPerClass}`);
  }
  if (options.machines.length === 0) throw new RangeError('generateDataset: machines must name at least one machine type');
  checkRange('severityRange', severityRange, 0);
  if (severityRange[1] > 1) throw new RangeError(`generateDataset: severityRange must lie in [0, 1], got [${severityRange[0]}, ${severityRange[1]}]`);
  checkRange('gainRange', gainRange, 0);
  checkRange('temperatureRange', temperatureRange);
  checkRange('noiseStd', noiseRange, 0);
  checkRange('speedRange', speedRange, 0);
  if (!(missingRate >= 0 && missingRate <= 1)) throw new RangeError(`generateDataset: temperatureMissingRate must be in [0, 1], got ${missingRate}`);
  const machines = options.machines.map(resolveMachine);

  const classCount = FAULT_CLASSES.length;
  const featureCount = FEATURE_NAMES.length;
  const count = options.windowsPerClass * classCount;
  const features = new Float32Array(count * featureCount);
  const labels = new Int32Array(count);
  const rowMachines: string[] = new Array<string>(count);
  const { sampleRateHz, windowSize } = FEATURE_PIPELINE;

  for (let row = 0; row < count; row++) {
    const label = row % classCount;
    const fault: FaultMode = FAULT_CLASSES[label]!;
    const machine = machines[Math.floor(row / classCount) % machines.length]!;
    const rng = mulberry32(deriveSeed(options.seed, row));
    const severity = fault === 'healthy' ? 0 : uniform(rng, severityRange);
    const sensorGain = uniform(rng, gainRange);
    const temperatureC = uniform(rng, temperatureRange);
    const noiseStd = uniform(rng, noiseRange);
    const shaftHzOffset = machine.shaftHz * (uniform(rng, speedRange) - 1);
    const hasTemperature = rng() >= missingRate;
    const window = simulateWindow({ machine, fault, severity, sensorGain, temperatureC, shaftHzOffset, noiseStd, sampleRateHz, windowSize, rng });
    const vector = extractFeatures(window.samples, { sampleRateHz, temperatureC: hasTemperature ? window.temperatureC : null });
    features.set(vector, row * featureCount);
    labels[row] = label;
    rowMachines[row] = machine.name;
  }
  return { features, labels, classes: FAULT_CLASSES, featureNames: FEATURE_NAMES, count, featureCount, classCount, machines: rowMachines };
}
