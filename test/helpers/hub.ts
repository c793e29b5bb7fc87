/**
 * Starts a real hub for a test: temp data directory, HTTP and MQTT on loopback port 0, silent
 * logs. `api()` calls the HTTP API over the real socket with the admin token; `request()` with
 * any credentials. `userToken()` makes a user of a role and an API token for it, through the
 * real routes; `approve()` approves a model version as a second operator (the approval policy
 * lets an unapproved version reach one device only). Devices must enroll: `enrollment` is an
 * agent config section with an unlimited enrollment token, and `enroll(id)` enrolls a device (a
 * fresh key, once per id) and returns the MQTT credentials a raw client needs.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Logger } from 'pino';
import mqtt, { type MqttClient } from 'mqtt';
import { signEnrollClaim, deviceTopic } from '@cairn/shared';
import { loadHubConfig, startHub, type HubConfigInput, type RunningHub } from '@cairn/hub';
import { mosquittoFor, type TestMosquitto } from './mosquitto.js';

export interface ApiAnswer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export interface RequestOptions {
  body?: unknown;
  /** A Bearer token; none when absent (give `cookie` for a console session). */
  token?: string;
  cookie?: string;
  headers?: Record<string, string>;
}

export interface TestHub extends RunningHub {
  token: string;
  dataDir: string;
  api<T = any>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>>;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<ApiAnswer<T>>;
  /** Creates `username` with `role` (as admin) and returns its password. */
  createUser(username: string, role: 'viewer' | 'operator' | 'admin'): Promise<string>;
  /** Logs in as `username` and returns the session cookie (`cairn_session=…`). */
  login(username: string, password: string): Promise<string>;
  /** A new user with `role` and an API token of theirs. */
  userToken(username: string, role: 'viewer' | 'operator' | 'admin'): Promise<string>;
  /** Approves name@version as the operator `reviewer` (created on first use). */
  approve(ref: string): Promise<void>;
  /** The `enrollment` section of an agent config that lets any device id in. */
  enrollment: { hubUrl: string; token: string };
  /** Enrolls `deviceId` with a new device key (once per id) and admits it; the credentials for a raw MQTT client. */
  enroll(deviceId: string): Promise<{ username: string; password: string }>;
  /** Makes the broker follow enrollments and revocations: a Mosquitto regenerates its files and reloads; the embedded broker asks the hub at every CONNECT already. */
  admit(): Promise<void>;
  /** The external broker, when the hub runs against one (`broker: 'mosquitto'`). */
  mosquitto: TestMosquitto | null;
}

export type TestBroker = 'embedded' | 'mosquitto';

/**
 * `broker: 'mosquitto'` runs the hub against a real Mosquitto for its data directory
 * (helpers/mosquitto.ts; the same one again when a test restarts the hub on that directory).
 */
