/**
 * The agent end to end against a real aedes broker on loopback, with real mqtt.js, real
 * onnxruntime workers and real files: download → verify → serve, downloads resumed across
 * reconnects, restarts and crashes (and restarted from zero when what is kept is unusable), every
 * rejection with its exact reason while the previous model keeps serving, malformed input,
 * restarts from persisted state, telemetry seq continuity. No timing assertions: every wait is
 * for a condition, with a generous deadline.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { BLOB_CHUNK_BYTES, deviceTopic, sha256Hex, type DeviceEventT } from '@cairn/shared';
import { createAgent, type Agent, type AgentTuning } from '@cairn/agent/agent.js';
import { parseConfig, type AgentConfig } from '@cairn/agent/config.js';
import { simulateFleet, simLabels } from '@cairn/agent/sim/fleet.js';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import { BlobStore } from '@cairn/agent/adapters/blob-store.js';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { writeMlpOnnx } from '@cairn/hub/training/onnx-writer.js';
import { BlobServer, HubProbe, startBroker, type BlobServerOptions, type TestBroker } from '../helpers/blob-server.js';
import { createTrustFixture, desiredFor, makeManifest, randomKey, signDesired, signManifest, HOUR_MS, type TrustFixture } from '../helpers/trust-fixtures.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { cleanup } from '../helpers/cleanup.js';

const DEVICE = 'edge-1';
const logger = pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' });
/** Fast reconnects and chunk timeouts so that fault tests finish quickly; correctness does not depend on them. */
const FAST: AgentTuning = { reconnect: { baseMs: 50, capMs: 400 }, chunkTimeoutMs: 400, chunkRetries: 20 };
/** No chunk timeout: only a reconnect or a restart makes the agent ask for a chunk again. */
const NO_CHUNK_TIMEOUT: AgentTuning = { ...FAST, chunkTimeoutMs: 600_000 };

interface Model {
  bytes: Uint8Array;
  digest: string;
}

function model(seed: number, paddingBytes = 0): Model {
  const demo = buildDemoModel({ seed });
  // Metadata padding keeps the model valid ONNX while making it span many blob chunks.
  const bytes = paddingBytes > 0 ? writeMlpOnnx({ ...demo.spec, metadata: { ...demo.spec.metadata, 'cairn.test.padding': 'x'.repeat(paddingBytes) } }) : demo.bytes;
  return { bytes, digest: sha256Hex(bytes) };
}

interface World {
  dir: string;
  trust: TrustFixture;
  broker: TestBroker;
  probe: HubProbe;
  later: (fn: () => Promise<unknown>) => void;
}

async function world(t: TestContext): Promise<World> {
  const later = cleanup(t);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-agent-it-'));
  later(() => rm(dir, { recursive: true, force: true }));
  const broker = await startBroker();
  later(() => broker.close());
  const probe = await HubProbe.connect(broker.url);
  later(() => probe.close());
  return { dir, trust: createTrustFixture(), broker, probe, later };
}

async function blobServer(w: World, url: string, blobs: Record<string, Uint8Array>, options?: BlobServerOptions): Promise<BlobServer> {
  const server = await BlobServer.start(url, blobs, options);
  w.later(() => server.close());
  return server;
}

function config(w: World, overrides: Partial<AgentConfig> = {}): AgentConfig {
  return parseConfig({
    deviceId: DEVICE,
    stateDir: join(w.dir, 'state'),
    mqttUrl: w.broker.url,
    rootPublicKey: w.trust.rootPublicKey,
    labels: { site: 'plant-1' },
    api: { host: '127.0.0.1', port: 0 },
    telemetryIntervalMs: 200,
    source: { kind: 'none' },
    logLevel: 'silent',
    // No traffic here: a trial commits once its short maximum passes.
    health: { trial: { durationMs: 100, minInferences: 1, maxDurationMs: 300 } },
    ...overrides,
  });
}

async function startAgent(w: World, cfg: AgentConfig, tuning: AgentTuning = FAST): Promise<Agent> {
  const agent = createAgent(cfg, { logger, tuning });
  w.later(() => agent.stop());
  await agent.start();
  return agent;
}

