/**
 * The fleet simulator: N real agents in one process (demos and load tests). Each has its own
 * device id (`sim-0001`, ...), state directory and MQTT connection, a simulated source and no
 * local API. They share ONE model runtime with `shareByDigest`, so a model the whole fleet runs
 * is loaded once. Labels are assigned deterministically from the seed. Agents start in small
 * batches, each batch waiting (briefly) for its connections, so a large fleet does not stampede
 * the broker.
 */
import { join } from 'node:path';
import pino, { type Logger } from 'pino';
import { Type } from 'typebox';
import { Compile, PublicKeyB64, describeErrors, MACHINE_TYPE_NAMES, type LabelsT } from '@cairn/shared';
import { createAgent, type Agent, type AgentTuning } from '../agent.js';
import { parseConfig, type AgentConfig, type SourceConfig } from '../config.js';

type SimulatedMachineConfig = Omit<Extract<SourceConfig, { kind: 'simulated' }>, 'kind' | 'intervalMs' | 'seed'>;
import { createWorkerRuntime } from '../components/runtime/worker-runtime.js';
import type { ModelRuntime } from '../components/runtime/types.js';
import { mulberry32 } from '@cairn/shared';
import { AgentError } from '../errors.js';

export interface FleetOptions {
  /** The hub's HTTP base URL; `GET {hubUrl}/api/v1/trust` gives the root key and the broker URL. */
  hubUrl: string;
  devices: number;
  /** Parent of the per-device state directories (`<stateRoot>/sim-0001`, ...). */
  stateRoot: string;
  seed?: number;
  /** Overrides the broker URL the hub advertises. */
  mqttUrl?: string;
  telemetryIntervalMs?: number;
  /** Simulated source interval per agent; default 1000 ms. */
  sourceIntervalMs?: number;
  logger?: Logger;
  /** Agents started together; default 20. */
  batchSize?: number;
  /** Shared runtime; by default one is created (shareByDigest) and closed with the fleet. */
  runtime?: ModelRuntime;
  tuning?: AgentTuning;
  /** Health-policy defaults of every simulated agent (the `health` setting of agent.yaml). */
  health?: AgentConfig['health'];
  /** Drift-monitoring settings of every simulated agent (the `drift` setting of agent.yaml). */
  drift?: AgentConfig['drift'];
  /** When drifting machines start to drift, after their agent's start; default DRIFT_ONSET_MS. */
  driftOnsetMs?: number;
  /**
   * Enrollment token (`cairn device enroll-token`) for devices without credentials in their
   * state directory. Without one, devices connect without credentials (a Cairn hub refuses
   * them; a bare test broker does not).
   */
  enrollmentToken?: string;
}

export interface Fleet {
  agents: Agent[];
  stop(): Promise<void>;
}

const TrustResponse = Type.Object({ rootPublicKey: PublicKeyB64, mqttUrl: Type.String({ pattern: '^mqtts?://' }) });
const trustValidator = Compile(TrustResponse);

const SITES = ['plant-1', 'plant-2'];
const LINES = ['a', 'b', 'c'];
const HARDWARE = ['rpi4', 'jetson', 'x86'];
/** How long a batch may take to connect before the next one starts anyway. */
const BATCH_CONNECT_WAIT_MS = 5000;

export function simDeviceId(index: number): string {
  return `sim-${String(index + 1).padStart(4, '0')}`;
}

/** Deterministic labels for the fleet: the same seed gives every device the same labels. */
export function simLabels(count: number, seed: number): LabelsT[] {
  const random = mulberry32(seed);
  const pick = (values: string[]): string => values[Math.floor(random() * values.length)]!;
  return Array.from({ length: count }, () => ({ site: pick(SITES), line: pick(LINES), hw: pick(HARDWARE) }));
}

/** When a drifting machine starts to drift, after its agent's start (after a default 600-window baseline at one window a second). */
export const DRIFT_ONSET_MS = 15 * 60_000;

/**
 * Deterministic machines for the fleet: a machine type per device; about one device in five
 * runs with a fault (imbalance, misalignment, outer or inner race), one in ten develops an
 * outer-race fault over hours, and one in ten drifts (sensor gain, shaft speed, temperature)
 * from `driftOnsetMs` on (which must fall after the agents' drift baselines are complete).
 * The same seed gives every device the same machine.
 */