export async function startTestHub(t: TestContext, overrides: HubConfigInput & { keepDataDir?: string; logger?: Logger; clock?: () => number; broker?: TestBroker } = {}): Promise<TestHub> {
  const { keepDataDir, logger, clock, broker = 'embedded', ...config } = overrides;
  const dataDir = keepDataDir ?? mkdtempSync(join(tmpdir(), 'cairn-hub-'));
  const mosquitto = broker === 'mosquitto' ? await mosquittoFor(t, dataDir) : null;
  const hub = await startHub(
    loadHubConfig({
      env: {},
      overrides: { logLevel: 'silent', ...config, dataDir, http: { port: 0, ...config.http }, mqtt: { port: 0, ...config.mqtt, ...(mosquitto ? { broker: mosquitto.url } : {}) } },
    }),
    { ...(logger ? { logger } : {}), ...(clock ? { clock } : {}) },
  );
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await hub.close();
  };
  t.after(async () => {
    await close();
    if (!keepDataDir) rmSync(dataDir, { recursive: true, force: true });
  });
  const token = readFileSync(hub.adminToken.tokenFile, 'utf8').trim();
  const request = async <T>(method: string, path: string, options: RequestOptions = {}): Promise<ApiAnswer<T>> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    if (options.cookie) headers.cookie = options.cookie;
    const init: RequestInit = { method, headers };
    if (options.body instanceof Uint8Array) {
      headers['content-type'] = 'application/octet-stream';
      init.body = options.body;
    } else if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(options.body);
    }
    const response = await fetch(hub.httpUrl + path, init);
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    return { status: response.status, body: parsed as T, headers: response.headers };
  };
  const expect = <T>(answer: ApiAnswer<T>, status: number, what: string): T => {
    if (answer.status !== status) throw new Error(`${what}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
    return answer.body;
  };
  const createUser = async (username: string, role: string) =>
    expect(await request<{ password: string }>('POST', '/api/v1/users', { token, body: { username, role } }), 201, `create user ${username}`).password;
  const login = async (username: string, password: string) => {
    const answer = await request('POST', '/api/v1/session', { body: { username, password }, headers: { 'x-cairn-csrf': '1' } });
    expect(answer, 200, `login ${username}`);
    return answer.headers.get('set-cookie')!.split(';')[0]!;
  };
  const userToken = async (username: string, role: 'viewer' | 'operator' | 'admin') => {
    const cookie = await login(username, await createUser(username, role));
    return expect(await request<{ secret: string }>('POST', '/api/v1/tokens', { cookie, body: { name: 'test' }, headers: { 'x-cairn-csrf': '1' } }), 201, `token for ${username}`).secret;
  };
  let reviewer: Promise<string> | undefined;
  const enrolled = new Map<string, { username: string; password: string }>();
  const testHub: TestHub = {
    ...hub,
    close,
    token,
    dataDir,
    api: (method, path, body) => request(method, path, { token, body }),
    request,
    createUser,
    login,
    userToken,
    async approve(ref) {
      reviewer ??= userToken('reviewer', 'operator');
      const at = ref.lastIndexOf('@');
      expect(await request('POST', `/api/v1/models/${ref.slice(0, at)}/${ref.slice(at + 1)}/approve`, { token: await reviewer }), 200, `approve ${ref}`);
    },
    enrollment: { hubUrl: hub.httpUrl, token: '' },
    async enroll(deviceId) {
      const known = enrolled.get(deviceId);
      if (known) return known;
      const answer = await request<{ mqtt?: { username: string; password: string }; message?: string }>('POST', '/api/v1/enroll', {
        body: signEnrollClaim(deviceId, randomBytes(32), Date.now(), testHub.enrollment.token),
      });
      if (answer.status !== 201 || !answer.body.mqtt) throw new Error(`enrolling ${deviceId}: ${answer.status} ${answer.body.message ?? ''}`);
      const credentials = { username: answer.body.mqtt.username, password: answer.body.mqtt.password };
      enrolled.set(deviceId, credentials);
      await testHub.admit();
      return credentials;
    },
    admit: async () => mosquitto?.admit(),
    mosquitto,
  };
  // A hub whose admin token a test revoked cannot make one; its devices then cannot enroll (enroll() says so).
  const created = await request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { token, body: { expiresInHours: 24 } });
  if (created.status === 201) testHub.enrollment.token = created.body.token;
  return testHub;
}

/** A bare MQTT client of the enrolled device `id` that says it is online (a birth message), so the hub knows the device. */
export async function connectDevice(t: TestContext, hub: TestHub, id: string): Promise<MqttClient> {
  const client = mqtt.connect(hub.mqttUrl, { clientId: id, protocolVersion: 4, reconnectPeriod: 0, ...(await hub.enroll(id)) });
  t.after(() => client.end(true));
  await new Promise((r) => client.once('connect', r));
  await client.publishAsync(deviceTopic(id, 'presence'), JSON.stringify({ online: true, agentVersion: '0.1.0', epoch: 1, ts: Date.now() }), { qos: 1 });
  return client;
}
