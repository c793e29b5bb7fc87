/**
 * The hub's MQTT side with real mqtt.js clients on a real TCP socket: access control (one named
 * test per denial an attacker would try), presence epochs, and bad payloads.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import mqtt, { type MqttClient, type IClientOptions } from 'mqtt';
import { deviceTopic, decodeBlobFrame } from '@cairn/shared';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';

/** An enrolled device's connection (its credentials unless `extra` brings others). */
async function connect(t: TestContext, hub: TestHub, clientId: string, extra: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(hub.mqttUrl, { clientId, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...(await hub.enroll(clientId)), ...extra });
  t.after(() => client.end(true));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

const publish = (c: MqttClient, topic: string, payload: string | Buffer, retain = false) =>
  new Promise<void>((resolve, reject) => c.publish(topic, payload, { qos: 1, retain }, (err) => (err ? reject(err) : resolve())));

async function metric(hub: TestHub, name: string, labels: Record<string, string>): Promise<number> {
  const text: string = (await hub.api('GET', '/metrics')).body;
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(name + '{') && wanted.every((w) => l.includes(w)));
  return line ? Number(line.split(' ').pop()) : 0;
}

const birth = (epoch: number) => JSON.stringify({ online: true, agentVersion: '0.1.0', epoch, ts: Date.now() });
const telemetry = (seq: number) =>
  JSON.stringify({ seq, ts: Date.now(), intervalMs: 10000, inferences: 5, errors: 0, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 }, rssMb: 50, cpuPct: 3, active: null });

test('deny: a client id that is not a device id is refused at connect', async (t) => {
  const hub = await startTestHub(t);
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'bad/id+#', protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  const err = await new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve));
  assert.equal(err.code, 2);
  assert.equal(await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'connect', reason: 'bad_client_id' }), 1);
});

test('deny: a username that differs from the client id is refused at connect', async (t) => {
  const hub = await startTestHub(t);
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'dev-a', username: 'dev-b', protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  const err = await new Promise<Error & { code?: number }>((resolve) => client.once('error', resolve));
  assert.equal(err.code, 4);
});

test("deny: publishing to another device's topic closes the connection and stores nothing", async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-a');
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.publish(deviceTopic('dev-b', 'telemetry'), telemetry(1), { qos: 1 });
  await closed;
  assert.equal(await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'publish', reason: 'foreign_topic' }), 1);
  assert.equal(hub.ctx.devices.get('dev-b'), null);
});

test('deny: publishing to a hub→agent topic (forging a desired document) is refused', async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-a');
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.publish(deviceTopic('dev-a', 'desired'), '{}', { qos: 1, retain: true });
  await closed;
  assert.equal(await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'publish', reason: 'wrong_direction' }), 1);
});

test('deny: $SYS publishes and topics outside the v1 tree are refused', async (t) => {
  const hub = await startTestHub(t);
  for (const topic of ['$SYS/fake', 'factory/line-1/alarm']) {
    const client = await connect(t, hub, 'dev-a');
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.publish(topic, 'x', { qos: 1 });
    await closed;
  }
  assert.equal(await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'publish', reason: 'sys_topic' }), 1);
  assert.equal(await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'publish', reason: 'unknown_topic' }), 1);
});

test("deny: subscribing to another device's topics, wildcards, agent→hub topics and $share fails in SUBACK", async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-a');
  for (const [filter, reason] of [
    [deviceTopic('dev-b', 'desired'), 'foreign_topic'],
    ['cairn/v1/dev/+/desired', 'wildcard'],
    ['#', 'wildcard'],
    [deviceTopic('dev-b', 'telemetry'), 'foreign_topic'],
    [deviceTopic('dev-a', 'telemetry'), 'wrong_direction'],
    [`$share/g/${deviceTopic('dev-a', 'desired')}`, 'shared_subscription'],
  ] as const) {
    // mqtt.js reports a SUBACK failure code (0x80) as an error on the subscribe callback.
    const refusal = await new Promise<Error | undefined>((resolve) => client.subscribe(filter, { qos: 1 }, (err) => resolve(err ?? undefined)));
    assert.ok(refusal, `${filter} must be refused`);
    assert.ok((await metric(hub, 'cairn_hub_mqtt_denied_total', { action: 'subscribe', reason })) >= 1, reason);
  }
  assert.equal(client.connected, true, 'a refused subscription does not disconnect');
  const own = await new Promise<{ qos: number }[]>((resolve) => client.subscribe(deviceTopic('dev-a', 'desired'), { qos: 1 }, (_e, g) => resolve(g ?? [])));
  assert.equal(own[0]?.qos, 1);
});