interface InferResponse {
  status: number;
  body: { outputs?: Record<string, { dims: number[]; data: number[] }>; model?: { name: string; version: string; digest: string }; latencyMs?: number; code?: string; message?: string };
}

async function post(agent: Agent, body: string): Promise<InferResponse> {
  const port = agent.status.api?.port;
  assert.ok(port, 'the local API is not listening');
  const res = await fetch(`http://127.0.0.1:${port}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, body: (await res.json()) as InferResponse['body'] };
}

function features(batch = 1): string {
  return JSON.stringify({ inputs: { features: { dims: [batch, 16], data: Array.from({ length: batch * 16 }, (_, i) => Math.sin(i)) } } });
}

/** Asserts that the agent answers an inference with the model of `digest`. */
async function assertServes(agent: Agent, digest: string): Promise<void> {
  const res = await post(agent, features());
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.model?.digest, digest);
  const probabilities = res.body.outputs?.probabilities;
  assert.deepEqual(probabilities?.dims, [1, 4]);
  assert.ok(Math.abs(probabilities!.data.reduce((a, b) => a + b, 0) - 1) < 1e-4, 'softmax outputs sum to 1');
}

const committed = (agent: Agent, seq: number) => (): boolean => agent.status.deployment?.seq === seq && agent.status.deployment.phase === 'committed';

function phases(events: DeviceEventT[], deploymentId: string): string[] {
  return events.filter((e) => e.type === 'deployment' && e.deploymentId === deploymentId).map((e) => e.phase!);
}

/** A world whose agent has connected and committed seq 1: model `seed` served from the blob server. */
async function agentServing(t: TestContext, seed: number) {
  const w = await world(t);
  const m = model(seed);
  await blobServer(w, w.broker.url, { [m.digest]: m.bytes });
  const cfg = config(w);
  const agent = await startAgent(w, cfg);
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, m.bytes));
  await waitFor('commit', committed(agent, 1));
  return { w, m, cfg, agent };
}

test('downloads, verifies and serves a model through POST /v1/infer, and reports it', async (t) => {
  const w = await world(t);
  const m = model(1);
  await blobServer(w, w.broker.url, { [m.digest]: m.bytes });
  const agent = await startAgent(w, config(w));
  await waitFor('the first connection', () => agent.status.connected);
  assert.equal(agent.status.active === null, true, 'nothing is served yet');

  const noModel = await post(agent, features());
  assert.equal(noModel.status, 503);
  assert.equal(noModel.body.code, 'no_model');

  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, m.bytes));
  await waitFor('commit of seq 1', committed(agent, 1));
  await assertServes(agent, m.digest);
  assert.equal(agent.status.active?.digest, m.digest);
  assert.equal((await stat(join(w.dir, 'state', 'blobs', 'sha256', m.digest))).size, m.bytes.byteLength, 'the verified blob is stored content-addressed');

  await waitFor('six deployment events', () => phases(w.probe.events(DEVICE), 'dep-1').length >= 6);
  assert.deepEqual(phases(w.probe.events(DEVICE), 'dep-1'), ['received', 'downloading', 'verifying', 'probing', 'trial', 'committed']);
  for (const e of w.probe.events(DEVICE, 'deployment')) assert.equal(e.digest, m.digest);

  const reported = await waitFor('a reported with the active bundle', () => w.probe.messages('reported', DEVICE).find((r) => r.active?.digest === m.digest && r.deployment?.phase === 'committed'));
  assert.deepEqual(reported.active, { name: 'demo', version: '1.0.0', digest: m.digest, deploymentId: 'dep-1' });
  assert.equal(reported.lastDesiredSeq, 1);
  assert.equal(reported.keyringVersion, 1);
  assert.deepEqual(reported.labels, { site: 'plant-1' });
  const births = w.probe.messages('presence', DEVICE).filter((p) => p.online);
  assert.ok(births.length >= 1 && births[0]!.online && births[0]!.epoch >= 1);

  const health = (await (await fetch(`http://127.0.0.1:${agent.status.api!.port}/healthz`)).json()) as { status: string; active: { digest: string } };
  assert.equal(health.status, 'ok');
  assert.equal(health.active.digest, m.digest);

  // Batched input, then requests the API must refuse with a code.
  const batch = await post(agent, features(3));
  assert.deepEqual(batch.body.outputs?.probabilities?.dims, [3, 4]);
  const wrongShape = await post(agent, JSON.stringify({ inputs: { features: { dims: [1, 15], data: new Array(15).fill(0) } } }));
  assert.equal(wrongShape.status, 400);
  assert.equal(wrongShape.body.code, 'bad_shape');
  const wrongCount = await post(agent, JSON.stringify({ inputs: { features: { dims: [1, 16], data: [1, 2] } } }));
  assert.equal(wrongCount.body.code, 'bad_shape');
  const unknownInput = await post(agent, JSON.stringify({ inputs: { features: { dims: [1, 16], data: new Array(16).fill(0) }, extra: { dims: [1], data: [0] } } }));
  assert.equal(unknownInput.body.code, 'bad_shape');
  const notJson = await post(agent, '{"inputs":');
  assert.equal(notJson.status, 400);
  assert.equal(notJson.body.code, 'bad_json');
  const tooLarge = await post(agent, JSON.stringify({ inputs: { features: { dims: [1, 16], data: new Array(16).fill(0) } }, pad: 'x'.repeat(1024 * 1024) }));
  assert.equal(tooLarge.status, 400);
  assert.equal(tooLarge.body.code, 'body_too_large');
  await assertServes(agent, m.digest);

  // Telemetry counts the API's inferences.
  const summary = await waitFor('telemetry with inferences', () => w.probe.messages('telemetry', DEVICE).find((s) => s.inferences > 0));
  assert.equal(summary.errors, 0);
  assert.ok(summary.latencyMs && summary.latencyMs.max >= summary.latencyMs.p50);
  assert.equal(summary.active?.digest, m.digest);
  assert.ok(summary.rssMb > 0);
});

