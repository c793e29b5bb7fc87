/**
 * At-least-once webhook delivery across a crash: a `cairn hub` process is killed (SIGKILL) while
 * a delivery is in flight — the receiver holds the request open — and the next hub process on
 * the same data directory delivers it again with the same `x-cairn-delivery` id. The device is
 * a raw MQTT client enrolled through the HTTP API; the hub runs on the real clock with a short
 * backoff, so the retry comes once the dead attempt's lease (timeout + backoff) has passed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { signEnrollClaim } from '@cairn/shared';
import { verifyWebhook } from '@cairn/hub/modules/webhooks/webhook-signature.js';
import { CAIRN, freePort, kill9, spawnLogged } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';
import { maintenanceEvent, publishAs } from '../helpers/device-messages.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'whsec-crash-0123456789';

test('a delivery in flight when the hub is killed is delivered by the restarted hub, same delivery id', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-webhook-crash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const receiver = await startWebhookReceiver(t, () => 'hold');
  const requests = receiver.received;
  const hookUrl = receiver.url;

  const dataDir = join(dir, 'hub-data');
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const configFile = join(dir, 'hub.yaml');
  writeFileSync(
    configFile,
    [`webhooks:`, `  endpoints:`, `    - { name: cmms, url: "${hookUrl}", secret: "${SECRET}" }`, `  retryBaseMs: 200`, `  retryMaxMs: 1000`, `  timeoutMs: 2000`].join('\n'),
  );
  const hubUrl = `http://127.0.0.1:${httpPort}`;
  const startHubProcess = async () => {
    const p = spawnLogged(t, [CAIRN, 'hub', '--config', configFile, '--data', dataDir, '--http', String(httpPort), '--mqtt', String(mqttPort), '--log-level', 'warn']);
    await waitFor('hub banner', () => /API (http:\/\/\S+)/.exec(p.output()), { timeoutMs: 60_000 });
    return p;
  };

  const first = await startHubProcess();
  const admin = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(hubUrl + path, { method, headers: { authorization: `Bearer ${admin}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: (await res.json()) as any };
  };
  const { token } = (await call('POST', '/api/v1/enrollment-tokens', { expiresInHours: 1 })).body;
  const enrolled = await fetch(`${hubUrl}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(signEnrollClaim('pump-dev', randomBytes(32), Date.now(), token)) });
  const { mqtt: credentials } = (await enrolled.json()) as { mqtt: { username: string; password: string } };
  const device = mqtt.connect(`mqtt://127.0.0.1:${mqttPort}`, { clientId: 'pump-dev', protocolVersion: 4, reconnectPeriod: 0, ...credentials });
  device.on('error', () => undefined); // the hub is killed under it
  t.after(() => device.end(true));
  await new Promise((resolve) => device.once('connect', resolve));
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(Date.now(), 'pump-7', 'outer_race'));

  await waitFor('the delivery in flight', () => requests.length === 1);
  await kill9(first);
  device.end(true);

  receiver.answer = () => 204;
  await startHubProcess();
  await waitFor('delivered by the restarted hub', async () => (await call('GET', '/api/v1/webhooks')).body.endpoints[0].delivered === 1, { timeoutMs: 60_000 });
  assert.equal(requests.length, 2);
  assert.equal(requests[1]!.headers['x-cairn-delivery'], requests[0]!.headers['x-cairn-delivery'], 'the same delivery, so the receiver can dedupe');
  assert.equal(requests[1]!.body, requests[0]!.body);
  const r = requests[1]!;
  assert.ok(verifyWebhook(SECRET, r.headers['x-cairn-timestamp'] as string, r.body, r.headers['x-cairn-signature'] as string, Date.now()));
  assert.equal(JSON.parse(r.body).type, 'work_order.opened');
  const { deliveries } = (await call('GET', '/api/v1/webhooks')).body;
  assert.equal(deliveries[0].attempts, 2);
});
