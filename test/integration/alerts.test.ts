/**
 * Alerts and work orders on a real hub (real MQTT, real SQLite) with a fake clock: each cause
 * opens, deduplicates and resolves; operators acknowledge and resolve through the API with
 * roles; drift hysteresis counters survive a hub restart. Devices are raw MQTT clients that
 * publish valid messages (helpers/device-messages.ts). The clock-driven checks run every second
 * of real time and read the fake clock, so tests move the clock and wait for the outcome.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { connectDevice, startTestHub, type TestHub } from '../helpers/hub.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { CAIRN } from '../helpers/processes.js';
import { INTERVAL_MS, maintenanceEvent, publishAs, reportedState, telemetrySummary } from '../helpers/device-messages.js';

interface AlertView {
  id: string;
  deviceId: string;
  cause: string;
  severity: string;
  state: string;
  summary: string;
  details: Record<string, any>;
  model: { name: string; version: string } | null;
  occurrences: number;
  openedAt: string;
  lastSeenAt: string;
  acknowledgedBy: string | null;
  resolvedBy: string | null;
  workOrderId: string | null;
}

function fakeClock() {
  const clock = { now: Date.now(), read: () => clock.now };
  return clock;
}

const ALERTS = { driftOpenAfter: 2, driftResolveAfter: 6, offlineAfterSeconds: 60, ingestGapIntervals: 5, checkSeconds: 1 };

/** The device `id`, enrolled with an earlier hub on the same data directory, connects to `hub` and says it is online. */
async function reconnect(t: TestContext, hub: TestHub, id: string, credentials: { username: string; password: string }): Promise<MqttClient> {
  const client = mqtt.connect(hub.mqttUrl, { clientId: id, protocolVersion: 4, reconnectPeriod: 0, ...credentials });
  t.after(() => client.end(true));
  await new Promise((resolve) => client.once('connect', resolve));
  await publishAs(client, id, 'presence', { online: true, agentVersion: '0.1.0', epoch: 2, ts: Date.now() });
  return client;
}

async function alertsOf(hub: TestHub, query: string): Promise<AlertView[]> {
  const answer = await hub.api<{ alerts: AlertView[] }>('GET', `/api/v1/alerts?${query}`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.alerts;
}

test('drift: two alert summaries open one alert; noise neither opens, duplicates nor resolves it; six ok resolve it', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'drift-1');
  let seq = 0;
  const send = async (...statuses: ('ok' | 'warn' | 'alert')[]) => {
    for (const s of statuses) await publishAs(device, 'drift-1', 'telemetry', telemetrySummary(++seq, clock.now, s));
  };

  await send('ok', 'alert', 'ok', 'alert', 'warn', 'alert', 'ok');
  assert.deepEqual(await alertsOf(hub, 'cause=drift'), [], 'alternating alert/ok/warn never opens');

  await send('alert', 'alert');
  const [opened] = await waitFor('a drift alert', async () => (await alertsOf(hub, 'cause=drift')).length === 1 && alertsOf(hub, 'cause=drift'));
  assert.equal(opened!.state, 'open');
  assert.equal(opened!.severity, 'warning');
  assert.equal(opened!.details.maxFeature, 'rms');
  assert.deepEqual(opened!.model, { name: 'pdm', version: '1.0.0' });

  await send('alert', 'ok', 'alert', 'ok', 'ok', 'warn', 'ok', 'ok', 'ok', 'ok', 'ok', 'alert');
  let drift = await alertsOf(hub, 'cause=drift');
  assert.equal(drift.length, 1, 'no second alert while one is unresolved');
  assert.equal(drift[0]!.state, 'open', 'five ok after a warn do not resolve');

  await send('ok', 'ok', 'ok', 'ok', 'ok', 'ok');
  drift = await waitFor('the drift alert resolved', async () => {
    const list = await alertsOf(hub, 'cause=drift');
    return list[0]?.state === 'resolved' && list;
  });
  assert.equal(drift.length, 1);
  assert.equal(drift[0]!.resolvedBy, 'auto');

  const metrics = (await hub.api<string>('GET', '/metrics')).body;
  assert.match(metrics, /cairn_hub_alerts_opened_total\{cause="drift"\} 1/);
  assert.match(metrics, /cairn_hub_alerts_open\{cause="drift"\} 0/);
});