test('a download resumes where it stopped after a broker restart', async (t) => {
  const w = await world(t);
  const big = model(2, 40 * BLOB_CHUNK_BYTES);
  const total = Math.ceil(big.bytes.byteLength / BLOB_CHUNK_BYTES);
  assert.ok(total > 32, 'the blob must need more than one request window');
  await blobServer(w, w.broker.url, { [big.digest]: big.bytes }, { stopAfterFrames: 10 });
  const agent = await startAgent(w, config(w), NO_CHUNK_TIMEOUT);
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, big.bytes));
  await waitFor('10 chunks written', () => agent.status.download?.received === 10);

  const port = w.broker.port;
  await w.broker.close();
  await waitFor('the agent to notice the broker is gone', () => !agent.status.connected);
  const broker2 = await startBroker(port);
  w.later(() => broker2.close());
  const server2 = await blobServer(w, broker2.url, { [big.digest]: big.bytes });

  await waitFor('commit after the restart', committed(agent, 1));
  await assertServes(agent, big.digest);
  assert.ok(server2.requests.length > 0);
  assert.equal(server2.requests[0]!.from, 10, 'the first request after the restart starts at the first missing chunk');
  for (const r of server2.requests) assert.ok(r.from >= 10, `chunk ${r.from} was requested again although it had been written`);
  assert.equal(server2.framesSent, total - 10);
});

/** Every chunk index the server was asked for, in request order (a chunk asked twice appears twice). */
function requestedChunks(server: BlobServer): number[] {
  return server.requests.flatMap((r) => Array.from({ length: r.count }, (_, i) => r.from + i));
}

