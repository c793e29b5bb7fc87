/**
 * The rollout engine against a real hub (real SQLite, real signing, real HTTP API) with a fake
 * clock and fake devices: devices are registered directly and "report" through the hub's bus
 * exactly as the MQTT `reported` handler does, so every transition can be driven step by step.
 * The fleet-level behaviour with real agents is in rollouts.test.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DeploymentPhaseT, SignedDesiredT, TelemetryT } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { hashOrder } from '@cairn/hub/modules/rollouts/rollout-plan.js';
import type { RolloutViewT } from '@cairn/hub/modules/rollouts/rollout-view.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';

const MIN = 60_000;

interface Bench {
  hub: TestHub;
  ids: string[];
  advance(ms: number): Promise<void>;
  now(): number;
}

/** A hub whose clock only moves when told, with `n` registered devices labelled by `labels(i)`. */
async function bench(t: TestContext, n: number, labels: (i: number) => Record<string, string> = () => ({ site: 'plant-3' }), keepDataDir?: string, start = Date.parse('2026-11-26T10:00:00Z')): Promise<Bench> {
  let now = start;
  const hub = await startTestHub(t, { clock: () => now, rollouts: { tickSeconds: 60 }, ...(keepDataDir ? { keepDataDir } : {}) });
  const ids = Array.from({ length: n }, (_, i) => `dev-${String(i).padStart(3, '0')}`);
  for (const [i, id] of ids.entries()) hub.ctx.devices.register(id, labels(i), now);
  return {
    hub,
    ids,
    now: () => now,
    async advance(ms) {
      now += ms;
      await hub.ctx.rollouts.tick();
    },
  };
}

async function publishModels(hub: TestHub, ...versions: string[]): Promise<void> {
  for (const [i, version] of versions.entries()) {
    const answer = await hub.api('POST', `/api/v1/models?name=pdm&version=${version}`, buildDemoModel({ seed: i + 1 }).bytes);
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    await hub.approve(`pdm@${version}`);
  }
}

/** What a device's agent would report for its current desired document. */
async function report(hub: TestHub, deviceId: string, phase: DeploymentPhaseT, reason?: string): Promise<void> {
  const desired = hub.ctx.deployments.desiredFor(deviceId)!;
  hub.ctx.bus.emit('device.reported', { deviceId, deployment: { deploymentId: desired.deploymentId, seq: desired.seq, phase, digest: desired.digest, ...(reason ? { reason } : {}) } });
  await new Promise((resolve) => setImmediate(resolve));
  await hub.ctx.rollouts.tick();
}

const assigned = (hub: TestHub, id: string) => hub.ctx.rollouts.repo.devices(id).map((d) => d.deviceId);
const status = async (hub: TestHub, id: string) => (await hub.api<RolloutViewT>('GET', `/api/v1/rollouts/${id}`)).body;
const desiredModel = (hub: TestHub, deviceId: string) => {
  const row = hub.ctx.deployments.desiredFor(deviceId);
  return row ? (JSON.parse(row.document) as SignedDesiredT).document.bundle?.manifest.version ?? null : null;
};

async function createRollout(hub: TestHub, body: Record<string, unknown>): Promise<RolloutViewT> {
  const answer = await hub.api<RolloutViewT>('POST', '/api/v1/rollouts', body);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body;
}