test('drift hysteresis counters survive a hub restart', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-alerts-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const clock = fakeClock();
  const first = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  const device = await connectDevice(t, first, 'drift-r');
  const credentials = await first.enroll('drift-r');
  await publishAs(device, 'drift-r', 'telemetry', telemetrySummary(1, clock.now, 'alert'));
  await waitFor('the first summary stored', async () => (await first.api('GET', '/api/v1/devices/drift-r/telemetry')).body.points?.length === 1);
  device.end(true);
  await first.close();

  const second = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  const again = await reconnect(t, second, 'drift-r', credentials);
  assert.deepEqual(await alertsOf(second, 'cause=drift'), []);
  await publishAs(again, 'drift-r', 'telemetry', telemetrySummary(2, clock.now, 'alert'));
  const [alert] = await waitFor('a drift alert from the streak begun before the restart', async () => (await alertsOf(second, 'cause=drift')).length === 1 && alertsOf(second, 'cause=drift'));
  assert.equal(alert!.deviceId, 'drift-r');
});

test('offline: raised after offlineAfterSeconds away, once per episode, resolved by the next birth', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'off-1');
  await publishAs(device, 'off-1', 'presence', { online: false, epoch: 1, ts: Date.now() });
  await waitFor('the device offline', async () => (await hub.api('GET', '/api/v1/devices/off-1')).body.online === false);

  clock.now += 59_000;
  // Checks run each second: give them time to (wrongly) raise; a slow machine only weakens this.
  await sleep(2100);
  assert.deepEqual(await alertsOf(hub, 'cause=offline'), [], 'not yet long enough');

  clock.now += 2_000;
  const [alert] = await waitFor('an offline alert', async () => (await alertsOf(hub, 'cause=offline')).length === 1 && alertsOf(hub, 'cause=offline'));
  assert.equal(alert!.severity, 'critical');
  clock.now += 60_000;
  await sleep(1100);
  assert.equal((await alertsOf(hub, 'cause=offline')).length, 1, 'later checks do not add alerts');

  await publishAs(device, 'off-1', 'presence', { online: true, agentVersion: '0.1.0', epoch: 2, ts: Date.now() });
  await waitFor('the offline alert resolved', async () => (await alertsOf(hub, 'cause=offline'))[0]?.resolvedBy === 'auto');
});

test('rollback: raised with reason and model, not repeated by the same report, counted on a new one, resolved by a later commit', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'rb-1');
  const rolledBack = (seq: number) => reportedState(clock.now, { deploymentId: `dep-${seq}`, seq, phase: 'rolled_back', digest: 'b'.repeat(64), reason: 'health_probe', message: 'p95 latency over budget' });

  await publishAs(device, 'rb-1', 'reported', rolledBack(3));
  await publishAs(device, 'rb-1', 'reported', rolledBack(3));
  const [alert] = await waitFor('a rollback alert', async () => (await alertsOf(hub, 'cause=rollback')).length === 1 && alertsOf(hub, 'cause=rollback'));
  assert.equal(alert!.details.reason, 'health_probe');
  assert.equal(alert!.details.deploymentId, 'dep-3');
  assert.match(alert!.summary, /health_probe/);
  assert.equal(alert!.occurrences, 1, 'the same report again is not a recurrence');

  await publishAs(device, 'rb-1', 'reported', rolledBack(4));
  await waitFor('a recurrence', async () => (await alertsOf(hub, 'cause=rollback'))[0]?.occurrences === 2);
  assert.equal((await alertsOf(hub, 'cause=rollback')).length, 1);

  await publishAs(device, 'rb-1', 'reported', reportedState(clock.now, { deploymentId: 'dep-4', seq: 4, phase: 'committed', digest: 'a'.repeat(64) }));
  await sleep(200);
  assert.equal((await alertsOf(hub, 'cause=rollback'))[0]!.state, 'open', 'a commit of the same seq is not a later deployment');
  await publishAs(device, 'rb-1', 'reported', reportedState(clock.now, { deploymentId: 'dep-5', seq: 5, phase: 'committed', digest: 'a'.repeat(64) }));
  await waitFor('the rollback alert resolved', async () => (await alertsOf(hub, 'cause=rollback'))[0]?.resolvedBy === 'auto');

  // Resolved by an operator, a rollback stays resolved while the device re-reports it (reconnects, label changes).
  await publishAs(device, 'rb-1', 'reported', rolledBack(6));
  const [sixth] = await waitFor('a rollback alert for seq 6', async () => (await alertsOf(hub, 'cause=rollback&state=open')).length === 1 && alertsOf(hub, 'cause=rollback&state=open'));
  assert.equal((await hub.api('POST', `/api/v1/alerts/${sixth!.id}/resolve`)).status, 200);
  await publishAs(device, 'rb-1', 'reported', rolledBack(6));
  await publishAs(device, 'rb-1', 'telemetry', telemetrySummary(1, clock.now)); // a later message: the report above was handled
  await waitFor('the summary stored', () => hub.ctx.telemetry.latestByDevice().has('rb-1'));
  assert.deepEqual((await alertsOf(hub, 'cause=rollback&state=open')).length, 0, 'the same rollback re-reported does not reopen it');
});