/** The chunk indices the partial download's record claims, or why it is unusable. */
async function recordedChunks(stateDir: string, m: Model): Promise<number[] | string> {
  const record = await new BlobStore(stateDir).readChunkRecord(m.digest, m.bytes.byteLength, BLOB_CHUNK_BYTES);
  if (record.kind !== 'ok') return record.kind === 'none' ? 'no record' : record.why;
  return [...record.chunks.keys()].filter((i) => record.chunks[i] === 1);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

test('a download resumes across an agent restart, asking only for the chunks not on disk', async (t) => {
  const w = await world(t);
  const big = model(13, 40 * BLOB_CHUNK_BYTES);
  const total = Math.ceil(big.bytes.byteLength / BLOB_CHUNK_BYTES);
  const cfg = config(w);
  const first = await blobServer(w, w.broker.url, { [big.digest]: big.bytes }, { stopAfterFrames: 10 });
  const agent = await startAgent(w, cfg, NO_CHUNK_TIMEOUT);
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, big.bytes));
  await waitFor('10 chunks written', () => agent.status.download?.received === 10);
  await agent.stop();
  await first.close();
  assert.deepEqual(await recordedChunks(cfg.stateDir, big), range(0, 10), 'a stop records every chunk written');

  const second = await blobServer(w, w.broker.url, { [big.digest]: big.bytes });
  const restarted = await startAgent(w, cfg, NO_CHUNK_TIMEOUT);
  await waitFor('commit after the restart', committed(restarted, 1));
  await assertServes(restarted, big.digest);
  assert.deepEqual(requestedChunks(second), range(10, total), 'each missing chunk is asked for once, and no chunk on disk');
  assert.equal(second.framesSent, total - 10);
  const events = await waitFor('the committed event', () => {
    const e = w.probe.events(DEVICE, 'deployment').filter((x) => x.deploymentId === 'dep-1');
    return e.some((x) => x.phase === 'committed') ? e : null;
  });
  const afterRestart = events.slice(events.findLastIndex((e) => e.phase === 'received'));
  assert.match(afterRestart[0]?.message ?? '', /restarted during downloading: resuming/);
  assert.match(afterRestart.find((e) => e.phase === 'downloading')?.message ?? '', new RegExp(`resuming: 10 of ${total} chunks`));
  assert.deepEqual(await readdir(join(cfg.stateDir, 'blobs', 'partial')), [], 'no partial file or record is left');
});

test('after a crash, only the chunks written since the last checkpoint are fetched again', async (t) => {
  const w = await world(t);
  const big = model(14, 40 * BLOB_CHUNK_BYTES);
  const total = Math.ceil(big.bytes.byteLength / BLOB_CHUNK_BYTES);
  // A window's worth of chunks written (32) makes a checkpoint; 5 more chunks follow it.
  const first = await blobServer(w, w.broker.url, { [big.digest]: big.bytes }, { stopAfterFrames: 37 });
  const cfg = config(w);
  const agent = await startAgent(w, cfg, NO_CHUNK_TIMEOUT);
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, big.bytes));
  await waitFor('37 chunks written', () => agent.status.download?.received === 37);
  await waitFor('the checkpoint after 32 chunks', async () => (await recordedChunks(cfg.stateDir, big)).length === 32);
  assert.deepEqual(await recordedChunks(cfg.stateDir, big), range(0, 32));
  // The disk as a power loss leaves it now (the agent is idle: no write is in flight).
  const crashed = join(w.dir, 'crashed');
  await cp(cfg.stateDir, crashed, { recursive: true, filter: (source) => !/\.tmp$/.test(source) });
  await agent.stop();
  await first.close();

  const second = await blobServer(w, w.broker.url, { [big.digest]: big.bytes });
  const restarted = await startAgent(w, { ...cfg, stateDir: crashed }, NO_CHUNK_TIMEOUT);
  await waitFor('commit after the crash', committed(restarted, 1));
  await assertServes(restarted, big.digest);
  assert.deepEqual(requestedChunks(second), range(32, total), 'the 5 unrecorded chunks are fetched again, the 32 recorded ones are not');
});

