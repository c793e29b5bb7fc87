/**
 * The live stream (GET /api/v1/stream) on a real hub over a real socket, read by a real HTTP
 * client that parses server-sent events as a browser does: device presence and reported changes
 * from an enrolled MQTT device, rollout events from a real deployment, alert and work-order
 * events from the bus, telemetry only for `?device=`, resume with Last-Event-ID (header and
 * query), `reset` for ids the journal no longer covers or never issued, resume across a hub
 * restart, authentication, a slow client dropped while others keep up, shutdown, and the metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deviceTopic, type ReportedT } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import type { HubEvents } from '@cairn/hub/infra/bus.js';
import { connectDevice, startTestHub, type TestHub } from '../helpers/hub.js';
import { openStream, type SseEvent, type SseStream } from '../helpers/sse.js';
import { sleep, waitFor } from '../helpers/wait.js';

const ids = (events: SseEvent[]) => events.filter((e) => e.id !== null).map((e) => Number(e.id));
const named = (events: SseEvent[], name: string) => events.filter((e) => e.event === name);

/** An alert view as the alerts module would emit it (only id and deviceId matter to the stream). */
function alert(n: number, padding = 0): HubEvents['alert.changed'] {
  return { change: 'opened', alert: { id: `al_${n}`, deviceId: 'press-1', cause: 'drift', severity: 'warning', state: 'open', summary: 'x'.repeat(padding) } };
}

/** Emits `count` alerts and waits until `stream` has them all. */
async function emitAlerts(hub: TestHub, stream: SseStream, from: number, count: number): Promise<void> {
  for (let n = from; n < from + count; n++) hub.ctx.bus.emit('alert.changed', alert(n));
  await stream.until(`alerts up to al_${from + count - 1}`, (events) => events.some((e) => e.event === 'alert' && e.data.alert.id === `al_${from + count - 1}`));
}

const reported = (deployment: ReportedT['deployment'], active: ReportedT['active']): ReportedT => ({
  agentVersion: '0.1.0',
  ts: Date.now(),
  labels: { site: 'plant-3' },
  hardware: { platform: 'linux', arch: 'x64', cpus: 2, memoryMb: 1024, node: 'v20' },
  active,
  deployment,
  lastDesiredSeq: 1,
  keyringVersion: 1,
});

const telemetry = (seq: number) => JSON.stringify({ seq, ts: Date.now(), intervalMs: 10000, inferences: 5, errors: 0, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 }, rssMb: 50, cpuPct: 3, active: null });

