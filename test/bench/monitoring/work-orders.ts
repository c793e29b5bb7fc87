/**
 * Bearing faults → work orders (monitoring issue, evaluation): do simulated bearing faults produce
 * work orders for the right machines, and only for them?
 *
 * Machines in simulated time, each with the agent's own MaintenanceRules (default rule: p(fault)
 * ≥ 0.8 in 3 of the last 5 windows, 10-minute cooldown) over the int8 reference model
 * `pdm-vibration-1.0.0` in the agent's worker-thread onnxruntime:
 * - FAULTY: a bearing fault (outer or inner race) develops from severity 0 to 1 over
 *   PROGRESSION_MS, starting ONSET_MS after the start; the fault is "present" (the simulator's
 *   truth) from severity 0.25;
 * - HEALTHY: machines that stay healthy.
 * One window every WINDOW_EVERY_MS of simulated time (the rule counts windows, not seconds).
 *
 * Every maintenance alert a machine raises is then published, as its agent would, on its own
 * `events` topic by an enrolled device connected over MQTT to a real hub (embedded broker,
 * SQLite), and the hub's work orders are read back through `GET /api/v1/work-orders`. Measured:
 * which machines got a work order, for which fault class, and the simulated minutes from the
 * fault becoming present to the first alert.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { createWorkerRuntime } from '@cairn/agent';
import { DEFAULT_MAINTENANCE_RULE, MaintenanceRules } from '@cairn/agent/components/maintenance-rules.js';
import type { ServedBundle } from '@cairn/agent/components/active-model.js';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { createDeviceSignal, deviceTopic, extractFeatures, FAULT_TRUTH_SEVERITY, FEATURE_COUNT, signEnrollClaim, type MaintenanceAlertT } from '@cairn/shared';
import { imageManifest, imageModelPath } from '../lib/paths.js';
import { startBenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const IMAGE = 'pdm-vibration-1.0.0-int8';
const MINUTE = 60_000;
const ONSET_MS = 10 * MINUTE;
const PROGRESSION_MS = 2 * 60 * MINUTE;
const END_MS = ONSET_MS + PROGRESSION_MS;
const WINDOW_EVERY_MS = 5000;
/** Windows inferred per onnxruntime call (then judged one by one, in order). */
const BATCH = 12;

type BearingFault = 'outer_race' | 'inner_race';
interface MachineSpec {
  deviceId: string;
  machine: 'pump-1800' | 'fan-1200' | 'motor-3600';
  fault: BearingFault | null;
  seed: number;
}

const FAULTY: MachineSpec[] = [
  { deviceId: 'wo-pump-a', machine: 'pump-1800', fault: 'outer_race', seed: 501 },
  { deviceId: 'wo-pump-b', machine: 'pump-1800', fault: 'inner_race', seed: 502 },
  { deviceId: 'wo-fan-a', machine: 'fan-1200', fault: 'outer_race', seed: 503 },
  { deviceId: 'wo-fan-b', machine: 'fan-1200', fault: 'inner_race', seed: 504 },
  { deviceId: 'wo-motor-a', machine: 'motor-3600', fault: 'outer_race', seed: 505 },
  { deviceId: 'wo-motor-b', machine: 'motor-3600', fault: 'inner_race', seed: 506 },
];
const HEALTHY: MachineSpec[] = (['pump-1800', 'fan-1200', 'motor-3600'] as const).flatMap((machine, m) =>
  [0, 1, 2].map((k) => ({ deviceId: `wo-${machine.split('-')[0]}-healthy-${k}`, machine, fault: null, seed: 600 + m * 10 + k })),
);

interface MachineResult {
  deviceId: string;
  machine: string;
  fault: BearingFault | null;
  /** Simulated minutes from the fault being present (severity 0.25) to the first alert (negative: before); null: no alert. */
  firstAlertAfterMin: number | null;
  /** Simulated minutes from the onset (severity 0) to the first alert; null: no alert. */
  firstAlertAfterOnsetMin: number | null;
  alerts: number;
  /** Fault classes of the hub's work orders for this device. */
  workOrders: string[];
}

