/**
 * Starts a real hub for a test: temp data directory, HTTP and MQTT on loopback port 0, silent
 * logs. `api()` calls the HTTP API over the real socket with the admin token. Devices must
 * enroll: `enrollment` is an agent config section with an unlimited enrollment token, and
 * `enroll(id)` enrolls a device (a fresh key) and returns the MQTT credentials a raw client needs.
 */
import { randomBytes } from 'node:crypto';
import { signEnrollClaim } from '@cairn/shared';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadHubConfig, startHub, type HubConfigInput, type RunningHub } from '@cairn/hub';

export interface TestHub extends RunningHub {
  token: string;
  dataDir: string;
  /** The `enrollment` section of an agent config that lets any device id in. */
  enrollment: { hubUrl: string; token: string };
  /** Enrolls `deviceId` with a new device key (once per id); the credentials for a raw MQTT client. */
  enroll(deviceId: string): Promise<{ username: string; password: string }>;
  api<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

export async function startTestHub(t: TestContext, overrides: HubConfigInput & { keepDataDir?: string } = {}): Promise<TestHub> {
  const { keepDataDir, ...config } = overrides;
  const dataDir = keepDataDir ?? mkdtempSync(join(tmpdir(), 'cairn-hub-'));
  const hub = await startHub(
    loadHubConfig({
      env: {},
      overrides: { logLevel: 'silent', ...config, dataDir, http: { port: 0, ...config.http }, mqtt: { port: 0, ...config.mqtt } },
    }),
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
  const enrolled = new Map<string, { username: string; password: string }>();
  const testHub: TestHub = {
    ...hub,
    close,
    token,
    dataDir,
    enrollment: { hubUrl: hub.httpUrl, token: '' },
    async enroll(deviceId) {
      const known = enrolled.get(deviceId);
      if (known) return known;
      const response = await fetch(`${hub.httpUrl}/api/v1/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(signEnrollClaim(deviceId, randomBytes(32), Date.now(), testHub.enrollment.token)),
      });
      const body = (await response.json()) as { mqtt?: { username: string; password: string }; message?: string };
      if (response.status !== 201 || !body.mqtt) throw new Error(`enrolling ${deviceId}: ${response.status} ${body.message ?? ''}`);
      const credentials = { username: body.mqtt.username, password: body.mqtt.password };
      enrolled.set(deviceId, credentials);
      return credentials;
    },
    async api(method, path, body) {
      const init: RequestInit = { method, headers: { authorization: `Bearer ${token}` } };
      if (body instanceof Uint8Array) {
        init.headers = { ...init.headers, 'content-type': 'application/octet-stream' };
        init.body = body;
      } else if (body !== undefined) {
        init.headers = { ...init.headers, 'content-type': 'application/json' };
        init.body = JSON.stringify(body);
      }
      const response = await fetch(hub.httpUrl + path, init);
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: keep the text */
      }
      return { status: response.status, body: parsed as any };
    },
  };
  const created = await testHub.api('POST', '/api/v1/enrollment-tokens', { expiresInHours: 24 });
  if (created.status !== 201) throw new Error(`creating an enrollment token: ${created.status} ${JSON.stringify(created.body)}`);
  testHub.enrollment.token = created.body.token;
  return testHub;
}