test('device, rollout, rollout_device, alert and work_order events reach a viewer with increasing ids; telemetry only with ?device= for that device', async (t) => {
  const hub = await startTestHub(t);
  const viewer = await hub.userToken('vera', 'viewer');
  const all = await openStream(t, `${hub.httpUrl}/api/v1/stream`, { token: viewer });
  assert.equal(all.status, 200);
  assert.match(String(all.headers['content-type']), /^text\/event-stream/);
  await waitFor('the retry hint and the starting id', () => all.retry === 3000 && all.lastEventId !== null);
  const start = Number(all.lastEventId);

  const device = await connectDevice(t, hub, 'press-1');
  await all.until('press-1 online', (events) => named(events, 'device').some((e) => e.data.deviceId === 'press-1' && e.data.online === true));
  assert.deepEqual(named(all.events, 'device')[0]!.data, { deviceId: 'press-1', online: true, active: null, deployment: null });

  // A real direct deployment: its rollout's transitions, then the device's report moves it.
  const model = await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', buildDemoModel({ seed: 1 }).bytes);
  assert.equal(model.status, 201, JSON.stringify(model.body));
  const deployment = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['press-1'] });
  assert.equal(deployment.status, 201, JSON.stringify(deployment.body));
  const rolloutId = deployment.body.id as string;
  await all.until('the rollout completed', (events) => named(events, 'rollout').some((e) => e.data.rolloutId === rolloutId && e.data.state === 'completed'));
  assert.ok(named(all.events, 'rollout').some((e) => e.data.transition === 'started'), 'the start is announced');

  const digest = deployment.body.digest as string;
  const committed = reported({ deploymentId: rolloutId, seq: 1, phase: 'committed', digest }, { name: 'pdm', version: '1.0.0', digest, deploymentId: rolloutId });
  await device.publishAsync(deviceTopic('press-1', 'reported'), JSON.stringify(committed), { qos: 1 });
  await all.until('press-1 committed', (events) => named(events, 'rollout_device').some((e) => e.data.deviceId === 'press-1' && e.data.state === 'committed'));
  await all.until('press-1 runs pdm@1.0.0', (events) => named(events, 'device').some((e) => e.data.active?.version === '1.0.0'));
  assert.deepEqual(named(all.events, 'rollout_device').at(-1)!.data, { rolloutId, deviceId: 'press-1', state: 'committed', reason: null });
  assert.deepEqual(named(all.events, 'device').at(-1)!.data.deployment, committed.deployment);

  // The same report again changes nothing the stream shows: no second device event.
  const devicesBefore = named(all.events, 'device').length;
  await device.publishAsync(deviceTopic('press-1', 'reported'), JSON.stringify({ ...committed, ts: Date.now(), labels: { site: 'plant-4' } }), { qos: 1 });
  await waitFor('the repeated report stored', () => hub.ctx.devices.get('press-1')?.labels.site === 'plant-4');

  // Alerts and work orders come from the alerts module through the bus.
  hub.ctx.bus.emit('alert.changed', alert(1));
  hub.ctx.bus.emit('workorder.changed', { change: 'opened', workOrder: { id: 'wo_1', deviceId: 'press-1', machine: 'press-1', faultClass: 'outer_race' } });
  await all.until('the work order', (events) => named(events, 'work_order').length === 1);
  assert.equal(named(all.events, 'device').length, devicesBefore, 'an unchanged report is not repeated');
  assert.deepEqual(named(all.events, 'alert')[0]!.data, alert(1));
  assert.equal(named(all.events, 'work_order')[0]!.data.change, 'opened');
  assert.equal(named(all.events, 'work_order')[0]!.data.workOrder.id, 'wo_1');

  // Telemetry: only to a client that asked for that device, and without an id.
  const one = await openStream(t, `${hub.httpUrl}/api/v1/stream?device=press-1`, { token: viewer });
  await waitFor('the device stream open', () => one.lastEventId !== null);
  const other = await connectDevice(t, hub, 'press-2');
  await other.publishAsync(deviceTopic('press-2', 'telemetry'), telemetry(1), { qos: 1 });
  await device.publishAsync(deviceTopic('press-1', 'telemetry'), telemetry(7), { qos: 1 });
  await one.until('press-1 telemetry', (events) => named(events, 'telemetry').length > 0);
  hub.ctx.bus.emit('alert.changed', alert(2));
  await one.until('the marker alert', (events) => named(events, 'alert').length > 0);
  await all.until('the marker alert', (events) => named(events, 'alert').length === 2);
  assert.deepEqual(
    named(one.events, 'telemetry').map((e) => [e.id, e.data.deviceId, e.data.telemetry.seq]),
    [[null, 'press-1', 7]],
    'press-2 telemetry is not sent to a press-1 stream',
  );
  assert.equal(named(all.events, 'telemetry').length, 0, 'no telemetry without ?device=');
  assert.ok(named(one.events, 'device').some((e) => e.data.deviceId === 'press-2'), 'other events are not filtered by ?device=');

  // A graceful offline.
  await device.publishAsync(deviceTopic('press-1', 'presence'), JSON.stringify({ online: false, epoch: 1 }), { qos: 1 });
  await all.until('press-1 offline', (events) => named(events, 'device').some((e) => e.data.deviceId === 'press-1' && e.data.online === false));

  const seen = ids(all.events);
  assert.equal(seen.length, all.events.length, 'every event on a stream without ?device= has an id');
  assert.ok(seen[0]! > start, 'ids continue from the head announced at connect');
  for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[i - 1]! + 1, `ids increase by one (${seen[i - 1]} → ${seen[i]})`);

  // A device's telemetry cannot be asked for an unknown device.
  const ghost = await openStream(t, `${hub.httpUrl}/api/v1/stream?device=ghost-9`, { token: viewer });
  assert.equal(ghost.status, 404);
  assert.equal(ghost.refusal.code, 'CAIRN_DEVICE_NOT_FOUND');
});

