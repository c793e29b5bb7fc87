/**
 * Safe activation end to end (DESIGN §4) with the signed reference images of firmware-images/:
 * real broker, real onnxruntime workers, real vibration windows from the simulated source.
 *
 * - Each faulty image is stopped: by its golden probes (NaN, collapsed) or by its trial on
 *   live traffic (the slow one, and the NaN/collapsed models when their manifest carries no
 *   probes), with the exact reason code; the device keeps serving the previous model and no
 *   request fails.
 * - A failed digest is quarantined: the hub's re-signing (same deployment, new seq) does not
 *   retry it, a new deployment does.
 * - A restart during a trial serves the committed slot and reports `crashed_in_trial`.
 *
 * Thresholds come from the manifests (probes) and the agent's configured trial defaults; no
 * assertion is on time.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { sha256Hex, type DeviceEventT, type ManifestT, type SignedManifestT } from '@cairn/shared';
import { createAgent, type Agent, type AgentTuning } from '@cairn/agent/agent.js';
import { parseConfig, type AgentConfig } from '@cairn/agent/config.js';
import { BlobServer, HubProbe, startBroker } from '../helpers/blob-server.js';
import { createTrustFixture, signDesired, signManifest, type TrustFixture } from '../helpers/trust-fixtures.js';
import { waitFor } from '../helpers/wait.js';
import { cleanup } from '../helpers/cleanup.js';

const DEVICE = 'pump-3';
const IMAGES = resolve(import.meta.dirname, '../../../firmware-images');
const logger = pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' });
const FAST: AgentTuning = { reconnect: { baseMs: 50, capMs: 400 }, chunkTimeoutMs: 400, chunkRetries: 20 };

interface Image {
  bytes: Uint8Array;
  digest: string;
  manifest: ManifestT;
}

async function image(id: string, change?: (m: ManifestT) => ManifestT): Promise<Image> {
  const bytes = new Uint8Array(await readFile(join(IMAGES, id, 'model.onnx')));
  const signed = JSON.parse(await readFile(join(IMAGES, id, 'manifest.json'), 'utf8')) as SignedManifestT;
  const manifest = change ? change(signed.manifest) : signed.manifest;
  assert.equal(manifest.files[0]!.digest, sha256Hex(bytes));
  return { bytes, digest: sha256Hex(bytes), manifest };
}

/**
 * The disk of a running agent as a power loss would leave it, minus the atomic-write temp files
 * (they come and go while the copy runs; the state store deletes stale ones on start anyway).
 */
async function snapshot(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, filter: (source) => !/\.tmp$/.test(source) });
}

/** The manifest without golden probes: only the trial can catch what the model does. */
const withoutProbes = (m: ManifestT): ManifestT => ({ ...m, health: { schema: 'cairn.health/v1' } });

interface World {
  dir: string;
  trust: TrustFixture;
  probe: HubProbe;
  brokerUrl: string;
  blobs: Record<string, Uint8Array>;
  later: (fn: () => Promise<unknown>) => void;
}

async function world(t: TestContext, images: Image[]): Promise<World> {
  const later = cleanup(t);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-health-'));
  later(() => rm(dir, { recursive: true, force: true }));
  const broker = await startBroker();
  later(() => broker.close());
  const probe = await HubProbe.connect(broker.url);
  later(() => probe.close());
  const blobs = Object.fromEntries(images.map((i) => [i.digest, i.bytes]));
  const server = await BlobServer.start(broker.url, blobs);
  later(() => server.close());
  return { dir, trust: createTrustFixture(), probe, brokerUrl: broker.url, blobs, later };
}

function config(w: World, stateDir = join(w.dir, 'state'), trial: NonNullable<AgentConfig['health']['trial']> = {}): AgentConfig {
  return parseConfig({
    deviceId: DEVICE,
    stateDir,
    mqttUrl: w.brokerUrl,
    rootPublicKey: w.trust.rootPublicKey,
    labels: {},
    api: { host: '127.0.0.1', port: 0 },
    telemetryIntervalMs: 1000,
    // Real vibration windows of a pump with an outer-race defect, as fast as the model answers.
    source: { kind: 'simulated', intervalMs: 10, machine: 'pump-1800', fault: 'outer_race' },
    logLevel: 'silent',
    health: { trial: { durationMs: 1500, minInferences: 40, ...trial } },
  });
}