test('stages advance 1 → 10 % → 50 % → 100 % in hash order after each bake, and the rollout completes', async (t) => {
  const b = await bench(t, 20);
  const { hub } = b;
  await publishModels(hub, '1.0.0', '2.0.0');
  const events: string[] = [];
  hub.ctx.bus.on('rollout.changed', (e) => events.push(e.transition));
  const created = await createRollout(hub, { model: 'pdm@2.0.0', selector: 'site=plant-3', stages: [{ size: 1, bake: '10m' }, { size: '10%', bake: '10m' }, { size: '50%' }, { size: '100%' }] });
  assert.equal(created.state, 'running');
  assert.equal(created.cohort, 20);
  assert.deepEqual(created.stages.map((s) => s.target), [1, 2, 10, 20]);
  const order = hashOrder(created.id, b.ids);
  assert.deepEqual(assigned(hub, created.id), order.slice(0, 1), 'the canary is the first device in hash order');
  assert.equal(desiredModel(hub, order[0]!), '2.0.0');
  assert.equal(desiredModel(hub, order[1]!), null, 'nobody else is told yet');

  await report(hub, order[0]!, 'committed');
  let s = await status(hub, created.id);
  assert.equal(s.stage, 0, 'the canary bakes before the next stage');
  assert.ok(s.current.healthySince);
  await b.advance(9 * MIN);
  assert.equal((await status(hub, created.id)).stage, 0);
  await b.advance(1 * MIN);
  s = await status(hub, created.id);
  assert.equal(s.stage, 1);
  assert.deepEqual(assigned(hub, created.id), order.slice(0, 2));

  await report(hub, order[1]!, 'committed');
  await b.advance(10 * MIN);
  assert.equal((await status(hub, created.id)).stage, 2);
  assert.deepEqual(new Set(assigned(hub, created.id)), new Set(order.slice(0, 10)));
  for (const id of order.slice(2, 10)) await report(hub, id, 'committed');
  s = await status(hub, created.id);
  assert.equal(s.stage, 3, 'a stage without bake advances as soon as it is healthy');
  for (const id of order.slice(10)) await report(hub, id, 'committed');
  s = await status(hub, created.id);
  assert.equal(s.state, 'completed');
  assert.equal(s.devices.committed, 20);
  assert.ok(b.ids.every((id) => desiredModel(hub, id) === '2.0.0'));
  assert.ok(events.includes('stage_advanced') && events.includes('completed'));
  const audit = (await hub.api('GET', `/api/v1/audit?target=rollout:${created.id}&limit=200`)).body.entries as { action: string }[];
  for (const action of ['rollout.create', 'rollout.started', 'rollout.assign', 'rollout.stage_healthy', 'rollout.stage_advanced', 'rollout.completed']) {
    assert.ok(audit.some((e) => e.action === action), `audit has ${action}`);
  }
});

test('a failed canary trips the failure threshold: pause policy stops the rollout, nobody else is told; resume is refused after completion', async (t) => {
  const b = await bench(t, 10);
  const { hub } = b;
  await publishModels(hub, '1.0.0');
  const r = await createRollout(hub, { model: 'pdm@1.0.0', selector: 'site=plant-3', stages: [{ size: '10%' }, { size: '100%' }] });
  const [canary] = assigned(hub, r.id);
  await report(hub, canary!, 'rolled_back', 'trial_nan');
  const s = await status(hub, r.id);
  assert.equal(s.state, 'paused');
  assert.deepEqual((s.stopReason as { kind: string; cause: string }).kind, 'breach');
  assert.equal((s.stopReason as { cause: string }).cause, 'failure_threshold');
  await b.advance(60 * MIN);
  assert.deepEqual(assigned(hub, r.id), [canary], 'no device beyond the canary');
  const rows = await hub.api('GET', `/api/v1/rollouts/${r.id}/devices`);
  assert.equal(rows.body.devices[0].reason, 'trial_nan');

  // Abort leaves devices where they are and frees them for another rollout.
  const aborted = await hub.api('POST', `/api/v1/rollouts/${r.id}/abort`);
  assert.equal(aborted.body.state, 'aborted');
  const resume = await hub.api('POST', `/api/v1/rollouts/${r.id}/resume`);
  assert.equal(resume.status, 409);
  assert.equal(resume.body.code, 'CAIRN_ROLLOUT_STATE');
  await createRollout(hub, { model: 'pdm@1.0.0', selector: 'site=plant-3', stages: [{ size: '100%' }] });
});

