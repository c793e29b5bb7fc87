/**
 * The inference pipeline: run the active model, report latency and errors to its observers (the
 * telemetry interval's stats, the drift monitor, the Prometheus metrics). The local API calls
 * `infer`; sources (simulated machine, stdin, local MQTT) call `process`, which also hands each
 * window's outputs to the maintenance rules.
 */
import { performance } from 'node:perf_hooks';
import type { Feeds, Tensor } from './runtime/types.js';
import type { ActiveModel, ServedBundle } from './active-model.js';
import { NoModelError } from '../errors.js';
import type { MaintenanceRules } from './maintenance-rules.js';

export interface InferenceResult {
  outputs: Record<string, Tensor>;
  bundle: ServedBundle;
  latencyMs: number;
}

/** What a successful inference saw and answered; observers read it and must neither keep nor change it. */
export interface ObservedInference {
  feeds: Feeds;
  outputs: Record<string, Tensor>;
  bundle: ServedBundle;
}

/** Told about every inference; must not throw. Observers that only count may ignore `inference`. */
export interface InferenceObserver {
  success(latencyMs: number, inference: ObservedInference): void;
  failure(): void;
}

export class Pipeline {
  constructor(
    private readonly active: ActiveModel,
    private readonly observers: readonly InferenceObserver[],
    private readonly rules: MaintenanceRules | null = null,
  ) {}

  /** One source window at time `ts`: inference, then the maintenance rules. */
  async process(feeds: Feeds, ts: number): Promise<InferenceResult> {
    const result = await this.infer(feeds);
    this.rules?.observe(ts, result.outputs, result.bundle);
    return result;
  }

  /** Rejects with NoModelError (not counted) when nothing is served, or with the runtime's error (counted). */
  async infer(feeds: Feeds): Promise<InferenceResult> {
    const started = performance.now();
    try {
      const { outputs, bundle } = await this.active.infer(feeds);
      const latencyMs = performance.now() - started;
      for (const observer of this.observers) observer.success(latencyMs, { feeds, outputs, bundle });
      return { outputs, bundle, latencyMs };
    } catch (err) {
      if (!(err instanceof NoModelError)) for (const observer of this.observers) observer.failure();
      throw err;
    }
  }
}