test('an unusable chunk record restarts the download from zero; kept bytes that fail the digest are fetched again, not quarantined', async (t) => {
  const w = await world(t);
  const big = model(15, 12 * BLOB_CHUNK_BYTES);
  const total = Math.ceil(big.bytes.byteLength / BLOB_CHUNK_BYTES);
  const cfg = config(w);
  const recordPath = join(cfg.stateDir, 'blobs', 'partial', `${big.digest}.chunks`);
  /** Runs an agent against a server that sends 4 frames and stops it once they are written. */
  const partialRun = async (): Promise<BlobServer> => {
    const server = await blobServer(w, w.broker.url, { [big.digest]: big.bytes }, { stopAfterFrames: 4 });
    const agent = await startAgent(w, cfg, NO_CHUNK_TIMEOUT);
    if (agent.status.lastDesiredSeq < 1) {
      await waitFor('the first connection', () => agent.status.connected);
      await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, big.bytes));
    }
    await waitFor('4 chunks written', () => server.framesSent === 4 && agent.status.download?.received === 4);
    await agent.stop();
    await server.close();
    return server;
  };

  await partialRun();
  const good = await readFile(recordPath, 'utf8');
  assert.deepEqual(await recordedChunks(cfg.stateDir, big), range(0, 4));
  const garbled: Record<string, string> = {
    'not JSON': good.slice(0, good.length / 2),
    'another chunk size': good.replace(`"chunkBytes":${BLOB_CHUNK_BYTES}`, `"chunkBytes":${BLOB_CHUNK_BYTES / 2}`),
    'another blob size': good.replace(`"size":${big.bytes.byteLength}`, `"size":${big.bytes.byteLength + 1}`),
  };
  for (const [what, text] of Object.entries(garbled)) {
    await writeFile(recordPath, text);
    const server = await partialRun();
    assert.equal(server.requests[0]?.from, 0, `${what}: the download starts again from chunk 0`);
    assert.deepEqual(await recordedChunks(cfg.stateDir, big), range(0, 4), `${what}: the new record holds only this run's chunks`);
  }

  // The record is right but a kept chunk's bytes changed on disk: the blob fails its digest
  // check, so the kept bytes are dropped and the whole blob is fetched once more.
  const partial = join(cfg.stateDir, 'blobs', 'partial', big.digest);
  const bytes = await readFile(partial);
  bytes[2 * BLOB_CHUNK_BYTES + 100]! ^= 0xff;
  await writeFile(partial, bytes);
  const server = await blobServer(w, w.broker.url, { [big.digest]: big.bytes });
  const agent = await startAgent(w, cfg, NO_CHUNK_TIMEOUT);
  await waitFor('commit after the fresh download', committed(agent, 1));
  await assertServes(agent, big.digest);
  assert.deepEqual(requestedChunks(server), [...range(4, total), ...range(0, total)], 'the missing chunks, then the whole blob once');
  assert.deepEqual(agent.status.quarantine, []);
  const downloading = w.probe.events(DEVICE, 'deployment').filter((e) => e.phase === 'downloading').at(-1);
  assert.match(downloading?.message ?? '', /4 chunks kept from before did not verify/);
  assert.ok(!w.probe.events(DEVICE, 'deployment').some((e) => e.phase === 'failed'));
});

test('dropped frames are asked for again after a timeout', async (t) => {
  const w = await world(t);
  const m = model(3, 4 * BLOB_CHUNK_BYTES);
  const server = await blobServer(w, w.broker.url, { [m.digest]: m.bytes }, { drop: (index, attempt) => attempt <= 2 && (index === 1 || index === 3) });
  const agent = await startAgent(w, config(w));
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, m.bytes));
  await waitFor('commit', committed(agent, 1));
  await assertServes(agent, m.digest);
  assert.equal(server.requests[0]!.from, 0);
  assert.ok(server.requests.some((r) => r.from === 1 && r.count === 1), 'the missing chunk 1 is requested on its own');
  assert.ok(server.requests.some((r) => r.from === 3), 'the missing chunk 3 is requested again');
});

