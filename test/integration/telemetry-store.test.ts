/**
 * The telemetry store through a real hub: summaries published at QoS 1 by real mqtt.js clients
 * over TCP into the embedded broker, stored in the hub's real SQLite file, read back through the
 * HTTP API. Summary timestamps are chosen by the test (rollups follow the summary's `ts`); the
 * hub's clock is injected (real time plus an offset) where retention and the accepted time range
 * depend on it, so no test waits for real minutes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { deviceTopic, type TelemetryT } from '@cairn/shared';
import { connectDevice, startTestHub, type TestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { maintenanceEvent } from '../helpers/device-messages.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const DIGEST = 'a'.repeat(64);

/** An hour boundary two hours ago: every test summary falls inside the raw retention. */
const BASE = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;

function summary(seq: number, ts: number, extra: Partial<TelemetryT> = {}): TelemetryT {
  return { seq, ts, intervalMs: 10_000, inferences: 10, errors: 0, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 }, rssMb: 50, cpuPct: 10, active: null, ...extra };
}

const active = (version: string) => ({ name: 'pdm', version, digest: DIGEST, deploymentId: `dep-${version}` });
const drift = (status: 'ok' | 'warn' | 'alert', predictionPsi: number, maxFeaturePsi: number) => ({ windowMs: 600_000, samples: 60, predictionPsi, maxFeaturePsi, maxFeature: 'rms_g', features: { rms_g: maxFeaturePsi }, status });

const send = (client: MqttClient, id: string, payload: unknown) => client.publishAsync(deviceTopic(id, 'telemetry'), typeof payload === 'string' ? payload : JSON.stringify(payload), { qos: 1 });

