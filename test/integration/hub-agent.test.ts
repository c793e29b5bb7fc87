/**
 * The whole path with real parts: hub in-process, a real agent (mqtt.js, worker-thread
 * onnxruntime) in the same process. push → deploy → the agent serves inference on its local API
 * → telemetry visible through the hub's API.
 *
 * One suite, run against both brokers the hub supports: its embedded aedes broker on a TCP
 * socket, and a real Mosquitto (helpers/mosquitto.ts) configured only by the files `cairn broker
 * config --mosquitto` writes, which the hub joins as a client (`mqtt.broker`). Devices are
 * provisioned the way an external broker needs: enrolled, then admitted (the broker's files
 * regenerated and reloaded; nothing to do for the embedded broker), then started.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Agent } from '@cairn/agent';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { mlpForward } from '@cairn/hub/training/onnx-writer.js';
import { startTestHub, type TestBroker, type TestHub } from '../helpers/hub.js';
import { startPinnedAgent } from '../helpers/agent.js';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { publishImage } from '@cairn/hub/cli/image-dir.js';
import { resolve } from 'node:path';

const IMAGES = resolve(import.meta.dirname, '../../../firmware-images');
import { waitFor } from '../helpers/wait.js';

function startAgent(t: TestContext, hub: TestHub, deviceId: string, labels: Record<string, string>, stateDir?: string, machine: Record<string, unknown> = {}): Promise<Agent> {
  return startPinnedAgent(t, hub, deviceId, { ...(stateDir ? { stateDir } : {}), config: { labels, telemetryIntervalMs: 200, source: { kind: 'simulated', intervalMs: 20, ...machine } } });
}

for (const broker of ['embedded', 'mosquitto'] as const satisfies readonly TestBroker[]) {
  describe(`hub ↔ agent over the ${broker} broker`, () => {
    test('push → deploy → the agent serves the model → telemetry reaches the hub; a second deploy switches versions', async (t) => {
      const hub = await startTestHub(t, { broker });
      const v1 = buildDemoModel({ seed: 1 });
      const v2 = buildDemoModel({ seed: 2 });
      assert.equal((await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', v1.bytes)).status, 201);
      assert.equal((await hub.api('POST', '/api/v1/models?name=pdm&version=1.1.0', v2.bytes)).status, 201);

      const agent = await startAgent(t, hub, 'press-7', { site: 'plant-3', line: 'a' });
      const other = await startAgent(t, hub, 'press-8', { site: 'plant-4', line: 'a' });
      await waitFor('both devices registered and online', async () => (await hub.api('GET', '/api/v1/devices?online=true')).body.total === 2);

      const deployed = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', selector: 'site=plant-3' });
      assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
      assert.deepEqual(deployed.body.devices.map((d: { id: string }) => d.id), ['press-7']);

      await waitFor('press-7 reports 1.0.0 committed', async () => {
        const d = (await hub.api('GET', '/api/v1/devices/press-7')).body;
        return d.active?.version === '1.0.0' && d.deployment?.phase === 'committed';
      });
      assert.equal(other.status.active, null, 'a device outside the selector is untouched');

      // The local API answers with exactly what the TypeScript forward pass of the pushed model gives.
      const input = Array.from({ length: 16 }, (_, i) => Math.sin(i) * 2);
      const port = agent.status.api!.port;
      const infer = async () => {
        const response = await fetch(`http://127.0.0.1:${port}/v1/infer`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ inputs: { features: { dims: [1, 16], data: input } } }),
        });
        assert.equal(response.status, 200);
        return (await response.json()) as { outputs: { probabilities: { data: number[] } }; model: { version: string } };
      };
      const first = await infer();
      assert.equal(first.model.version, '1.0.0');
      const expected1 = mlpForward(v1.spec, Float32Array.from(input), 1);
      first.outputs.probabilities.data.forEach((p, i) => assert.ok(Math.abs(p - expected1[i]!) < 1e-5));

      const points = await waitFor('telemetry with inferences at the hub', async () => {
        const r = await hub.api('GET', '/api/v1/devices/press-7/telemetry');
        const withModel = r.body.points.filter((p: { inferences: number; active: unknown }) => p.inferences > 0 && p.active);
        return withModel.length >= 2 ? r.body.points : null;
      });
      const seqs = points.map((p: { seq: number }) => p.seq);
      assert.deepEqual(seqs, [...seqs].sort((a: number, b: number) => a - b), 'seq increases');
      assert.ok(points.some((p: { latencyMs: { p95: number } | null }) => p.latencyMs && p.latencyMs.p95 >= 0));

      const events = (await hub.api('GET', '/api/v1/devices/press-7/events')).body.events as { phase?: string }[];
      const phases = events.map((e) => e.phase).filter(Boolean).reverse();
      assert.deepEqual(phases.slice(0, 6), ['received', 'downloading', 'verifying', 'probing', 'trial', 'committed']);

      await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.1.0', deviceIds: ['press-7'] });
      await waitFor('press-7 switched to 1.1.0', async () => (await infer()).model.version === '1.1.0');
      const second = await infer();
      const expected2 = mlpForward(v2.spec, Float32Array.from(input), 1);
      second.outputs.probabilities.data.forEach((p, i) => assert.ok(Math.abs(p - expected2[i]!) < 1e-5));
      const status = (await hub.api('GET', `/api/v1/deployments/${deployed.body.id}`)).body;
      assert.equal(status.devices[0].state, 'superseded');
    });

    test('after a hub restart the retained desired document is re-published and the agent keeps its model without re-downloading', async (t) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'cairn-hub-restart-'));
      t.after(() => rmSync(dataDir, { recursive: true, force: true }));
      const first = await startTestHub(t, { keepDataDir: dataDir, broker });
      await first.api('POST', '/api/v1/models?name=pdm&version=1.0.0', buildDemoModel({ seed: 3 }).bytes);
      const stateDir = mkdtempSync(join(tmpdir(), 'cairn-agent-'));
      t.after(() => rmSync(stateDir, { recursive: true, force: true }));
      const agent = await startAgent(t, first, 'mill-1', { site: 's' }, stateDir);
      await waitFor('online', () => first.ctx.devices.get('mill-1')?.online);
      await first.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['mill-1'] });
      await waitFor('committed', () => agent.status.deployment?.phase === 'committed');
      const seq = agent.status.lastDesiredSeq;
      await first.close(); // the hub goes away while the device is connected: no offline message
      await agent.stop();

      const second = await startTestHub(t, { keepDataDir: dataDir, broker });
      assert.equal(second.ctx.devices.get('mill-1')?.online, false, 'no device counts as online before it reconnects');
      const again = await startAgent(t, second, 'mill-1', { site: 's' }, stateDir);
      assert.equal(again.status.active?.version, '1.0.0', 'serves the persisted model before it connects');
      await waitFor('online again', () => second.ctx.devices.get('mill-1')?.online);
      await waitFor('reported again', () => second.ctx.devices.get('mill-1')?.reported?.active?.version === '1.0.0');
      assert.equal(again.status.lastDesiredSeq, seq, 'the re-published document is the same one');
      assert.deepEqual(again.status.rejected, {}, 'nothing was refused');
      assert.equal((await second.api('GET', '/metrics')).body.match(/cairn_hub_blob_chunks_served_total (\d+)/)?.[1], '0', 'no blob was downloaded again');
    });

    test('with the reference vibration model, simulated machines are diagnosed: an imbalanced pump as imbalance, a healthy fan as healthy', async (t) => {
      const hub = await startTestHub(t, { broker });
      const client = new HubClient(hub.httpUrl, hub.token);
      await publishImage(client, join(IMAGES, 'pdm-vibration-1.0.0-int8'));
      const faulty = await startAgent(t, hub, 'pump-3', { site: 'p' }, undefined, { machine: 'pump-1800', fault: 'imbalance', severity: 0.8 });
      const healthy = await startAgent(t, hub, 'fan-9', { site: 'p' }, undefined, { machine: 'fan-1200' });
      await waitFor('both online', () => hub.ctx.devices.list().filter((d) => d.online).length === 2);
      await hub.approve('pdm-vibration@1.0.0');
      assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm-vibration@1.0.0', selector: 'site=p' })).status, 201);
      await waitFor('40 windows each', () => faulty.status.source!.machine!.windows >= 40 && healthy.status.source!.machine!.windows >= 40, { timeoutMs: 60_000 });
      for (const [agent, truth] of [[faulty, 'imbalance'], [healthy, 'healthy']] as const) {
        const stats = agent.status.source!.machine!;
        assert.equal(stats.lastTruth, truth);
        assert.ok(stats.matches / stats.windows >= 0.9, `${agent.deviceId}: ${stats.matches}/${stats.windows} windows diagnosed as ${truth} (last: ${stats.lastPredicted})`);
      }
    });
  });
}