test('every refused document and blob is reported with its exact reason while the previous model keeps serving', async (t) => {
  const w = await world(t);
  const a = model(4);
  const b = model(5);
  const c = model(6);
  const server = await blobServer(w, w.broker.url, { [a.digest]: a.bytes });
  const agent = await startAgent(w, config(w));
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 5, a.bytes));
  await waitFor('commit of model A', committed(agent, 5));
  await assertServes(agent, a.digest);

  const rejections = (): DeviceEventT[] => w.probe.events(DEVICE, 'desired_rejected');
  const expectRejected = async (reason: string, publish: () => Promise<void>): Promise<void> => {
    const before = rejections().length;
    await publish();
    const event = await waitFor(`a desired_rejected event (${reason})`, () => rejections().at(before));
    assert.equal(event.reason, reason, event.message);
    assert.equal(agent.status.rejected[reason], 1);
    await assertServes(agent, a.digest);
  };

  await expectRejected('wrong_device', () => w.probe.publishDesired(DEVICE, desiredFor(w.trust, 'edge-2', 6, b.bytes)));
  await expectRejected('replayed_seq', () => w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 4, b.bytes)));
  await expectRejected('expired', () =>
    w.probe.publishDesired(DEVICE, signDesired(w.trust, { deviceId: DEVICE, seq: 7, issuedAt: Date.now() - 2 * HOUR_MS, expiresAt: Date.now() - HOUR_MS, bundle: signManifest(makeManifest(b.bytes), w.trust.release) })),
  );
  await expectRejected('unknown_key', () =>
    w.probe.publishDesired(DEVICE, signDesired(w.trust, { deviceId: DEVICE, seq: 8, signer: randomKey('director'), bundle: signManifest(makeManifest(b.bytes), w.trust.release) })),
  );
  await expectRejected('key_role', () => w.probe.publishDesired(DEVICE, signDesired(w.trust, { deviceId: DEVICE, seq: 9, bundle: signManifest(makeManifest(b.bytes), w.trust.director) })));
  const rejectedEvent = rejections().find((e) => e.reason === 'replayed_seq');
  assert.equal(rejectedEvent?.seq, 4);
  assert.equal(agent.status.lastDesiredSeq, 5, 'no refused document moved the accepted seq');

  // Malformed JSON on the desired topic: dropped, counted, nothing else changes.
  await w.probe.publishRaw(deviceTopic(DEVICE, 'desired'), '{"document": ', true);
  await waitFor('the malformed payload to be counted', () => agent.status.dropped['desired:not_json'] === 1);
  await assertServes(agent, a.digest);

  // A signed, accepted document whose blob bytes do not match the manifest digest.
  const corrupt = Buffer.from(b.bytes);
  corrupt[corrupt.length - 10]! ^= 0xff;
  server.set(b.digest, corrupt);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 10, b.bytes));
  await waitFor('deployment 10 to fail', () => agent.status.deployment?.seq === 10 && agent.status.deployment.phase === 'failed');
  assert.equal(agent.status.deployment?.reason, 'digest_mismatch');
  await waitFor('the failed event', () => w.probe.events(DEVICE, 'deployment').find((e) => e.seq === 10 && e.phase === 'failed'));
  assert.equal(w.probe.events(DEVICE, 'deployment').find((e) => e.seq === 10 && e.phase === 'failed')?.reason, 'digest_mismatch');
  await assertServes(agent, a.digest);
  assert.equal(agent.status.active?.digest, a.digest);

  // More bytes than the manifest says.
  server.set(c.digest, Buffer.concat([c.bytes, Buffer.alloc(100, 1)]));
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 11, c.bytes));
  await waitFor('deployment 11 to fail', () => agent.status.deployment?.seq === 11 && agent.status.deployment.phase === 'failed');
  assert.equal(agent.status.deployment?.reason, 'size_mismatch');
  await assertServes(agent, a.digest);

  // The hub's error frame becomes download_failed with the hub's message.
  const d = model(7);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 12, d.bytes));
  await waitFor('deployment 12 to fail', () => agent.status.deployment?.seq === 12 && agent.status.deployment.phase === 'failed');
  assert.equal(agent.status.deployment?.reason, 'download_failed');
  assert.match(agent.status.deployment?.message ?? '', /unknown blob/);
  await assertServes(agent, a.digest);

  const reported = await waitFor('reported shows the failure and the unchanged active bundle', () => w.probe.messages('reported', DEVICE).find((r) => r.deployment?.seq === 12 && r.deployment.phase === 'failed'));
  assert.equal(reported.active?.digest, a.digest);
  assert.equal(reported.lastDesiredSeq, 12);
  assert.equal(agent.status.inferences.errors, 0);
});