test('resume: Last-Event-ID (header or ?lastEventId=, the header winning) replays exactly the missed events; an id the journal pruned or never issued gets reset', async (t) => {
  let now = Date.parse('2026-03-01T00:00:00Z');
  const hub = await startTestHub(t, { clock: () => now, stream: { journalMaxEvents: 100, journalMaxAgeHours: 24 } });
  const url = `${hub.httpUrl}/api/v1/stream`;
  const first = await openStream(t, url, { token: hub.token });
  await waitFor('connected', () => first.lastEventId !== null);
  await emitAlerts(hub, first, 1, 5);
  const seenUpTo = first.lastEventId!;
  first.close();
  await waitFor('the first client gone', () => hub.ctx.metrics.streamClients.get().then((m) => m.values[0]?.value === 0));

  hub.ctx.bus.emit('alert.changed', alert(6));
  hub.ctx.bus.emit('workorder.changed', { change: 'opened', workOrder: { id: 'wo_6', deviceId: 'press-1' } });
  hub.ctx.bus.emit('alert.changed', alert(7));

  const resumed = await openStream(t, url, { token: hub.token, lastEventId: seenUpTo });
  await resumed.until('the missed events', (events) => events.length >= 3);
  await emitAlerts(hub, resumed, 8, 1); // and then live
  assert.deepEqual(
    resumed.events.map((e) => [e.event, e.event === 'alert' ? e.data.alert.id : e.data.workOrder.id]),
    [['alert', 'al_6'], ['work_order', 'wo_6'], ['alert', 'al_7'], ['alert', 'al_8']],
  );
  assert.deepEqual(ids(resumed.events), [1, 2, 3, 4].map((i) => Number(seenUpTo) + i));

  // Clients that cannot set headers give the id in the query; a header, when present, wins.
  const byQuery = await openStream(t, `${url}?lastEventId=${Number(seenUpTo) + 2}`, { token: hub.token });
  await byQuery.until('the events after the query id', (events) => events.length >= 2);
  assert.deepEqual(ids(byQuery.events), [3, 4].map((i) => Number(seenUpTo) + i));
  const both = await openStream(t, `${url}?lastEventId=${seenUpTo}`, { token: hub.token, lastEventId: String(Number(seenUpTo) + 3) });
  await both.until('the events after the header id', (events) => events.length >= 1);
  assert.deepEqual(ids(both.events), [Number(seenUpTo) + 4]);

  // Caught up at the head: nothing to replay, nothing reset.
  const atHead = await openStream(t, url, { token: hub.token, lastEventId: String(Number(seenUpTo) + 4) });
  await emitAlerts(hub, atHead, 9, 1);
  assert.deepEqual(atHead.events.map((e) => e.event), ['alert']);

  // An id this journal never issued (another hub's database, the future, not a number).
  for (const foreign of [String(Number(seenUpTo) + 1000), 'abc', '-1']) {
    const stream = await openStream(t, url, { token: hub.token, lastEventId: foreign });
    await stream.until(`reset for ${foreign}`, (events) => events.length > 0);
    assert.equal(stream.events[0]!.event, 'reset');
    assert.deepEqual(stream.events[0]!.data, { reason: 'unknown_id', lastEventId: foreign });
    assert.equal(stream.events[0]!.id, String(Number(seenUpTo) + 5), 'the reset carries the head, from which the client continues');
    stream.close();
  }

  // The journal keeps the newest 100 events: a client behind that is reset, one just inside resumes.
  const live = await openStream(t, url, { token: hub.token });
  await emitAlerts(hub, live, 100, 150);
  const head = Number(live.lastEventId);
  const tooOld = await openStream(t, url, { token: hub.token, lastEventId: seenUpTo });
  await tooOld.until('reset', (events) => events.length > 0);
  assert.equal(tooOld.events[0]!.event, 'reset');
  assert.equal(tooOld.events[0]!.data.reason, 'too_old');
  assert.equal(tooOld.events[0]!.id, String(head));
  const inside = await openStream(t, url, { token: hub.token, lastEventId: String(head - 50) });
  await inside.until('the last 50 events', (events) => events.length >= 50);
  assert.deepEqual(ids(inside.events), Array.from({ length: 50 }, (_, i) => head - 49 + i));

  // …and none older than journalMaxAgeHours: a day later the next burst prunes the old ones.
  now += 25 * 3600_000;
  await emitAlerts(hub, live, 300, 10);
  const dayOld = await openStream(t, url, { token: hub.token, lastEventId: String(head - 1) });
  await dayOld.until('reset', (events) => events.length > 0);
  assert.equal(dayOld.events[0]!.event, 'reset');
  assert.equal(dayOld.events[0]!.data.reason, 'too_old');
  const metrics = (await hub.api('GET', '/metrics')).body as string;
  assert.match(metrics, /cairn_hub_stream_resets_total\{reason="unknown_id"\} 3/);
  assert.match(metrics, /cairn_hub_stream_resets_total\{reason="too_old"\} 2/);
});

