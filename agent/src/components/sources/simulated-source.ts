/**
 * The simulated input source: every `intervalMs` one input through the pipeline. Runs never
 * overlap; nothing runs while no model is active.
 *
 * When the active bundle's manifest names the `cairn.vibration` feature pipeline (and its input
 * is that wide), the input is real: a vibration window of this device's simulated machine at
 * the current time (shared/src/sim — machine type, condition and drift scenario from the
 * config), turned into features by the same code that built the training data. The source
 * counts how often the model's argmax matches the machine's true condition. The machine's clock
 * follows the agent's, or with `simulatedStepMs` advances that much per window (compressed
 * simulated time: a scenario of hours in a few hundred windows, whatever the machine's load).
 * Any other model gets seeded random float32 inputs matching its input signature (symbolic
 * dimensions → 1).
 */
import type { Logger } from 'pino';
import type { TensorSpecT } from '@cairn/shared';
import type { Feeds } from '../runtime/types.js';
import type { ActiveModel, ServedModel } from '../active-model.js';
import type { Pipeline } from '../pipeline.js';
import { mulberry32, createDeviceSignal, extractFeatures, FAULT_CLASSES, FEATURE_COUNT, type DeviceSignal, type DriftScenarioKind, type FaultMode, type MachineTypeName } from '@cairn/shared';
import { modelInputs, takesVibrationFeatures } from './records.js';

const FLOAT32_TYPES = new Set(['float32', 'float', 'tensor(float)']);

export interface SimulatedMachine {
  machine?: MachineTypeName;
  fault?: FaultMode;
  severity?: number;
  scenario?: DriftScenarioKind;
  /** Simulated time after the start at which the scenario begins; default 0. */
  scenarioStartAfterMs?: number;
  /** Simulated time per window; default: the agent's clock. */
  simulatedStepMs?: number;
}

export interface SimulatedSourceStats {
  /** Inferences run on vibration windows, and how many predicted the machine's true condition. */
  windows: number;
  matches: number;
  lastTruth: FaultMode | null;
  lastPredicted: string | null;
}

export interface SimulatedSourceOptions {
  intervalMs: number;
  seed: number;
  machine?: SimulatedMachine;
  clock?: () => number;
  active: ActiveModel;
  pipeline: Pipeline;
  logger: Logger;
}

export class SimulatedSource {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly random: () => number;
  private warned = new Set<string>();
  private runs = 0;
  private signal: DeviceSignal | null = null;
  private startedAt = 0;
  private windowsDrawn = 0;
  readonly stats: SimulatedSourceStats = { windows: 0, matches: 0, lastTruth: null, lastPredicted: null };

  constructor(private readonly options: SimulatedSourceOptions) {
    this.random = mulberry32(options.seed);
  }

  start(): void {
    const m = this.options.machine ?? {};
    const clock = this.options.clock ?? Date.now;
    this.startedAt = clock();
    this.signal = createDeviceSignal({
      machine: m.machine ?? 'pump-1800',
      seed: this.options.seed,
      startMs: this.startedAt,
      ...(m.fault ? { fault: m.fault } : {}),
      ...(m.severity !== undefined ? { severity: m.severity } : {}),
      ...(m.scenario ? { scenario: { kind: m.scenario, ...(m.scenarioStartAfterMs !== undefined ? { startAfterMs: m.scenarioStartAfterMs } : {}) } } : {}),
    });
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get count(): number {
    return this.runs;
  }

  private async tick(): Promise<void> {
    const current = this.options.active.current;
    if (this.running || !current) return;
    const vibration = this.vibrationFeeds(current);
    const feeds = vibration?.feeds ?? this.buildFeeds(modelInputs(current), current.bundle.digest);
    if (!feeds) return;
    this.running = true;
    try {
      const result = await this.options.pipeline.process(feeds, (this.options.clock ?? Date.now)());
      this.runs++;
      if (vibration) this.score(vibration.truth, result.outputs, current.bundle.manifest.features);
    } catch (err) {
      this.options.logger.debug({ err }, 'simulated inference failed');
    } finally {
      this.running = false;
    }
  }

  /** Feeds of one vibration window, when the model takes this pipeline's features. */
  private vibrationFeeds(model: ServedModel): { feeds: Feeds; truth: FaultMode } | null {
    const input = modelInputs(model)[0];
    if (!this.signal || !input || !takesVibrationFeatures(model)) return null;
    const step = this.options.machine?.simulatedStepMs;
    const window = this.signal.windowAt(step === undefined ? (this.options.clock ?? Date.now)() : this.startedAt + step * this.windowsDrawn++);
    const data = extractFeatures(window.samples, { sampleRateHz: this.signal.sampleRateHz, temperatureC: window.temperatureC });
    return { feeds: { [input.name]: { dims: [1, FEATURE_COUNT], data } }, truth: window.truth };
  }

  private score(truth: FaultMode, outputs: Record<string, { data: Float32Array }>, features: Record<string, unknown> | undefined): void {
    const scores = Object.values(outputs)[0]?.data;
    if (!scores) return;
    const classes = Array.isArray(features?.classes) ? (features.classes as string[]) : FAULT_CLASSES;
    let best = 0;
    for (let i = 1; i < scores.length; i++) if (scores[i]! > scores[best]!) best = i;
    const predicted = Number.isNaN(scores[best]) ? null : (classes[best] ?? null);
    this.stats.windows++;
    if (predicted === truth) this.stats.matches++;
    this.stats.lastTruth = truth;
    this.stats.lastPredicted = predicted;
  }

  private buildFeeds(inputs: TensorSpecT[], digest: string): Feeds | null {
    const feeds: Feeds = {};
    for (const input of inputs) {
      if (!FLOAT32_TYPES.has(input.type)) {
        if (!this.warned.has(digest)) {
          this.warned.add(digest);
          this.options.logger.warn({ input: input.name, type: input.type }, 'the simulated source only produces float32 inputs; idle for this model');
        }
        return null;
      }
      const dims = input.dims.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
      const data = new Float32Array(dims.reduce((n, d) => n * d, 1));
      for (let i = 0; i < data.length; i++) data[i] = this.random() * 2 - 1;
      feeds[input.name] = { dims, data };
    }
    return feeds;
  }
}
