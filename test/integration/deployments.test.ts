/**
 * Deployments under concurrency and hostile device reports: the broker's retained desired
 * document is always the newest one the hub signed, and no device report can break signing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MqttClient } from 'mqtt';
import { deviceTopic, type ReportedT, type SignedDesiredT } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { connectDevice, startTestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';

async function retainedDesired(client: MqttClient, id: string): Promise<SignedDesiredT> {
  const topic = deviceTopic(id, 'desired');
  const message = new Promise<Buffer>((resolve) => client.on('message', (t, payload) => t === topic && resolve(payload)));
  await client.subscribeAsync(topic, { qos: 1 });
  return JSON.parse((await message).toString()) as SignedDesiredT;
}

test('concurrent deployments leave every device with the newest signed document retained', async (t) => {
  const hub = await startTestHub(t);
  await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', buildDemoModel({ seed: 1 }).bytes);
  await hub.api('POST', '/api/v1/models?name=pdm&version=2.0.0', buildDemoModel({ seed: 2 }).bytes);
  await hub.approve('pdm@1.0.0');
  await hub.approve('pdm@2.0.0');
  const ids = Array.from({ length: 60 }, (_, i) => `cell-${String(i).padStart(2, '0')}`);
  const clients = await Promise.all(ids.map((id) => connectDevice(t, hub, id)));
  await waitFor('all registered', () => hub.ctx.devices.list().length === ids.length);

  const [a, b] = await Promise.all([
    hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ids }),
    hub.api('POST', '/api/v1/deployments', { model: 'pdm@2.0.0', deviceIds: [...ids].reverse() }),
  ]);
  assert.equal(a.status, 201);
  assert.equal(b.status, 201);

  for (const [i, id] of ids.entries()) {
    const retained = await retainedDesired(clients[i]!, id);
    const stored = hub.ctx.deployments.desiredFor(id)!;
    assert.equal(retained.document.seq, stored.seq, id);
    assert.equal(retained.document.seq, 2, `${id} got both documents`);
    assert.equal(retained.document.bundle?.manifest.files[0]?.digest, stored.digest, id);
  }
});

test('a device reporting an absurd last seq cannot break deployments or re-signing', async (t) => {
  const hub = await startTestHub(t);
  await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', buildDemoModel({ seed: 1 }).bytes);
  await hub.approve('pdm@1.0.0');
  const client = await connectDevice(t, hub, 'liar-1');
  await connectDevice(t, hub, 'honest-1');
  const reported: ReportedT = {
    agentVersion: '0.1.0',
    ts: Date.now(),
    labels: { site: 'x' },
    hardware: { platform: 'linux', arch: 'x64', cpus: 2, memoryMb: 1024, node: 'v20' },
    active: null,
    deployment: null,
    lastDesiredSeq: Number.MAX_SAFE_INTEGER,
    keyringVersion: 1,
  };
  await client.publishAsync(deviceTopic('liar-1', 'reported'), JSON.stringify(reported), { qos: 1 });
  await waitFor('reported stored', () => hub.ctx.devices.get('liar-1')?.reported !== null);

  const first = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['liar-1', 'honest-1'] });
  assert.equal(first.status, 201, JSON.stringify(first.body));
  const adopted = hub.ctx.deployments.desiredFor('liar-1')!.seq;
  assert.equal(adopted, 2 ** 48 + 1, 'the reported seq is adopted only up to the clamp');
  const second = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['liar-1', 'honest-1'] });
  assert.equal(second.status, 201);
  // Once the hub has issued a document, its own record decides the next seq.
  assert.equal(hub.ctx.deployments.desiredFor('liar-1')!.seq, adopted + 1);
  assert.equal(hub.ctx.deployments.desiredFor('honest-1')!.seq, 2);
});