test('rollback breach policy: updated devices get their previous model back with a higher seq; a device that had none keeps the new one', async (t) => {
  const b = await bench(t, 4);
  const { hub } = b;
  await publishModels(hub, '1.0.0', '2.0.0');
  // Three devices run 1.0.0; dev-003 has never had a model.
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: b.ids.slice(0, 3) })).status, 201);
  const r = await createRollout(hub, {
    model: 'pdm@2.0.0',
    deviceIds: b.ids,
    stages: [{ size: '100%', failureThreshold: 30 }],
    breachPolicy: 'rollback',
  });
  const seqs = new Map(b.ids.map((id) => [id, hub.ctx.deployments.desiredFor(id)!.seq]));
  await report(hub, 'dev-000', 'committed');
  await report(hub, 'dev-003', 'committed');
  await report(hub, 'dev-001', 'failed', 'probe_mismatch');
  assert.equal((await status(hub, r.id)).state, 'running', '1 of 4 failed = 25 %, under 30 %');
  await report(hub, 'dev-002', 'rolled_back', 'trial_error_rate');
  const s = await status(hub, r.id);
  assert.equal(s.state, 'rolled_back');
  assert.equal((s.stopReason as { cause: string }).cause, 'failure_threshold');
  for (const id of ['dev-000', 'dev-001', 'dev-002']) {
    assert.equal(desiredModel(hub, id), '1.0.0', `${id} is told to run 1.0.0 again`);
    assert.ok(hub.ctx.deployments.desiredFor(id)!.seq > seqs.get(id)!, `${id}: the rollback document has a higher seq`);
  }
  assert.equal(desiredModel(hub, 'dev-003'), '2.0.0', 'no previous model: the device keeps the new one');
  assert.equal(s.devices.kept, 1);
  await report(hub, 'dev-000', 'committed');
  const rows = (await hub.api('GET', `/api/v1/rollouts/${r.id}/devices`)).body.devices as { deviceId: string; state: string }[];
  assert.equal(rows.find((d) => d.deviceId === 'dev-000')!.state, 'reverted');
  assert.equal(rows.find((d) => d.deviceId === 'dev-001')!.state, 'reverting');
});

test('operator rollback of a completed rollout, and an offline device times out instead of holding its stage', async (t) => {
  const b = await bench(t, 4);
  const { hub } = b;
  await publishModels(hub, '1.0.0', '2.0.0');
  await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', selector: 'site=plant-3' });
  const r = await createRollout(hub, { model: 'pdm@2.0.0', selector: 'site=plant-3', stages: [{ size: 2, timeout: '5m' }, { size: '100%', timeout: '5m' }] });
  const first = assigned(hub, r.id);
  await report(hub, first[0]!, 'committed');
  assert.equal((await status(hub, r.id)).stage, 0, 'one of two committed: 50 % < 95 %');
  await b.advance(6 * MIN);
  let s = await status(hub, r.id);
  assert.equal(s.devices.timed_out, 1);
  assert.equal(s.stage, 1, 'the timed-out device leaves the success share');
  for (const id of assigned(hub, r.id).slice(2)) await report(hub, id, 'committed');
  // The timed-out device comes back and commits: it counts again.
  await report(hub, first[1]!, 'committed');
  s = await status(hub, r.id);
  assert.equal(s.state, 'completed');
  assert.equal(s.devices.committed, 4);
  const back = await hub.api('POST', `/api/v1/rollouts/${r.id}/rollback`);
  assert.equal(back.status, 200);
  assert.equal(back.body.state, 'rolled_back');
  assert.ok(b.ids.every((id) => desiredModel(hub, id) === '1.0.0'));
  assert.equal((await hub.api('POST', `/api/v1/rollouts/${r.id}/rollback`)).status, 409, 'a rolled-back rollout cannot roll back again');
});

test('maintenance window: no device is told to change until the window opens; the rate limit spreads a stage over minutes', async (t) => {
  // 10:00 UTC is 11:00 in Berlin; the window opens daily at 13:00 Berlin time for 1 h.
  const b = await bench(t, 6);
  const { hub } = b;
  await publishModels(hub, '1.0.0');
  const r = await createRollout(hub, {
    model: 'pdm@1.0.0',
    selector: 'site=plant-3',
    stages: [{ size: '100%' }],
    window: { cron: '0 13 * * *', duration: '1h', timezone: 'Europe/Berlin' },
    rateLimit: { devicesPerMinute: 4 },
  });
  assert.equal(assigned(hub, r.id).length, 0);
  let s = await status(hub, r.id);
  assert.equal((s.waiting as { reason: string }).reason, 'outside_window');
  assert.equal((s.waiting as { opensAt: number }).opensAt, Date.parse('2026-11-26T12:00:00Z'));
  assert.equal(s.window?.open, false);
  await b.advance(119 * MIN);
  assert.equal(assigned(hub, r.id).length, 0, 'still closed at 12:59 Berlin');
  await b.advance(1 * MIN);
  assert.equal(assigned(hub, r.id).length, 4, 'open: the first 4 (rate limit)');
  s = await status(hub, r.id);
  assert.equal((s.waiting as { reason: string }).reason, 'rate_limited');
  await b.advance(1 * MIN + 1);
  assert.equal(assigned(hub, r.id).length, 6);
});

