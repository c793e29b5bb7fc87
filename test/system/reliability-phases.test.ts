/**
 * kill -9 of a real `cairn-agent` process in each phase before the trial (issue: agent safe
 * activation): downloading, verifying, probing. reliability.test.ts covers the trial and the
 * commit.
 *
 * These phases can be over in milliseconds, so the test does not race them: the first agent
 * runs under the V8 inspector, which pauses it on a line inside the phase (after the phase is
 * on disk), and the test kills it there — every time, with no test-only code in the agent.
 *
 * For each phase, the restarted agent:
 * - serves the committed model (re-verified) before anything else;
 * - says at the hub which phase the restart interrupted (its first event of the deployment);
 * - asks the hub only for the chunks its chunk record does not claim (none once all were in,
 *   none once the blob was verified);
 * - converges: the new model is committed and serves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { BLOB_CHUNK_BYTES, sha256Hex, type DeploymentPhaseT, type DeviceEventT, type SignedManifestT } from '@cairn/shared';
import { BlobStore } from '@cairn/agent/adapters/blob-store.js';
import { waitFor } from '../helpers/wait.js';
import { Inspector, type Breakpoint } from '../helpers/inspector.js';
import { CAIRN_AGENT, IMAGES, ROOT, kill9, logLines, spawnLogged, startSystem } from '../helpers/processes.js';

const { onnx } = onnxProto;
const DOWNLOADER = join(ROOT, 'agent/dist/components/downloader.js');
const RECONCILER = join(ROOT, 'agent/dist/components/reconciler.js');

/**
 * An image directory like pdm-vibration-1.1.0-int8, as `version`, its model padded by a metadata
 * entry to span about 100 blob chunks: the same graph, so its golden probes still hold.
 */
