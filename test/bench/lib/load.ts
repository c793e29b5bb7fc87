/**
 * Load on an agent's local API (`POST /v1/infer`), with real vibration feature rows.
 *
 * `OpenLoopLoad` sends on a fixed schedule whatever the answers do (request i is due at
 * start + i/rate): a slow server gets more requests in flight, not fewer requests, and each
 * latency is measured from the request's due time, so a stall on either side shows in full
 * instead of being hidden by a client that waits (coordinated omission). `closedLoop` sends a
 * fixed number of requests, `concurrency` at a time, to drive traffic where rate does not matter.
 */
import http from 'node:http';
import { generateDataset } from '@cairn/shared';
import { epochMs } from './stats.js';

/** `count` request bodies, one held-out vibration window's 19 features each (three machines, every condition). */
export function inferBodies(count = 600, seed = 7): string[] {
  const data = generateDataset({ seed, machines: ['pump-1800', 'fan-1200', 'motor-3600'], windowsPerClass: Math.ceil(count / 15) });
  const width = data.featureCount;
  return Array.from({ length: count }, (_, i) => {
    const row = Array.from(data.features.subarray((i % data.count) * width, (i % data.count + 1) * width));
    return JSON.stringify({ inputs: { features: { dims: [1, width], data: row } } });
  });
}

/** One request of an open-loop run; times are epoch ms (sub-ms resolution). */
export interface LoadRecord {
  dueAt: number;
  sentAt: number;
  doneAt: number;
  /** HTTP status, or 0 when the request failed without one (connection error). */
  status: number;
  /** The digest of the model that answered (from the response's `model`). */
  digest: string | null;
}

export class OpenLoopLoad {
  private readonly records: LoadRecord[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 2048 });
  private readonly url: URL;
  private timer: NodeJS.Timeout | null = null;
  private startedAt = 0;
  private sent = 0;

  constructor(
    apiUrl: string,
    private readonly ratePerSec: number,
    private readonly bodies: string[],
  ) {
    this.url = new URL('/v1/infer', apiUrl);
  }

  start(): void {
    this.startedAt = epochMs();
    // A 1 ms timer sends everything that has fallen due; the due time, not the send time, is
    // what latencies are measured from.
    this.timer = setInterval(() => {
      const now = epochMs();
      for (;;) {
        const dueAt = this.startedAt + (this.sent * 1000) / this.ratePerSec;
        if (dueAt > now) break;
        this.send(dueAt, this.bodies[this.sent % this.bodies.length]!);
        this.sent++;
      }
    }, 1);
  }

  /** Stops sending and waits for every answer. */
  async stop(): Promise<LoadRecord[]> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all(this.inflight);
    this.agent.destroy();
    return [...this.records].sort((a, b) => a.dueAt - b.dueAt);
  }

  private send(dueAt: number, body: string): void {
    const record: LoadRecord = { dueAt, sentAt: epochMs(), doneAt: 0, status: 0, digest: null };
    const done = request(this.agent, this.url, body).then(
      ({ status, text }) => {
        record.doneAt = epochMs();
        record.status = status;
        record.digest = status === 200 ? (JSON.parse(text) as { model: { digest: string } }).model.digest : null;
      },
      () => {
        record.doneAt = epochMs();
      },
    );
    this.records.push(record);
    this.inflight.add(done);
    void done.finally(() => this.inflight.delete(done));
  }
}

/** Sends `count` requests, `concurrency` at a time; returns how many were not answered 200. */
export async function closedLoop(apiUrl: string, bodies: string[], count: number, concurrency = 4): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const url = new URL('/v1/infer', apiUrl);
  let next = 0;
  let failed = 0;
  const lane = async (): Promise<void> => {
    while (next < count) {
      const body = bodies[next++ % bodies.length]!;
      const { status } = await request(agent, url, body).catch(() => ({ status: 0 }));
      if (status !== 200) failed++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  agent.destroy();
  return failed;
}

function request(agent: http.Agent, url: URL, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
