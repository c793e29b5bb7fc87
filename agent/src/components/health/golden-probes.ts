/**
 * Golden probes (DESIGN §4, "probing"): before a candidate serves anything, it runs the inputs
 * its manifest lists and must return finite outputs, within `probeTolerance` of the expected
 * ones, each within `probeLatencyMs`. The first probe runs once unmeasured, because a fresh
 * onnxruntime session allocates on its first run.
 *
 * A probe's latency is its compute time (`session.run` inside the worker, `Inference.computeMs`),
 * not the time until its answer arrived: the budget is about the model, and a worker shared with
 * other work (the fleet simulator shares one per digest across its agents) queues a probe behind
 * requests that are not the candidate's doing.
 */
import type { HealthPolicy } from '@cairn/shared';
import type { ModelSession, Tensor } from '../runtime/types.js';
import { allFinite } from './trial-monitor.js';

export type ProbeFailureReason = 'probe_error' | 'probe_non_finite' | 'probe_mismatch' | 'probe_latency';

export type ProbeOutcome = { ok: true; probes: number; maxLatencyMs: number } | { ok: false; reason: ProbeFailureReason; message: string };

export async function runGoldenProbes(session: ModelSession, policy: HealthPolicy): Promise<ProbeOutcome> {
  const input = session.inputs[0];
  if (policy.probes.length === 0 || !input) return { ok: true, probes: 0, maxLatencyMs: 0 };
  const dims = [1, ...input.dims.slice(1).map((d) => (typeof d === 'number' ? d : 1))];
  const feedsOf = (values: number[]) => ({ [input.name]: { dims, data: Float32Array.from(values) } });
  let maxLatencyMs = 0;
  for (let i = 0; i < policy.probes.length; i++) {
    const probe = policy.probes[i]!;
    let outputs: Record<string, Tensor>;
    let latencyMs: number;
    try {
      if (i === 0) await session.infer(feedsOf(probe.input));
      ({ outputs, computeMs: latencyMs } = await session.infer(feedsOf(probe.input)));
    } catch (err) {
      return { ok: false, reason: 'probe_error', message: `probe ${i}: ${(err as Error).message}` };
    }
    maxLatencyMs = Math.max(maxLatencyMs, latencyMs);
    if (!allFinite(outputs)) return { ok: false, reason: 'probe_non_finite', message: `probe ${i} returned NaN or Infinity` };
    if (probe.expected) {
      const actual = Object.values(outputs)[0]?.data ?? new Float32Array();
      let worst = 0;
      let at = 0;
      for (let j = 0; j < probe.expected.length; j++) {
        const diff = Math.abs((actual[j] ?? Number.NaN) - probe.expected[j]!);
        if (!(diff <= worst)) [worst, at] = [diff, j];
      }
      if (actual.length !== probe.expected.length || worst > policy.probeTolerance)
        return {
          ok: false,
          reason: 'probe_mismatch',
          message: `probe ${i}: output ${at} is ${actual[at]?.toPrecision(6) ?? 'missing'}, expected ${probe.expected[at]} ± ${policy.probeTolerance}${actual.length !== probe.expected.length ? ` (${actual.length} values, expected ${probe.expected.length})` : ''}`,
        };
    }
    if (latencyMs > policy.probeLatencyMs) return { ok: false, reason: 'probe_latency', message: `probe ${i} took ${latencyMs.toFixed(1)} ms to compute, the budget is ${policy.probeLatencyMs} ms` };
  }
  return { ok: true, probes: policy.probes.length, maxLatencyMs };
}
