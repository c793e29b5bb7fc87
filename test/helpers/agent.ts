/**
 * A real agent (mqtt.js, worker-thread onnxruntime, its local API on a loopback port) enrolled
 * with a test hub and pinned to nothing but the hub's root key, as a field device is. Trials are
 * short so deployments settle quickly, and judge latency only above 1 s: these tests are not about
 * latency, and millisecond comparisons on a shared, loaded machine are noise that rolls trials
 * back. `infer` asks the local API once with the demo model's input.
 */
import type { TestContext } from 'node:test';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAgent, parseConfig, type Agent } from '@cairn/agent';
import { DEMO_FEATURES } from '@cairn/hub/training/demo-model.js';
import { CREDENTIALS_FILE, enrollOnce } from '@cairn/agent/components/device-identity.js';
import type { TestHub } from './hub.js';

export interface PinnedAgentOptions {
  /** A state directory the caller owns (to restart an agent on it); default a fresh one, removed after the test. */
  stateDir?: string;
  /** Agent config settings over the defaults here (labels, source, health, telemetry interval, …). */
  config?: Record<string, unknown>;
  /** What `createAgent` takes besides the config (a stdin for a line source). */
  deps?: Omit<Parameters<typeof createAgent>[1], 'logger'>;
}

export async function startPinnedAgent(t: TestContext, hub: TestHub, deviceId: string, options: PinnedAgentOptions = {}): Promise<Agent> {
  const dir = options.stateDir ?? mkdtempSync(join(tmpdir(), 'cairn-agent-'));
  const trust = (await (await fetch(`${hub.httpUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  // An external broker admits a device only once its files are regenerated: enroll, admit, then start.
  if (hub.mosquitto && !existsSync(join(dir, CREDENTIALS_FILE))) {
    const enrolled = await enrollOnce({ hubUrl: hub.httpUrl, deviceId, stateDir: dir, rootPublicKey: trust.rootPublicKey, token: hub.enrollment.token });
    if (enrolled.status !== 'active') throw new Error(`${deviceId} did not enroll: ${enrolled.status}`);
    await hub.admit();
  }
  const agent = createAgent(
    parseConfig({
      deviceId,
      stateDir: dir,
      mqttUrl: trust.mqttUrl,
      rootPublicKey: trust.rootPublicKey,
      api: { host: '127.0.0.1', port: 0 },
      source: { kind: 'simulated', intervalMs: 20 },
      health: { trial: { durationMs: 300, minInferences: 5, latencyFloorMs: 1000 } },
      enrollment: hub.enrollment,
      ...options.config,
    }),
    { logger: pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' }), ...options.deps },
  );
  t.after(async () => {
    await agent.stop();
    if (!options.stateDir) rmSync(dir, { recursive: true, force: true });
  });
  await agent.start();
  return agent;
}

export interface InferAnswer {
  status: number;
  model?: { name: string; version: string; digest: string };
}

/** One inference through the agent's local API with a demo-model input. */
export async function infer(agent: Agent): Promise<InferAnswer> {
  const data = Array.from({ length: DEMO_FEATURES }, (_, i) => Math.cos(i));
  const response = await fetch(`http://127.0.0.1:${agent.status.api!.port}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: { features: { dims: [1, DEMO_FEATURES], data } } }),
  });
  const body = (await response.json()) as { model?: InferAnswer['model'] };
  return { status: response.status, ...(body.model ? { model: body.model } : {}) };
}
