/**
 * TLS end to end with certificates from a test CA (helpers/tls-fixtures.ts): the hub serves
 * HTTPS and MQTT over TLS (`tls.cert`, `tls.key`); an agent that trusts the CA (`tls.ca`)
 * enrolls over HTTPS and connects over mqtts; a client that trusts another CA is refused by
 * both; with `tls.requireClientCert` a device without a client certificate from the CA is
 * refused at the handshake (counted as `tls_handshake`) and one with it connects. And the
 * external-broker case: a Mosquitto with a TLS listener from `cairn broker config`, joined by
 * the hub over mqtts.
 *
 * Everything talks over real sockets with Node's own TLS; nothing disables verification.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import mqtt, { type IClientOptions } from 'mqtt';
import { deviceTopic, signEnrollClaim } from '@cairn/shared';
import { createAgent, parseConfig } from '@cairn/agent';
import { enrollOnce } from '@cairn/agent/components/device-identity.js';
import { postJson } from '@cairn/agent/adapters/https-client.js';
import { loadHubConfig, startHub, type RunningHub } from '@cairn/hub';
import { makeTlsFixtures, type TlsFixtures } from '../helpers/tls-fixtures.js';
import { startTestHub } from '../helpers/hub.js';
import { mosquittoFor } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

interface TlsHub {
  hub: RunningHub;
  ca: Buffer;
  enrollmentToken: string;
  rootPublicKey: string;
  post(path: string, body: unknown, headers?: Record<string, string>): ReturnType<typeof postJson>;
}

async function startTlsHub(t: TestContext, certs: TlsFixtures, requireClientCert = false): Promise<TlsHub> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-hub-tls-'));
  const hub = await startHub(
    loadHubConfig({
      env: {},
      overrides: { logLevel: 'silent', dataDir, http: { port: 0 }, mqtt: { port: 0 }, tls: { cert: certs.hubCert, key: certs.hubKey, ca: certs.ca, requireClientCert } },
    }),
  );
  t.after(async () => {
    await hub.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const ca = readFileSync(certs.ca);
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) => postJson(`${hub.httpUrl}${path}`, body, { tls: { ca }, timeoutMs: 10_000, headers });
  const admin = { authorization: `Bearer ${readFileSync(hub.adminToken.tokenFile, 'utf8').trim()}` };
  const created = await post('/api/v1/enrollment-tokens', { expiresInHours: 1 }, admin);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return { hub, ca, post, enrollmentToken: (created.body as { token: string }).token, rootPublicKey: Buffer.from(hub.ctx.keys.rootPublicKey).toString('base64') };
}

/** Connects a raw MQTT client; resolves 'connected', or the error code / 'closed' of a refusal. */
function tryConnect(t: TestContext, url: string, options: IClientOptions): Promise<string> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  t.after(() => client.end(true));
  return new Promise((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.on('error', (err: Error & { code?: unknown }) => resolve(String(err.code ?? err.message)));
    client.once('close', () => resolve('closed'));
  });
}

async function enrollRaw(h: TlsHub, deviceId: string): Promise<{ username: string; password: string }> {
  const answer = await h.post('/api/v1/enroll', signEnrollClaim(deviceId, randomBytes(32), Date.now(), h.enrollmentToken));
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return (answer.body as { mqtt: { username: string; password: string } }).mqtt;
}

