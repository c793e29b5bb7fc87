/**
 * Inference counters for one telemetry interval: count, errors and a bounded latency reservoir
 * (Vitter's algorithm R), so that memory stays flat however many inferences an interval holds.
 * The maximum is exact; percentiles are estimated from the reservoir.
 */
import type { LatencySummaryT } from '@cairn/shared';

export const DEFAULT_RESERVOIR_SIZE = 1024;

export interface IntervalStats {
  inferences: number;
  errors: number;
  latencyMs: LatencySummaryT | null;
}

export class InferenceStats {
  private inferences = 0;
  private errors = 0;
  private seen = 0;
  private max = 0;
  private samples: number[] = [];
  private totalInferences = 0;
  private totalErrors = 0;

  constructor(
    private readonly reservoirSize = DEFAULT_RESERVOIR_SIZE,
    private readonly random: () => number = Math.random,
  ) {}

  /** One successful inference that took `latencyMs`. */
  success(latencyMs: number): void {
    this.inferences++;
    this.totalInferences++;
    this.seen++;
    if (latencyMs > this.max) this.max = latencyMs;
    if (this.samples.length < this.reservoirSize) {
      this.samples.push(latencyMs);
    } else {
      const slot = Math.floor(this.random() * this.seen);
      if (slot < this.reservoirSize) this.samples[slot] = latencyMs;
    }
  }

  /** One inference that failed (it counts as an inference and as an error). */
  failure(): void {
    this.inferences++;
    this.errors++;
    this.totalInferences++;
    this.totalErrors++;
  }

  /** Returns the interval's summary and starts a new interval. */
  drain(): IntervalStats {
    const samples = this.samples.sort((a, b) => a - b);
    const summary: IntervalStats = {
      inferences: this.inferences,
      errors: this.errors,
      latencyMs:
        samples.length === 0
          ? null
          : { p50: round(quantile(samples, 0.5)), p95: round(quantile(samples, 0.95)), p99: round(quantile(samples, 0.99)), max: round(this.max) },
    };
    this.inferences = 0;
    this.errors = 0;
    this.seen = 0;
    this.max = 0;
    this.samples = [];
    return summary;
  }

  /** Totals since start (for the agent's status). */
  get totals(): { inferences: number; errors: number } {
    return { inferences: this.totalInferences, errors: this.totalErrors };
  }
}

/** Nearest-rank quantile of sorted samples. */
function quantile(sorted: number[], q: number): number {
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

function round(ms: number): number {
  return Math.min(3.6e6, Math.round(ms * 1000) / 1000);
}