test('one active rollout per device: an overlapping rollout or direct deployment is refused naming the conflict; devices joining the cohort are picked up, also after completion', async (t) => {
  const b = await bench(t, 4, (i) => ({ site: 'plant-3', line: i < 2 ? 'a' : 'b' }));
  const { hub } = b;
  await publishModels(hub, '1.0.0', '2.0.0');
  const r = await createRollout(hub, { model: 'pdm@1.0.0', selector: 'line=a', stages: [{ size: 1 }, { size: '100%' }] });
  const overlap = await hub.api('POST', '/api/v1/rollouts', { model: 'pdm@2.0.0', selector: 'site=plant-3', stages: [{ size: '100%' }] });
  assert.equal(overlap.status, 409);
  assert.equal(overlap.body.code, 'CAIRN_ROLLOUT_CONFLICT');
  assert.match(overlap.body.message, new RegExp(r.id));
  const direct = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@2.0.0', deviceIds: ['dev-001'] });
  assert.equal(direct.status, 409, 'a device in a staged rollout is not deployed to directly');
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm@2.0.0', deviceIds: ['dev-003'] })).status, 201, 'a device outside it is');

  for (const id of assigned(hub, r.id)) await report(hub, id, 'committed');
  for (const id of assigned(hub, r.id)) await report(hub, id, 'committed');
  assert.equal((await status(hub, r.id)).state, 'completed');

  // A new device with the cohort's labels joins after completion, and one relabelled into it.
  hub.ctx.devices.register('dev-new', { site: 'plant-3', line: 'a' }, b.now());
  hub.ctx.devices.updateOperatorLabels('dev-002', { line: 'a' });
  await b.advance(MIN);
  assert.deepEqual(new Set(assigned(hub, r.id)), new Set(['dev-000', 'dev-001', 'dev-new', 'dev-002']));
  assert.equal(desiredModel(hub, 'dev-new'), '1.0.0');
  // dev-003 was relabelled too, but a newer deployment (the direct one) targets it: it stays.
  hub.ctx.devices.updateOperatorLabels('dev-003', { line: 'a' });
  await b.advance(MIN);
  assert.equal(desiredModel(hub, 'dev-003'), '2.0.0');
});

test('approval: an unapproved model stops at the canary until another operator approves it through the rollout', async (t) => {
  const b = await bench(t, 5);
  const { hub } = b;
  assert.equal((await hub.api('POST', '/api/v1/models?name=pdm&version=3.0.0', buildDemoModel({ seed: 3 }).bytes)).status, 201);
  const r = await createRollout(hub, { model: 'pdm@3.0.0', selector: 'site=plant-3', stages: [{ size: 1 }, { size: '100%' }] });
  await report(hub, assigned(hub, r.id)[0]!, 'committed');
  let s = await status(hub, r.id);
  assert.equal(s.stage, 1);
  assert.equal((s.waiting as { reason: string }).reason, 'approval_required');
  assert.equal(assigned(hub, r.id).length, 1);
  const self = await hub.api('POST', `/api/v1/rollouts/${r.id}/approve`);
  assert.equal(self.status, 403, 'the admin pushed it: another operator must approve');
  const reviewer = await hub.userToken('rev', 'operator');
  const viewer = await hub.userToken('watcher', 'viewer');
  assert.equal((await hub.request('POST', `/api/v1/rollouts/${r.id}/pause`, { token: viewer })).status, 403, 'viewers cannot act');
  assert.equal((await hub.request('GET', `/api/v1/rollouts/${r.id}`, { token: viewer })).status, 200, 'viewers can watch');
  const approved = await hub.request('POST', `/api/v1/rollouts/${r.id}/approve`, { token: reviewer });
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  s = await status(hub, r.id);
  assert.equal(assigned(hub, r.id).length, 5);
  assert.equal(s.waiting, null);
});