test('ingest gap: a seq gap and a silent online device each raise it; in-sequence telemetry resolves it', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'gap-1');
  const send = (seq: number) => publishAs(device, 'gap-1', 'telemetry', telemetrySummary(seq, clock.now));

  await send(1);
  await send(2);
  await send(5);
  const [gap] = await waitFor('a seq-gap alert', async () => (await alertsOf(hub, 'cause=ingest_gap')).length === 1 && alertsOf(hub, 'cause=ingest_gap'));
  assert.equal(gap!.details.kind, 'seq_gap');
  assert.equal(gap!.details.missing, 2);
  await send(3); // late: ignored
  await send(6);
  await waitFor('the gap resolved', async () => (await alertsOf(hub, 'cause=ingest_gap'))[0]?.state === 'resolved');

  clock.now += 5 * INTERVAL_MS + 1000;
  const silent = await waitFor('a silence alert', async () => (await alertsOf(hub, 'cause=ingest_gap&state=open'))[0]);
  assert.equal(silent.details.kind, 'silent');
  assert.equal((await alertsOf(hub, 'cause=ingest_gap')).length, 2);
  await send(7);
  await waitFor('the silence resolved', async () => (await alertsOf(hub, 'cause=ingest_gap&state=open')).length === 0);

  // A silence an operator resolved by hand is not raised again while it lasts; the next one is.
  clock.now += 5 * INTERVAL_MS + 1000;
  const again = await waitFor('a second silence alert', async () => (await alertsOf(hub, 'cause=ingest_gap&state=open'))[0]);
  assert.equal((await hub.api('POST', `/api/v1/alerts/${again.id}/resolve`)).status, 200);
  clock.now += 5 * INTERVAL_MS;
  await sleep(2500); // two checks (alerts.checkSeconds = 1) of the same silence
  assert.equal((await alertsOf(hub, 'cause=ingest_gap&state=open')).length, 0, 'the silence resolved by hand stays resolved');
});

