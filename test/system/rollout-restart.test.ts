/**
 * A rollout survives the hub: the hub process is killed (SIGKILL) in the middle of a staged
 * rollout, started again on the same data directory, and the rollout goes on from where it was
 * and completes. The fleet runs in this process (real agents, their own MQTT connections) and
 * reconnects to the new hub on its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { simulateFleet } from '@cairn/agent/sim/fleet.js';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import type { RolloutViewT } from '@cairn/hub/modules/rollouts/rollout-view.js';
import { CAIRN, IMAGES, freePort, kill9, spawnLogged } from '../helpers/processes.js';
import { waitFor } from '../helpers/wait.js';

const DEVICES = 8;
const run = promisify(execFile);

test('the hub is killed mid-rollout; after a restart the rollout resumes where it was and completes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-rollout-kill-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'hub');
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const hubUrl = `http://127.0.0.1:${httpPort}`;
  const startHub = async () => {
    const p = spawnLogged(t, [CAIRN, 'hub', '--data', dataDir, '--http', String(httpPort), '--mqtt', String(mqttPort), '--log-level', 'warn'], { CAIRN_ROLLOUTS_TICK_SECONDS: '1' });
    await waitFor('hub listening', () => /API http/.test(p.output()), { timeoutMs: 60_000 });
    return p;
  };
  let hub = await startHub();
  const api = new HubClient(hubUrl, readFileSync(join(dataDir, 'admin-token'), 'utf8').trim());
  const v1 = await publishImage(api, join(IMAGES, 'pdm-vibration-1.0.0-int8'));
  const v2 = await publishImage(api, join(IMAGES, 'pdm-vibration-1.1.0-int8'));
  // Four eyes: a second operator approves both versions.
  const password = (await api.request<{ password: string }>('POST', '/api/v1/users', { username: 'reviewer', role: 'operator' })).password;
  const reviewer = await HubClient.login(hubUrl, 'reviewer', password);
  for (const v of ['1.0.0', '1.1.0']) await reviewer.request('POST', `/api/v1/models/pdm-vibration/${v}/approve`);
  const { token } = await api.request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { expiresInHours: 1 });

  const fleet = await simulateFleet({
    hubUrl,
    enrollmentToken: token,
    devices: DEVICES,
    stateRoot: join(dir, 'fleet'),
    seed: 11,
    telemetryIntervalMs: 1000,
    sourceIntervalMs: 100,
    logger: pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' }),
    // These tests are about rollouts, not latency verdicts: on a loaded 2-core CI machine a
    // probe or trial request can wait tens of ms for the shared worker, so the latency checks
    // get generous budgets (the NaN image is caught by its outputs, not its speed).
    health: { probeLatencyMs: 10_000, trial: { durationMs: 500, minInferences: 3, latencyFloorMs: 100 } },
    tuning: { reconnect: { baseMs: 200, capMs: 1000 } },
  });
  t.after(() => fleet.stop());
  const on = (digest: string) => fleet.agents.filter((a) => a.status.active?.digest === digest && a.status.deployment?.phase === 'committed').length;
  await api.request('POST', '/api/v1/deployments', { model: 'pdm-vibration@1.0.0', selector: 'site' });
  await waitFor('1.0.0 everywhere', () => on(v1.digest) === DEVICES, { timeoutMs: 120_000 });

  // Through the CLI: stage 1 (2 devices) bakes for 10 s, and the hub dies during the bake.
  const cli = async (...args: string[]) => (await run(process.execPath, [CAIRN, ...args, '--hub', hubUrl, '--data', dataDir, '--json'])).stdout;
  const created = JSON.parse(await cli('rollout', 'create', '--model', 'pdm-vibration@1.1.0', '--selector', 'site', '--stages', '2,100%', '--bake', '10s')) as RolloutViewT;
  assert.deepEqual(created.stages.map((s) => [s.size, s.target, s.bakeMs]), [[2, 2, 10_000], ['100%', DEVICES, 0]]);
  const status = () => api.request<RolloutViewT>('GET', `/api/v1/rollouts/${created.id}`);
  await waitFor('stage 1 baking', async () => (await status()).current.healthySince !== null, { timeoutMs: 120_000 }).catch(async (err) => {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(await status())} ${JSON.stringify(await api.request('GET', `/api/v1/rollouts/${created.id}/devices`))}`);
  });
  const before = await status();
  assert.equal(before.stage, 0);
  assert.equal(before.devices.committed, 2);
  await kill9(hub);

  hub = await startHub();
  const after = await status();
  assert.equal(after.id, created.id);
  assert.equal(after.state, 'running');
  // Whether the bake has ended by now or not, it is the one that started before the crash.
  const baked = after.history.filter((h) => h.kind === 'stage_healthy' && (h.detail as { stage: number }).stage === 0);
  assert.deepEqual(baked.map((h) => h.ts), [before.current.healthySince], 'the bake started before the crash still counts');
  const done = await waitFor(
    'the rollout completes after the restart',
    async () => {
      const s = await status();
      assert.notEqual(s.state, 'paused', JSON.stringify(s.stopReason));
      return s.state === 'completed' && s;
    },
    { timeoutMs: 180_000 },
  );
  assert.equal(done.devices.committed, DEVICES);
  await waitFor('1.1.0 everywhere', () => on(v2.digest) === DEVICES, { timeoutMs: 60_000 });
  assert.equal(done.history.filter((h) => h.kind === 'started').length, 1, 'resumed, not restarted');
  // `status --watch --json` ends at once for a completed rollout, with exit status 0.
  const watched = (await cli('rollout', 'status', created.id, '--watch')).trim().split('\n');
  assert.equal((JSON.parse(watched.at(-1)!) as RolloutViewT).state, 'completed');
  const listed = JSON.parse(await cli('rollout', 'list')) as RolloutViewT[];
  assert.deepEqual(listed.map((r) => r.id), [created.id], 'direct deployments are not listed without --direct');
});