interface Result {
  machines: MachineResult[];
}

/** Runs one machine over END_MS; returns its alerts with simulated timestamps. */
async function simulateMachine(spec: MachineSpec, infer: (rows: Float32Array, count: number) => Promise<Float32Array>, served: ServedBundle): Promise<{ alerts: MaintenanceAlertT[]; presentAt: number | null }> {
  const signal = createDeviceSignal({ machine: spec.machine, seed: spec.seed, startMs: 0, ...(spec.fault ? { scenario: { kind: 'fault_progression', fault: spec.fault, startAfterMs: ONSET_MS, durationMs: PROGRESSION_MS } } : {}) });
  const alerts: MaintenanceAlertT[] = [];
  const rules = new MaintenanceRules(spec.deviceId, DEFAULT_MAINTENANCE_RULE, (alert) => alerts.push(alert));
  let presentAt: number | null = null;
  for (let start = 0; start < END_MS; start += BATCH * WINDOW_EVERY_MS) {
    const rows = new Float32Array(BATCH * FEATURE_COUNT);
    const times: number[] = [];
    for (let i = 0; i < BATCH; i++) {
      const t = start + i * WINDOW_EVERY_MS;
      const window = signal.windowAt(t);
      if (presentAt === null && window.truth !== 'healthy') presentAt = t;
      rows.set(extractFeatures(window.samples, { sampleRateHz: signal.sampleRateHz, temperatureC: window.temperatureC }), i * FEATURE_COUNT);
      times.push(t);
    }
    const scores = await infer(rows, BATCH);
    const classes = scores.length / BATCH;
    times.forEach((t, i) => rules.observe(t, { scores: { dims: [1, classes], data: scores.subarray(i * classes, (i + 1) * classes) } }, served));
  }
  return { alerts, presentAt };
}

async function run(workDir: string): Promise<Result> {
  const runtime = createWorkerRuntime({ intraOpNumThreads: 1 });
  const { manifest } = imageManifest(IMAGE);
  const digest = manifest.files[0]!.digest;
  const session = await runtime.load(digest, imageModelPath(IMAGE));
  const served: ServedBundle = { manifest, digest, deploymentId: 'eval' };
  const input = manifest.inputs[0]!.name;
  const infer = async (rows: Float32Array, count: number) => Object.values((await session.infer({ [input]: { dims: [count, FEATURE_COUNT], data: rows } })).outputs)[0]!.data;

  const simulated: Array<{ spec: MachineSpec; alerts: MaintenanceAlertT[]; presentAt: number | null }> = [];
  try {
    for (const spec of [...FAULTY, ...HEALTHY]) {
      const { alerts, presentAt } = await simulateMachine(spec, infer, served);
      simulated.push({ spec, alerts, presentAt });
      process.stderr.write(`  ${spec.deviceId}: ${alerts.length} maintenance alerts (${[...new Set(alerts.map((a) => a.faultClass))].join(', ') || 'none'})\n`);
    }
  } finally {
    await session.close();
    await runtime.close();
  }

  // The alerts reach a real hub as each agent would send them: an `events` message on the device's own topic.
  const bench = await startBenchHub(join(workDir, 'hub'));
  try {
    const { hub } = bench;
    const client = new HubClient(hub.httpUrl, readFileSync(hub.adminToken.tokenFile, 'utf8').trim());
    const realStart = Date.now() - END_MS; // simulated time 0, so every event is in the past
    for (const { spec, alerts } of simulated) {
      const enrolled = await client.request<{ mqtt: { username: string; password: string } }>('POST', '/api/v1/enroll', signEnrollClaim(spec.deviceId, randomBytes(32), Date.now(), bench.enrollmentToken));
      const device = await mqtt.connectAsync(hub.mqttUrl, { clientId: spec.deviceId, ...enrolled.mqtt, protocolVersion: 4, reconnectPeriod: 0 });
      try {
        for (const [i, alert] of alerts.entries()) {
          const shifted: MaintenanceAlertT = { ...alert, windows: alert.windows.map((w) => ({ ...w, ts: realStart + w.ts })) };
          const ts = shifted.windows.at(-1)?.ts ?? realStart;
          const event = { eventId: `${spec.deviceId}-alert-${i}`, ts, type: 'maintenance_alert', message: `${alert.machine}: ${alert.faultClass}`, alert: shifted };
          await device.publishAsync(deviceTopic(spec.deviceId, 'events'), JSON.stringify(event), { qos: 1 });
        }
      } finally {
        await device.endAsync();
      }
    }
    const workOrders = (await client.request<{ workOrders: Array<{ deviceId: string; faultClass: string }> }>('GET', '/api/v1/work-orders?limit=1000')).workOrders;
    return {
      machines: simulated.map(({ spec, alerts, presentAt }) => ({
        deviceId: spec.deviceId,
        machine: spec.machine,
        fault: spec.fault,
        firstAlertAfterMin: alerts.length > 0 && presentAt !== null ? ((alerts[0]!.windows.at(-1)?.ts ?? 0) - presentAt) / MINUTE : null,
        firstAlertAfterOnsetMin: alerts.length > 0 && spec.fault ? ((alerts[0]!.windows.at(-1)?.ts ?? 0) - ONSET_MS) / MINUTE : null,
        alerts: alerts.length,
        workOrders: workOrders.filter((w) => w.deviceId === spec.deviceId).map((w) => w.faultClass),
      })),
    };
  } finally {
    await bench.close();
  }
}