function paddedImage(dir: string, version: string): string {
  const source = join(IMAGES, 'pdm-vibration-1.1.0-int8');
  const model = onnx.ModelProto.decode(readFileSync(join(source, 'model.onnx')));
  const padding = `${version} `.padEnd(100 * BLOB_CHUNK_BYTES, 'x');
  model.metadataProps = [...(model.metadataProps ?? []), onnx.StringStringEntryProto.create({ key: 'cairn.test.padding', value: padding })];
  const bytes = onnx.ModelProto.encode(model).finish();
  const signed = JSON.parse(readFileSync(join(source, 'manifest.json'), 'utf8')) as SignedManifestT;
  signed.manifest.version = version;
  signed.manifest.files[0] = { ...signed.manifest.files[0]!, digest: sha256Hex(bytes), size: bytes.length };
  const out = join(dir, `pdm-vibration-${version}-padded`);
  mkdirSync(out);
  writeFileSync(join(out, 'model.onnx'), bytes);
  writeFileSync(join(out, 'manifest.json'), JSON.stringify(signed));
  return out;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

/** Where each phase is paused for the kill: a line that runs once the phase is persisted. */
const PHASES: Array<{ phase: DeploymentPhaseT; breakpoint: Breakpoint }> = [
  // Right after a chunk record is written, while chunks are still missing.
  { phase: 'downloading', breakpoint: { file: DOWNLOADER, at: "'download progress recorded'", condition: 'chunks.reduce((n, c) => n + c, 0) < job.total' } },
  // Every chunk is in and recorded, the digest not yet checked.
  { phase: 'verifying', breakpoint: { file: DOWNLOADER, at: 'let check = await blobs.check(partial, digest, size);' } },
  // The candidate is loaded beside the serving model, its golden probes not yet run.
  { phase: 'probing', breakpoint: { file: RECONCILER, at: 'const probes = await runGoldenProbes(session, policy);' } },
];

// One hub and one device for the three phases (a hub start costs more than a phase): each phase
// deploys a new version over the one the previous phase committed.
test('kill -9 during downloading, verifying and probing: the restarted agent serves the committed model, says what happened, fetches only what is missing and converges', async (t) => {
  const device = 'pump-9';
  const s = await startSystem(t, device);
  await s.hub();
  const committed = (deploymentId: string) => async () => (await s.api<{ devices: Array<{ state: string }> }>(`/api/v1/deployments/${deploymentId}`)).devices[0]?.state === 'committed';
  await s.cli('model', 'push', join(IMAGES, 'pdm-vibration-1.0.0-int8'));
  // Crash recovery is under test here, not latency: no millisecond comparison may roll a trial back.
  const config = s.agentConfig({ durationMs: 1000, minInferences: 5, latencyFloorMs: 1000 }, 'debug');
  // Every agent process runs under the inspector: the restarted one is the next phase's victim.
  const startAgent = () => spawnLogged(t, ['--inspect=127.0.0.1:0', CAIRN_AGENT, 'run', '--config', config]);
  let agent = startAgent();
  await waitFor(`${device} online`, async () => (await s.api<{ online: boolean }>(`/api/v1/devices/${device}`)).online, { timeoutMs: 60_000 });
  const v1 = await s.cli('deploy', '--model', 'pdm-vibration@1.0.0', '--device', device);
  await waitFor('1.0.0 committed', committed(v1.id), { timeoutMs: 60_000 });
  let serving = '1.0.0';

  for (const [i, { phase, breakpoint }] of PHASES.entries()) {
    await t.test(`kill -9 during ${phase}`, async () => {
      const version = `1.${i + 2}.0`;
      const next = (await s.cli('model', 'push', paddedImage(s.dir, version))) as { digest: string; size: number };
      const total = Math.ceil(next.size / BLOB_CHUNK_BYTES);
      const inspector = await Inspector.attach(agent.output);
      let paused = false;
      void (await inspector.pauseAt(breakpoint)).paused.then(() => (paused = true));
      const deployment = await s.cli('deploy', '--model', `pdm-vibration@${version}`, '--device', device);
      await waitFor(`the agent paused during ${phase}`, () => paused, { timeoutMs: 120_000 });
      await kill9(agent);
      inspector.close();

      // What the crash left on disk.
      const blobs = new BlobStore(s.agentStateDir);
      const state = JSON.parse(readFileSync(join(s.agentStateDir, 'state.json'), 'utf8')) as { deployment: { deploymentId: string; phase: string } };
      assert.deepEqual([state.deployment.deploymentId, state.deployment.phase], [deployment.id, phase], 'the crash interrupted this phase');
      const record = await blobs.readChunkRecord(next.digest, next.size, BLOB_CHUNK_BYTES);
      const kept = record.kind === 'ok' ? range(0, total).filter((c) => record.chunks[c] === 1) : [];
      let missing: number[];
      if (phase === 'probing') {
        assert.ok(await blobs.has(next.digest), 'the verified blob is in the store');
        missing = [];
      } else {
        if (phase === 'downloading') assert.ok(kept.length > 0 && kept.length < total, `${kept.length} of ${total} chunks recorded`);
        else assert.equal(kept.length, total, 'every chunk is recorded before verification');
        missing = range(0, total).filter((c) => !kept.includes(c));
      }

      agent = startAgent();
      const restored = await waitFor('the restarted agent serves a model', () => logLines(agent.output(), 'serving the persisted bundle')[0], { timeoutMs: 60_000 });
      assert.equal(restored.model, `pdm-vibration@${serving}`, 'the committed model serves after the crash');
      await waitFor(`${version} committed`, committed(deployment.id), { timeoutMs: 120_000 });
      await waitFor(`${version} serves`, async () => (await s.api<{ active?: { version: string } }>(`/api/v1/devices/${device}`)).active?.version === version, { timeoutMs: 60_000 });
      serving = version;

      const events = ((await s.cli('device', 'events', device, '--type', 'deployment', '--limit', '1000')).events as DeviceEventT[]).filter((e) => e.deploymentId === deployment.id);
      const told = `the agent restarted during ${phase}: resuming${phase === 'probing' ? ' (1 restart while loading this model; at 2 it is quarantined)' : ''}`;
      assert.ok(events.some((e) => e.phase === 'received' && e.message === told), `the hub learns which phase the restart interrupted: ${JSON.stringify(events.map((e) => [e.phase, e.message]))}`);
      if (phase !== 'probing') assert.ok(events.some((e) => e.phase === 'downloading' && e.message === `resuming: ${kept.length} of ${total} chunks are on disk from before`));
      assert.ok(!events.some((e) => e.phase === 'failed' || e.phase === 'rolled_back'));

      const requested = logLines(agent.output(), 'requesting chunks')
        .filter((line) => line.digest === next.digest)
        .flatMap((line) => range(line.from as number, (line.from as number) + (line.count as number)));
      assert.deepEqual([...new Set(requested)].sort((a, b) => a - b), missing, 'the restarted agent asks for the chunks not recorded, and only those');
    });
  }
});