test('a quality gate compares updated devices with the control group: a latency regression pauses the stage although every install succeeded', async (t) => {
  const b = await bench(t, 10);
  const { hub } = b;
  await publishModels(hub, '1.0.0', '2.0.0');
  await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', selector: 'site=plant-3' });
  const model = hub.ctx.registry.get('pdm', '2.0.0')!;
  const r = await createRollout(hub, {
    model: 'pdm@2.0.0',
    selector: 'site=plant-3',
    stages: [{ size: '30%', bake: '30m', gates: { latencyP95Ratio: 1.5, errorRateDelta: 2, minSamples: 3 } }, { size: '100%' }],
  });
  const updated = new Set(assigned(hub, r.id));
  for (const id of updated) await report(hub, id, 'committed');
  let seq = 0;
  const telemetry = (id: string, p95: number, digest: string | null): TelemetryT => ({
    seq: ++seq,
    ts: b.now(),
    intervalMs: MIN,
    inferences: 600,
    errors: 0,
    latencyMs: { p50: p95 / 2, p95, p99: p95, max: p95 },
    rssMb: 50,
    cpuPct: 5,
    active: digest ? { name: 'pdm', version: '2.0.0', digest, deploymentId: r.id } : null,
  });
  // Five minutes: control devices answer in 1 ms, updated ones in 4 ms.
  for (let minute = 0; minute < 5; minute++) {
    await b.advance(MIN);
    for (const id of b.ids) hub.ctx.telemetry.storeBatch([{ deviceId: id, summary: telemetry(id, updated.has(id) ? 4 : 1, updated.has(id) ? model.digest : null), receivedAt: b.now() }]);
  }
  await b.advance(MIN);
  const s = await status(hub, r.id);
  assert.equal(s.state, 'paused');
  const reason = s.stopReason as { cause: string; detail: { value: number; threshold: number } };
  assert.equal(reason.cause, 'latencyP95Ratio');
  assert.equal(reason.detail.value, 4);
  const gates = s.current.gates as { gate: string; status: string }[];
  assert.deepEqual(gates.map((g) => [g.gate, g.status]), [['latencyP95Ratio', 'breach'], ['errorRateDelta', 'pass']]);
  assert.equal(assigned(hub, r.id).length, 3, 'no device beyond the stage');
});

test('bad rollout requests get a 400 naming the field; actions in the wrong state get a 409', async (t) => {
  const b = await bench(t, 2);
  const { hub } = b;
  await publishModels(hub, '1.0.0');
  const base = { model: 'pdm@1.0.0', selector: 'site=plant-3', stages: [{ size: '50%' }, { size: '100%' }] };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown model', { ...base, model: 'pdm@9.9.9' }, /^model: /],
    ['empty selector', { ...base, selector: '  ' }, /^selector: /],
    ['unparsable selector', { ...base, selector: 'site in (a' }, /^selector: /],
    ['stages that do not increase', { ...base, stages: [{ size: '50%' }, { size: '10%' }] }, /^stages\[1\]\.size: /],
    ['a share above 100 %', { ...base, stages: [{ size: '150%' }] }, /^stages\[0\]\.size: /],
    ['a threshold outside 0–100 %', { ...base, stages: [{ size: '100%', failureThreshold: 150 }] }, /failureThreshold/],
    ['a bad bake time', { ...base, stages: [{ size: '100%', bake: 'soon' }] }, /^stages\[0\]\.bake: /],
    ['an invalid cron expression', { ...base, window: { cron: '61 25 * * *', duration: '1h' } }, /^window\.cron: /],
    ['an unknown time zone', { ...base, window: { cron: '0 2 * * *', duration: '1h', timezone: 'Mars/Olympus' } }, /^window\.timezone: /],
    ['a bad start time', { ...base, startAt: 'tomorrow' }, /^startAt: /],
  ];
  for (const [what, body, message] of cases) {
    const answer = await hub.api('POST', '/api/v1/rollouts', body);
    assert.equal(answer.status, 400, `${what}: ${JSON.stringify(answer.body)}`);
    assert.match(answer.body.code, /^CAIRN_(ROLLOUT_INVALID|BAD_REQUEST)$/, what);
    assert.match(answer.body.message, message, what);
  }
  assert.equal((await hub.api('GET', '/api/v1/rollouts/ro_nope')).status, 404);
  const created = await createRollout(hub, { ...base, start: false });
  assert.equal(created.state, 'created');
  assert.equal((await hub.api('POST', `/api/v1/rollouts/${created.id}/resume`)).status, 409);
  assert.equal((await hub.api('POST', `/api/v1/rollouts/${created.id}/start`)).body.state, 'running');
  assert.equal((await hub.api('POST', `/api/v1/rollouts/${created.id}/start`)).status, 409);
});

