/**
 * Fuzzing the hub's device ingress: 10,000 structure-aware payloads per agent→hub topic kind,
 * published at QoS 1 by one enrolled device over an in-memory stream into a real hub's embedded
 * broker. That is the whole path a device message takes — MQTT parsing, the broker's access
 * control, `device-ingress.ts` (topic, size, JSON, depth, schema) and the module's handler, which
 * stores into the real SQLite file before the PUBACK — minus only the TCP socket.
 *
 * What must hold: every publish is acknowledged (a handler that threw would make the broker
 * refuse it and close the connection), the connection stays up, and the hub counts exactly the
 * cases the protocol refuses — by the oracle `decodePayload` (the shared decoder), plus the
 * telemetry module's own time checks (`future_timestamp`, `too_old`) — and accepts exactly the rest.
 *
 * Cases over the 256 KiB bound are not published here: the broker's access control refuses them
 * before ingress and closes the connection (the denial suite covers that); the unit fuzz covers
 * their decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePayload, deviceTopic, MAX_JSON_PAYLOAD_BYTES, type AgentToHubKind, type DeviceEventT } from '@cairn/shared';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { inMemoryClient } from '../helpers/mqtt-stream.js';
import { mutatedJson, validPayload } from '../helpers/fuzz.js';
import { summaryTimeProblem } from '@cairn/hub/modules/telemetry/telemetry.plugin.js';

const CASES = 10_000;
const IN_FLIGHT = 256;
const KINDS = ['presence', 'reported', 'telemetry', 'events', 'blob/req', 'cmd/res'] as const satisfies readonly AgentToHubKind[];

type Counts = Record<string, number>;

/** The hub's counter values for one topic kind, by reason (rejected) or in total (received). */
async function counters(hub: TestHub, kind: string): Promise<{ rejected: Counts; received: number }> {
  const rejected: Counts = {};
  for (const v of (await hub.ctx.metrics.rejectedMessages.get()).values) {
    if (v.labels.kind === kind) rejected[String(v.labels.reason)] = v.value;
  }
  const received = (await hub.ctx.metrics.receivedMessages.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;
  return { rejected, received };
}

function difference(after: Counts, before: Counts): Counts {
  const out: Counts = {};
  for (const [reason, n] of Object.entries(after)) if (n - (before[reason] ?? 0) > 0) out[reason] = n - (before[reason] ?? 0);
  return out;
}

/** Refusals a module makes after ingress has decoded (and counted as received) the message. */
const MODULE_REASONS = ['future_timestamp', 'too_old', 'maintenance_without_alert'] as const;

/** What the hub must do with one case: the reason it refuses it for, or null when it accepts it. */
function expectedRejection(kind: AgentToHubKind, bytes: Buffer, now: number, hub: TestHub): string | null {
  const decoded = decodePayload(kind as Exclude<AgentToHubKind, 'blob/res'>, bytes);
  if (!decoded.ok) return decoded.reason;
  if (kind === 'telemetry') return summaryTimeProblem((decoded.value as { ts: number }).ts, now, hub.ctx.config.telemetry);
  if (kind === 'events' && (decoded.value as DeviceEventT).type === 'maintenance_alert' && !(decoded.value as DeviceEventT).alert) return 'maintenance_without_alert';
  return null;
}

test('fuzz: 10,000 malformed and valid payloads per device topic kind through the real broker and ingress: all acknowledged, every refusal counted by reason, nothing else', async (t) => {
  const hub = await startTestHub(t, { mqtt: { rateLimit: { perSec: 1_000_000, burst: 1_000_000 } } });
  const deviceId = 'fuzz-device';
  const client = inMemoryClient(hub, { clientId: deviceId, ...(await hub.enroll(deviceId)) });
  t.after(() => client.end(true));
  let closed = false;
  client.on('close', () => (closed = true));
  client.on('error', () => undefined); // a refusal shows as `closed` below
  await new Promise((resolve) => client.once('connect', resolve));

  for (const [k, kind] of KINDS.entries()) {
    const cases = fc.sample(mutatedJson(validPayload[kind]), { numRuns: CASES, seed: 4242 + k }).filter((b) => b.length <= MAX_JSON_PAYLOAD_BYTES);
    const now = Date.now();
    const expected: Counts = {};
    let accepted = 0;
    for (const bytes of cases) {
      const reason = expectedRejection(kind, bytes, now, hub);
      if (reason === null) accepted++;
      else expected[reason] = (expected[reason] ?? 0) + 1;
    }
    const before = await counters(hub, kind);
    const topic = deviceTopic(deviceId, kind);
    for (let i = 0; i < cases.length; i += IN_FLIGHT) {
      // Not retained: a retained fuzz case would be replayed to nobody, but would sit in the broker.
      await Promise.all(cases.slice(i, i + IN_FLIGHT).map((payload) => client.publishAsync(topic, payload, { qos: 1 })));
      assert.equal(closed, false, `the broker closed the device's connection during ${kind} case ${i}…`);
    }
    const after = await counters(hub, kind);
    assert.deepEqual(difference(after.rejected, before.rejected), expected, `${kind}: rejections by reason`);
    // Ingress counts a message received once it decodes; a module's own refusals come after that.
    const refusedByModules = MODULE_REASONS.reduce((n, reason) => n + (expected[reason] ?? 0), 0);
    assert.equal(after.received - before.received - refusedByModules, accepted, `${kind}: accepted`);
    const rejectedTotal = Object.values(expected).reduce((a, b) => a + b, 0);
    assert.ok(rejectedTotal > cases.length / 2 && accepted > cases.length / 20, `${kind}: the generator makes both kinds of case (${rejectedTotal} refused, ${accepted} accepted)`);
  }

  // The hub still serves the device and the API after all of it.
  assert.equal((await hub.api('GET', `/api/v1/devices/${deviceId}`)).status, 200);
  assert.equal((await hub.api('GET', `/api/v1/devices/${deviceId}/telemetry?limit=10`)).status, 200);
  assert.equal((await hub.api('GET', `/api/v1/devices/${deviceId}/events?limit=10`)).status, 200);
});

test('regression: command replies pass through ingress — a malformed cmd/res is refused and counted, a valid one received (the hub had no cmd/res subscriber, so both vanished uncounted)', async (t) => {
  const hub = await startTestHub(t);
  const deviceId = 'cmd-device';
  const client = inMemoryClient(hub, { clientId: deviceId, ...(await hub.enroll(deviceId)) });
  client.on('error', () => undefined); // the hub stopping first aborts the stream
  t.after(() => client.end(true));
  await new Promise((resolve) => client.once('connect', resolve));
  const topic = deviceTopic(deviceId, 'cmd/res');
  await client.publishAsync(topic, JSON.stringify({ transaction: 'tx-1', ok: 'yes' }), { qos: 1 });
  await client.publishAsync(topic, JSON.stringify({ transaction: 'tx-2', ok: false, error: 'not supported' }), { qos: 1 });
  const { rejected, received } = await counters(hub, 'cmd/res');
  assert.deepEqual(rejected, { wrong_type: 1 });
  assert.equal(received, 1);
});