test('resume across a hub restart: ids keep increasing and the events missed before and after the restart are replayed in order', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-stream-restart-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const before = await startTestHub(t, { keepDataDir: dataDir });
  const stream = await openStream(t, `${before.httpUrl}/api/v1/stream`, { token: before.token });
  await waitFor('connected', () => stream.lastEventId !== null);
  await emitAlerts(before, stream, 1, 3);
  const seenUpTo = Number(stream.lastEventId);
  before.ctx.bus.emit('alert.changed', alert(4)); // journaled; this client may or may not have read it
  await before.close();
  await waitFor('the stream ended by the hub closing', () => stream.ended);

  const after = await startTestHub(t, { keepDataDir: dataDir });
  after.ctx.bus.emit('alert.changed', alert(5));
  const resumed = await openStream(t, `${after.httpUrl}/api/v1/stream`, { token: after.token, lastEventId: String(seenUpTo) });
  await resumed.until('al_4 and al_5', (events) => events.length >= 2);
  assert.deepEqual(
    resumed.events.map((e) => [Number(e.id), e.data.alert.id]),
    [
      [seenUpTo + 1, 'al_4'],
      [seenUpTo + 2, 'al_5'],
    ],
  );

  // Another hub's database issued other ids: resuming there with this one is a reset.
  const elsewhere = await startTestHub(t);
  const foreign = await openStream(t, `${elsewhere.httpUrl}/api/v1/stream`, { token: elsewhere.token, lastEventId: String(seenUpTo) });
  await foreign.until('reset', (events) => events.length > 0);
  assert.equal(foreign.events[0]!.event, 'reset');
  assert.equal(foreign.events[0]!.data.reason, 'unknown_id');
});

test('authentication: no or a bad credential is 401; a viewer session cookie streams with heartbeats; a disabled user\'s stream ends; closing the hub ends open streams', async (t) => {
  const hub = await startTestHub(t, { stream: { heartbeatSeconds: 0.2 } });
  const url = `${hub.httpUrl}/api/v1/stream`;
  const anonymous = await openStream(t, url);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.refusal.code, 'CAIRN_UNAUTHORIZED');
  const forged = await openStream(t, url, { token: 'cairn_forged' });
  assert.equal(forged.status, 401);

  const cookie = await hub.login('vera', await hub.createUser('vera', 'viewer'));
  const session = await openStream(t, url, { cookie });
  assert.equal(session.status, 200);
  await waitFor('heartbeats on a quiet stream', () => session.heartbeats >= 2);
  const token = await openStream(t, url, { token: hub.token });
  await emitAlerts(hub, session, 1, 1);
  await token.until('the alert', (events) => events.length === 1);

  // A stream outlives its request: a user disabled since then loses it at the next heartbeat.
  const otto = await hub.userToken('otto', 'viewer');
  const revoked = await openStream(t, url, { token: otto });
  await waitFor('otto streaming', () => revoked.lastEventId !== null);
  assert.equal((await hub.api('PATCH', '/api/v1/users/otto', { disabled: true })).status, 200);
  await waitFor('the disabled user\'s stream ended', () => revoked.ended);
  assert.equal((await openStream(t, url, { token: otto })).status, 401, 'and it cannot reconnect');
  assert.ok(!session.ended && !token.ended, 'the others stream on');
  assert.match((await hub.api('GET', '/metrics')).body as string, /cairn_hub_stream_clients_dropped_total\{reason="credential"\} 1/);

  await hub.close(); // must not wait on the open streams
  await waitFor('both streams ended', () => session.ended && token.ended);
});

