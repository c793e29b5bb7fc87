/**
 * The inference pipeline: run the active model, record latency and errors. The local API calls
 * `infer`; sources (the simulated machine) call `process`, which also hands each window's
 * outputs to the maintenance rules.
 */
import { performance } from 'node:perf_hooks';
import type { Feeds, Tensor } from './runtime/types.js';
import type { ActiveModel, ServedBundle } from './active-model.js';
import type { InferenceStats } from './inference-stats.js';
import { NoModelError } from '../errors.js';
import type { MaintenanceRules } from './maintenance-rules.js';

export interface InferenceResult {
  outputs: Record<string, Tensor>;
  bundle: ServedBundle;
  latencyMs: number;
}

export class Pipeline {
  constructor(
    private readonly active: ActiveModel,
    private readonly stats: InferenceStats,
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
      this.stats.success(latencyMs);
      return { outputs, bundle, latencyMs };
    } catch (err) {
      if (!(err instanceof NoModelError)) this.stats.failure();
      throw err;
    }
  }
}