export function simMachines(count: number, seed: number, driftOnsetMs = DRIFT_ONSET_MS): SimulatedMachineConfig[] {
  const random = mulberry32(seed ^ 0x5eed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const FAULTS = ['imbalance', 'misalignment', 'outer_race', 'inner_race'] as const;
  const DRIFTS = ['sensor_gain_drift', 'shaft_speed_change', 'temperature_offset'] as const;
  return Array.from({ length: count }, () => {
    const machine = pick(MACHINE_TYPE_NAMES);
    const roll = random();
    if (roll < 0.2) return { machine, fault: pick(FAULTS), severity: 0.5 + random() * 0.5 };
    if (roll < 0.3) return { machine, scenario: 'fault_progression' as const };
    if (roll < 0.4) return { machine, scenario: pick(DRIFTS), scenarioStartAfterMs: driftOnsetMs };
    return { machine };
  });
}

export async function fetchTrust(hubUrl: string): Promise<{ rootPublicKey: string; mqttUrl: string }> {
  const url = new URL('/api/v1/trust', hubUrl).toString();
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
    throw new AgentError('CAIRN_AGENT_HUB_UNREACHABLE', `cannot reach the hub at ${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (!response.ok) throw new AgentError('CAIRN_AGENT_HUB_TRUST', `GET ${url} answered ${response.status}`);
  const body: unknown = await response.json().catch(() => undefined);
  if (!trustValidator.Check(body)) throw new AgentError('CAIRN_AGENT_HUB_TRUST', `GET ${url} returned an unexpected body: ${describeErrors(trustValidator, body)}`);
  return { rootPublicKey: body.rootPublicKey, mqttUrl: body.mqttUrl };
}

export async function simulateFleet(options: FleetOptions): Promise<Fleet> {
  if (!Number.isInteger(options.devices) || options.devices < 1) throw new AgentError('CAIRN_AGENT_SIM', `devices must be a positive integer, got ${options.devices}`);
  const logger = options.logger ?? pino({ level: 'info' });
  const seed = options.seed ?? 1;
  const trust = await fetchTrust(options.hubUrl);
  const mqttUrl = options.mqttUrl ?? trust.mqttUrl;
  const ownsRuntime = options.runtime === undefined;
  const runtime = options.runtime ?? createWorkerRuntime({ shareByDigest: true, intraOpNumThreads: 1 });
  const labels = simLabels(options.devices, seed);
  const machines = simMachines(options.devices, seed, options.driftOnsetMs);

  const agents = labels.map((deviceLabels, i) => {
    const deviceId = simDeviceId(i);
    const config = parseConfig({
      deviceId,
      stateDir: join(options.stateRoot, deviceId),
      mqttUrl,
      rootPublicKey: trust.rootPublicKey,
      labels: deviceLabels,
      api: false,
      telemetryIntervalMs: options.telemetryIntervalMs ?? 10_000,
      source: { kind: 'simulated', intervalMs: options.sourceIntervalMs ?? 1000, seed: (seed * 7919 + i) >>> 0, ...machines[i] },
      logLevel: logger.level as 'info',
      health: options.health ?? {},
      ...(options.drift ? { drift: options.drift } : {}),
      ...(options.enrollmentToken ? { enrollment: { hubUrl: options.hubUrl, token: options.enrollmentToken } } : {}),
    });
    return createAgent(config, { runtime, logger, ...(options.tuning ? { tuning: options.tuning } : {}) });
  });

  const started: Agent[] = [];
  const stop = async (): Promise<void> => {
    await Promise.allSettled(started.map((a) => a.stop()));
    if (ownsRuntime) await runtime.close();
  };
  try {
    const batchSize = Math.max(1, options.batchSize ?? 20);
    for (let i = 0; i < agents.length; i += batchSize) {
      const batch = agents.slice(i, i + batchSize);
      for (const agent of batch) {
        await agent.start();
        started.push(agent);
      }
      // A batch also waits for its enrollments, so that a large fleet does not stampede the hub's scrypt either.
      await waitFor(() => batch.every((a) => a.status.connected), BATCH_CONNECT_WAIT_MS);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  logger.info({ devices: agents.length, mqttUrl, seed }, 'simulated fleet started');
  return { agents, stop };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (condition()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return condition();
}
