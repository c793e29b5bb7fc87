/**
 * The pieces a benchmark runs against: a real hub (in the bench process, HTTP and MQTT on
 * loopback), the signed reference images published to it the way `cairn` publishes them, and
 * real `cairn-agent run` processes (the built CLI) whose memory and CPU the kernel accounts on
 * their own. The hub is driven through its HTTP API, and read through its repositories only to
 * wait for what devices reported.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { loadHubConfig, startHub, type RunningHub } from '@cairn/hub';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import type { DeploymentStatusT } from '@cairn/shared';
import { AGENT_CLI, imageDir } from './paths.js';
import { until } from './stats.js';

export interface BenchHub {
  hub: RunningHub;
  trust: { rootPublicKey: string; mqttUrl: string };
  /** An unlimited enrollment token for the bench's devices. */
  enrollmentToken: string;
  /** Publishes `firmware-images/<id>` and returns its `name@version`. */
  publish(id: string): Promise<string>;
  /** `POST /api/v1/deployments`; returns the deployment id. */
  deploy(model: string, deviceIds: string[]): Promise<string>;
  /** What `deviceId` last reported about `deploymentId`, if that is its current deployment. */
  reported(deviceId: string, deploymentId: string): DeploymentStatusT | null;
  /** The same, once the deployment has ended there (committed, failed, rolled back). */
  ended(deviceId: string, deploymentId: string): DeploymentStatusT | null;
  close(): Promise<void>;
}

const ENDED = new Set(['committed', 'failed', 'rolled_back']);

export async function startBenchHub(dataDir: string): Promise<BenchHub> {
  // The bench deploys unapproved versions to whole fleets: its own hub has no canary limit.
  const hub = await startHub(loadHubConfig({ env: {}, overrides: { dataDir, logLevel: 'silent', http: { port: 0 }, mqtt: { port: 0 }, approval: { canaryDevices: 1_000_000 } } }));
  const client = new HubClient(hub.httpUrl, readFileSync(hub.adminToken.tokenFile, 'utf8').trim());
  const enrollmentToken = (await client.request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { expiresInHours: 24 })).token;
  const trust = await client.request<{ rootPublicKey: string; mqttUrl: string }>('GET', '/api/v1/trust');
  const reported = (deviceId: string, deploymentId: string): DeploymentStatusT | null => {
    const deployment = hub.ctx.devices.get(deviceId)?.reported?.deployment;
    return deployment?.deploymentId === deploymentId ? deployment : null;
  };
  return {
    hub,
    trust: { rootPublicKey: trust.rootPublicKey, mqttUrl: trust.mqttUrl },
    enrollmentToken,
    async publish(id) {
      const published = await publishImage(client, imageDir(id));
      return `${published.name}@${published.version}`;
    },
    async deploy(model, deviceIds) {
      return (await client.request<{ id: string }>('POST', '/api/v1/deployments', { model, deviceIds })).id;
    },
    reported,
    ended(deviceId, deploymentId) {
      const deployment = reported(deviceId, deploymentId);
      return deployment && ENDED.has(deployment.phase) ? deployment : null;
    },
    close: () => hub.close(),
  };
}

/** One JSON line the agent logged (pino: `time` is the agent's Date.now() when it logged). */
export interface AgentLogLine {
  time: number;
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface AgentProcess {
  readonly pid: number;
  readonly deviceId: string;
  readonly logs: AgentLogLine[];
  /** The first log line `match` accepts (waiting for it). */
  waitForLog(what: string, match: (line: AgentLogLine) => boolean, timeoutMs?: number): Promise<AgentLogLine>;
  /** The local API's base URL, from the agent's "local API listening" line. */
  apiUrl(): Promise<string>;
  /** SIGTERM (a graceful stop), SIGKILL after 10 s. */
  stop(): Promise<void>;
}

export interface AgentProcessOptions {
  hub: BenchHub;
  deviceId: string;
  stateDir: string;
  /** The rest of agent.yaml (api, source, health, ...); defaults: local API on a free port, no source. */
  config?: Record<string, unknown>;
  /** Options for `node` itself, before the CLI, and extra environment (diagnostics only). */
  nodeOptions?: string[];
  env?: Record<string, string>;
}

/** Starts `cairn-agent run --config <stateDir>/agent.yaml` (JSON is YAML) and waits until the hub sees it online. */
export async function spawnAgent(options: AgentProcessOptions): Promise<AgentProcess> {
  const { hub, deviceId, stateDir } = options;
  mkdirSync(stateDir, { recursive: true });
  const configPath = join(stateDir, 'agent.yaml');
  const config = {
    deviceId,
    stateDir: join(stateDir, 'state'),
    mqttUrl: hub.trust.mqttUrl,
    rootPublicKey: hub.trust.rootPublicKey,
    api: { host: '127.0.0.1', port: 0 },
    source: { kind: 'none' },
    logLevel: 'info',
    enrollment: { hubUrl: hub.hub.httpUrl, token: hub.enrollmentToken },
    ...options.config,
  };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeOptions ?? []), AGENT_CLI, 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
  const logs: AgentLogLine[] = [];
  let stderr = '';
  let exit: string | null = null;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as AgentLogLine);
    } catch {
      /* not a log line */
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((done) => child.once('exit', (code, signal) => ((exit = `exit ${code ?? signal}`), done())));

  const waitForLog = (what: string, match: (line: AgentLogLine) => boolean, timeoutMs = 60_000): Promise<AgentLogLine> =>
    until(`the agent to log ${what}`, () => {
      if (exit) throw new Error(`the agent ended (${exit}): ${stderr.trim()}`);
      return logs.find(match) ?? null;
    }, timeoutMs);

  const agent: AgentProcess = {
    pid: child.pid!,
    deviceId,
    logs,
    waitForLog,
    async apiUrl() {
      const line = await waitForLog('its local API port', (l) => l.msg === 'local API listening');
      return `http://127.0.0.1:${String(line.port)}`;
    },
    async stop() {
      if (exit) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await until(`${deviceId} online at the hub`, () => {
      if (exit) throw new Error(`the agent ended (${exit}): ${stderr.trim()}`);
      return hub.hub.ctx.devices.get(deviceId)?.online === true;
    }, 60_000);
  } catch (err) {
    await agent.stop();
    throw err;
  }
  return agent;
}