test('a client that does not read is dropped at stream.clientMaxBufferedBytes while another keeps up, and resumes from its last id with nothing lost', async (t) => {
  const cap = 64 * 1024;
  const hub = await startTestHub(t, { stream: { clientMaxBufferedBytes: cap } });
  const url = `${hub.httpUrl}/api/v1/stream`;
  const fast = await openStream(t, url, { token: hub.token });
  const slow = await openStream(t, url, { token: hub.token, paused: true });
  await waitFor('both connected', () => hub.ctx.metrics.streamClients.get().then((m) => m.values[0]?.value === 2));
  const dropped = async () => (await hub.ctx.metrics.streamClientsDropped.get()).values.find((v) => v.labels.reason === 'slow')?.value ?? 0;

  // 8 KiB events until the slow client's socket and then its buffer fill up (bounded: 64 MiB at
  // most), a few at a time so that the fast client, in this process too, gets to read.
  let emitted = 0;
  while ((await dropped()) === 0 && emitted < 8192) {
    for (let i = 0; i < 4; i++) hub.ctx.bus.emit('alert.changed', alert(++emitted, 8192));
    await sleep(1);
  }
  assert.equal(await dropped(), 1, `the slow client was dropped after ${emitted} events`);
  await fast.until('every event', (events) => events.length === emitted);
  assert.deepEqual(fast.events.map((e) => e.data.alert.id), Array.from({ length: emitted }, (_, i) => `al_${i + 1}`), 'the fast client got every event, in order');
  await waitFor('one client left', () => hub.ctx.metrics.streamClients.get().then((m) => m.values[0]?.value === 1));

  // The slow client reads what reached it, then resumes from there and misses nothing.
  slow.resume();
  await waitFor('the slow stream ended', () => slow.ended);
  assert.ok(slow.events.length < emitted, 'the slow client got only part before it was dropped');
  // Its catch-up races new events: each is read once, from the journal or live, none twice.
  const resumed = await openStream(t, url, { token: hub.token, lastEventId: slow.lastEventId! });
  for (let i = 0; i < 50; i++) {
    hub.ctx.bus.emit('alert.changed', alert(++emitted, 8192));
    await sleep(1);
  }
  await fast.until('every event', (events) => events.length === emitted);
  await resumed.until('the rest', (events) => slow.events.length + events.length >= emitted);
  await sleep(50); // a duplicate would arrive now
  assert.deepEqual([...slow.events, ...resumed.events].map((e) => e.data.alert.id), fast.events.map((e) => e.data.alert.id));
  const all = ids([...slow.events, ...resumed.events]);
  for (let i = 1; i < all.length; i++) assert.equal(all[i], all[i - 1]! + 1);
});

test('/metrics: devices online, stream clients and events sent, event-loop delay quantiles', async (t) => {
  const hub = await startTestHub(t);
  await connectDevice(t, hub, 'press-1');
  await connectDevice(t, hub, 'press-2');
  await waitFor('both online', () => hub.ctx.devices.countOnline() === 2);
  const stream = await openStream(t, `${hub.httpUrl}/api/v1/stream`, { token: hub.token });
  await emitAlerts(hub, stream, 1, 3);

  const text = (await hub.api('GET', '/metrics')).body as string;
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? NaN);
  assert.equal(value(/^cairn_hub_devices_online (\S+)$/m), 2);
  assert.equal(value(/^cairn_hub_mqtt_connected_clients (\S+)$/m), 2);
  assert.equal(value(/^cairn_hub_stream_clients (\S+)$/m), 1);
  assert.equal(value(/^cairn_hub_stream_events_sent_total\{event="alert"\} (\S+)$/m), 3);
  const p50 = value(/^cairn_hub_event_loop_delay_seconds\{quantile="0.5"\} (\S+)$/m);
  const p99 = value(/^cairn_hub_event_loop_delay_seconds\{quantile="0.99"\} (\S+)$/m);
  assert.ok(p50 >= 0 && p99 >= p50, `p50 ${p50} ≤ p99 ${p99}`);
  assert.ok(p99 < 10, `an event-loop delay p99 of ${p99} s is not plausible for a test hub`);
});
