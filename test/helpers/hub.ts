/**
 * Starts a real hub for a test: temp data directory, HTTP and MQTT on loopback port 0, silent
 * logs. `api()` calls the HTTP API over the real socket with the admin token.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { loadHubConfig, startHub, type HubConfigInput, type RunningHub } from '@cairn/hub';

export interface TestHub extends RunningHub {
  token: string;
  dataDir: string;
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
  return {
    ...hub,
    close,
    token,
    dataDir,
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
}
