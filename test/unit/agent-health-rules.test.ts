/**
 * The pure parts of safe activation and of the pipeline's last stage: the health policy a
 * manifest resolves to, the trial monitor's verdicts, and the maintenance rule.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HEALTH_POLICY, HealthPolicyError, resolveHealthPolicy, type ManifestT, type TensorSpecT } from '@cairn/shared';
import { TrialMonitor } from '@cairn/agent/components/health/trial-monitor.js';
import { MaintenanceRules, DEFAULT_MAINTENANCE_RULE } from '@cairn/agent/components/maintenance-rules.js';
import type { ServedBundle } from '@cairn/agent/components/active-model.js';

const SIGNATURE = { inputs: [{ name: 'x', type: 'float32', dims: ['batch', 3] }] as TensorSpecT[], outputs: [{ name: 'p', type: 'float32', dims: ['batch', 2] }] as TensorSpecT[] };
const tensor = (...values: number[]) => ({ p: { dims: [1, values.length], data: Float32Array.from(values) } });
const feeds = (...values: number[]) => ({ x: { dims: [1, values.length], data: Float32Array.from(values) } });

test('a health section resolves over the defaults; a malformed one or a probe that does not fit is refused by name', () => {
  assert.deepEqual(resolveHealthPolicy(undefined, SIGNATURE), { ...DEFAULT_HEALTH_POLICY, probes: [], trial: { ...DEFAULT_HEALTH_POLICY.trial } });
  const policy = resolveHealthPolicy({ schema: 'cairn.health/v1', probes: [{ input: [1, 2, 3], expected: [0.5, 0.5] }], trial: { durationMs: 5 } }, SIGNATURE);
  assert.equal(policy.trial.durationMs, 5);
  assert.equal(policy.trial.minInferences, DEFAULT_HEALTH_POLICY.trial.minInferences);
  assert.throws(() => resolveHealthPolicy({ schema: 'cairn.health/v1', trial: { durationMs: -1 } }, SIGNATURE), HealthPolicyError);
  assert.throws(() => resolveHealthPolicy({ schema: 'cairn.health/v2' }, SIGNATURE), /does not match cairn\.health\/v1/);
  assert.throws(() => resolveHealthPolicy({ schema: 'cairn.health/v1', probes: [{ input: [1, 2] }] }, SIGNATURE), /probe 0 has 2 input values, the model's input takes 3/);
  assert.throws(() => resolveHealthPolicy({ schema: 'cairn.health/v1', probes: [{ input: [1, 2, 3], expected: [1] }] }, SIGNATURE), /expects 1 output values/);
});

const trial = (overrides: Partial<typeof DEFAULT_HEALTH_POLICY.trial> = {}) => ({ ...DEFAULT_HEALTH_POLICY.trial, minInferences: 10, ...overrides });

test('trial: the first NaN fails at once; a healthy trial commits only after its duration and minimum', () => {
  const monitor = new TrialMonitor(trial(), true);
  assert.equal(monitor.recordSuccess(0.1, tensor(0.2, 0.8), feeds(1, 2, 3)), null);
  assert.equal(monitor.recordSuccess(0.1, tensor(Number.NaN, 0.8), feeds(1, 2, 4))?.reason, 'trial_non_finite');

  const healthy = new TrialMonitor(trial({ durationMs: 1000 }), true);
  for (let i = 0; i < 9; i++) assert.equal(healthy.recordSuccess(0.1, tensor(i / 10, 1 - i / 10), feeds(i, 0, 0)), null);
  assert.equal(healthy.readiness(2000), 'wait', 'nine inferences are fewer than the minimum');
  healthy.recordSuccess(0.1, tensor(0.5, 0.5), feeds(9, 0, 0));
  assert.equal(healthy.readiness(999), 'wait');
  assert.equal(healthy.readiness(1000), 'commit');
  assert.equal(healthy.finalVerdict(), null);
  assert.equal(new TrialMonitor(trial({ durationMs: 10, maxDurationMs: 100 }), true).readiness(100), 'timeout', 'an idle trial ends at its maximum');
});

test('trial: constant outputs while the standby answers the same inputs differently are a collapse; a saturated standby or constant inputs are not', () => {
  const collapsed = new TrialMonitor(trial(), true);
  collapsed.recordBaseline(0.1, tensor(0.9, 0.1));
  collapsed.recordBaseline(0.1, tensor(0.8, 0.2));
  let verdict = null;
  for (let i = 0; i < 10 && !verdict; i++) verdict = collapsed.recordSuccess(0.1, tensor(1, 0), feeds(i, i, i));
  assert.equal(verdict?.reason, 'trial_collapsed');

  // A confident model on a clearly faulty machine saturates: so does the standby, nothing collapsed.
  const saturated = new TrialMonitor(trial(), true);
  saturated.recordBaseline(0.1, tensor(1, 0));
  saturated.recordBaseline(0.1, tensor(1, 0));
  for (let i = 0; i < 20; i++) assert.equal(saturated.recordSuccess(0.1, tensor(1, 0), feeds(i, i, i)), null);
  const sameInput = new TrialMonitor(trial(), true);
  sameInput.recordBaseline(0.1, tensor(0.9, 0.1));
  sameInput.recordBaseline(0.1, tensor(0.8, 0.2));
  for (let i = 0; i < 20; i++) assert.equal(sameInput.recordSuccess(0.1, tensor(1, 0), feeds(1, 1, 1)), null);
  const alone = new TrialMonitor(trial(), false);
  for (let i = 0; i < 20; i++) assert.equal(alone.recordSuccess(0.1, tensor(1, 0), feeds(i, i, i)), null, 'without a standby there is nothing to tell saturation from collapse');
});

test('trial: error rate above the policy fails; latency fails against the standby on the same traffic, above the floor only', () => {
  const erring = new TrialMonitor(trial({ maxErrorRate: 0.2 }), true);
  for (let i = 0; i < 7; i++) erring.recordSuccess(0.1, tensor(i, 1), feeds(i, 0, 0));
  assert.equal(erring.recordError(), null);
  assert.equal(erring.recordError(), null);
  assert.equal(erring.recordError()?.reason, 'trial_error_rate', '3 of 10 > 20 %');

  const slow = new TrialMonitor(trial({ maxLatencyRatio: 3, latencyFloorMs: 1 }), true);
  for (let i = 0; i < 5; i++) slow.recordBaseline(0.5, tensor(i, 1));
  let failure = null;
  for (let i = 0; i < 10 && !failure; i++) failure = slow.recordSuccess(5, tensor(i, 1), feeds(i, 0, 0));
  assert.equal(failure?.reason, 'trial_latency');
  assert.match(failure!.message, /10\.0× the previous model/);

  const tiny = new TrialMonitor(trial({ maxLatencyRatio: 3, latencyFloorMs: 1 }), true);
  for (let i = 0; i < 5; i++) tiny.recordBaseline(0.05, tensor(i, 1));
  for (let i = 0; i < 20; i++) assert.equal(tiny.recordSuccess(0.9, tensor(i, 1), feeds(i, 0, 0)), null, '18× slower but under the 1 ms floor');
  // Every request is shadowed until the standby has a baseline worth a p95, then one in shadowEvery.
  const shadowing = new TrialMonitor(trial({ shadowEvery: 4 }), true);
  assert.deepEqual([1, 2, 3].map((n) => shadowing.shouldShadow(n)), [true, true, true]);
  for (let i = 0; i < 20; i++) shadowing.recordBaseline(0.1, tensor(i, 1));
  assert.deepEqual([5, 6, 7, 8].map((n) => shadowing.shouldShadow(n)), [false, false, false, true]);
  const noStandby = new TrialMonitor(trial({ maxLatencyP95Ms: 2 }), false);
  assert.equal(noStandby.shouldShadow(4), false);
  for (let i = 0; i < 9; i++) noStandby.recordSuccess(3, tensor(i, 1), feeds(i, 0, 0));
  assert.equal(noStandby.recordSuccess(3, tensor(9, 1), feeds(9, 0, 0))?.reason, 'trial_latency', 'the absolute budget applies without a standby');
});

const BUNDLE: ServedBundle = {
  digest: 'b'.repeat(64),
  deploymentId: 'dep-1',
  manifest: { name: 'pdm', version: '1.0.0', features: { classes: ['healthy', 'imbalance', 'outer_race'] } } as unknown as ManifestT,
};

test('maintenance rule: 3 of the last 5 windows at ≥ 0.8 raise one alert with its evidence, then a cooldown', () => {
  const raised: unknown[] = [];
  const rules = new MaintenanceRules('P-101', DEFAULT_MAINTENANCE_RULE, (a) => raised.push(a));
  const window = (ts: number, outer: number) => rules.observe(ts, { probabilities: { dims: [1, 3], data: Float32Array.from([1 - outer, 0, outer]) } }, BUNDLE);
  assert.equal(window(1, 0.9), null);
  assert.equal(window(2, 0.3), null, 'one noisy window raises nothing');
  assert.equal(window(3, 0.85), null);
  const alert = window(4, 0.95);
  assert.ok(alert);
  assert.equal(alert.machine, 'P-101');
  assert.equal(alert.faultClass, 'outer_race');
  assert.equal(alert.confidence, 0.9);
  assert.deepEqual(
    alert.windows.map((w) => w.ts),
    [1, 2, 3, 4],
  );
  assert.deepEqual(alert.model, { name: 'pdm', version: '1.0.0', digest: BUNDLE.digest });
  assert.equal(window(5, 0.99), null, 'the same fault is not raised again within the cooldown');
  assert.ok(window(5 + DEFAULT_MAINTENANCE_RULE.cooldownMs, 0.99), 'but again after it');
  assert.equal(raised.length, 2);

  const healthy = new MaintenanceRules('P-102', DEFAULT_MAINTENANCE_RULE, () => assert.fail('a healthy machine raised an alert'));
  for (let ts = 0; ts < 10; ts++) healthy.observe(ts, { probabilities: { dims: [1, 3], data: Float32Array.from([0.99, 0.005, 0.005]) } }, BUNDLE);
});
