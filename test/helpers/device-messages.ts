/**
 * Valid device messages for tests that play a device over raw MQTT: a telemetry summary (with
 * an optional drift section), a reported state with a deployment status, a maintenance alert
 * event, and `publishAs` to send one on the device's own topic at QoS 1 (resolves on PUBACK).
 */
import type { MqttClient } from 'mqtt';
import { deviceTopic, type DeploymentStatusT, type DeviceEventT, type DriftSummaryT, type ReportedT, type TelemetryT } from '@cairn/shared';

export const INTERVAL_MS = 10_000;

export function telemetrySummary(seq: number, ts: number, drift?: DriftSummaryT['status']): TelemetryT {
  const psi = drift === 'alert' ? 0.42 : drift === 'warn' ? 0.16 : 0.03;
  return {
    seq,
    ts,
    intervalMs: INTERVAL_MS,
    inferences: 100,
    errors: 0,
    latencyMs: { p50: 2, p95: 4, p99: 5, max: 6 },
    rssMb: 80,
    cpuPct: 12,
    active: { name: 'pdm', version: '1.0.0', digest: 'a'.repeat(64), deploymentId: 'dep-1' },
    ...(drift ? { drift: { windowMs: 600_000, samples: 300, predictionPsi: 0.02, maxFeaturePsi: psi, maxFeature: 'rms', features: { rms: psi }, status: drift } } : {}),
  };
}

export function reportedState(ts: number, deployment: DeploymentStatusT | null): ReportedT {
  return {
    agentVersion: '0.1.0',
    ts,
    labels: {},
    hardware: { platform: 'linux', arch: 'x64', cpus: 2, memoryMb: 1024, node: 'v20' },
    active: { name: 'pdm', version: '1.0.0', digest: 'a'.repeat(64), deploymentId: 'dep-1' },
    deployment,
    lastDesiredSeq: deployment?.seq ?? 0,
    keyringVersion: 1,
  };
}

let eventCounter = 0;
export function maintenanceEvent(ts: number, machine: string, faultClass: string, confidence = 0.9): DeviceEventT {
  return {
    eventId: `maint-${process.pid}-${++eventCounter}`,
    ts,
    type: 'maintenance_alert',
    alert: {
      machine,
      faultClass,
      confidence,
      rule: `p(${faultClass}) >= 0.8 in 3 of the last 5 windows`,
      windows: [
        { ts: ts - 2000, probability: confidence },
        { ts: ts - 1000, probability: confidence },
        { ts, probability: confidence },
      ],
      model: { name: 'pdm', version: '1.0.0', digest: 'a'.repeat(64) },
    },
  };
}

export async function publishAs(client: MqttClient, deviceId: string, kind: 'telemetry' | 'reported' | 'events' | 'presence', payload: unknown): Promise<void> {
  await client.publishAsync(deviceTopic(deviceId, kind), JSON.stringify(payload), { qos: 1 });
}
