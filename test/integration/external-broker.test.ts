/**
 * What is particular to running the hub against an external Mosquitto (the shared hub ↔ agent
 * suite and the denial suite run against both brokers; see hub-agent.test.ts and
 * broker-denials.test.ts):
 * - the `$7$` hashes the hub stores are the ones `mosquitto_passwd` makes;
 * - `cairn broker config --mosquitto` (the real CLI) lists only devices it has hashes for and
 *   names the ones that must enroll again;
 * - revocation: the hub drops a revoked device's messages at once; when the operator
 *   regenerates the files and reloads Mosquitto (SIGHUP), Mosquitto closes the device's session
 *   and refuses it from then on;
 * - nothing acknowledged is lost: a message whose handler fails is not acknowledged, and
 *   Mosquitto delivers it again (DUP) after the hub's reconnect.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { deviceTopic } from '@cairn/shared';
import { mosquittoPasswordHash } from '@cairn/hub/infra/mosquitto-password.js';
import { startTestHub } from '../helpers/hub.js';
import { CAIRN } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);

test('the stored broker hash is the one mosquitto_passwd makes for the same password and salt', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-passwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'pw');
  await run('mosquitto_passwd', ['-b', '-c', file, 'dev-1', 'a-device-password']);
  const line = readFileSync(file, 'utf8').trim();
  const [, iterations, salt] = line.slice('dev-1:'.length).split('$').slice(1);
  assert.equal(iterations, '101');
  assert.equal(`dev-1:${mosquittoPasswordHash('a-device-password', Buffer.from(salt!, 'base64'))}`, line);
  assert.notEqual(`dev-1:${mosquittoPasswordHash('another-password', Buffer.from(salt!, 'base64'))}`, line);
});

test('cairn broker config --mosquitto lists the hub and the devices it has hashes for, and names those that must enroll again', async (t) => {
  const hub = await startTestHub(t);
  await hub.enroll('dev-new');
  await hub.enroll('dev-old');
  await hub.enroll('dev-gone');
  assert.equal((await hub.api('POST', '/api/v1/devices/dev-gone/revoke')).status, 200);
  // A device enrolled by a hub from before the enrollment module's migration 2 has no broker hash.
  hub.ctx.db.prepare("UPDATE device_credentials SET broker_hash = NULL WHERE device_id = 'dev-old'").run();
  const out = mkdtempSync(join(tmpdir(), 'cairn-broker-config-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));

  const { stdout } = await run(process.execPath, [CAIRN, 'broker', 'config', '--mosquitto', '--data', hub.dataDir, '--out', out, '--port', '18883']);
  assert.match(stdout, /the hub and 1 device\(s\)/);
  assert.match(stdout, /enroll them again: dev-old/);
  const users = readFileSync(join(out, 'password_file'), 'utf8').trim().split('\n').map((l) => l.split(':')[0]);
  assert.deepEqual(users, ['_cairn-hub', '_cairn-hub-out', 'dev-new']);
  assert.equal(statSync(join(out, 'password_file')).mode & 0o777, 0o600);
  const acl = readFileSync(join(out, 'acl_file'), 'utf8');
  assert.match(acl, /user dev-new\ntopic write cairn\/v1\/dev\/dev-new\/presence\n/);
  assert.ok(!acl.includes('dev-gone') && !acl.includes('dev-old'), 'a revoked or hash-less device has no access');
  assert.ok(!/^pattern /m.test(acl), 'no pattern rule: only listed users get anything');
  const conf = readFileSync(join(out, 'mosquitto.conf'), 'utf8');
  assert.match(conf, /^allow_anonymous false$/m);
  assert.match(conf, /^listener 18883$/m);
  assert.ok(!stdout.includes(readFileSync(join(hub.dataDir, 'broker-password'), 'utf8').trim()), "the hub's broker password is not printed");
});

test('a revoked device: the hub drops its messages at once; regenerate + SIGHUP closes its session and refuses its reconnects', async (t) => {
  const hub = await startTestHub(t, { broker: 'mosquitto' });
  const credentials = await hub.enroll('dev-live');
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'dev-live', ...credentials, protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  client.on('error', () => undefined);
  await new Promise((r) => client.once('connect', r));
  const birth = (epoch: number) => JSON.stringify({ online: true, agentVersion: '0.1.0', epoch, ts: Date.now() });
  await client.publishAsync(deviceTopic('dev-live', 'presence'), birth(1), { qos: 1 });
  await waitFor('the hub sees it online', () => hub.ctx.devices.get('dev-live')?.online);

  assert.equal((await hub.api('POST', '/api/v1/devices/dev-live/revoke')).status, 200);
  const deniedRevoked = async () => Number(/cairn_hub_mqtt_denied_total\{action="publish",reason="revoked"\} (\d+)/.exec((await hub.api<string>('GET', '/metrics')).body)?.[1] ?? 0);
  await client.publishAsync(deviceTopic('dev-live', 'events'), JSON.stringify({ eventId: 'e-1', ts: Date.now(), type: 'log', message: 'after revocation' }), { qos: 1 });
  await waitFor('the hub dropped and counted its message', async () => (await deniedRevoked()) === 1);

  const closed = new Promise<void>((r) => client.once('close', () => r()));
  await hub.admit();
  await closed; // Mosquitto 2 checks connected clients against the reloaded password file
  const again = mqtt.connect(hub.mqttUrl, { clientId: 'dev-live', ...credentials, protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => again.end(true));
  const code = await new Promise<unknown>((resolve) => {
    again.once('connect', () => resolve(0));
    again.on('error', (err: Error & { code?: unknown }) => resolve(err.code));
  });
  assert.equal(code, 5, 'not authorised');
});

test('a device message whose handling fails is not acknowledged to the broker: Mosquitto delivers it again after the reconnect, and it is stored once', async (t) => {
  const hub = await startTestHub(t, { broker: 'mosquitto' });
  const calls: string[] = [];
  // After the telemetry module's own handler: the first delivery fails once it is stored, as a crash would.
  await hub.ctx.broker.subscribe('cairn/v1/dev/+/telemetry', (_topic, payload) => {
    calls.push(payload.toString());
    if (calls.length === 1) throw new Error('injected failure');
  });
  const credentials = await hub.enroll('dev-retry');
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'dev-retry', ...credentials, protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  await new Promise((r) => client.once('connect', r));
  const summary = JSON.stringify({ seq: 1, ts: Date.now(), intervalMs: 10000, inferences: 5, errors: 0, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 }, rssMb: 50, cpuPct: 3, active: null });
  await client.publishAsync(deviceTopic('dev-retry', 'telemetry'), summary, { qos: 1 });

  await waitFor('delivered a second time', () => calls.length === 2);
  assert.equal(calls[1], summary);
  assert.match(hub.mosquitto!.log(), /Sending PUBLISH to _cairn-hub \(d1, q1, r0, m\d+, 'cairn\/v1\/dev\/dev-retry\/telemetry'/, 'a redelivery (DUP) of the unacknowledged message');
  assert.equal(hub.ctx.telemetry.range('dev-retry', 0, Date.now() + 1, 10).length, 1, 'stored once');
});
