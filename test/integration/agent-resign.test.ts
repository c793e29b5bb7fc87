/**
 * A re-signed desired document of the deployment a device is converging to (the hub's periodic
 * re-signing, or every live document re-signed with a new keyring) must not interrupt it: the
 * trial goes on and commits, and the device then answers to the newer seq.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { startTestHub } from '../helpers/hub.js';
import { startPinnedAgent } from '../helpers/agent.js';
import { waitFor } from '../helpers/wait.js';

test('a keyring rotation during a trial re-signs the document; the trial goes on and commits under the new seq', async (t) => {
  const hub = await startTestHub(t);
  for (const [seed, version] of [[1, '1.0.0'], [2, '2.0.0']] as const) {
    assert.equal((await hub.api('POST', `/api/v1/models?name=pdm&version=${version}`, buildDemoModel({ seed }).bytes)).status, 201);
    await hub.approve(`pdm@${version}`);
  }
  const agent = await startPinnedAgent(t, hub, 'press-7', { config: { health: { trial: { durationMs: 4000, minInferences: 5, latencyFloorMs: 1000 } } } });
  await waitFor('online', () => hub.ctx.devices.get('press-7')?.online === true);
  const v1 = (await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['press-7'] })).body.id as string;
  await waitFor('1.0.0 committed', () => agent.status.deployment?.deploymentId === v1 && agent.status.deployment.phase === 'committed', { timeoutMs: 60_000 });

  const v2 = (await hub.api('POST', '/api/v1/deployments', { model: 'pdm@2.0.0', deviceIds: ['press-7'] })).body.id as string;
  await waitFor('2.0.0 on trial', () => agent.status.deployment?.deploymentId === v2 && agent.status.deployment.phase === 'trial', { timeoutMs: 60_000 });
  const before = hub.ctx.deployments.desiredFor('press-7')!.seq;
  assert.equal((await hub.api('POST', '/api/v1/keys/changes', { rotate: 'director' })).status, 200);
  await waitFor('the re-signed document is accepted', () => agent.status.lastDesiredSeq > before, { timeoutMs: 30_000 });

  await waitFor('2.0.0 committed under the new seq', () => agent.status.deployment?.phase === 'committed' && agent.status.deployment.seq === hub.ctx.deployments.desiredFor('press-7')!.seq, { timeoutMs: 60_000 });
  assert.equal(agent.status.deployment?.deploymentId, v2);
  const events = await waitFor('the events of 2.0.0 stored', () => {
    const stored = hub.ctx.devices.events('press-7', 200).filter((e) => e.deploymentId === v2 && e.type === 'deployment');
    return stored.some((e) => e.phase === 'committed') && stored;
  });
  const phases = events.map((e) => e.phase);
  assert.ok(!phases.includes('rolled_back') && !phases.includes('failed'), JSON.stringify(phases));
  // One convergence: probed once, one trial (a restarted convergence would verify, probe and try again).
  assert.equal(phases.filter((p) => p === 'probing').length, 1, JSON.stringify(phases));
  assert.equal(phases.filter((p) => p === 'trial').length, 1, JSON.stringify(phases));
});