export const workOrders: Benchmark<Result> = {
  name: 'workorders',
  run,
  report({ machines }) {
    const faulty = machines.filter((m) => m.fault !== null);
    const healthy = machines.filter((m) => m.fault === null);
    const right = faulty.filter((m) => m.workOrders.length > 0 && m.workOrders.every((c) => c === m.fault));
    const falseOrders = healthy.reduce((n, m) => n + m.workOrders.length, 0);
    return {
      targets: [
        {
          what: `simulated bearing faults produce work orders for the right machines (${faulty.length} faulty, ${healthy.length} healthy machines, ${PROGRESSION_MS / 3_600_000} simulated h progression)`,
          measured: `${right.length} of ${faulty.length} faulty machines got work orders, all for their own fault class; ${falseOrders} work orders for healthy machines`,
          target: `all ${faulty.length}, none for healthy machines`,
          met: right.length === faulty.length && falseOrders === 0,
        },
      ],
      details: [
        `Work orders from simulated bearing faults (\`test/bench/monitoring/work-orders.ts\`): the agent's MaintenanceRules (default rule) over \`${IMAGE}\`, one window per ${WINDOW_EVERY_MS / 1000} simulated seconds, the fault growing from severity 0 to 1 over ${PROGRESSION_MS / 60_000} min from minute ${ONSET_MS / 60_000}, present from severity ${FAULT_TRUTH_SEVERITY}; alerts published over MQTT to a real hub, work orders read from its API.`,
        table(
          ['device', 'machine', 'simulated fault', 'first alert after onset (simulated min)', 'first alert vs. fault present (simulated min; negative: earlier)', 'maintenance alerts (10-min cooldown)', 'work orders (fault class)'],
          machines.map((m) => [m.deviceId, m.machine, m.fault ?? 'healthy', m.firstAlertAfterOnsetMin === null ? '—' : m.firstAlertAfterOnsetMin.toFixed(1), m.firstAlertAfterMin === null ? '—' : m.firstAlertAfterMin.toFixed(1), String(m.alerts), m.workOrders.join(', ') || 'none']),
        ),
      ].join('\n\n'),
    };
  },
};