test('presence: a stale Last Will (older epoch) cannot mark a live device offline; the current one can', async (t) => {
  const hub = await startTestHub(t);
  const old = await connect(t, hub, 'dev-p', { will: { topic: deviceTopic('dev-p', 'presence'), payload: Buffer.from(JSON.stringify({ online: false, epoch: 1 })), qos: 1, retain: true } });
  await publish(old, deviceTopic('dev-p', 'presence'), birth(1), true);
  await waitFor('dev-p online at epoch 1', () => hub.ctx.devices.get('dev-p')?.epoch === 1);
  // A second connection with the same id takes over: the broker publishes the old Will (epoch 1)
  // while the new connection's birth says epoch 2.
  const fresh = await connect(t, hub, 'dev-p', { will: { topic: deviceTopic('dev-p', 'presence'), payload: Buffer.from(JSON.stringify({ online: false, epoch: 2 })), qos: 1, retain: true } });
  await publish(fresh, deviceTopic('dev-p', 'presence'), birth(2), true);
  await waitFor('epoch 2 recorded', () => hub.ctx.devices.get('dev-p')?.epoch === 2);
  const staleOffline = mqtt.connect(hub.mqttUrl, { clientId: 'dev-p', protocolVersion: 4, reconnectPeriod: 0, ...(await hub.enroll('dev-p')) });
  t.after(() => staleOffline.end(true));
  // A delayed offline of epoch 1 arrives after the device moved on to a newer epoch.
  await new Promise((r) => staleOffline.once('connect', r));
  await publish(staleOffline, deviceTopic('dev-p', 'presence'), JSON.stringify({ online: false, epoch: 1 }));
  await publish(staleOffline, deviceTopic('dev-p', 'presence'), birth(3));
  await waitFor('epoch 3', () => hub.ctx.devices.get('dev-p')?.epoch === 3);
  assert.equal(hub.ctx.devices.get('dev-p')?.online, true, 'stale offline ignored');
  // An offline message of the current epoch (a graceful stop) does mark it offline.
  await publish(staleOffline, deviceTopic('dev-p', 'presence'), JSON.stringify({ online: false, epoch: 3 }));
  await waitFor('offline at epoch 3', () => hub.ctx.devices.get('dev-p')?.online === false);
});

test('presence: the Last Will marks a device offline when its connection dies', async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-w', { will: { topic: deviceTopic('dev-w', 'presence'), payload: Buffer.from(JSON.stringify({ online: false, epoch: 5 })), qos: 1, retain: true } });
  await publish(client, deviceTopic('dev-w', 'presence'), birth(5), true);
  await waitFor('online', () => hub.ctx.devices.get('dev-w')?.online === true);
  client.stream.destroy(); // no DISCONNECT: the broker must publish the Will
  await waitFor('offline through the Will', () => hub.ctx.devices.get('dev-w')?.online === false);
});

test('bad payloads are dropped, counted by reason and logged; the hub keeps serving the device', async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-x');
  const topic = deviceTopic('dev-x', 'telemetry');
  await publish(client, topic, '{not json');
  await publish(client, topic, JSON.stringify({ seq: 1, hello: 'world' }));
  await publish(client, deviceTopic('dev-x', 'presence'), JSON.stringify({ online: 'yes' }));
  await publish(client, topic, JSON.stringify({ ...JSON.parse(telemetry(9)), ts: Date.now() + 24 * 3600_000 }));
  await publish(client, deviceTopic('dev-x', 'presence'), birth(1));
  await publish(client, topic, telemetry(1));
  await publish(client, topic, telemetry(1)); // a redelivery
  await publish(client, topic, telemetry(2));
  const stored = await waitFor('two summaries', async () => {
    const r = await hub.api('GET', '/api/v1/devices/dev-x/telemetry');
    return r.body.points?.length === 2 ? r.body.points : null;
  });
  assert.deepEqual(stored.map((p: { seq: number }) => p.seq), [1, 2]);
  assert.equal(await metric(hub, 'cairn_hub_rejected_messages_total', { kind: 'telemetry', reason: 'not_json' }), 1);
  assert.equal(await metric(hub, 'cairn_hub_rejected_messages_total', { kind: 'telemetry', reason: 'missing_field' }), 1);
  assert.equal(await metric(hub, 'cairn_hub_rejected_messages_total', { kind: 'presence', reason: 'missing_field' }), 1);
  assert.equal(await metric(hub, 'cairn_hub_rejected_messages_total', { kind: 'telemetry', reason: 'future_timestamp' }), 1);
  assert.equal(client.connected, true);
});

test('blob requests for a digest the device is not assigned get an error frame, never bytes', async (t) => {
  const hub = await startTestHub(t);
  const client = await connect(t, hub, 'dev-b');
  await new Promise((r) => client.subscribe(deviceTopic('dev-b', 'blob/res'), { qos: 1 }, r));
  const frame = new Promise<Buffer>((resolve) => client.once('message', (_topic, payload) => resolve(payload)));
  await publish(client, deviceTopic('dev-b', 'blob/req'), JSON.stringify({ digest: 'a'.repeat(64), from: 0, count: 4 }));
  const decoded = decodeBlobFrame(await frame);
  assert.ok(decoded.ok);
  assert.equal(decoded.header.error, 'not_assigned');
  assert.equal(decoded.chunk.length, 0);
});

test('a device message is acknowledged only once stored: a failed store is refused and the device resends it', async (t) => {
  const hub = await startTestHub(t);
  let failuresLeft = 1;
  // A store that fails once, registered after the telemetry module's own handler.
  await hub.ctx.broker.subscribe('cairn/v1/dev/+/telemetry', () => {
    if (failuresLeft-- > 0) throw new Error('disk full');
  });
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'dev-r', protocolVersion: 4, reconnectPeriod: 100, clean: false, ...(await hub.enroll('dev-r')) });
  t.after(() => client.end(true));
  await new Promise((r) => client.once('connect', r));
  let closes = 0;
  client.on('close', () => closes++);
  await publish(client, deviceTopic('dev-r', 'presence'), birth(1));
  await publish(client, deviceTopic('dev-r', 'telemetry'), telemetry(42)); // resolves on PUBACK
  assert.ok(closes >= 1, 'the first attempt was refused (connection closed, no PUBACK)');
  const points = (await hub.api('GET', '/api/v1/devices/dev-r/telemetry')).body.points as { seq: number }[];
  assert.deepEqual(points.map((p) => p.seq), [42], 'stored exactly once by the time of the PUBACK');
});