test('a newer desired document supersedes a download in progress', async (t) => {
  const w = await world(t);
  const big = model(8, 10 * BLOB_CHUNK_BYTES);
  const small = model(9);
  // Chunks from 3 on never come: the first deployment stalls mid-download.
  await blobServer(w, w.broker.url, { [big.digest]: big.bytes, [small.digest]: small.bytes }, { drop: (index) => index >= 3 });
  const agent = await startAgent(w, config(w), NO_CHUNK_TIMEOUT);
  await waitFor('the first connection', () => agent.status.connected);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 1, big.bytes));
  await waitFor('3 chunks of the big model', () => agent.status.download?.received === 3);
  await w.probe.publishDesired(DEVICE, desiredFor(w.trust, DEVICE, 2, small.bytes));
  await waitFor('commit of seq 2', committed(agent, 2));
  await assertServes(agent, small.digest);
  assert.equal(agent.status.download, null);
  assert.deepEqual(phases(w.probe.events(DEVICE), 'dep-1'), ['received', 'downloading'], 'the superseded deployment neither fails nor commits');

  // bundle: null unloads the model.
  await w.probe.publishDesired(DEVICE, signDesired(w.trust, { deviceId: DEVICE, seq: 3, bundle: null }));
  await waitFor('commit of seq 3', committed(agent, 3));
  assert.equal(agent.status.active === null, true);
  assert.equal((await post(agent, features())).status, 503);
});

test('a restart serves the persisted model before connecting, and telemetry seq never repeats', async (t) => {
  const { w, m, cfg, agent: first } = await agentServing(t, 10);
  await waitFor('two telemetry summaries', () => w.probe.messages('telemetry', DEVICE).length >= 2);
  const firstEpoch = w.probe.messages('presence', DEVICE).find((p) => p.online)!.epoch;
  await first.stop();
  const seenBefore = w.probe.messages('telemetry', DEVICE).map((s) => s.seq);
  assert.deepEqual(seenBefore, [...new Set(seenBefore)].sort((x, y) => x - y), 'seqs are unique and increasing');
  const offline = await waitFor('the offline presence of a graceful stop', () => w.probe.messages('presence', DEVICE).find((p) => !p.online));
  assert.equal(offline.epoch, firstEpoch);

  // No broker at all: the agent must still serve its persisted model as soon as start() resolves.
  const port = w.broker.port;
  await w.probe.close();
  await w.broker.close();
  const second = await startAgent(w, cfg);
  assert.equal(second.status.connected, false);
  assert.equal(second.status.active?.digest, m.digest);
  await assertServes(second, m.digest);
  await waitFor('a telemetry tick while offline', () => second.status.telemetrySent >= 1);
  const offlineNext = second.status.outbox.nextTelemetrySeq;
  await second.stop();
  const persisted = JSON.parse(await readFile(join(cfg.stateDir, 'state.json'), 'utf8')) as { epoch: number };

  const broker = await startBroker(port);
  w.later(() => broker.close());
  const probe = await HubProbe.connect(broker.url);
  w.later(() => probe.close());
  const third = await startAgent(w, cfg);
  await waitFor('a telemetry summary of the third run', () => probe.messages('telemetry', DEVICE).some((s) => s.seq >= offlineNext));
  const seqs = probe.messages('telemetry', DEVICE).map((s) => s.seq);
  // The summaries taken offline come first (the durable outbox), then the third run's; no seq
  // is reused and none is skipped.
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => Math.max(...seenBefore) + 1 + i),
  );
  assert.ok(seqs.filter((seq) => seq < offlineNext).length >= 1, 'the summaries taken while offline are delivered after the restart');
  const birth = await waitFor('a birth after the restarts', () => probe.messages('presence', DEVICE).find((p) => p.online));
  assert.ok(birth.epoch > firstEpoch && birth.epoch > persisted.epoch, 'every connection has a new epoch');
  await assertServes(third, m.digest);
});

