/**
 * The durable outbox against a real aedes broker and a real SQLite file: the bound drops the
 * oldest telemetry and never an event, what is stored survives a restart of the outbox, and
 * after connecting everything left goes out once, in the order it was stored, and is deleted
 * on acknowledgement.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { DeviceEventT } from '@cairn/shared';
import { Connection } from '@cairn/agent/components/connection.js';
import { DropCounter } from '@cairn/agent/components/drop-counter.js';
import { OUTBOX_FILE, Outbox } from '@cairn/agent/components/outbox.js';
import { StateStore } from '@cairn/agent/components/state-store.js';
import { HubProbe, startBroker } from '../helpers/blob-server.js';
import { waitFor } from '../helpers/wait.js';

const DEVICE = 'press-1';
const logger = pino({ level: 'silent' });

const summary = (ts: number) => ({ ts, intervalMs: 1000, inferences: 1, errors: 0, latencyMs: null, rssMb: 1, cpuPct: 1, active: null });
const event = (n: number): DeviceEventT => ({ eventId: `event-${String(n).padStart(4, '0')}`, ts: n, type: 'deployment', deploymentId: 'dep-1', phase: 'received' });

/** A temp state directory with its state store, and a connection of DEVICE to `mqttUrl` (not started). */
async function device(t: TestContext, mqttUrl: string): Promise<{ dir: string; state: StateStore; connection: Connection }> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-outbox-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const state = new StateStore({ stateDir: dir, logger, clock: () => 1_000 });
  await state.start();
  const connection = new Connection({ deviceId: DEVICE, mqttUrl, agentVersion: '0.1.0', state, logger, clock: Date.now, drops: new DropCounter(logger) });
  return { dir, state, connection };
}

test('bounded, durable and in order: telemetry is dropped before events, and nothing stored is lost by a restart', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.close());
  const { dir, state, connection } = await device(t, broker.url);
  const open = () => {
    const outbox = new Outbox({ stateDir: dir, connection, logger, maxRecords: 5, telemetrySeqCeiling: () => state.state.telemetrySeqCeiling, clock: () => 1_000 });
    outbox.start();
    return outbox;
  };

  // Offline (the connection is not even started): everything is stored.
  let outbox = open();
  outbox.enqueueEvent(event(1));
  const seqs = [outbox.enqueueTelemetry(summary(2)).seq, outbox.enqueueTelemetry(summary(3)).seq];
  outbox.enqueueEvent(event(4));
  outbox.enqueueEvent(event(5));
  for (let ts = 6; ts <= 9; ts++) seqs.push(outbox.enqueueTelemetry(summary(ts)).seq);
  assert.deepEqual(
    seqs,
    seqs.map((_, i) => seqs[0]! + i),
    'telemetry seqs are consecutive',
  );
  assert.ok(seqs[0]! >= 1_000, 'a new outbox starts its seqs at the clock, above anything a lost one used');
  // 3 events + 6 summaries into a bound of 5: the 4 oldest summaries go, no event does.
  assert.deepEqual({ depth: outbox.stats.depth, dropped: outbox.stats.dropped }, { depth: 5, dropped: 4 });
  assert.throws(() => outbox.enqueueEvent({ ...event(10), eventId: 'bad id!' }), /eventId/, 'an invalid payload is refused with the reason');

  // A restart of the agent: a new outbox on the same file.
  outbox.stop();
  outbox = open();
  t.after(() => outbox.stop());
  assert.deepEqual({ depth: outbox.stats.depth, dropped: outbox.stats.dropped }, { depth: 5, dropped: 4 }, 'the backlog and the drop count survive');
  assert.equal(outbox.enqueueTelemetry(summary(10)).seq, seqs.at(-1)! + 1, 'seqs continue after the restart');
  assert.deepEqual({ depth: outbox.stats.depth, dropped: outbox.stats.dropped }, { depth: 5, dropped: 5 }, 'the bound holds across restarts');

  const probe = await HubProbe.connect(broker.url);
  t.after(() => probe.close());
  await connection.start();
  t.after(() => connection.stop());
  await waitFor('the outbox to empty', () => outbox.stats.depth === 0);
  await waitFor('five records at the hub', () => probe.received.filter((m) => m.deviceId === DEVICE && (m.kind === 'events' || m.kind === 'telemetry')).length >= 5);
  const order = probe.received
    .filter((m) => m.deviceId === DEVICE && (m.kind === 'events' || m.kind === 'telemetry'))
    .map((m) => {
      const body = JSON.parse(m.payload.toString()) as { eventId?: string; seq?: number };
      return body.eventId ?? body.seq;
    });
  assert.deepEqual(order, ['event-0001', 'event-0004', 'event-0005', seqs[5], seqs[5]! + 1], 'stored order, each once');
  assert.equal(outbox.stats.published, 5);
});

