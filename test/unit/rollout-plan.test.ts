/**
 * The pure parts of staged rollouts: stage arithmetic and hash order, the stage judgement,
 * spec normalization (durations, increasing stages, cron and time zone), maintenance windows
 * across a DST change, and the quality-gate statistics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TelemetryT } from '@cairn/shared';
import { countDevices, cumulativeTarget, hashOrder, judgeStage, stageTarget } from '@cairn/hub/modules/rollouts/rollout-plan.js';
import { normalizeRolloutSpec, parseDuration, type StageSpec } from '@cairn/hub/modules/rollouts/rollout-spec.js';
import { windowState } from '@cairn/hub/modules/rollouts/maintenance-window.js';
import { evaluateGates, median } from '@cairn/hub/modules/rollouts/quality-gates.js';
import type { RolloutDeviceRow } from '@cairn/hub/modules/rollouts/rollouts.repository.js';
import { HubError } from '@cairn/hub/infra/errors.js';

const stage = (size: StageSpec['size'], over: Partial<StageSpec> = {}): StageSpec => ({ size, successThreshold: 95, failureThreshold: 5, bakeMs: 0, timeoutMs: 60_000, gates: null, ...over });

test('stage targets: shares round up, counts are capped by the cohort, a stage never wants fewer than the one before', () => {
  assert.equal(stageTarget(stage({ percent: 1 }), 50, 0), 1);
  assert.equal(stageTarget(stage({ percent: 10 }), 50, 1), 5);
  assert.equal(stageTarget(stage({ percent: 33 }), 3, 0), 1, '33 % of 3 is 0.99: one device, not two');
  assert.equal(stageTarget(stage({ percent: 100 }), 0, 0), 0);
  assert.equal(stageTarget(stage({ count: 5 }), 3, 0), 3);
  assert.equal(stageTarget(stage({ percent: 10 }), 10, 4), 4, 'a count stage of 4 followed by 10 % of 10');
  const stages = [stage({ count: 1 }), stage({ percent: 10 }), stage({ percent: 50 }), stage({ percent: 100 })];
  assert.deepEqual([0, 1, 2, 3].map((i) => cumulativeTarget(stages, i, 1000)), [1, 100, 500, 1000]);
});

test('hash order is a stable permutation, different per rollout, independent of the input order', () => {
  const ids = Array.from({ length: 200 }, (_, i) => `d-${i}`);
  const a = hashOrder('ro_a', ids);
  assert.deepEqual(hashOrder('ro_a', [...ids].reverse()), a);
  assert.deepEqual([...a].sort(), [...ids].sort());
  assert.notDeepEqual(hashOrder('ro_b', ids), a);
  // A device joining the cohort does not reorder the others.
  const joined = hashOrder('ro_a', [...ids, 'd-new']).filter((id) => id !== 'd-new');
  assert.deepEqual(joined, a);
});

const row = (state: RolloutDeviceRow['state']): RolloutDeviceRow => ({
  rolloutId: 'ro',
  deviceId: Math.random().toString(36),
  stage: 0,
  state,
  phase: null,
  reason: null,
  previousModel: null,
  previousDigest: null,
  assignedAt: 0,
  updatedAt: 0,
});

test('stage judgement: failures over the updated devices, successes over those that did not time out', () => {
  const s = stage({ percent: 100 }, { successThreshold: 90, failureThreshold: 10 });
  const rows = [...Array.from({ length: 9 }, () => row('committed')), row('timed_out'), row('reverted')];
  const counts = countDevices(rows);
  assert.deepEqual(counts, { updated: 10, committed: 9, failed: 0, timedOut: 1, inProgress: 0 });
  assert.deepEqual(judgeStage(s, counts, 10), { failureShare: 0, successShare: 100, breached: false, healthy: true });
  const failing = countDevices([...rows, row('failed'), row('failed')]);
  const j = judgeStage(s, failing, 12);
  assert.ok(Math.abs(j.failureShare - (100 * 2) / 12) < 1e-9);
  assert.equal(j.breached, true);
  assert.equal(judgeStage(s, countDevices([row('committed')]), 2).healthy, false, 'not every device the stage wants is told yet');
  assert.equal(judgeStage(s, countDevices([row('timed_out')]), 1).healthy, false, 'no evidence is not health');
  assert.equal(judgeStage(stage({ percent: 100 }, { successThreshold: 0 }), countDevices([row('assigned')]), 1).healthy, true, 'a direct deployment needs no commit');
});

test('spec normalization: defaults, durations, and each refusal names its field', () => {
  const spec = normalizeRolloutSpec({ model: 'm@1.0.0', selector: 'site=a', stages: [{ size: 1, bake: '90s' }, { size: '10%' }, { size: '100%', timeout: '1h' }], window: { cron: '0 2 * * 1-5', duration: '2h', timezone: 'Europe/Berlin' } });
  assert.deepEqual(spec.stages.map((s) => [s.size, s.bakeMs, s.timeoutMs, s.successThreshold, s.failureThreshold]), [
    [{ count: 1 }, 90_000, 30 * 60_000, 95, 5],
    [{ percent: 10 }, 0, 30 * 60_000, 95, 5],
    [{ percent: 100 }, 0, 3_600_000, 95, 5],
  ]);
  assert.deepEqual(spec.window, { cron: '0 2 * * 1-5', durationMs: 7_200_000, timezone: 'Europe/Berlin' });
  assert.equal(spec.breachPolicy, 'pause');
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('31d'), null);
  assert.equal(parseDuration('10 minutes'), null);
  const refuse = (request: Record<string, unknown>, field: string) =>
    assert.throws(
      () => normalizeRolloutSpec({ model: 'm@1', selector: 'a=b', stages: [{ size: '100%' }], ...request } as never),
      (err: HubError) => err.code === 'CAIRN_ROLLOUT_INVALID' && err.statusCode === 400 && err.message.startsWith(`${field}: `),
      field,
    );
  refuse({ selector: undefined }, 'selector');
  refuse({ deviceIds: ['a'] }, 'selector');
  refuse({ stages: [{ size: '10%' }, { size: '10%' }] }, 'stages[1].size');
  refuse({ stages: [{ size: 5 }, { size: '50%' }, { size: 3 }] }, 'stages[2].size');
  refuse({ stages: [{ size: '0%' }] }, 'stages[0].size');
  refuse({ stages: [{ size: '100%', timeout: '-1m' }] }, 'stages[0].timeout');
  refuse({ window: { cron: 'every night', duration: '1h' } }, 'window.cron');
  refuse({ window: { cron: '0 0 2 * * *', duration: '1h' } }, 'window.cron');
  refuse({ window: { cron: '0 2 * * *', duration: '30s' } }, 'window.duration');
  refuse({ window: { cron: '0 2 * * *', duration: '1h', timezone: 'Nowhere/City' } }, 'window.timezone');
  refuse({ startAt: '26/11/2026' }, 'startAt');
});

test('maintenance windows open at each cron occurrence in their time zone, also across a DST change', () => {
  const w = { cron: '0 2 * * *', durationMs: 2 * 3_600_000, timezone: 'Europe/Berlin' };
  // Winter: 02:00 Berlin is 01:00 UTC.
  assert.deepEqual(windowState(w, Date.parse('2026-11-26T00:59:00Z')), { open: false, closesAt: null, opensAt: Date.parse('2026-11-26T01:00:00Z') });
  assert.deepEqual(windowState(w, Date.parse('2026-11-26T01:00:00Z')), { open: true, closesAt: Date.parse('2026-11-26T03:00:00Z'), opensAt: null });
  assert.equal(windowState(w, Date.parse('2026-11-26T03:00:00Z')).open, false);
  // Summer: 02:00 Berlin is 00:00 UTC.
  assert.equal(windowState(w, Date.parse('2026-07-01T00:30:00Z')).open, true);
  assert.equal(windowState(w, Date.parse('2026-07-01T01:30:00Z')).open, true);
  assert.equal(windowState(w, Date.parse('2026-07-01T02:30:00Z')).open, false);
});

const summary = (p95: number, inferences: number, errors: number, drift: number | null, digest: string | null): TelemetryT =>
  ({
    seq: 1,
    ts: 0,
    intervalMs: 60_000,
    inferences,
    errors,
    latencyMs: { p50: p95, p95, p99: p95, max: p95 },
    rssMb: 1,
    cpuPct: 1,
    active: digest ? { name: 'm', version: '1.0.0', digest, deploymentId: 'x' } : null,
    ...(drift === null ? {} : { drift: { windowMs: 600_000, samples: 100, predictionPsi: drift, maxFeaturePsi: drift / 2, maxFeature: 'rms', features: {}, status: 'ok' } }),
  }) as TelemetryT;

test('quality gates: relative to the control group, absolute drift without one, insufficient data neither passes nor breaches', () => {
  const gates = { driftPsi: 0.2, latencyP95Ratio: 1.5, errorRateDelta: 1, alertRateDelta: 2, minSamples: 3 };
  const updated = { summaries: [summary(3, 100, 5, 0.5, 'd'), summary(3, 100, 5, 0.5, 'd'), summary(3, 100, 5, 0.5, 'd')], latestDrift: [0.5, 0.4], alerts: 0 };
  const control = { summaries: [summary(2, 100, 1, 0.1, null), summary(2, 100, 1, 0.1, null), summary(2, 100, 1, 0.1, null)], latestDrift: [0.1], alerts: 3 };
  const results = evaluateGates(gates, updated, control);
  assert.deepEqual(
    results.map((r) => [r.gate, r.status, r.value]),
    [
      ['driftPsi', 'breach', 0.35],
      ['latencyP95Ratio', 'pass', 1.5],
      ['errorRateDelta', 'breach', 4],
      ['alertRateDelta', 'pass', -60],
    ],
  );
  const alone = evaluateGates(gates, updated, { summaries: [], latestDrift: [], alerts: 0 });
  assert.deepEqual(alone.map((r) => [r.gate, r.status]), [['driftPsi', 'breach'], ['latencyP95Ratio', 'insufficient_data'], ['errorRateDelta', 'insufficient_data'], ['alertRateDelta', 'insufficient_data']]);
  const few = evaluateGates(gates, { ...updated, summaries: updated.summaries.slice(0, 2) }, control);
  assert.ok(few.every((r) => r.status === 'insufficient_data'));
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
  assert.equal(median([]), null);
});
