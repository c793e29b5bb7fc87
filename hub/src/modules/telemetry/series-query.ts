/**
 * Time-series queries for charts: the step and the source for a range, and the API points.
 *
 * Step: the caller's `stepMs`, or the smallest step of `STEP_LADDER_MS` that gives at most
 * `AUTO_MAX_POINTS` points (a day of minutes). Source: whole hours → hour rollups, whole minutes
 * → minute rollups, anything finer or uneven → raw summaries aggregated on the fly. Buckets are
 * aligned to the epoch (`t = floor(ts / stepMs) * stepMs`), the first being the one holding
 * `from`; every bucket up to `to` (exclusive) is a point, with null statistics where no summary
 * fell (counts are 0 there).
 */
import { Type, type Static } from 'typebox';
import { Errors } from '../../infra/errors.js';
import type { BucketAggregate, SeriesSource } from './telemetry.repository.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const STEP_LADDER_MS = [10_000, 30_000, MINUTE_MS, 5 * MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, 24 * HOUR_MS] as const;
export const AUTO_MAX_POINTS = 1440;

const NullableNumber = Type.Union([Type.Number(), Type.Null()]);
export const SeriesPoint = Type.Object({
  t: Type.Integer({ description: 'bucket start, epoch ms' }),
  summaries: Type.Integer(),
  inferences: Type.Integer(),
  errors: Type.Integer(),
  inferenceRate: NullableNumber,
  errorRate: NullableNumber,
  latencyP50Ms: NullableNumber,
  latencyP95Ms: NullableNumber,
  cpuPct: NullableNumber,
  rssMb: NullableNumber,
  predictionPsi: NullableNumber,
  maxFeaturePsi: NullableNumber,
});
export type SeriesPointT = Static<typeof SeriesPoint>;

export interface SeriesPlan {
  stepMs: number;
  source: SeriesSource;
  /** The first bucket's start (from, aligned down to the step). */
  alignedFrom: number;
}

/** Validates the range and picks the step and source; every refusal is a 400 naming the limit. */
export function planSeries(from: number, to: number, stepMs: number | undefined, maxPoints: number): SeriesPlan {
  if (from >= to) throw Errors.badRequest(`inverted or empty time range: from (${from}) must be before to (${to})`);
  const span = to - from;
  let step: number;
  if (stepMs !== undefined) {
    if (span / stepMs > maxPoints) {
      throw Errors.badRequest(`too many points: (to - from) / stepMs = ${Math.ceil(span / stepMs)} exceeds telemetry.maxQueryPoints (${maxPoints}); use a stepMs of at least ${Math.ceil(span / maxPoints)}`);
    }
    step = stepMs;
  } else {
    const limit = Math.min(AUTO_MAX_POINTS, maxPoints);
    const fitting = STEP_LADDER_MS.find((s) => span / s <= limit);
    if (fitting === undefined) {
      throw Errors.badRequest(`too many points: the range spans ${Math.ceil(span / STEP_LADDER_MS.at(-1)!)} days, more than telemetry.maxQueryPoints (${maxPoints}) even at one point a day`);
    }
    step = fitting;
  }
  const source: SeriesSource = step % HOUR_MS === 0 ? 'hour' : step % MINUTE_MS === 0 ? 'minute' : 'raw';
  return { stepMs: step, source, alignedFrom: Math.floor(from / step) * step };
}

/** The dense list of points from the buckets that had data. */
export function toPoints(plan: SeriesPlan, to: number, buckets: readonly BucketAggregate[]): SeriesPointT[] {
  const byT = new Map(buckets.map((b) => [b.t, b]));
  const seconds = plan.stepMs / 1000;
  const points: SeriesPointT[] = [];
  for (let t = plan.alignedFrom; t < to; t += plan.stepMs) {
    const b = byT.get(t);
    if (!b || b.summaries === 0) {
      points.push({ t, summaries: 0, inferences: 0, errors: 0, inferenceRate: null, errorRate: null, latencyP50Ms: null, latencyP95Ms: null, cpuPct: null, rssMb: null, predictionPsi: null, maxFeaturePsi: null });
      continue;
    }
    points.push({
      t,
      summaries: b.summaries,
      inferences: b.inferences,
      errors: b.errors,
      inferenceRate: b.inferences / seconds,
      errorRate: b.errors / seconds,
      latencyP50Ms: b.latN > 0 ? b.p50WSum / b.latN : null,
      latencyP95Ms: b.p95Max,
      cpuPct: b.cpuSum / b.summaries,
      rssMb: b.rssSum / b.summaries,
      predictionPsi: b.psiPredMax,
      maxFeaturePsi: b.psiFeatMax,
    });
  }
  return points;
}