test('maintenance: one alert per fault class with recurrences, a work order each; roles, states, audit and bad input via the API', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'pump-dev');
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'outer_race', 0.91));
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'outer_race', 0.95));
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'imbalance', 0.85));
  const alerts = await waitFor('two maintenance alerts, one recurring', async () => {
    const list = await alertsOf(hub, 'cause=maintenance');
    return list.length === 2 && list.some((a) => a.occurrences === 2) && list;
  });
  const outer = alerts.find((a) => a.details.faultClass === 'outer_race')!;
  assert.equal(outer.details.confidence, 0.95, 'a recurrence carries the newest evidence');
  assert.equal(outer.severity, 'critical');

  const { workOrders } = (await hub.api('GET', '/api/v1/work-orders?deviceId=pump-dev')).body;
  assert.equal(workOrders.length, 2, 'a recurrence opens no second work order');
  const wo = workOrders.find((w: any) => w.faultClass === 'outer_race');
  assert.equal(wo.alertId, outer.id);
  assert.equal(outer.workOrderId, wo.id);
  assert.equal(wo.machine, 'pump-7');
  assert.equal(wo.confidence, 0.91, 'the work order keeps the evidence that opened it');
  assert.equal(wo.evidence.windows.length, 3);
  assert.deepEqual(wo.model, { name: 'pdm', version: '1.0.0', digest: 'a'.repeat(64) });
  assert.equal(wo.state, 'open');

  const viewer = await hub.userToken('vera', 'viewer');
  const operator = await hub.userToken('otto', 'operator');
  assert.equal((await hub.request('GET', '/api/v1/alerts', { token: viewer })).status, 200);
  assert.equal((await hub.request('GET', `/api/v1/work-orders/${wo.id}`, { token: viewer })).status, 200);
  const refused = await hub.request('POST', `/api/v1/alerts/${outer.id}/acknowledge`, { token: viewer });
  assert.equal(refused.status, 403);
  assert.equal(refused.body.code, 'CAIRN_FORBIDDEN');
  assert.equal((await hub.request('POST', `/api/v1/work-orders/${wo.id}/done`, { token: viewer })).status, 403);
  assert.equal((await hub.request('GET', '/api/v1/webhooks', { token: operator })).status, 403, 'webhooks are for admins');

  const imbalance = alerts.find((a) => a.details.faultClass === 'imbalance')!;
  const acked = await hub.request('POST', `/api/v1/alerts/${imbalance.id}/acknowledge`, { token: operator });
  assert.equal(acked.status, 200);
  assert.equal(acked.body.state, 'acknowledged');
  assert.equal(acked.body.acknowledgedBy, 'otto');
  assert.equal((await hub.request('POST', `/api/v1/alerts/${imbalance.id}/acknowledge`, { token: operator })).body.code, 'CAIRN_ALERT_STATE');
  const resolved = await hub.request('POST', `/api/v1/alerts/${imbalance.id}/resolve`, { token: operator });
  assert.equal(resolved.body.resolvedBy, 'otto');
  const again = await hub.request('POST', `/api/v1/alerts/${imbalance.id}/resolve`, { token: operator });
  assert.equal(again.status, 409);
  assert.equal(again.body.code, 'CAIRN_ALERT_STATE');
  const ackResolved = await hub.request('POST', `/api/v1/alerts/${imbalance.id}/acknowledge`, { token: operator });
  assert.equal(ackResolved.status, 409);

  assert.equal((await hub.request('POST', `/api/v1/work-orders/${wo.id}/acknowledge`, { token: operator })).body.state, 'acknowledged');
  const done = await hub.request('POST', `/api/v1/work-orders/${wo.id}/done`, { token: operator });
  assert.equal(done.body.state, 'done');
  assert.equal(done.body.doneBy, 'otto');
  assert.equal((await hub.api('GET', `/api/v1/alerts/${outer.id}`)).body.resolvedBy, 'otto', 'done work resolves its alert');
  const doneAgain = await hub.request('POST', `/api/v1/work-orders/${wo.id}/done`, { token: operator });
  assert.equal(doneAgain.status, 409);
  assert.equal(doneAgain.body.code, 'CAIRN_WORK_ORDER_STATE');

  // After the work, the same fault is a new alert and a new work order.
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'outer_race', 0.9));
  await waitFor('a new outer_race alert', async () => (await alertsOf(hub, 'cause=maintenance&state=open')).length === 1);
  assert.equal((await hub.api('GET', '/api/v1/work-orders?state=open')).body.workOrders.length, 2);

  const notFound = await hub.api('GET', '/api/v1/alerts/al_nope');
  assert.equal(notFound.status, 404);
  assert.equal(notFound.body.code, 'CAIRN_ALERT_NOT_FOUND');
  assert.equal((await hub.api('POST', '/api/v1/alerts/al_nope/resolve')).body.code, 'CAIRN_ALERT_NOT_FOUND');
  assert.equal((await hub.api('POST', '/api/v1/work-orders/wo_nope/done')).body.code, 'CAIRN_WORK_ORDER_NOT_FOUND');
  assert.equal((await hub.api('GET', '/api/v1/alerts?cause=bogus')).status, 400);
  assert.equal((await hub.api('GET', '/api/v1/alerts?limit=0')).status, 400);

  const audit = (await hub.api('GET', '/api/v1/audit?limit=100')).body.entries.map((e: any) => `${e.action} ${e.actor}`);
  for (const action of ['alert.acknowledge user:otto', 'alert.resolve user:otto', 'workorder.acknowledge user:otto', 'workorder.done user:otto', 'workorder.open system']) assert.ok(audit.includes(action), `${action} audited`);
  const metrics = (await hub.api<string>('GET', '/metrics')).body;
  assert.match(metrics, /cairn_hub_work_orders_opened_total 3/);
  assert.deepEqual(hub.ctx.alerts.summary(), { openAlerts: 1, alertingDevices: 1, openWorkOrders: 2 }, 'what the fleet summary reads');
});