test('the fleet simulator runs N agents in one process, loading each model once', async (t) => {
  const w = await world(t);
  const m = model(11);
  await blobServer(w, w.broker.url, { [m.digest]: m.bytes });
  const hub = http.createServer((req, res) => {
    if (req.url !== '/api/v1/trust') return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rootPublicKey: w.trust.rootPublicKey, mqttUrl: w.broker.url }));
  });
  await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', resolve));
  w.later(() => new Promise((resolve) => hub.close(resolve)));
  const runtime = createWorkerRuntime({ shareByDigest: true });
  w.later(() => runtime.close());

  const devices = 12;
  const fleet = await simulateFleet({
    hubUrl: `http://127.0.0.1:${(hub.address() as AddressInfo).port}`,
    devices,
    stateRoot: join(w.dir, 'fleet'),
    seed: 3,
    telemetryIntervalMs: 200,
    sourceIntervalMs: 50,
    batchSize: 5,
    logger,
    runtime,
    tuning: FAST,
    health: { trial: { durationMs: 100, minInferences: 1 } },
  });
  w.later(() => fleet.stop());
  assert.deepEqual(
    fleet.agents.map((a) => a.deviceId),
    Array.from({ length: devices }, (_, i) => `sim-${String(i + 1).padStart(4, '0')}`),
  );
  await waitFor('every simulated agent connected', () => fleet.agents.every((a) => a.status.connected));
  for (const agent of fleet.agents) await w.probe.publishDesired(agent.deviceId, desiredFor(w.trust, agent.deviceId, 1, m.bytes));
  await waitFor('every simulated agent committed', () => fleet.agents.every((a) => committed(a, 1)()));
  assert.equal(runtime.stats().workers, 1, 'one worker serves the whole fleet');
  await waitFor('simulated inferences on every device', () => fleet.agents.every((a) => a.status.inferences.total > 0));
  assert.ok(fleet.agents.every((a) => a.status.inferences.errors === 0));

  const labels = simLabels(devices, 3);
  assert.deepEqual(simLabels(devices, 3), labels, 'labels are a function of the seed');
  await waitFor('reported labels from every device', () => fleet.agents.every((a) => w.probe.messages('reported', a.deviceId).length > 0));
  fleet.agents.forEach((a, i) => assert.deepEqual(w.probe.messages('reported', a.deviceId).at(-1)!.labels, labels[i]));
  assert.ok(new Set(labels.map((l) => l.site)).size > 1, 'the fleet spans sites');

  await fleet.stop();
  await waitFor('every device offline', () => fleet.agents.every((a) => w.probe.messages('presence', a.deviceId).at(-1)?.online === false));
  assert.equal(runtime.stats().workers, 0);
});

test('a refused connection is not retried, and the agent keeps serving offline', async (t) => {
  const { w, m, cfg, agent: first } = await agentServing(t, 12);
  await first.stop();

  let attempts = 0;
  const strict = await startBroker(0, {
    authenticate: (_client, _username, _password, done) => {
      attempts++;
      done(Object.assign(new Error('not authorised'), { returnCode: 5 as const }), null);
    },
  });
  w.later(() => strict.close());
  const agent = await startAgent(w, { ...cfg, mqttUrl: strict.url });
  await waitFor('the refusal', () => agent.status.connection.state === 'refused');
  assert.match(agent.status.connection.lastError ?? '', /Not authorized|not authori[sz]ed/i);
  // With a 400 ms backoff cap, a retry would have happened several times over by now.
  await sleep(1500);
  assert.equal(attempts, 1, 'a CONNACK refusal is not retried');
  await assertServes(agent, m.digest);
});
