/**
 * Staged rollouts over a fleet of 50 real simulated agents (in-process, each with its own MQTT
 * connection to the hub's embedded broker, state directory and outbox; one shared onnxruntime
 * worker per model) with the reference images from firmware-images/:
 * the int8 1.1.0 image rolls through 1 % → 10 % → 50 % → 100 % and completes; the NaN image
 * trips the canary, the rollout pauses by itself, no device outside the canary is ever told to
 * run it, and the canary serves the previous version again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { simulateFleet } from '@cairn/agent/sim/fleet.js';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import type { RolloutViewT } from '@cairn/hub/modules/rollouts/rollout-view.js';
import { startTestHub } from '../helpers/hub.js';
import { IMAGES } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const DEVICES = 50;

test('50 agents: 1.1.0 rolls through 1 → 10 → 50 → 100 % and completes; the NaN image stops itself at the canary', async (t) => {
  const hub = await startTestHub(t, { rollouts: { tickSeconds: 1 } });
  const api = new HubClient(hub.httpUrl, hub.token);
  const published = new Map<string, string>();
  for (const image of ['pdm-vibration-1.0.0-int8', 'pdm-vibration-1.1.0-int8', 'pdm-vibration-1.0.1-nan']) {
    const m = await publishImage(api, join(IMAGES, image));
    published.set(m.version, m.digest);
  }
  await hub.approve('pdm-vibration@1.0.0');
  await hub.approve('pdm-vibration@1.1.0');

  const stateRoot = mkdtempSync(join(tmpdir(), 'cairn-rollout-fleet-'));
  t.after(() => rmSync(stateRoot, { recursive: true, force: true }));
  const runtime = createWorkerRuntime({ shareByDigest: true });
  t.after(() => runtime.close());
  const fleet = await simulateFleet({
    hubUrl: hub.httpUrl,
    enrollmentToken: hub.enrollment.token,
    devices: DEVICES,
    stateRoot,
    seed: 7,
    runtime,
    telemetryIntervalMs: 1000,
    sourceIntervalMs: 100,
    batchSize: 25,
    logger: pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' }),
    // These tests are about rollouts, not latency verdicts: on a loaded 2-core CI machine a
    // probe or trial request can wait tens of ms for the shared worker, so the latency checks
    // get generous budgets (the NaN image is caught by its outputs, not its speed).
    health: { probeLatencyMs: 10_000, trial: { durationMs: 500, minInferences: 3, latencyFloorMs: 100 } },
  });
  t.after(() => fleet.stop());
  await waitFor('every agent online', () => hub.ctx.devices.list().filter((d) => d.online).length === DEVICES, { timeoutMs: 120_000 });
  const onVersion = (version: string) => fleet.agents.filter((a) => a.status.active?.digest === published.get(version) && a.status.deployment?.phase === 'committed').length;

  // Every device starts on 1.0.0 (a direct deployment: a one-stage rollout).
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm-vibration@1.0.0', selector: 'site' })).status, 201);
  await waitFor('1.0.0 committed everywhere', () => onVersion('1.0.0') === DEVICES, { timeoutMs: 180_000 }).catch((err) => {
    const phases = fleet.agents.map((a) => `${a.deviceId}:${a.status.deployment?.phase}:${a.status.deployment?.reason ?? ''}`);
    throw new Error(`${(err as Error).message}: ${phases.join(' ')}`);
  });

  // The staged rollout of 1.1.0, watched through the bus: each batch of devices told to change.
  const batches: { stage: number; count: number }[] = [];
  const created = await hub.api<RolloutViewT>('POST', '/api/v1/rollouts', { model: 'pdm-vibration@1.1.0', selector: 'site', stages: [{ size: '1%' }, { size: '10%' }, { size: '50%' }, { size: '100%' }] });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  assert.deepEqual(created.body.stages.map((s) => s.target), [1, 5, 25, 50]);
  const final = await waitFor(
    'the 1.1.0 rollout completes',
    async () => {
      const s = (await hub.api<RolloutViewT>('GET', `/api/v1/rollouts/${id}`)).body;
      assert.notEqual(s.state, 'paused', JSON.stringify(s.stopReason));
      return s.state === 'completed' && s;
    },
    { timeoutMs: 240_000 },
  );
  for (const h of (await hub.api<RolloutViewT>('GET', `/api/v1/rollouts/${id}`)).body.history) {
    if (h.kind === 'assigned') batches.push(h.detail as { stage: number; count: number });
  }
  // Stage by stage: the totals after each stage are the targets, and no stage started before
  // the previous one was healthy (assignments of stage k only after stage k-1's devices).
  const perStage = [0, 1, 2, 3].map((stage) => batches.filter((b) => b.stage === stage).reduce((n, b) => n + b.count, 0));
  assert.deepEqual(perStage, [1, 4, 20, 25]);
  // The last stage completes at its success threshold (95 %); the devices still converging
  // then commit too.
  assert.ok(final.devices.committed! >= 0.95 * DEVICES, JSON.stringify(final.devices));
  await waitFor('every device of the rollout committed', () => hub.ctx.rollouts.repo.devices(id).every((d) => d.state === 'committed'), { timeoutMs: 120_000 }).catch((err) => {
    const others = hub.ctx.rollouts.repo.devices(id).filter((d) => d.state !== 'committed');
    throw new Error(`${(err as Error).message}: ${JSON.stringify(others.map((d) => [d.deviceId, d.state, d.phase, d.reason]))}`);
  });
  await waitFor('1.1.0 serves everywhere', () => onVersion('1.1.0') === DEVICES, { timeoutMs: 60_000 });

  // The NaN image: the canary rolls back on its own, the rollout pauses without a human, and no
  // other device is ever sent the image.
  const sent: { deviceId: string; deploymentId: string }[] = [];
  hub.ctx.bus.on('desired.published', (e) => sent.push(e));
  const nan = await hub.api<RolloutViewT>('POST', '/api/v1/rollouts', { model: 'pdm-vibration@1.0.1-nan', selector: 'site', stages: [{ size: '1%' }, { size: '100%' }] });
  assert.equal(nan.status, 201, JSON.stringify(nan.body));
  const nanId = nan.body.id;
  const canary = hub.ctx.rollouts.repo.devices(nanId).map((d) => d.deviceId);
  assert.equal(canary.length, 1);
  const stopped = await waitFor(
    'the NaN rollout pauses itself',
    async () => {
      const s = (await hub.api<RolloutViewT>('GET', `/api/v1/rollouts/${nanId}`)).body;
      return s.state === 'paused' && s;
    },
    { timeoutMs: 120_000 },
  );
  assert.equal((stopped.stopReason as { cause: string }).cause, 'failure_threshold');
  const rows = (await hub.api('GET', `/api/v1/rollouts/${nanId}/devices`)).body.devices as { deviceId: string; state: string; reason: string }[];
  assert.deepEqual(rows.map((d) => [d.deviceId, d.state]), [[canary[0], 'failed']]);
  assert.match(rows[0]!.reason, /nan|non_finite|probe/i);
  const agent = fleet.agents.find((a) => a.deviceId === canary[0])!;
  assert.equal(agent.status.active?.digest, published.get('1.1.0'), 'the canary serves 1.1.0 again');
  // Ticks go on; still nobody else.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  assert.deepEqual([...new Set(sent.filter((e) => e.deploymentId === nanId).map((e) => e.deviceId))], canary, 'only the canary was ever told to run the NaN image');
  assert.equal(fleet.agents.filter((a) => a.status.active?.digest === published.get('1.0.1-nan')).length, 0);
});
