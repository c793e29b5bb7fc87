/**
 * The inference pipeline every source goes through (the simulated source and the local API
 * today; features and rules join later): run the active model, record latency and errors.
 */
import { performance } from 'node:perf_hooks';
import type { Feeds, Tensor } from './runtime/types.js';
import type { ActiveModel, ServedBundle } from './active-model.js';
import type { InferenceStats } from './inference-stats.js';
import { NoModelError } from '../errors.js';

export interface InferenceResult {
  outputs: Record<string, Tensor>;
  bundle: ServedBundle;
  latencyMs: number;
}

export class Pipeline {
  constructor(
    private readonly active: ActiveModel,
    private readonly stats: InferenceStats,
  ) {}

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
