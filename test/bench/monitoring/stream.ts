/**
 * The live stream (`npm run bench -- stream`): a real hub, events announced on its bus as the
 * alerts module announces them, and SSE readers in another process (stream-reader.ts) over
 * loopback. Measured in one run:
 * - journal: the cost of an event with no client connected (JSON + SQLite append);
 * - fan-out: EVENTS events as fast as the bus takes them to CLIENTS clients, until every client
 *   has every one (a dropped client resumes from its Last-Event-ID and is counted);
 * - latency: PACED_EVENTS events at PACED_RATE per second to CLIENTS clients, emit → receipt;
 * - replay: one client resuming from before the fan-out, catching up on EVENTS events;
 * - the hub's own event-loop delay p99 (its metric) after the fan-out.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { RunningHub } from '@cairn/hub';
import type { HubEvents } from '@cairn/hub/infra/bus.js';
import { distribution, ms, sleep, type Distribution } from '../lib/stats.js';
import { startBenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const CLIENTS = 50;
const EVENTS = 10_000;
const PACED_EVENTS = 2_000;
const PACED_RATE = 500;
const READER = join(import.meta.dirname, 'stream-reader.js');

interface Result {
  clients: number;
  events: number;
  appendUs: number;
  fanoutMs: number;
  fanoutReconnects: number;
  latency: Distribution;
  pacedRate: number;
  replayMs: number;
  eventLoopP99Ms: number;
}

const alert = (n: number, emittedAt?: number): HubEvents['alert.changed'] => ({
  change: 'opened',
  alert: { id: `al_${n}`, deviceId: `press-${n % 100}`, cause: 'drift', severity: 'warning', state: 'open', summary: 'drift on press', ...(emittedAt ? { emittedAt } : {}) },
});

/** Starts the readers; resolves `ready` once every stream is open and `done` with their report. */
function readers(hub: RunningHub, token: string, clients: number, expect: number, lastEventId?: string) {
  const child = spawn(process.execPath, [READER, JSON.stringify({ url: `${hub.httpUrl}/api/v1/stream`, token, clients, expect, lastEventId })], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  let onReady: () => void;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const done = new Promise<{ elapsedMs: number; latenciesMs: number[]; reconnects: number }>((resolve, reject) => {
    lines.on('line', (line) => {
      const message = JSON.parse(line) as { ready?: true; done?: true; elapsedMs: number; latenciesMs: number[]; reconnects: number };
      if (message.ready) onReady();
      if (message.done) resolve(message);
    });
    child.once('exit', (code) => (code === 0 ? undefined : reject(new Error(`stream readers exited with ${code}`))));
  });
  return { ready, done };
}

export const streamBench: Benchmark<Result> = {
  name: 'stream',
  async run(dir) {
    const bench = await startBenchHub(join(dir, 'hub'));
    const { hub } = bench;
    const token = readFileSync(hub.adminToken.tokenFile, 'utf8').trim();
    try {
      let n = 0;
      // Journal alone: nobody connected.
      const appendStart = performance.now();
      for (let i = 0; i < EVENTS; i++) hub.ctx.bus.emit('alert.changed', alert(++n));
      const appendUs = ((performance.now() - appendStart) * 1000) / EVENTS;

      // Fan-out: as fast as the bus takes them, yielding between batches so sockets drain.
      const before = String(hub.ctx.db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'stream_events'").pluck().get());
      const fanout = readers(hub, token, CLIENTS, EVENTS);
      await fanout.ready;
      const fanoutStart = performance.now();
      for (let i = 0; i < EVENTS; i += 100) {
        for (let j = 0; j < 100; j++) hub.ctx.bus.emit('alert.changed', alert(++n));
        await sleep(0);
      }
      const fanoutResult = await fanout.done;
      const fanoutMs = performance.now() - fanoutStart;
      const eventLoop = await hub.ctx.metrics.eventLoopDelay.get();
      const eventLoopP99Ms = (eventLoop.values.find((v) => v.labels.quantile === '0.99')?.value ?? Number.NaN) * 1000;

      // Latency at a steady rate.
      const paced = readers(hub, token, CLIENTS, PACED_EVENTS);
      await paced.ready;
      const perTick = PACED_RATE / 100;
      for (let i = 0; i < PACED_EVENTS; i += perTick) {
        for (let j = 0; j < perTick; j++) hub.ctx.bus.emit('alert.changed', alert(++n, Date.now()));
        await sleep(10);
      }
      const pacedResult = await paced.done;

      // Replay: one client that last saw the event before the fan-out.
      const replay = readers(hub, token, 1, EVENTS, before);
      const replayResult = await replay.done;

      return {
        clients: CLIENTS,
        events: EVENTS,
        appendUs,
        fanoutMs,
        fanoutReconnects: fanoutResult.reconnects,
        latency: distribution(pacedResult.latenciesMs),
        pacedRate: PACED_RATE,
        replayMs: replayResult.elapsedMs,
        eventLoopP99Ms,
      };
    } finally {
      await bench.close();
    }
  },
  report(r) {
    const rate = (count: number, msTaken: number) => `${Math.round((count / msTaken) * 1000).toLocaleString('en-US')} /s`;
    return {
      targets: [],
      details: [
        '### Live stream',
        `A hub with ${r.clients} SSE clients read by another process over loopback; events are alerts announced on the hub's bus (about 200 bytes of JSON each).`,
        table(
          ['what', 'measured'],
          [
            ['journal an event, no client (JSON + SQLite append)', `${r.appendUs.toFixed(1)} µs`],
            [`${r.events.toLocaleString('en-US')} events to ${r.clients} clients, as fast as the bus takes them`, `${ms(r.fanoutMs)}: ${rate(r.events, r.fanoutMs)} events, ${rate(r.events * r.clients, r.fanoutMs)} deliveries; ${r.fanoutReconnects} slow-client drops resumed`],
            [`emit → receipt at ${r.pacedRate} events/s to ${r.clients} clients (${r.latency.count.toLocaleString('en-US')} receipts)`, `p50 ${ms(r.latency.p50)}, p99 ${ms(r.latency.p99)}, max ${ms(r.latency.max)}`],
            [`replay of ${r.events.toLocaleString('en-US')} events to one resuming client`, `${ms(r.replayMs)} (${rate(r.events, r.replayMs)})`],
            ['hub event-loop delay p99 (its own metric) after the fan-out', ms(r.eventLoopP99Ms)],
          ],
        ),
      ].join('\n\n'),
    };
  },
};
