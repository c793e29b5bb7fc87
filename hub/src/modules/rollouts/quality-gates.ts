/**
 * Model-quality gates: does the model behave on the devices that took it, compared with the
 * devices of the same cohort still on the previous version (the control group) over the same
 * time? Install success says nothing about that; these numbers do.
 *
 * Each gate compares one statistic of the two groups' telemetry since the stage started:
 *  - driftPsi: median over devices of their latest drift PSI (the larger of the prediction PSI
 *    and the largest feature PSI), updated minus control; absolute when there is no control
 *    group. Agents measure PSI against their own baseline (agent/src/components/drift-monitor.ts),
 *    learned under the model they ran before, so a model that reads the same machines
 *    differently shows as prediction drift on the updated devices only;
 *  - latencyP95Ratio: median of the summaries' p95 latency, updated over control;
 *  - errorRateDelta: errors per inference, updated minus control, in percentage points;
 *  - alertRateDelta: maintenance alerts per device-hour of telemetry, updated minus control.
 * A group with fewer than `minSamples` summaries is `insufficient_data`, which neither passes
 * nor breaches: the stage advances on its other criteria (say so in the status, not silently).
 * Updated devices count only summaries sent while the rollout's model was active.
 */
import type { TelemetryT } from '@cairn/shared';
import type { Gates } from './rollout-spec.js';

export const GATE_NAMES = ['driftPsi', 'latencyP95Ratio', 'errorRateDelta', 'alertRateDelta'] as const;
export type GateName = (typeof GATE_NAMES)[number];

export interface GateResult {
  gate: GateName;
  threshold: number;
  status: 'pass' | 'breach' | 'insufficient_data';
  value: number | null;
  updated: number | null;
  control: number | null;
  /** Summaries each group contributed. */
  samples: { updated: number; control: number };
}

/** The telemetry and alert counts of one group of devices over the gate's time range. */
export interface GroupData {
  summaries: TelemetryT[];
  /** Latest drift PSI per device that reported one. */
  latestDrift: number[];
  alerts: number;
}

/** A summary's drift PSI (older agents, and models without a drift reference, send none). */
export function driftOf(t: TelemetryT): number | null {
  const drift = t.drift;
  if (!drift) return null;
  const values = [drift.predictionPsi, drift.maxFeaturePsi].filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return values.length === 0 ? null : Math.max(...values);
}

export function median(values: readonly number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

interface GroupStats {
  samples: number;
  drift: number | null;
  latencyP95: number | null;
  errorRate: number | null;
  alertsPerDeviceHour: number | null;
}

function stats(group: GroupData): GroupStats {
  let inferences = 0;
  let errors = 0;
  let hours = 0;
  const p95: number[] = [];
  for (const t of group.summaries) {
    inferences += t.inferences;
    errors += t.errors;
    hours += t.intervalMs / 3_600_000;
    if (t.latencyMs) p95.push(t.latencyMs.p95);
  }
  return {
    samples: group.summaries.length,
    drift: median(group.latestDrift),
    latencyP95: median(p95),
    errorRate: inferences === 0 ? null : (100 * errors) / inferences,
    alertsPerDeviceHour: hours === 0 ? null : group.alerts / hours,
  };
}

export function evaluateGates(gates: Gates, updated: GroupData, control: GroupData): GateResult[] {
  const u = stats(updated);
  const c = stats(control);
  const hasControl = c.samples >= gates.minSamples;
  const enough = u.samples >= gates.minSamples;
  const results: GateResult[] = [];
  const judge = (gate: GateName, threshold: number | undefined, uv: number | null, cv: number | null, combine: (u: number, c: number) => number, absoluteWithoutControl: boolean) => {
    if (threshold === undefined) return;
    const samples = { updated: u.samples, control: c.samples };
    let value: number | null = null;
    if (enough && uv !== null) {
      if (hasControl && cv !== null) value = combine(uv, cv);
      else if (absoluteWithoutControl) value = uv;
    }
    const status = value === null ? 'insufficient_data' : value > threshold ? 'breach' : 'pass';
    results.push({ gate, threshold, status, value: value === null ? null : round(value), updated: uv === null ? null : round(uv), control: cv === null ? null : round(cv), samples });
  };
  judge('driftPsi', gates.driftPsi, u.drift, c.drift, (a, b) => a - b, true);
  judge('latencyP95Ratio', gates.latencyP95Ratio, u.latencyP95, c.latencyP95, (a, b) => (b > 0 ? a / b : a > 0 ? 1e9 : 1), false);
  judge('errorRateDelta', gates.errorRateDelta, u.errorRate, c.errorRate, (a, b) => a - b, false);
  judge('alertRateDelta', gates.alertRateDelta, u.alertsPerDeviceHour, c.alertsPerDeviceHour, (a, b) => a - b, false);
  return results;
}

const round = (v: number): number => (Number.isFinite(v) ? Math.round(v * 10_000) / 10_000 : v);