test('a hub restart resumes a rollout exactly where it was, including a scheduled start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-rollout-restart-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const first = await bench(t, 10, undefined, dir);
  await publishModels(first.hub, '1.0.0');
  const r = await createRollout(first.hub, { model: 'pdm@1.0.0', selector: 'site=plant-3', stages: [{ size: '20%', bake: '10m' }, { size: '100%' }] });
  for (const id of assigned(first.hub, r.id)) await report(first.hub, id, 'committed');
  first.hub.ctx.devices.register('other-1', { site: 'other' }, first.now());
  const later = await createRollout(first.hub, { model: 'pdm@1.0.0', selector: 'site=other', stages: [{ size: '100%' }], startAt: '2026-11-26T12:00:00Z' });
  assert.equal(later.state, 'scheduled');
  assert.equal(assigned(first.hub, later.id).length, 0);
  const bakingSince = (await status(first.hub, r.id)).current.healthySince;
  await first.hub.close();

  const second = await bench(t, 0, undefined, dir, first.now() + 10 * MIN);
  const s = await status(second.hub, r.id);
  assert.equal(s.stage, 1, 'the bake that ended while the hub was down counts: the next stage started at start-up');
  assert.equal(s.history.find((h) => h.kind === 'stage_healthy')?.ts, bakingSince);
  assert.equal(assigned(second.hub, r.id).length, 10);
  await second.advance(2 * 60 * MIN);
  assert.equal((await status(second.hub, later.id)).state, 'running', 'the scheduled rollout started at 12:00 and told its device');
  assert.equal(desiredModel(second.hub, 'other-1'), '1.0.0');
});

test('an operator pause holds the next stage however long it bakes; resume bakes the stage again, then goes on', async (t) => {
  const b = await bench(t, 4);
  const { hub } = b;
  await publishModels(hub, '1.0.0');
  const r = await createRollout(hub, { model: 'pdm@1.0.0', selector: 'site=plant-3', stages: [{ size: 1, bake: '5m' }, { size: '100%' }] });
  await report(hub, assigned(hub, r.id)[0]!, 'committed');
  const paused = await hub.api<RolloutViewT>('POST', `/api/v1/rollouts/${r.id}/pause`);
  assert.equal(paused.body.state, 'paused');
  assert.equal((paused.body.stopReason as { kind: string; actor: string }).actor, 'user:admin');
  await b.advance(60 * MIN);
  assert.equal(assigned(hub, r.id).length, 1, 'paused: nobody else is told');
  assert.equal((await hub.api('POST', `/api/v1/rollouts/${r.id}/pause`)).status, 409);
  const resumed = await hub.api<RolloutViewT>('POST', `/api/v1/rollouts/${r.id}/resume`);
  assert.equal(resumed.body.state, 'running');
  assert.equal(resumed.body.stage, 0, 'the stage bakes again after a resume');
  await b.advance(5 * MIN);
  assert.equal(assigned(hub, r.id).length, 4);
  const history = (await status(hub, r.id)).history.map((h) => h.kind);
  assert.deepEqual(history.filter((k) => ['paused', 'resumed', 'stage_advanced'].includes(k)), ['paused', 'resumed', 'stage_advanced']);
});
