/**
 * The live-stream benchmark's readers, in a process of their own so that reading does not share
 * the hub's event loop: `node stream-reader.js '<json options>'` opens `clients` streams, each
 * reconnecting with its Last-Event-ID as an EventSource would if the hub drops it, and counts
 * `alert` events until each has `expect` of them. Prints one JSON line `{ready}` once every
 * stream is open and one `{done, elapsedMs, latenciesMs, reconnects}` at the end; latencies are
 * receipt time minus the event's `emittedAt` (same machine, same clock).
 */
import { request } from 'node:http';

interface Options {
  url: string;
  token: string;
  clients: number;
  expect: number;
  lastEventId?: string;
}

const options = JSON.parse(process.argv[2]!) as Options;
const started = performance.now();
const latenciesMs: number[] = [];
let reconnects = 0;
let opened = 0;
let finished = 0;

function read(lastEventId: string | undefined, state: { alerts: number; firstOpen: boolean }): void {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token}` };
  if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
  let last = lastEventId;
  const req = request(options.url, { headers }, (res) => {
    if (res.statusCode !== 200) throw new Error(`stream answered ${res.statusCode}`);
    if (state.firstOpen) {
      state.firstOpen = false;
      if (++opened === options.clients) console.log(JSON.stringify({ ready: true }));
    }
    res.setEncoding('utf8');
    let pending = '';
    // Only a whole block (ended by a blank line) counts, as an EventSource dispatches it.
    let block: { id?: string; alert: boolean; data?: string } = { alert: false };
    res.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line === '') {
          if (block.id !== undefined) last = block.id;
          if (block.alert) {
            state.alerts++;
            if (block.data?.includes('"emittedAt"')) latenciesMs.push(Date.now() - (JSON.parse(block.data) as { alert: { emittedAt: number } }).alert.emittedAt);
          }
          block = { alert: false };
        } else if (line.startsWith('id: ')) block.id = line.slice(4);
        else if (line === 'event: alert') block.alert = true;
        else if (line.startsWith('data: ')) block.data = line.slice(6);
      }
      if (state.alerts === options.expect) {
        res.destroy();
        if (++finished === options.clients) {
          console.log(JSON.stringify({ done: true, elapsedMs: performance.now() - started, latenciesMs, reconnects }));
          process.exit(0);
        }
      }
    });
    res.on('close', () => {
      if (state.alerts < options.expect) {
        reconnects++;
        read(last, state);
      }
    });
  });
  req.end();
}

for (let i = 0; i < options.clients; i++) read(options.lastEventId, { alerts: 0, firstOpen: true });