async function startAgent(w: World, cfg: AgentConfig): Promise<Agent> {
  const agent = createAgent(cfg, { logger, tuning: FAST });
  w.later(() => agent.stop());
  await agent.start();
  return agent;
}

async function deploy(w: World, seq: number, img: Image, deploymentId = `dep-${seq}`): Promise<void> {
  const bundle = signManifest(img.manifest, w.trust.release);
  await w.probe.publishDesired(DEVICE, signDesired(w.trust, { deviceId: DEVICE, seq, deploymentId, bundle }));
}

const ended = (agent: Agent, seq: number) => () => {
  const d = agent.status.deployment;
  return d?.seq === seq && ['committed', 'failed', 'rolled_back'].includes(d.phase) ? d : null;
};

function phases(events: DeviceEventT[], deploymentId: string): DeviceEventT[] {
  return events.filter((e) => e.type === 'deployment' && e.deploymentId === deploymentId);
}

/** An inference through the local API with a probe row of the manifest; returns the digest that answered. */
async function inferOnce(agent: Agent, input: number[]): Promise<{ status: number; digest?: string; data?: number[] }> {
  const res = await fetch(`http://127.0.0.1:${agent.status.api!.port}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: { features: { dims: [1, input.length], data: input } } }),
  });
  const body = (await res.json()) as { model?: { digest: string }; outputs?: Record<string, { data: number[] }> };
  return { status: res.status, ...(body.model ? { digest: body.model.digest } : {}), ...(body.outputs ? { data: Object.values(body.outputs)[0]!.data } : {}) };
}

const probeInput = (img: Image): number[] => (img.manifest.health as { probes: { input: number[] }[] }).probes[0]!.input;

/** A committed 1.0.0 int8 baseline that serves the simulated pump. */
async function baseline(t: TestContext, extra: Image[]): Promise<{ w: World; agent: Agent; good: Image }> {
  const good = await image('pdm-vibration-1.0.0-int8');
  const w = await world(t, [good, ...extra]);
  const agent = await startAgent(w, config(w));
  await waitFor('the first connection', () => agent.status.connected);
  await deploy(w, 1, good);
  const done = await waitFor('the baseline deployment to end', ended(agent, 1));
  assert.equal(done.phase, 'committed', JSON.stringify(done));
  return { w, agent, good };
}

test('golden probes stop the NaN and the collapsed images before they serve anything', async (t) => {
  const nan = await image('pdm-vibration-1.0.1-nan');
  const collapsed = await image('pdm-vibration-1.0.1-collapsed');
  const { w, agent, good } = await baseline(t, [nan, collapsed]);

  for (const [seq, img, reason] of [
    [2, nan, 'probe_non_finite'],
    [3, collapsed, 'probe_mismatch'],
  ] as const) {
    await deploy(w, seq, img);
    const done = await waitFor(`deployment ${seq} to end`, ended(agent, seq));
    assert.equal(done.phase, 'failed');
    assert.equal(done.reason, reason);
    const events = await waitFor('the failed event', () => {
      const e = phases(w.probe.events(DEVICE), `dep-${seq}`);
      return e.at(-1)?.phase === 'failed' ? e : null;
    });
    assert.deepEqual(
      events.map((e) => e.phase),
      ['received', 'downloading', 'verifying', 'probing', 'failed'],
      'a probe failure never reaches the trial',
    );
    assert.equal(events.at(-1)!.reason, reason);
    assert.equal(agent.status.active?.digest, good.digest, 'the previous model keeps serving');
    assert.equal((await inferOnce(agent, probeInput(good))).digest, good.digest);
  }
  assert.deepEqual(
    agent.status.quarantine.map((q) => q.reason),
    ['probe_non_finite', 'probe_mismatch'],
  );
  assert.equal(agent.status.inferences.errors, 0);
});

test('the slow image passes its probes and is rolled back by its trial, with no failed request', async (t) => {
  const slow = await image('pdm-vibration-1.0.1-slow');
  const { w, agent, good } = await baseline(t, [slow]);
  const errorsBefore = agent.status.inferences.errors;

  await deploy(w, 2, slow);
  await waitFor('the trial', () => agent.status.deployment?.phase === 'trial' || ended(agent, 2)());
  // Local API traffic while the candidate serves: every request must be answered.
  const answers: Array<{ status: number; digest?: string }> = [];
  while (!ended(agent, 2)()) answers.push(await inferOnce(agent, probeInput(good)));
  const done = ended(agent, 2)()!;
  assert.equal(done.phase, 'rolled_back', JSON.stringify(done));
  assert.equal(done.reason, 'trial_latency');
  assert.match(done.message ?? '', /× the previous model/);
  assert.ok(answers.length > 0 && answers.every((a) => a.status === 200), `every request during the trial is answered: ${JSON.stringify(answers.filter((a) => a.status !== 200))}`);
  assert.equal(agent.status.inferences.errors, errorsBefore, 'no inference failed');

  const events = await waitFor('the rolled_back event', () => {
    const e = phases(w.probe.events(DEVICE), 'dep-2');
    return e.at(-1)?.phase === 'rolled_back' ? e : null;
  });
  assert.deepEqual(
    events.map((e) => e.phase),
    ['received', 'downloading', 'verifying', 'probing', 'trial', 'rolled_back'],
  );
  assert.equal(agent.status.active?.digest, good.digest);
  assert.equal(agent.status.slots.trial, false);
  assert.equal((await inferOnce(agent, probeInput(good))).digest, good.digest, 'the previous model serves again');
  assert.deepEqual(
    (agent.status.slots.A === good.digest ? [agent.status.slots.A, agent.status.slots.B] : [agent.status.slots.B, agent.status.slots.A])[1],
    null,
    'the rolled-back slot is emptied',
  );
});

test('without probes, the trial catches NaN outputs and a collapsed model on live traffic', async (t) => {
  const nan = await image('pdm-vibration-1.0.1-nan', withoutProbes);
  const collapsed = await image('pdm-vibration-1.0.1-collapsed', withoutProbes);
  const { w, agent, good } = await baseline(t, [nan, collapsed]);

  for (const [seq, img, reason] of [
    [2, nan, 'trial_non_finite'],
    [3, collapsed, 'trial_collapsed'],
  ] as const) {
    await deploy(w, seq, img);
    const done = await waitFor(`deployment ${seq} to end`, ended(agent, seq));
    assert.equal(done.phase, 'rolled_back', JSON.stringify(done));
    assert.equal(done.reason, reason);
    assert.equal(agent.status.active?.digest, good.digest);
    const answer = await inferOnce(agent, probeInput(good));
    assert.equal(answer.digest, good.digest);
    assert.ok(answer.data!.every(Number.isFinite));
  }
  assert.equal(agent.status.inferences.errors, 0, 'NaN answers of the candidate were served by the standby instead');
});

test('a failed digest is not retried for a re-signed document of its deployment, only for a new deployment', async (t) => {
  const nan = await image('pdm-vibration-1.0.1-nan');
  const { w, agent } = await baseline(t, [nan]);
  await deploy(w, 2, nan, 'dep-nan');
  assert.equal((await waitFor('failure', ended(agent, 2))).reason, 'probe_non_finite');

  await deploy(w, 3, nan, 'dep-nan'); // what the hub's periodic re-signing sends
  await waitFor('the re-signed document is accepted', () => agent.status.lastDesiredSeq === 3 && agent.status.deployment?.seq === 3);
  assert.equal(agent.status.deployment?.phase, 'failed');
  // Converging would announce `received` again; a later deployment's events prove the order.
  await deploy(w, 4, nan, 'dep-nan-again');
  await waitFor('the new deployment fails on its own', () => ended(agent, 4)());
  const received = w.probe.events(DEVICE, 'deployment').filter((e) => e.phase === 'received');
  assert.deepEqual(
    received.map((e) => e.deploymentId),
    ['dep-1', 'dep-nan', 'dep-nan-again'],
    'the re-signed seq 3 did not start a new attempt',
  );
});

test('a restart during a trial serves the committed slot and reports crashed_in_trial', async (t) => {
  const next = await image('pdm-vibration-1.1.0-int8');
  const good = await image('pdm-vibration-1.0.0-int8');
  const w = await world(t, [good, next]);
  const first = createAgent(config(w, join(w.dir, 'state'), { durationMs: 600_000, minInferences: 40 }), { logger, tuning: FAST });
  w.later(() => first.stop());
  await first.start();
  await waitFor('the first connection', () => first.status.connected);
  await deploy(w, 1, good);
  await waitFor('a long trial of 1.0.0', () => first.status.deployment?.phase === 'trial');
  // Power loss in the middle of the first trial: the disk as it is now, with no model committed.
  const crashedEarly = join(w.dir, 'crashed-early');
  await snapshot(join(w.dir, 'state'), crashedEarly);
  await first.stop();

  const second = await startAgent(w, config(w, crashedEarly, { durationMs: 300, minInferences: 5 }));
  assert.equal(second.status.active, null, 'no model had been committed, so none serves');
  assert.equal(second.status.deployment?.phase, 'rolled_back');
  assert.equal(second.status.deployment?.reason, 'crashed_in_trial');
  await waitFor('the rollback event', () => w.probe.events(DEVICE).some((e) => e.reason === 'crashed_in_trial'));
  await second.stop();

  // Now with a committed model and the next one on trial.
  const dir = join(w.dir, 'state2');
  const third = createAgent(config(w, dir, { durationMs: 300, minInferences: 5 }), { logger, tuning: FAST });
  w.later(() => third.stop());
  await third.start();
  await deploy(w, 2, good, 'dep-good');
  await waitFor('1.0.0 committed', () => third.status.deployment?.seq === 2 && third.status.deployment.phase === 'committed');
  await third.stop();
  const fourth = createAgent(config(w, dir, { durationMs: 600_000, minInferences: 40 }), { logger, tuning: FAST });
  w.later(() => fourth.stop());
  await fourth.start();
  await deploy(w, 3, next, 'dep-next');
  await waitFor('1.1.0 on trial', () => fourth.status.deployment?.phase === 'trial' && fourth.status.active?.digest === next.digest);
  assert.equal(fourth.status.slots.trial, true);
  const crashed = join(w.dir, 'crashed');
  await snapshot(dir, crashed);
  await fourth.stop();

  const fifth = await startAgent(w, config(w, crashed));
  assert.equal(fifth.status.active?.digest, good.digest, 'the committed slot serves after the crash');
  assert.equal(fifth.status.deployment?.phase, 'rolled_back');
  assert.equal(fifth.status.deployment?.reason, 'crashed_in_trial');
  assert.deepEqual(
    fifth.status.quarantine.map((q) => [q.digest, q.reason]),
    [[next.digest, 'crashed_in_trial']],
  );
  await waitFor('connected', () => fifth.status.connected);
  // Neither the retained document (seq 3) nor a re-signed one (seq 4) retries the candidate.
  await deploy(w, 4, next, 'dep-next');
  // `deployment.seq` changes in memory before its state write is durable, and the convergence
  // ends only after that write: wait for both (a retry would have run to its end by then).
  await waitFor('the re-signed document is handled', () => fifth.status.deployment?.seq === 4 && !fifth.status.converging);
  assert.equal(phases(w.probe.events(DEVICE), 'dep-next').filter((e) => e.phase === 'received').length, 1, 'no update loop');
  assert.equal((await inferOnce(fifth, probeInput(good))).digest, good.digest);
});

test('superseding a first deployment during its trial keeps it serving, as the standby of the next trial', async (t) => {
  const good = await image('pdm-vibration-1.0.0-int8');
  const slow = await image('pdm-vibration-1.0.1-slow');
  const w = await world(t, [good, slow]);
  // Trials that never end by time: only a failure ends the second one.
  const agent = await startAgent(w, config(w, join(w.dir, 'state'), { durationMs: 600_000, minInferences: 20 }));
  await waitFor('the first connection', () => agent.status.connected);
  await deploy(w, 1, good);
  await waitFor('1.0.0 on trial', () => agent.status.deployment?.phase === 'trial');

  let unserved = 0;
  const watch = setInterval(() => void (agent.status.active === null && unserved++), 5);
  t.after(() => clearInterval(watch));
  await deploy(w, 2, slow);
  const done = await waitFor('deployment 2 to end', ended(agent, 2));
  clearInterval(watch);
  assert.equal(done.phase, 'rolled_back', JSON.stringify(done));
  assert.equal(done.reason, 'trial_latency', 'the superseded 1.0.0 was the baseline the slow model was judged against');
  assert.equal(unserved, 0, 'the device served a model throughout');
  assert.equal(agent.status.active?.digest, good.digest);
  assert.equal(agent.status.slots.committed, null, '1.0.0 serves uncommitted: it never finished its trial');
  assert.equal((await inferOnce(agent, probeInput(good))).digest, good.digest);
});
