/**
 * Judges a candidate model on live traffic during its trial (DESIGN §4), by the manifest's
 * trial policy: error rate, latency against the hot standby's on the same traffic (median,
 * and p95 once there are enough standby samples; an optional absolute p95 budget too), NaN/Inf
 * outputs, and outputs that stay constant while the standby's answers to the same traffic vary
 * (a collapsed model). Pure bookkeeping: no timers, no I/O; ActiveModel feeds it every
 * candidate result and the Trial asks it when the window is over.
 *
 * `record*` return the failure as soon as one is certain, so a rollback happens on the very
 * inference that proved it.
 *
 * Latency here is compute time: the wall time of onnxruntime's `run` inside each model's worker
 * (`Inference.computeMs`), for the candidate and for the standby alike. The check asks whether
 * the candidate *model* is slower, and the time until an answer arrives mixes that with what is
 * not the model's: the wait in the worker's queue, the message hop and the worker's wake-up, the
 * agent's event loop. On a loaded machine those dominated sub-millisecond models (4 of 100 swaps
 * between two models of equal speed were rolled back with `trial_latency` at 2–7 ms against
 * 0.5–1 ms, where both compute in ~0.06 ms). Nothing is lost by leaving them out: the hop is the
 * same runtime for both models, and a candidate whose queue grows because each run is slow shows
 * that slowness 1:1 in its compute time (the slow reference image: ~40× in both measures).
 * What clients wait is still measured, by the pipeline's statistics.
 */
import type { TrialPolicyT } from '@cairn/shared';
import type { Feeds, Tensor } from '../runtime/types.js';

export type TrialFailureReason = 'trial_error_rate' | 'trial_latency' | 'trial_non_finite' | 'trial_collapsed';

export interface TrialFailure {
  reason: TrialFailureReason;
  message: string;
}

export interface TrialSummary {
  inferences: number;
  errors: number;
  nonFinite: number;
  p95Ms: number | null;
  standbyP95Ms: number | null;
}

/** Latency samples kept per side; older ones are overwritten (the p95 is of the recent ones). */
const MAX_SAMPLES = 4096;
/** Below this many standby samples the latency ratio is not judged … */
const MIN_BASELINE_SAMPLES = 5;
/** … and below this many, not its tail. */
const MIN_TAIL_SAMPLES = 20;
/** How often (in candidate samples) the p95s are recomputed once the minimum is reached. */
const LATENCY_CHECK_EVERY = 10;

export class TrialMonitor {
  private successes = 0;
  private errors = 0;
  private nonFinite = 0;
  private readonly latencies: number[] = [];
  private readonly baseline: number[] = [];
  private firstOutput: Float32Array | null = null;
  private firstInput: Float32Array | null = null;
  private outputsVaried = false;
  private inputsVaried = false;
  private firstStandbyOutput: Float32Array | null = null;
  private standbyVaried = false;

  constructor(
    readonly policy: TrialPolicyT,
    private readonly hasStandby: boolean,
  ) {}

  /** A candidate inference that returned outputs after computing for `computeMs`. */
  recordSuccess(computeMs: number, outputs: Record<string, Tensor>, feeds: Feeds): TrialFailure | null {
    this.successes++;
    push(this.latencies, computeMs);
    const data = firstData(outputs);
    if (data && !allFinite(outputs)) {
      this.nonFinite++;
      if (this.nonFinite > this.policy.maxNonFinite) return { reason: 'trial_non_finite', message: `${this.nonFinite} of ${this.total} trial inferences returned NaN or Infinity` };
    }
    this.trackVariation(data, firstData(feeds));
    return this.judgeRates() ?? (this.successes % LATENCY_CHECK_EVERY === 0 ? this.judgeLatency() : null);
  }

  /** A candidate inference that failed in the runtime. */
  recordError(): TrialFailure | null {
    this.errors++;
    return this.judgeRates();
  }

  /**
   * Whether candidate request number `request` should also run on the standby: every one until
   * the baseline can judge tails, then one in `shadowEvery` (a device with little traffic would
   * otherwise end its trial with too few samples to compare).
   */
  shouldShadow(request: number): boolean {
    return this.hasStandby && (this.baseline.length < MIN_TAIL_SAMPLES || request % this.policy.shadowEvery === 0);
  }

  /** The standby's compute time and outputs on a shadowed trial request. */
  recordBaseline(computeMs: number, outputs: Record<string, Tensor>): void {
    push(this.baseline, computeMs);
    const data = firstData(outputs);
    if (!data) return;
    if (!this.firstStandbyOutput) this.firstStandbyOutput = Float32Array.from(data);
    else if (!this.standbyVaried && differs(this.firstStandbyOutput, data)) this.standbyVaried = true;
  }

  get total(): number {
    return this.successes + this.errors;
  }

