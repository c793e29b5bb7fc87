/**
 * Drift on the device end to end: a real hub (embedded broker, SQLite), the signed reference
 * image `pdm-vibration-1.0.0-int8` deployed through the hub, real agents running it in
 * worker-thread onnxruntime on windows of their simulated machines, and the drift section of the
 * telemetry as the hub stored it (`GET /api/v1/devices/:id/telemetry`).
 *
 * Simulated time is compressed (`simulatedStepMs`: one simulated second per window), so the
 * scenarios' minutes pass in a few hundred windows whatever the machine's load; every
 * assertion waits for a count of windows or a stored outcome, never for a duration.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import type { DriftSummaryT, TelemetryT } from '@cairn/shared';
import { createAgent, parseConfig, type Agent } from '@cairn/agent';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';

const IMAGE = resolve(import.meta.dirname, '../../../firmware-images/pdm-vibration-1.0.0-int8');
/**
 * Windows of the device baseline (one simulated second each), and when the drifting machines
 * start to drift. PSI of a few hundred rows carries sampling noise of a few hundredths per
 * feature (more where the baseline misses a rare bin and the epsilon floor weighs in), so the
 * baseline and the window hold hundreds of rows, as they do with the defaults (600, 10 min).
 */
const BASELINE = 600;
const ONSET_MS = 700_000;

async function startDevice(t: TestContext, hub: TestHub, deviceId: string, machine: Record<string, unknown>, withApi = false): Promise<Agent> {
  const stateDir = mkdtempSync(join(tmpdir(), 'cairn-drift-agent-'));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const trust = (await (await fetch(`${hub.httpUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  const agent = createAgent(
    parseConfig({
      deviceId,
      stateDir,
      mqttUrl: trust.mqttUrl,
      rootPublicKey: trust.rootPublicKey,
      labels: { site: 'drift' },
      api: withApi ? { host: '127.0.0.1', port: 0 } : false,
      telemetryIntervalMs: 250,
      source: { kind: 'simulated', intervalMs: 20, simulatedStepMs: 1000, ...machine },
      health: { trial: { durationMs: 300, minInferences: 5 } },
      // A real-time window short enough that drifted rows soon fill it, long enough for hundreds of rows.
      drift: { windowMs: 30_000, buckets: 10, minSamples: 30, baselineSamples: BASELINE },
      enrollment: hub.enrollment,
    }),
    { logger: pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' }) },
  );
  await agent.start();
  t.after(() => agent.stop());
  return agent;
}

async function storedDrift(hub: TestHub, deviceId: string): Promise<DriftSummaryT[]> {
  const answer = await hub.api<{ points: TelemetryT[] }>('GET', `/api/v1/devices/${deviceId}/telemetry?limit=10000`);
  assert.equal(answer.status, 200);
  return answer.body.points.flatMap((p) => (p.drift ? [p.drift] : []));
}

test('a healthy machine of a trained type reports low PSI; a new shaft speed and a drifting sensor gain are reported as alert', async (t) => {
  const hub = await startTestHub(t);
  await publishImage(new HubClient(hub.httpUrl, hub.token), IMAGE);
  const healthy = await startDevice(t, hub, 'fan-1', { machine: 'fan-1200' }, true);
  const speed = await startDevice(t, hub, 'pump-2', { machine: 'pump-1800', scenario: 'shaft_speed_change', scenarioStartAfterMs: ONSET_MS });
  const gain = await startDevice(t, hub, 'motor-3', { machine: 'motor-3600', scenario: 'sensor_gain_drift', scenarioStartAfterMs: ONSET_MS });
  const devices = [healthy, speed, gain];
  await waitFor('three devices online', () => hub.ctx.devices.list().filter((d) => d.online).length === 3);
  await hub.approve('pdm-vibration@1.0.0');
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm-vibration@1.0.0', selector: 'site=drift' })).status, 201);

  // The drifting machines: alert, stored at the hub, once their windows are past the onset.
  for (const agent of [speed, gain]) {
    const stored = await waitFor(`${agent.deviceId}: an alert stored at the hub`, async () => {
      const drift = await storedDrift(hub, agent.deviceId);
      return drift.some((d) => d.status === 'alert') ? drift : null;
    }, { timeoutMs: 180_000 });
    const alert = stored.find((d) => d.status === 'alert')!;
    // Between the baseline (window 600) and the onset (window 700) the same machine was fine.
    assert.equal(stored.find((d) => d.maxFeaturePsi !== null)?.status, 'ok', `${agent.deviceId}: ${JSON.stringify(stored.slice(0, 20))}`);
    assert.ok(alert.samples >= 30 && alert.maxFeature !== null, JSON.stringify(alert));
    assert.ok(Math.max(alert.maxFeaturePsi!, alert.predictionPsi ?? 0) >= 0.25, JSON.stringify(alert));
  }

  // The healthy machine, over as many windows as the drifting ones needed: low PSI throughout.
  const windows = Math.max(speed.status.source!.machine!.windows, gain.status.source!.machine!.windows);
  await waitFor('the healthy machine ran as long', () => healthy.status.source!.machine!.windows >= windows, { timeoutMs: 180_000 });
  const reported = await waitFor('its telemetry of that time is stored', async () => {
    const withPsi = (await storedDrift(hub, healthy.deviceId)).filter((d) => d.maxFeaturePsi !== null);
    return withPsi.length >= 10 && withPsi[withPsi.length - 1]!.samples >= 300 ? withPsi : null;
  });
  for (const d of reported) {
    assert.equal(d.status, 'ok', JSON.stringify(d));
    assert.ok(d.maxFeaturePsi! < 0.1 && d.predictionPsi! < 0.1, JSON.stringify(d));
    assert.equal(Object.keys(d.features).length, 19, 'every vibration feature');
  }
  t.diagnostic(`healthy fan: ${reported.length} summaries with PSI, largest maxFeaturePsi ${Math.max(...reported.map((d) => d.maxFeaturePsi!))}`);
  // The same numbers for Prometheus, on the local API.
  const metrics = await (await fetch(`http://127.0.0.1:${healthy.status.api!.port}/metrics`)).text();
  for (const kind of ['prediction', 'max_feature']) {
    const value = Number(metrics.match(new RegExp(`^cairn_agent_drift_psi\\{kind="${kind}"\\} (\\S+)$`, 'm'))?.[1]);
    assert.ok(value >= 0 && value < 0.1, `${kind}: ${value}`);
  }
  for (const agent of devices) assert.deepEqual(agent.status.dropped, {}, `${agent.deviceId} dropped nothing`);
  const stats = healthy.status.source!.machine!;
  assert.ok(stats.matches / stats.windows >= 0.9, 'the model diagnoses the healthy fan as healthy (the baseline is of normal operation)');
});
