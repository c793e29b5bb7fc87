/**
 * A server-sent-events client over node:http that parses the stream as a browser's EventSource
 * does (fields, comments, an id with no data) and records everything, for asserting on the hub's
 * live stream. `paused` opens it without reading, as a client that does not keep up; `resume()`
 * reads again.
 */
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { TestContext } from 'node:test';
import { waitFor } from './wait.js';

export interface SseEvent {
  /** The id field of this event, or null when it had none (telemetry). */
  id: string | null;
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body of a refused request (JSON when it parses). */
  refusal: any;
  /** Dispatched events, in order. */
  events: SseEvent[];
  /** The last event id as an EventSource would keep it (an id-only block sets it too). */
  lastEventId: string | null;
  retry: number | null;
  heartbeats: number;
  /** True once the response ended or broke. */
  ended: boolean;
  /** Waits until `probe(events)` holds. */
  until(what: string, probe: (events: SseEvent[]) => boolean): Promise<SseEvent[]>;
  resume(): void;
  close(): void;
}

export interface OpenStreamOptions {
  token?: string;
  cookie?: string;
  lastEventId?: string;
  paused?: boolean;
}

export async function openStream(t: TestContext, url: string, options: OpenStreamOptions = {}): Promise<SseStream> {
  const headers: Record<string, string> = { accept: 'text/event-stream' };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.cookie) headers.cookie = options.cookie;
  if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = httpRequest(url, { headers }, resolve);
    req.once('error', reject);
    req.end();
  });
  const stream: SseStream = {
    status: response.statusCode ?? 0,
    headers: response.headers,
    refusal: null,
    events: [],
    lastEventId: null,
    retry: null,
    heartbeats: 0,
    ended: false,
    until: (what, probe) => waitFor(what, () => (probe(stream.events) ? stream.events : stream.ended ? Promise.reject(new Error('the stream ended')) : false)),
    resume: () => response.resume(),
    close: () => response.destroy(),
  };
  t.after(() => response.destroy());
  const markEnded = () => (stream.ended = true);
  response.once('end', markEnded);
  response.once('close', markEnded);
  response.once('error', markEnded);
  response.setEncoding('utf8');
  if (stream.status !== 200) {
    let body = '';
    response.on('data', (chunk: string) => (body += chunk));
    await new Promise((resolve) => response.once('end', resolve));
    try {
      stream.refusal = JSON.parse(body);
    } catch {
      stream.refusal = body;
    }
    return stream;
  }
  let pending = '';
  let block: { id?: string; event?: string; data: string[] } = { data: [] };
  const dispatch = () => {
    if (block.id !== undefined) stream.lastEventId = block.id;
    if (block.data.length > 0) {
      const text = block.data.join('\n');
      let data: unknown = text;
      try {
        data = JSON.parse(text);
      } catch {
        /* not JSON: keep the text */
      }
      stream.events.push({ id: block.id ?? null, event: block.event ?? 'message', data });
    }
    block = { data: [] };
  };
  response.on('data', (chunk: string) => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline).replace(/\r$/, '');
      pending = pending.slice(newline + 1);
      if (line === '') dispatch();
      else if (line.startsWith(':')) stream.heartbeats += line.includes('heartbeat') ? 1 : 0;
      else {
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'id') block.id = value;
        else if (field === 'event') block.event = value;
        else if (field === 'data') block.data.push(value);
        else if (field === 'retry') stream.retry = Number(value);
      }
    }
  });
  if (options.paused) response.pause();
  return stream;
}
