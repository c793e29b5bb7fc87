/**
 * A model-quality gate with real agents: every install succeeds, yet the rollout pauses because
 * the model misbehaves on the cohort's machines.
 *
 * The cohort is six spindles (spindle-6000) with an imbalance. pdm-vibration 1.1.0 was trained on
 * all five machine types and calls it imbalance; 1.0.0 never saw a spindle and calls the same
 * vibration misalignment — with full confidence, finite outputs and the same speed, so its probes
 * and trials pass. The agents' drift monitors compare each model's predictions with the device's
 * baseline (learned under 1.1.0): the updated devices' prediction PSI jumps, the control devices'
 * (still on 1.1.0) stays near zero, and the `driftPsi` gate stops the stage.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Agent } from '@cairn/agent';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import type { RolloutViewT } from '@cairn/hub/modules/rollouts/rollout-view.js';
import { startTestHub } from '../helpers/hub.js';
import { startPinnedAgent } from '../helpers/agent.js';
import { IMAGES } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const SPINDLES = 6;

test('drift gate: an image that installs everywhere but misreads the cohort’s machines pauses its stage; the control group keeps serving', async (t) => {
  const hub = await startTestHub(t, { rollouts: { tickSeconds: 1 } });
  const api = new HubClient(hub.httpUrl, hub.token);
  const v100 = await publishImage(api, join(IMAGES, 'pdm-vibration-1.0.0-int8'));
  const v110 = await publishImage(api, join(IMAGES, 'pdm-vibration-1.1.0-int8'));
  await hub.approve('pdm-vibration@1.0.0');
  await hub.approve('pdm-vibration@1.1.0');

  const agents: Agent[] = [];
  for (let i = 0; i < SPINDLES; i++) {
    agents.push(
      await startPinnedAgent(t, hub, `spindle-${i}`, {
        config: {
          labels: { line: 'spindles' },
          api: false,
          telemetryIntervalMs: 400,
          source: { kind: 'simulated', intervalMs: 40, machine: 'spindle-6000', fault: 'imbalance', severity: 0.8 },
          drift: { baselineSamples: 40, minSamples: 20, windowMs: 60_000, buckets: 6 },
          health: { probeLatencyMs: 10_000, trial: { durationMs: 300, minInferences: 5, latencyFloorMs: 1000 } },
        },
      }),
    );
  }
  await waitFor('spindles online', () => hub.ctx.devices.list().filter((d) => d.online).length === SPINDLES, { timeoutMs: 60_000 });
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm-vibration@1.1.0', selector: 'line=spindles' })).status, 201);
  const on = (digest: string) => agents.filter((a) => a.status.active?.digest === digest && a.status.deployment?.phase === 'committed');
  await waitFor('1.1.0 committed on every spindle', () => on(v110.digest).length === SPINDLES, { timeoutMs: 120_000 });
  // Every device has learned its baseline under 1.1.0 and reports a prediction PSI.
  const latestDrift = (id: string) => hub.ctx.telemetry.range(id, 0, Number.MAX_SAFE_INTEGER, 1).at(-1)?.drift ?? null;
  await waitFor('baselines learned', () => agents.every((a) => typeof latestDrift(a.deviceId)?.predictionPsi === 'number'), { timeoutMs: 120_000 });

  const created = await hub.api<RolloutViewT>('POST', '/api/v1/rollouts', {
    model: 'pdm-vibration@1.0.0',
    selector: 'line=spindles',
    stages: [{ size: 3, bake: '10m', gates: { driftPsi: 0.25, minSamples: 2 } }, { size: '100%' }],
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const paused = await waitFor(
    'the drift gate pauses the stage',
    async () => {
      const s = (await hub.api<RolloutViewT>('GET', `/api/v1/rollouts/${id}`)).body;
      return s.state === 'paused' && s;
    },
    { timeoutMs: 120_000 },
  );
  const reason = paused.stopReason as { kind: string; cause: string; detail: { value: number; updated: number; control: number } };
  assert.equal(reason.kind, 'breach');
  assert.equal(reason.cause, 'driftPsi');
  assert.ok(reason.detail.updated > 1, `updated devices drift: ${JSON.stringify(reason.detail)}`);
  assert.ok(reason.detail.control < 0.25, `control devices do not: ${JSON.stringify(reason.detail)}`);
  // Every install succeeded: the gate, not the devices, stopped it.
  const rows = (await hub.api('GET', `/api/v1/rollouts/${id}/devices`)).body.devices as { deviceId: string; state: string }[];
  assert.equal(rows.length, 3);
  assert.ok(rows.every((d) => d.state === 'committed'), JSON.stringify(rows));
  assert.equal(on(v100.digest).length, 3);
  assert.equal(on(v110.digest).length, 3, 'the control group was never told to change');
  assert.equal((await hub.ctx.metrics.rolloutBreaches.get()).values.find((v) => v.labels.cause === 'driftPsi')?.value, 1);
});