test('a damaged outbox.db is kept aside and a new one starts its seqs above every seq used', async (t) => {
  const { dir, connection } = await device(t, 'mqtt://127.0.0.1:1');
  await writeFile(join(dir, OUTBOX_FILE), 'this is not a database, it is a damaged flash page'.repeat(200));
  // state.json's ceiling says seqs up to 4,999 may have been used; the clock is behind it (a board without RTC).
  const outbox = new Outbox({ stateDir: dir, connection, logger, telemetrySeqCeiling: () => 5_000, clock: () => 2_000 });
  outbox.start();
  t.after(() => outbox.stop());
  assert.equal(outbox.enqueueTelemetry(summary(1)).seq, 5_000);
  assert.ok((await readdir(dir)).includes(`${OUTBOX_FILE}.corrupt-2000`), 'the damaged file is kept for inspection');
});

test('a record queued while the connection stops stays in the outbox for the next start', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.close());
  const { dir, state, connection } = await device(t, broker.url);
  const outbox = new Outbox({ stateDir: dir, connection, logger, telemetrySeqCeiling: () => state.state.telemetrySeqCeiling, clock: () => 1_000 });
  outbox.start();
  t.after(() => outbox.stop());
  await connection.start();
  await waitFor('connected', () => connection.connected);

  const stopping = connection.stop();
  // Were it still "connected", this record would be published on a client that is gone, rejected
  // at once and published again, forever, without the event loop ever running again.
  assert.equal(connection.connected, false, 'a stopping connection is not connected');
  outbox.enqueueEvent(event(1));
  await stopping;
  assert.equal(outbox.stats.depth, 1, 'the record waits for the next start');
});

test('publishes refused while the connection stays up are retried with backoff, not in a loop, and go out once accepted', async (t) => {
  const broker = await startBroker();
  t.after(() => broker.close());
  const { dir, state, connection } = await device(t, broker.url);
  const probe = await HubProbe.connect(broker.url);
  t.after(() => probe.close());
  const outbox = new Outbox({ stateDir: dir, connection, logger, telemetrySeqCeiling: () => state.state.telemetrySeqCeiling, clock: () => 1_000 });
  // Fault injection at the one seam the outbox uses: the first 6 publishes are refused at once
  // while the client stays connected (as mqtt.js does for a packet it cannot send).
  const real = connection.publishEncoded.bind(connection);
  let attempts = 0;
  connection.publishEncoded = (kind, payload) => (++attempts <= 6 ? Promise.reject(new Error('refused by the client')) : real(kind, payload));
  outbox.start();
  t.after(() => outbox.stop());
  await connection.start();
  t.after(() => connection.stop());
  await waitFor('connected', () => connection.connected);
  outbox.enqueueEvent(event(7));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(attempts <= 5, `${attempts} attempts in 300 ms: the refusals back off (50, 100, 200 ms…) instead of spinning`);
  await waitFor('the event goes out once accepted', () => probe.events(DEVICE).some((e) => e.eventId === 'event-0007'), { timeoutMs: 30_000 });
  assert.equal(outbox.stats.depth, 0);
});
