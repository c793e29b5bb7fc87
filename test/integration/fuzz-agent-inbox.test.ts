/**
 * Fuzzing the agent's inbox: 10,000 structure-aware cases per hub→agent topic kind (`desired`,
 * `blob/res`, `cmd`), published at QoS 1 by a stand-in hub on a real aedes broker to a real agent
 * (mqtt.js, its connection's dispatch, the reconciler, the downloader and the command handler,
 * state on disk). The agent has no model and no download running.
 *
 * What must hold: the agent keeps its connection and keeps serving its local API; every case is
 * accounted for exactly — a desired document is accepted, `unchanged`, or refused with the reason
 * the shared verifier gives (the oracle replays it with the same trust state); a frame with no
 * download running is `malformed` or `stale`; a command is refused by its decoder or answered.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { canonicalJson, decodeBlobFrame, decodePayload, deviceTopic, encodeBlobFrame, MAX_JSON_PAYLOAD_BYTES, TrustError, verifyDesired, type DeviceTrustState } from '@cairn/shared';
import { createAgent } from '@cairn/agent/agent.js';
import { parseConfig } from '@cairn/agent/config.js';
import { AGENT_VERSION } from '@cairn/agent/version.js';
import { HubProbe, startBroker } from '../helpers/blob-server.js';
import { cleanup } from '../helpers/cleanup.js';
import { mutatedJson, validPayload } from '../helpers/fuzz.js';
import { createTrustFixture, makeManifest, signDesired, signManifest } from '../helpers/trust-fixtures.js';
import { waitFor } from '../helpers/wait.js';

const CASES = 10_000;
const IN_FLIGHT = 256;
const DEVICE = 'fuzz-agent';

type Counts = Record<string, number>;
const delta = (after: Counts, before: Counts): Counts =>
  Object.fromEntries(Object.entries(after).flatMap(([k, n]) => (n - (before[k] ?? 0) > 0 ? [[k, n - (before[k] ?? 0)]] : [])));
const sum = (c: Counts): number => Object.values(c).reduce((a, b) => a + b, 0);
const only = (c: Counts, prefix: string): Counts => Object.fromEntries(Object.entries(c).filter(([k]) => k.startsWith(prefix)));

test('fuzz: 10,000 cases per hub→agent kind reach the real agent over a broker; each is accepted or refused and counted with its reason, and the agent keeps serving', async (t) => {
  const later = cleanup(t);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-fuzz-agent-'));
  later(() => rm(dir, { recursive: true, force: true }));
  const broker = await startBroker();
  later(() => broker.close());
  const hub = await HubProbe.connect(broker.url);
  later(() => hub.close());
  const trust = createTrustFixture();
  const agent = createAgent(
    parseConfig({ deviceId: DEVICE, stateDir: join(dir, 'state'), mqttUrl: broker.url, rootPublicKey: trust.rootPublicKey, api: { host: '127.0.0.1', port: 0 }, source: { kind: 'none' }, logLevel: 'silent' }),
    { logger: pino({ level: 'silent' }) },
  );
  later(() => agent.stop());
  await agent.start();
  await waitFor('the agent to connect', () => agent.status.connected);

  const publishAll = async (kind: 'desired' | 'blob/res' | 'cmd', cases: Buffer[]) => {
    const topic = deviceTopic(DEVICE, kind);
    for (let i = 0; i < cases.length; i += IN_FLIGHT) await Promise.all(cases.slice(i, i + IN_FLIGHT).map((p) => hub.publishRaw(topic, p)));
  };

  // desired: documents for this device (no bundle, or a bundle this agent is too old for, so
  // nothing is downloaded), mutated. The oracle replays the cases through the same decoder and
  // verifier with the trust state the agent would hold after each one.
  {
    const model = new Uint8Array(32).fill(1);
    const corpus = [
      signDesired(trust, { deviceId: DEVICE, seq: 10, bundle: null }),
      signDesired(trust, { deviceId: DEVICE, seq: 11, bundle: null, deploymentId: 'other' }),
      signDesired(trust, { deviceId: DEVICE, seq: 12, bundle: signManifest(makeManifest(model, { minAgentVersion: '999.0.0' }), trust.release) }),
      signDesired(trust, { deviceId: 'someone-else', seq: 13, bundle: null }),
    ];
    const cases = fc.sample(mutatedJson(fc.constantFrom(...corpus)), { numRuns: CASES, seed: 7 }).filter((b) => b.length > 0 && b.length <= MAX_JSON_PAYLOAD_BYTES);
    const s = agent.status;
    const state: DeviceTrustState = { deviceId: DEVICE, rootPublicKey: trust.root.publicKey, keyringVersion: s.keyringVersion, lastSeq: s.lastDesiredSeq, lastFingerprint: null, securityFloor: 0, agentVersion: AGENT_VERSION, now: Date.now() };
    const expectedRejected: Counts = {};
    const expectedDropped: Counts = {};
    for (const bytes of cases) {
      const decoded = decodePayload('desired', bytes);
      if (!decoded.ok) {
        expectedDropped[`desired:${decoded.reason}`] = (expectedDropped[`desired:${decoded.reason}`] ?? 0) + 1;
        expectedRejected.schema = (expectedRejected.schema ?? 0) + 1;
        continue;
      }
      try {
        const verdict = verifyDesired(decoded.value, state);
        if (verdict.status === 'accepted') Object.assign(state, { lastSeq: verdict.document.seq, lastFingerprint: canonicalJson(verdict.document), keyringVersion: verdict.keyring.version });
      } catch (err) {
        assert.ok(err instanceof TrustError, String(err));
        expectedRejected[err.reason] = (expectedRejected[err.reason] ?? 0) + 1;
      }
    }
    const before = { rejected: { ...agent.status.rejected } as Counts, dropped: agent.status.dropped };
    await publishAll('desired', cases);
    const total = sum(expectedRejected);
    await waitFor('every desired case to be handled', () => sum(delta(agent.status.rejected as Counts, before.rejected)) >= total && agent.status.lastDesiredSeq === state.lastSeq, { timeoutMs: 120_000 });
    assert.deepEqual(delta(agent.status.rejected as Counts, before.rejected), expectedRejected, 'desired: refusals by reason');
    assert.deepEqual(only(delta(agent.status.dropped, before.dropped), 'desired:'), expectedDropped, 'desired: undecodable payloads by reason');
    assert.equal(agent.status.lastDesiredSeq, state.lastSeq);
    assert.ok(total > cases.length / 2 && Object.keys(expectedRejected).length >= 5, `the cases reach deep into the verifier: ${JSON.stringify(expectedRejected)}`);
  }

  // blob/res: with no download running a well-formed frame is `stale`, anything else `malformed`.
  {
    const frame = fc.oneof(
      fc.tuple(validPayload.blobFrameHeader, fc.uint8Array({ maxLength: 256 }), fc.nat()).map(([h, chunk, cut]) => {
        const bytes = encodeBlobFrame(h as never, chunk);
        return cut % 3 === 0 ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
      }),
      fc.tuple(mutatedJson(validPayload.blobFrameHeader), fc.uint8Array({ maxLength: 64 })).map(([header, chunk]) => {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(header.length, 0);
        return Buffer.concat([length, header, chunk]);
      }),
    );
    const cases = fc.sample(frame, { numRuns: CASES, seed: 8 });
    const expected: Counts = {};
    for (const bytes of cases) {
      const key = decodeBlobFrame(bytes).ok ? 'blob/res:stale' : 'blob/res:malformed';
      expected[key] = (expected[key] ?? 0) + 1;
    }
    const before = agent.status.dropped;
    await publishAll('blob/res', cases);
    await waitFor('every frame to be handled', () => sum(only(delta(agent.status.dropped, before), 'blob/res:')) >= cases.length);
    assert.deepEqual(only(delta(agent.status.dropped, before), 'blob/res:'), expected);
  }

  // cmd: refused by the decoder (counted by reason), or answered on cmd/res with the caller's transaction.
  {
    const cases = fc.sample(mutatedJson(validPayload.cmd), { numRuns: CASES, seed: 9 }).filter((b) => b.length <= MAX_JSON_PAYLOAD_BYTES);
    const expected: Counts = {};
    const transactions: string[] = [];
    for (const bytes of cases) {
      const decoded = decodePayload('cmd', bytes);
      if (decoded.ok) transactions.push(decoded.value.transaction);
      else expected[`cmd:${decoded.reason}`] = (expected[`cmd:${decoded.reason}`] ?? 0) + 1;
    }
    const before = agent.status.dropped;
    const repliesBefore = hub.messages('cmd/res', DEVICE).length;
    await publishAll('cmd', cases);
    await waitFor('every command to be refused or answered', () => sum(only(delta(agent.status.dropped, before), 'cmd:')) >= sum(expected) && hub.messages('cmd/res', DEVICE).length - repliesBefore >= transactions.length, { timeoutMs: 120_000 });
    assert.deepEqual(only(delta(agent.status.dropped, before), 'cmd:'), expected);
    assert.deepEqual(hub.messages('cmd/res', DEVICE).slice(repliesBefore).map((r) => r.transaction), transactions, 'one reply per valid command, in order');
  }

  assert.equal(agent.status.connected, true, 'the agent kept its connection');
  assert.deepEqual(only(agent.status.dropped, 'unknown:'), {}, 'nothing arrived on an unexpected topic');
  assert.equal(Object.keys(agent.status.dropped).some((k) => k.endsWith(':handler_error')), false, 'no handler threw');
  const readyz = await fetch(`http://127.0.0.1:${agent.status.api!.port}/healthz`);
  assert.equal(readyz.status, 200, 'the local API still answers');
});