test('an agent that trusts the CA enrolls over HTTPS and connects over mqtts; the session cookie is Secure by default', async (t) => {
  const certs = makeTlsFixtures(t);
  const h = await startTlsHub(t, certs);
  assert.match(h.hub.httpUrl, /^https:\/\//);
  assert.match(h.hub.mqttUrl, /^mqtts:\/\//);
  const stateDir = mkdtempSync(join(tmpdir(), 'cairn-agent-tls-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const agent = createAgent(
    parseConfig({
      deviceId: 'tls-agent-1',
      stateDir,
      mqttUrl: h.hub.mqttUrl.replace('127.0.0.1', 'localhost'), // the certificate names both
      rootPublicKey: h.rootPublicKey,
      labels: {},
      api: false,
      source: { kind: 'none' },
      enrollment: { hubUrl: h.hub.httpUrl, token: h.enrollmentToken },
      tls: { ca: certs.ca },
    }),
    { logger: pino({ level: 'silent' }) },
  );
  await agent.start();
  t.after(() => agent.stop());
  await waitFor('the agent is online over mqtts', () => h.hub.ctx.devices.get('tls-agent-1')?.online);
  assert.equal(agent.status.enrollment.state, 'enrolled');

  const login = await h.post('/api/v1/session', { username: 'admin', password: readFileSync(h.hub.adminPasswordFile, 'utf8').trim() }, { 'x-cairn-csrf': '1' });
  assert.equal(login.status, 200);
  assert.match(String(login.headers['set-cookie']), /; Secure/);
});

test('a client that trusts another CA is refused by HTTPS and by mqtts', async (t) => {
  const certs = makeTlsFixtures(t);
  const h = await startTlsHub(t, certs);
  const credentials = await enrollRaw(h, 'tls-dev-2');
  const stateDir = mkdtempSync(join(tmpdir(), 'cairn-agent-tls-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  await assert.rejects(
    enrollOnce({ hubUrl: h.hub.httpUrl, deviceId: 'tls-dev-3', stateDir, rootPublicKey: h.rootPublicKey, token: h.enrollmentToken, tls: { ca: readFileSync(certs.otherCa) } }),
    (err: Error & { code?: string }) => err.code === 'CAIRN_AGENT_HUB_UNREACHABLE' && /cannot reach the hub/.test(err.message),
  );
  const outcome = await tryConnect(t, h.hub.mqttUrl, { clientId: 'tls-dev-2', ...credentials, ca: readFileSync(certs.otherCa) });
  assert.notEqual(outcome, 'connected');
  assert.equal(await tryConnect(t, h.hub.mqttUrl, { clientId: 'tls-dev-2', ...credentials, ca: h.ca }), 'connected', 'the same device with the right CA gets in');
});

test('with requireClientCert a device without a client certificate is refused at the handshake; with one from the CA it connects', async (t) => {
  const certs = makeTlsFixtures(t);
  const h = await startTlsHub(t, certs, true);
  const credentials = await enrollRaw(h, 'tls-dev-1');
  const handshakeDenials = async () => (await h.hub.ctx.metrics.deniedMqtt.get()).values.find((v) => v.labels.reason === 'tls_handshake')?.value ?? 0;

  const without = await tryConnect(t, h.hub.mqttUrl, { clientId: 'tls-dev-1', ...credentials, ca: h.ca });
  assert.notEqual(without, 'connected');
  await waitFor('the refused handshake is counted', async () => (await handshakeDenials()) > 0);

  const withCert = await tryConnect(t, h.hub.mqttUrl, { clientId: 'tls-dev-1', ...credentials, ca: h.ca, cert: readFileSync(certs.deviceCert), key: readFileSync(certs.deviceKey) });
  assert.equal(withCert, 'connected');
  // The certificate names tls-dev-1: it does not let another enrolled device in, even with that device's own password.
  const mismatches = async () => (await h.hub.ctx.metrics.deniedMqtt.get()).values.find((v) => v.labels.reason === 'cert_mismatch')?.value ?? 0;
  const other = await enrollRaw(h, 'tls-dev-3');
  assert.notEqual(await tryConnect(t, h.hub.mqttUrl, { clientId: 'tls-dev-3', ...other, ca: h.ca, cert: readFileSync(certs.deviceCert), key: readFileSync(certs.deviceKey) }), 'connected');
  await waitFor('the certificate that names another device is counted', async () => (await mismatches()) === 1);
  // HTTPS asks for no client certificate: enrollment and the console work without one.
  assert.equal((await enrollRaw(h, 'tls-dev-4')).username, 'tls-dev-4');
});

test('against a Mosquitto listening with TLS (cairn broker config --tls-cert/--tls-key): the hub joins over mqtts trusting tls.ca, a device too; another CA is refused', async (t) => {
  const certs = makeTlsFixtures(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-hub-mosq-tls-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const broker = await mosquittoFor(t, dataDir, { cert: certs.hubCert, key: certs.hubKey });
  const hub = await startTestHub(t, { keepDataDir: dataDir, broker: 'mosquitto', tls: { ca: certs.ca } });
  assert.match(hub.mqttUrl, /^mqtts:\/\//);
  assert.equal(broker.url, hub.mqttUrl);
  const credentials = await hub.enroll('tls-mq-1');
  assert.equal(await tryConnect(t, hub.mqttUrl, { clientId: 'tls-mq-1', ...credentials, ca: readFileSync(certs.otherCa) }) === 'connected', false, 'a device trusting another CA is refused');
  const client = mqtt.connect(hub.mqttUrl, { clientId: 'tls-mq-1', ...credentials, ca: readFileSync(certs.ca), protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  await new Promise((r) => client.once('connect', r));
  await client.publishAsync(deviceTopic('tls-mq-1', 'presence'), JSON.stringify({ online: true, agentVersion: '0.1.0', epoch: 1, ts: Date.now() }), { qos: 1 });
  await waitFor('the hub got its birth through the TLS broker', () => hub.ctx.devices.get('tls-mq-1')?.online);
});
