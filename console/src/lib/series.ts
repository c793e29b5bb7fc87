/**
 * Device metrics in the shape of issue 7's `GET /api/v1/telemetry/series` contract, computed in
 * the browser from raw telemetry summaries while that route is not on the hub (api.ts
 * `deviceSeries` decides which). Pure, so node:test checks it.
 *
 * One point per summary (source 'raw'): rates are per second over the summary's own interval;
 * latency is the agent's interval p50/p95; drift PSI only where the agent measured it.
 */
import type { RawTelemetry, Series, SeriesPoint } from './api.js';

export function seriesFromRaw(summaries: readonly RawTelemetry[], from: number, to: number): Series {
  const points: SeriesPoint[] = [...summaries]
    .filter((s) => s.ts >= from && s.ts < to)
    .sort((a, b) => a.ts - b.ts)
    .map((s) => {
      const seconds = s.intervalMs / 1000;
      return {
        t: s.ts,
        summaries: 1,
        inferences: s.inferences,
        errors: s.errors,
        inferenceRate: seconds > 0 ? s.inferences / seconds : null,
        errorRate: seconds > 0 ? s.errors / seconds : null,
        latencyP50Ms: s.latencyMs?.p50 ?? null,
        latencyP95Ms: s.latencyMs?.p95 ?? null,
        cpuPct: s.cpuPct,
        rssMb: s.rssMb,
        predictionPsi: s.drift?.predictionPsi ?? null,
        maxFeaturePsi: s.drift?.maxFeaturePsi ?? null,
      };
    });
  const stepMs = summaries[0]?.intervalMs ?? 10_000;
  return { from, to, stepMs, source: 'raw', devices: 1, points };
}

/** The metrics the device page charts, each read from a series point. */
export const CHARTS = [
  { id: 'throughput', title: 'Inference rate', unit: '/s', lines: [{ label: 'inferences/s', key: 'inferenceRate' }] },
  { id: 'latency', title: 'Latency', unit: 'ms', lines: [{ label: 'p50', key: 'latencyP50Ms' }, { label: 'p95', key: 'latencyP95Ms' }] },
  { id: 'errors', title: 'Errors', unit: '/s', lines: [{ label: 'errors/s', key: 'errorRate' }] },
  { id: 'resources', title: 'CPU and memory', unit: '% · MB', lines: [{ label: 'CPU %', key: 'cpuPct' }, { label: 'RSS MB', key: 'rssMb' }] },
  { id: 'drift', title: 'Drift (PSI)', unit: 'PSI', lines: [{ label: 'prediction', key: 'predictionPsi' }, { label: 'max feature', key: 'maxFeaturePsi' }] },
] as const satisfies readonly { id: string; title: string; unit: string; lines: readonly { label: string; key: keyof SeriesPoint }[] }[];

export type ChartId = (typeof CHARTS)[number]['id'];

/**
 * uPlot's column layout: `[times in seconds, ...one array per line]`, null where a point has no
 * value (uPlot draws a gap there rather than a false zero).
 */
export function chartColumns(points: readonly SeriesPoint[], keys: readonly (keyof SeriesPoint)[]): [number[], ...(number | null)[][]] {
  const times = points.map((p) => p.t / 1000);
  const lines = keys.map((key) => points.map((p) => (typeof p[key] === 'number' && Number.isFinite(p[key]) ? (p[key] as number) : null)));
  return [times, ...lines];
}

/** Points that carry a value for at least one of the keys: what "the chart has data" means. */
export function countValues(points: readonly SeriesPoint[], keys: readonly (keyof SeriesPoint)[]): number {
  return points.filter((p) => keys.some((key) => typeof p[key] === 'number')).length;
}

export const RANGES = [
  { id: '15m', label: '15 min', ms: 15 * 60_000 },
  { id: '1h', label: '1 hour', ms: 3_600_000 },
  { id: '6h', label: '6 hours', ms: 6 * 3_600_000 },
  { id: '24h', label: '24 hours', ms: 24 * 3_600_000 },
  { id: '7d', label: '7 days', ms: 7 * 24 * 3_600_000 },
] as const;
export type RangeId = (typeof RANGES)[number]['id'];

export function rangeMs(id: string): number {
  return (RANGES.find((r) => r.id === id) ?? RANGES[1]).ms;
}