test('offline after a hub restart: devices away while the hub was down get offlineAfterSeconds from its start to come back', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-alerts-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const clock = fakeClock();
  const first = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  const device = await connectDevice(t, first, 'away-1');
  device.end(true);
  await first.close();

  clock.now += 3600_000; // the hub was down for an hour
  const second = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  await sleep(1500); // the check at start and at least one more
  assert.deepEqual(await alertsOf(second, 'cause=offline'), [], 'no alert at start for a device that could not reach a stopped hub');
  clock.now += 61_000;
  const [alert] = await waitFor('an offline alert once the grace has passed', async () => (await alertsOf(second, 'cause=offline')).length === 1 && alertsOf(second, 'cause=offline'));
  assert.equal(alert!.deviceId, 'away-1');
});

test('cairn alert and cairn workorder: list, ack, resolve, done with --json', async (t) => {
  const clock = fakeClock();
  const hub = await startTestHub(t, { clock: clock.read, alerts: ALERTS });
  const device = await connectDevice(t, hub, 'cli-dev');
  await publishAs(device, 'cli-dev', 'events', maintenanceEvent(clock.now, 'fan-2', 'imbalance'));
  await publishAs(device, 'cli-dev', 'events', maintenanceEvent(clock.now, 'fan-2', 'misalignment'));
  await waitFor('two alerts', async () => (await alertsOf(hub, 'cause=maintenance')).length === 2);
  const cli = async (...args: string[]) => JSON.parse((await promisify(execFile)(process.execPath, [CAIRN, ...args, '--hub', hub.httpUrl, '--token', hub.token, '--json'])).stdout);

  const alerts = await cli('alert', 'list', '--cause', 'maintenance', '--device', 'cli-dev');
  assert.equal(alerts.length, 2);
  const [a, b] = alerts;
  assert.equal((await cli('alert', 'ack', a.id)).state, 'acknowledged');
  assert.equal((await cli('alert', 'resolve', a.id)).state, 'resolved');
  const open = await cli('alert', 'list', '--state', 'open');
  assert.deepEqual(open.map((x: any) => x.id), [b.id], JSON.stringify(open));
  const workOrders = await cli('workorder', 'list', '--state', 'open', '--device', 'cli-dev');
  assert.equal(workOrders.length, 2, 'resolving an alert leaves its work order open');
  const wo = workOrders.find((w: any) => w.alertId === b.id);
  assert.equal((await cli('workorder', 'ack', wo.id)).state, 'acknowledged');
  assert.equal((await cli('workorder', 'done', wo.id)).state, 'done');
  assert.equal((await cli('workorder', 'list', '--state', 'open')).length, 1);
  assert.equal((await cli('alert', 'list', '--state', 'open')).length, 0, 'done resolved the alert');
  await assert.rejects(cli('alert', 'ack', a.id), /CAIRN_ALERT_STATE|resolved/);
});

test('ingest gap after a hub restart: a device that reconnects and sends nothing is found silent (its interval is kept)', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-alerts-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const clock = fakeClock();
  const first = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  const device = await connectDevice(t, first, 'quiet-1');
  const credentials = await first.enroll('quiet-1');
  await publishAs(device, 'quiet-1', 'telemetry', telemetrySummary(41, clock.now));
  device.end(true);
  await first.close();

  clock.now += 600_000;
  const second = await startTestHub(t, { clock: clock.read, alerts: ALERTS, keepDataDir: dataDir });
  const again = await reconnect(t, second, 'quiet-1', credentials);
  await waitFor('the device online', async () => (await second.api('GET', '/api/v1/devices/quiet-1')).body.online === true);
  clock.now += 5 * INTERVAL_MS + 1000;
  const [silent] = await waitFor('a silence alert', async () => (await alertsOf(second, 'cause=ingest_gap')).length === 1 && alertsOf(second, 'cause=ingest_gap'));
  assert.equal(silent!.details.kind, 'silent');
  assert.equal(silent!.details.intervalMs, INTERVAL_MS);
  // The first summary after the restart re-anchors the seq: no gap is claimed across the restart.
  await publishAs(again, 'quiet-1', 'telemetry', telemetrySummary(57, clock.now));
  await waitFor('the silence resolved', async () => (await alertsOf(second, 'cause=ingest_gap'))[0]?.state === 'resolved');
  assert.equal((await alertsOf(second, 'cause=ingest_gap')).length, 1);
});