  /** Whether the trial has seen enough to commit after `elapsedMs`: 'commit', 'wait', or 'timeout' (commit with what was seen). */
  readiness(elapsedMs: number): 'commit' | 'wait' | 'timeout' {
    if (elapsedMs < this.policy.durationMs) return 'wait';
    if (this.total >= this.policy.minInferences) return 'commit';
    return elapsedMs >= this.policy.maxDurationMs ? 'timeout' : 'wait';
  }

  /** Every check, on everything seen so far (called once more before a commit). */
  finalVerdict(): TrialFailure | null {
    return this.judgeRates() ?? this.judgeLatency();
  }

  summary(): TrialSummary {
    return { inferences: this.total, errors: this.errors, nonFinite: this.nonFinite, p95Ms: quantile(this.latencies, 0.95), standbyP95Ms: quantile(this.baseline, 0.95) };
  }

  private judgeRates(): TrialFailure | null {
    const { maxErrorRate, minInferences, detectCollapse } = this.policy;
    if (this.total < minInferences) return null;
    const rate = this.errors / this.total;
    if (rate > maxErrorRate) return { reason: 'trial_error_rate', message: `${this.errors} of ${this.total} trial inferences failed (${pct(rate)}, the policy allows ${pct(maxErrorRate)})` };
    // A confident model saturates its softmax on a clearly faulty machine, so "constant" alone
    // proves nothing: it counts only when the standby's answers to the same traffic vary.
    if (detectCollapse && this.hasStandby && this.successes >= minInferences && this.inputsVaried && this.standbyVaried && !this.outputsVaried)
      return { reason: 'trial_collapsed', message: `the outputs stayed constant over ${this.successes} trial inferences while the previous model's answers to the same inputs varied` };
    return null;
  }

  /**
   * Against the standby on the same traffic, medians first: a model that is slower on every
   * request shows in its median, which one load spike cannot move. Tails (p95) are compared
   * once the standby has enough samples for a p95 of its own.
   */
  private judgeLatency(): TrialFailure | null {
    const { minInferences, maxLatencyP95Ms, maxLatencyRatio, latencyFloorMs } = this.policy;
    if (this.latencies.length < minInferences) return null;
    const candidate = { p50: quantile(this.latencies, 0.5)!, p95: quantile(this.latencies, 0.95)! };
    if (maxLatencyP95Ms !== null && candidate.p95 > maxLatencyP95Ms) return { reason: 'trial_latency', message: `p95 compute time ${ms(candidate.p95)} exceeds the budget of ${ms(maxLatencyP95Ms)}` };
    if (!this.hasStandby || this.baseline.length < MIN_BASELINE_SAMPLES) return null;
    const standby = { p50: quantile(this.baseline, 0.5)!, p95: quantile(this.baseline, 0.95)! };
    for (const stat of ['p50', 'p95'] as const) {
      if (stat === 'p95' && this.baseline.length < MIN_TAIL_SAMPLES) continue;
      if (candidate[stat] > latencyFloorMs && candidate[stat] > maxLatencyRatio * standby[stat]) {
        return {
          reason: 'trial_latency',
          message: `${stat === 'p50' ? 'median' : 'p95'} compute time ${ms(candidate[stat])} is ${(candidate[stat] / standby[stat]).toFixed(1)}× the previous model's ${ms(standby[stat])} on the same traffic (the policy allows ${maxLatencyRatio}×)`,
        };
      }
    }
    return null;
  }

  private trackVariation(output: Float32Array | null, input: Float32Array | null): void {
    if (output) {
      if (!this.firstOutput) this.firstOutput = Float32Array.from(output);
      else if (!this.outputsVaried && differs(this.firstOutput, output)) this.outputsVaried = true;
    }
    if (input) {
      if (!this.firstInput) this.firstInput = Float32Array.from(input);
      else if (!this.inputsVaried && differs(this.firstInput, input)) this.inputsVaried = true;
    }
  }
}

function push(samples: number[], value: number): void {
  if (samples.length >= MAX_SAMPLES) samples.shift();
  samples.push(value);
}

/** The nearest-rank quantile `q` of `samples`. */
export function quantile(samples: readonly number[], q: number): number | null {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1))]!;
}

function firstData(tensors: Record<string, Tensor>): Float32Array | null {
  for (const t of Object.values(tensors)) return t.data;
  return null;
}

export function allFinite(tensors: Record<string, Tensor>): boolean {
  for (const t of Object.values(tensors)) for (const v of t.data) if (!Number.isFinite(v)) return false;
  return true;
}

/** Any bit of difference: a deterministic model maps different inputs to different floats unless it ignores them. */
function differs(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return true;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return true;
  return false;
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
const ms = (x: number) => `${x.toFixed(2)} ms`;