async function metric(hub: TestHub, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text: string = (await hub.api('GET', '/metrics')).body;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => (l.startsWith(name + '{') || l.startsWith(name + ' ')) && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

async function series(hub: TestHub, query: string) {
  const answer = await hub.api('GET', `/api/v1/telemetry/series?${query}`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body;
}

test('ingest is idempotent on (device, seq): a summary sent three times is stored once, counted as two duplicates, announced once', async (t) => {
  const hub = await startTestHub(t, { telemetry: { batchMaxDelayMs: 5 } });
  const client = await connectDevice(t, hub, 'dev-1');
  const announced: number[] = [];
  hub.ctx.bus.on('telemetry.stored', (e) => announced.push(e.telemetry.seq));
  const s = summary(1, BASE + 5_000, { active: active('1.0.0'), outbox: { depth: 3, dropped: 0 }, drift: { ...drift('warn', 0.1234, 0.2), features: { rms_g: 0.2, kurtosis: 0.0001, band_3: 1 / 3 } } });
  await Promise.all([send(client, 'dev-1', s), send(client, 'dev-1', s)]); // the same batch
  await send(client, 'dev-1', { ...s, inferences: 999 }); // a later batch: still the same (device, seq)
  await send(client, 'dev-1', summary(2, BASE + 15_000));

  const stored = (await hub.api('GET', `/api/v1/devices/dev-1/telemetry?from=${BASE}`)).body.points;
  assert.deepEqual(stored.map((p: TelemetryT) => [p.seq, p.inferences]), [[1, 10], [2, 10]]);
  assert.deepEqual(stored[0], s, 'the stored columns give back the summary exactly');
  assert.equal(await metric(hub, 'cairn_hub_telemetry_stored_total'), 2);
  assert.equal(await metric(hub, 'cairn_hub_telemetry_duplicates_total'), 2);
  assert.equal(await metric(hub, 'cairn_hub_telemetry_raw_rows'), 2);
  assert.deepEqual(announced, [1, 2]);
  const minute = await series(hub, `device=dev-1&from=${BASE}&to=${BASE + MINUTE}&stepMs=${MINUTE}`);
  assert.equal(minute.points[0].summaries, 2, 'the rollup counted each summary once');
  assert.equal(minute.points[0].inferences, 20);
  assert.ok(hub.ctx.devices.get('dev-1')!.lastSeenAt! > 0);
});

test('batching under concurrency: 20 devices × 25 summaries in flight commit in batches of at most batchMaxRows, every one stored and acknowledged', async (t) => {
  const hub = await startTestHub(t, { telemetry: { batchMaxRows: 50, batchMaxDelayMs: 1000 } });
  const ids = Array.from({ length: 20 }, (_, i) => `dev-${i}`);
  const clients = await Promise.all(ids.map((id) => connectDevice(t, hub, id)));
  await Promise.all(clients.flatMap((c, d) => Array.from({ length: 25 }, (_, k) => send(c, ids[d]!, summary(k, BASE + k * 10_000)))));
  assert.equal(await metric(hub, 'cairn_hub_telemetry_stored_total'), 500);
  const batches = await metric(hub, 'cairn_hub_telemetry_batch_size_count');
  assert.equal(await metric(hub, 'cairn_hub_telemetry_batch_size_sum'), 500);
  assert.equal(await metric(hub, 'cairn_hub_telemetry_batch_size_bucket', { le: '50' }), batches, 'no batch above batchMaxRows');
  assert.ok(batches >= 10 && batches < 500, `500 summaries in ${batches} transactions`);
  const fleet = await series(hub, `selector=&from=${BASE}&to=${BASE + HOUR}&stepMs=${HOUR}`);
  assert.equal(fleet.points[0].summaries, 500);
});

test('a failed commit refuses every summary of its batch (no PUBACK, the devices resend); nothing acknowledged is lost', async (t) => {
  const hub = await startTestHub(t, { telemetry: { batchMaxRows: 100, batchMaxDelayMs: 300 } });
  const a = await connectDevice(t, hub, 'dev-a');
  const b = await connectDevice(t, hub, 'dev-b');
  hub.ctx.db.exec(`CREATE TRIGGER test_fail BEFORE INSERT ON telemetry_raw BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END`);
  let acknowledged = 0;
  // The batch also brings a model version the hub has not seen: its lookup row is rolled back with the batch.
  const fresh = active('3.0.0');
  for (const [client, id] of [[a, 'dev-a'], [b, 'dev-b']] as const) send(client, id, summary(1, BASE, { active: fresh })).then(() => acknowledged++, () => undefined);
  await waitFor('both connections closed', () => !a.connected && !b.connected);
  assert.equal(acknowledged, 0, 'no device got a PUBACK');
  assert.equal(await metric(hub, 'cairn_hub_telemetry_batch_failures_total'), 1);
  assert.equal(hub.ctx.telemetry.range('dev-a', 0, Number.MAX_SAFE_INTEGER, 10).length, 0);
  hub.ctx.db.exec('DROP TRIGGER test_fail');
  // The devices reconnect and resend (what the agent's outbox does); now both are stored.
  const a2 = await connectDevice(t, hub, 'dev-a');
  const b2 = await connectDevice(t, hub, 'dev-b');
  await Promise.all([send(a2, 'dev-a', summary(1, BASE, { active: fresh })), send(b2, 'dev-b', summary(1, BASE, { active: fresh }))]);
  assert.equal(await metric(hub, 'cairn_hub_telemetry_stored_total'), 2);
  assert.deepEqual(hub.ctx.telemetry.range('dev-a', 0, Number.MAX_SAFE_INTEGER, 10)[0]?.active, fresh, 'stored under the right model version');
});

test('rollups are exact on known inputs: weighted p50, max p95, mean cpu/rss, max PSI, split by model version, late data in its own buckets', async (t) => {
  const hub = await startTestHub(t);
  const client = await connectDevice(t, hub, 'dev-r');
  const v1 = active('1.0.0');
  const v2 = active('2.0.0');
  // Minute 0 of BASE: two summaries of 1.0.0.
  await send(client, 'dev-r', summary(1, BASE + 10_000, { active: v1, inferences: 10, errors: 1, latencyMs: { p50: 2, p95: 5, p99: 6, max: 7 }, cpuPct: 10, rssMb: 100, drift: drift('ok', 0.05, 0.08) }));
  await send(client, 'dev-r', summary(2, BASE + 20_000, { active: v1, inferences: 30, errors: 0, latencyMs: { p50: 4, p95: 9, p99: 10, max: 11 }, cpuPct: 20, rssMb: 200, drift: drift('warn', 0.12, 0.02) }));
  // Minute 1: one summary of 2.0.0 and one with no model and no latency.
  await send(client, 'dev-r', summary(3, BASE + MINUTE + 5_000, { active: v2, inferences: 20, errors: 2, latencyMs: { p50: 1, p95: 3, p99: 3, max: 3 }, cpuPct: 30, rssMb: 300 }));
  await send(client, 'dev-r', summary(4, BASE + MINUTE + 15_000, { inferences: 0, latencyMs: null, cpuPct: 40, rssMb: 400 }));
  // Late data, sent last: a summary from an hour earlier (the agent's outbox after an outage).
  await send(client, 'dev-r', summary(0, BASE - HOUR + 30_000, { active: v1, inferences: 6, latencyMs: { p50: 8, p95: 8, p99: 8, max: 8 } }));

  const minutes = await series(hub, `device=dev-r&from=${BASE}&to=${BASE + 2 * MINUTE}&stepMs=${MINUTE}`);
  assert.equal(minutes.source, 'minute');
  assert.equal(minutes.devices, 1);
  assert.deepEqual(minutes.points[0], {
    t: BASE, summaries: 2, inferences: 40, errors: 1, inferenceRate: 40 / 60, errorRate: 1 / 60,
    latencyP50Ms: (2 * 10 + 4 * 30) / 40, latencyP95Ms: 9, cpuPct: 15, rssMb: 150, predictionPsi: 0.12, maxFeaturePsi: 0.08,
  });
  assert.deepEqual(minutes.points[1], {
    t: BASE + MINUTE, summaries: 2, inferences: 20, errors: 2, inferenceRate: 20 / 60, errorRate: 2 / 60,
    latencyP50Ms: 1, latencyP95Ms: 3, cpuPct: 35, rssMb: 350, predictionPsi: null, maxFeaturePsi: null,
  });

  const hours = await series(hub, `device=dev-r&from=${BASE - HOUR}&to=${BASE + HOUR}&stepMs=${HOUR}`);
  assert.equal(hours.source, 'hour');
  assert.deepEqual(hours.points.map((p: { t: number; summaries: number; inferences: number }) => [p.t, p.summaries, p.inferences]), [[BASE - HOUR, 1, 6], [BASE, 4, 60]]);
  assert.equal(hours.points[1].latencyP50Ms, (2 * 10 + 4 * 30 + 1 * 20) / 60);

  // The same numbers from raw summaries (a step finer than a minute).
  const raw = await series(hub, `device=dev-r&from=${BASE}&to=${BASE + 2 * MINUTE}&stepMs=30000`);
  assert.equal(raw.source, 'raw');
  assert.deepEqual(raw.points.map((p: { summaries: number }) => p.summaries), [2, 0, 2, 0]);
  assert.equal(raw.points[0].latencyP50Ms, (2 * 10 + 4 * 30) / 40);
  assert.equal(raw.points[1].latencyP50Ms, null);

  // Per model version: the late summary belongs to 1.0.0, minute 1's to 2.0.0.
  const v1Hours = await series(hub, `model=pdm@1.0.0&from=${BASE - HOUR}&to=${BASE + HOUR}&stepMs=${HOUR}`);
  assert.deepEqual(v1Hours.points.map((p: { summaries: number; inferences: number }) => [p.summaries, p.inferences]), [[1, 6], [2, 40]]);
  assert.equal(v1Hours.devices, 1);
  const v2Minutes = await series(hub, `model=pdm@2.0.0&from=${BASE}&to=${BASE + 2 * MINUTE}&stepMs=${MINUTE}`);
  assert.deepEqual(v2Minutes.points.map((p: { summaries: number }) => p.summaries), [0, 1]);
  const v2Raw = await series(hub, `model=pdm@2.0.0&from=${BASE}&to=${BASE + 2 * MINUTE}&stepMs=${MINUTE / 2}`);
  assert.deepEqual(v2Raw.points.map((p: { summaries: number }) => p.summaries), [0, 0, 1, 0]);
});

test('series: one scope per query, selector scopes, automatic step, and 400s naming the limit', async (t) => {
  const hub = await startTestHub(t);
  for (const [id, line] of [['dev-a1', 'a'], ['dev-a2', 'a'], ['dev-b1', 'b']] as const) {
    const client = await connectDevice(t, hub, id);
    assert.equal((await hub.api('PUT', `/api/v1/devices/${id}/labels`, { labels: { line } })).status, 200);
    await send(client, id, summary(1, BASE + 1_000, { inferences: 10 }));
  }
  const lineA = await series(hub, `selector=${encodeURIComponent('line=a')}&from=${BASE}&to=${BASE + MINUTE}&stepMs=${MINUTE}`);
  assert.equal(lineA.devices, 2);
  assert.equal(lineA.points[0].inferences, 20);

  // Automatic step: an hour → 10 s raw points; a day → minutes; thirty days → hours.
  const auto = async (span: number) => {
    const s = await series(hub, `device=dev-a1&from=${BASE}&to=${BASE + span}`);
    return [s.stepMs, s.source, s.points.length];
  };
  assert.deepEqual(await auto(HOUR), [10_000, 'raw', 360]);
  assert.deepEqual(await auto(DAY), [MINUTE, 'minute', 1440]);
  assert.deepEqual(await auto(30 * DAY), [HOUR, 'hour', 720]);

  const refused = async (query: string, status: number, code: string, pattern: RegExp) => {
    const answer = await hub.api('GET', `/api/v1/telemetry/series?${query}`);
    assert.equal(answer.status, status, `${query}: ${JSON.stringify(answer.body)}`);
    assert.equal(answer.body.code, code);
    assert.match(answer.body.message, pattern);
  };
  await refused(`device=dev-a1&from=${BASE}&to=${BASE}`, 400, 'CAIRN_BAD_REQUEST', /from .* must be before to/);
  await refused(`device=dev-a1&from=${BASE + 1}&to=${BASE}`, 400, 'CAIRN_BAD_REQUEST', /inverted/);
  await refused(`device=dev-a1&from=${BASE}&to=${BASE + DAY}&stepMs=1000`, 400, 'CAIRN_BAD_REQUEST', /telemetry\.maxQueryPoints \(2000\)/);
  await refused(`device=dev-a1&from=0&to=${BASE}`, 400, 'CAIRN_BAD_REQUEST', /telemetry\.maxQueryPoints/);
  await refused(`from=${BASE}&to=${BASE + HOUR}`, 400, 'CAIRN_BAD_REQUEST', /exactly one scope/);
  await refused(`device=dev-a1&model=pdm@1.0.0&from=${BASE}&to=${BASE + HOUR}`, 400, 'CAIRN_BAD_REQUEST', /exactly one scope/);
  await refused(`device=nope&from=${BASE}&to=${BASE + HOUR}`, 404, 'CAIRN_DEVICE_NOT_FOUND', /nope/);
  await refused(`selector=${encodeURIComponent('line in (a')}&from=${BASE}&to=${BASE + HOUR}`, 400, 'CAIRN_BAD_SELECTOR', /./);
  await refused(`model=pdm&from=${BASE}&to=${BASE + HOUR}`, 400, 'CAIRN_BAD_MODEL_REF', /name@version/);
  // A viewer may read series and the fleet summary.
  const viewer = await hub.userToken('watcher', 'viewer');
  assert.equal((await hub.request('GET', `/api/v1/telemetry/series?device=dev-a1&from=${BASE}&to=${BASE + HOUR}`, { token: viewer })).status, 200);
  assert.equal((await hub.request('GET', '/api/v1/fleet/summary', { token: viewer })).status, 200);
});

test('fleet summary: online and offline, devices by active version, and the latest drift status per device', async (t) => {
  const hub = await startTestHub(t);
  const reported = (id: string, version: string | null) => ({
    agentVersion: '0.1.0', ts: Date.now(), labels: {}, hardware: { platform: 'linux', arch: 'x64', cpus: 2, memoryMb: 1024, node: 'v20' },
    active: version ? active(version) : null, deployment: null, lastDesiredSeq: 0, keyringVersion: 1,
  });
  const plan: Array<[string, string | null, 'ok' | 'warn' | 'alert' | null]> = [['f1', '1.0.0', 'alert'], ['f2', '1.0.0', 'warn'], ['f3', '2.0.0', 'ok'], ['f4', null, null]];
  const clients = new Map<string, MqttClient>();
  for (const [id, version, status] of plan) {
    const client = await connectDevice(t, hub, id);
    clients.set(id, client);
    await client.publishAsync(deviceTopic(id, 'reported'), JSON.stringify(reported(id, version)), { qos: 1 });
    if (status) {
      // An older summary with another status first: the latest by ts counts, whatever the arrival order.
      await send(client, id, summary(2, BASE + 20_000, { active: active(version!), drift: drift(status, 0.3, 0.3) }));
      await send(client, id, summary(1, BASE + 10_000, { active: active(version!), drift: drift('ok', 0, 0) }));
    }
  }
  await clients.get('f4')!.publishAsync(deviceTopic('f4', 'presence'), JSON.stringify({ online: false, epoch: 1 }), { qos: 1 });
  const body = (await hub.api('GET', '/api/v1/fleet/summary')).body;
  assert.deepEqual(body, {
    devices: 4, online: 3, offline: 1,
    byVersion: [{ name: 'pdm', version: '1.0.0', devices: 2 }, { name: 'pdm', version: '2.0.0', devices: 1 }],
    noModel: 1, drifting: 1, driftWarning: 1,
    alerting: 0, openAlerts: 0, openWorkOrders: 0, // one `alert` summary is not a drift alert (hysteresis)
  });
  // A maintenance alert: an alerting device, an open alert and an open work order.
  await clients.get('f2')!.publishAsync(deviceTopic('f2', 'events'), JSON.stringify(maintenanceEvent(BASE + 30_000, 'press-2', 'outer_race')), { qos: 1 });
  const counts = (await hub.api('GET', '/api/v1/fleet/summary')).body;
  assert.deepEqual([counts.alerting, counts.openAlerts, counts.openWorkOrders], [1, 1, 1]);
  const latest = hub.ctx.telemetry.latestByDevice();
  assert.deepEqual(latest.get('f1'), { ts: BASE + 20_000, driftStatus: 'alert', predictionPsi: 0.3, maxFeaturePsi: 0.3 });
  assert.equal(latest.has('f4'), false);
});

test('bad telemetry is refused and counted by specific reason; the device stays connected and nothing is stored', async (t) => {
  const hub = await startTestHub(t);
  const client = await connectDevice(t, hub, 'dev-bad');
  const good = summary(1, Date.now());
  const cases: Array<[string, unknown]> = [
    ['unknown_field', { ...good, firmware: 'x' }],
    ['unknown_field', { ...good, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4, p999: 5 } }],
    ['out_of_range', { ...good, cpuPct: -1 }],
    ['out_of_range', { ...good, drift: drift('ok', 101, 0) }],
    ['missing_field', { seq: 1, ts: Date.now() }],
    ['wrong_type', { ...good, inferences: '10' }],
    ['schema', { ...good, active: { ...active('1.0.0'), digest: 'not-hex' } }],
    ['not_json', '{"seq": 1,'],
    ['future_timestamp', { ...good, ts: Date.now() + DAY }],
    ['too_old', { ...good, ts: Date.now() - 8 * DAY }],
  ];
  for (const [, payload] of cases) await send(client, 'dev-bad', payload);
  const expected: Record<string, number> = {};
  for (const [reason] of cases) expected[reason] = (expected[reason] ?? 0) + 1;
  for (const [reason, n] of Object.entries(expected)) {
    assert.equal(await metric(hub, 'cairn_hub_rejected_messages_total', { kind: 'telemetry', reason }), n, reason);
  }
  assert.equal(client.connected, true);
  assert.equal(await metric(hub, 'cairn_hub_telemetry_stored_total'), 0);
  await send(client, 'dev-bad', good);
  assert.equal(hub.ctx.telemetry.range('dev-bad', 0, Number.MAX_SAFE_INTEGER, 10).length, 1, 'the device is still served');
});

test('retention: raw summaries, minute and hour rollups older than their retention are deleted by the job (run at start, then hourly)', async (t) => {
  let offset = 0;
  const clock = () => Date.now() + offset;
  const config = { telemetry: { rawRetentionDays: 1, minuteRetentionDays: 2, hourRetentionDays: 3 } };
  const first = await startTestHub(t, { ...config, clock });
  const client = await connectDevice(t, first, 'dev-old');
  const now = Date.now();
  await send(client, 'dev-old', summary(1, now - 20 * HOUR));
  await send(client, 'dev-old', summary(2, now - HOUR));
  client.end(true);
  await first.close();
  const restartAt = (days: number) => {
    offset = days * DAY;
    return startTestHub(t, { ...config, clock, keepDataDir: first.dataDir });
  };
  const total = async (hub: TestHub, step: number) => {
    const s = await series(hub, `device=dev-old&from=${Math.floor((now - DAY) / step) * step}&to=${now + step}&stepMs=${step}`);
    return s.points.reduce((n: number, p: { summaries: number }) => n + p.summaries, 0);
  };

  // Half a day later: seq 1 (20 h old then 32 h) leaves the raw table; the rollups keep both.
  const second = await restartAt(0.5);
  assert.deepEqual(second.ctx.telemetry.range('dev-old', 0, Number.MAX_SAFE_INTEGER, 10).map((s) => s.seq), [2]);
  assert.deepEqual([await total(second, MINUTE), await total(second, HOUR)], [2, 2]);
  assert.equal(await metric(second, 'cairn_hub_telemetry_retention_deleted_total', { table: 'raw' }), 1);
  assert.equal(await metric(second, 'cairn_hub_telemetry_raw_rows'), 1);
  await second.close();

  // 1.5 days: no raw left, seq 1's minute bucket gone, both hour buckets kept.
  const third = await restartAt(1.5);
  assert.equal(await metric(third, 'cairn_hub_telemetry_raw_rows'), 0);
  assert.deepEqual([await total(third, MINUTE), await total(third, HOUR)], [1, 2]);
  await third.close();

  // 4 days: everything is past the hour retention.
  const fourth = await restartAt(4);
  assert.deepEqual([await total(fourth, MINUTE), await total(fourth, HOUR)], [0, 0]);
  assert.equal(await metric(fourth, 'cairn_hub_telemetry_retention_deleted_total', { table: 'hour' }), 2);
});
