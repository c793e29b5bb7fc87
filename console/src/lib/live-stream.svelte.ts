/**
 * The console's one live-update channel: issue 7's server-sent events at `GET /api/v1/stream`,
 * with polling as the fallback while the hub does not have that route.
 *
 * Contract for pages: `live.on(types, handler)` calls `handler` when an event of one of those
 * types arrives, and also on `reset` (the hub's journal no longer reaches our last event id, or
 * the connection had to be re-created) and on every `poll` tick in polling mode. A handler
 * therefore only ever refetches what it shows; it never applies deltas, so a missed event can
 * cost freshness but never correctness.
 *
 * Resume: the browser's EventSource sends `Last-Event-ID` by itself when it reconnects the same
 * object (a dropped connection, a hub restart). When the object has to be re-created (the hub
 * answered an error status), the id is lost, so subscribers get a `reset` and refetch.
 *
 * Fallback: when the stream fails before it ever opened, one plain GET says why. 404 means this
 * hub has no stream: poll every `pollMs` and probe the stream again every `probeMs`, so a hub
 * upgraded underneath an open console switches over by itself. 401 ends the session like any
 * other request (api.ts onUnauthorized).
 */
import { CSRF_HEADER } from './api.js';

export const STREAM_EVENTS = ['device', 'rollout', 'rollout_device', 'alert', 'work_order', 'telemetry'] as const;
export type StreamEvent = (typeof STREAM_EVENTS)[number];
export type LiveSignal = { type: StreamEvent; data: unknown } | { type: 'reset' | 'poll'; data: null };
export type LiveMode = 'connecting' | 'stream' | 'polling' | 'offline';

interface Subscription {
  types: ReadonlySet<string>;
  handler: (signal: LiveSignal) => void;
}

export interface LiveStreamOptions {
  url?: string;
  pollMs?: number;
  probeMs?: number;
  onUnauthorized?: () => void;
}

export class LiveStream {
  mode = $state<LiveMode>('connecting');

  readonly #url: string;
  readonly #pollMs: number;
  readonly #probeMs: number;
  readonly #onUnauthorized: (() => void) | undefined;
  #source: EventSource | undefined;
  #subscriptions = new Set<Subscription>();
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #failures = 0;

  constructor(options: LiveStreamOptions = {}) {
    this.#url = options.url ?? '/api/v1/stream';
    this.#pollMs = options.pollMs ?? 2000;
    this.#probeMs = options.probeMs ?? 30_000;
    this.#onUnauthorized = options.onUnauthorized;
  }

  /** Calls `handler` for these event types, and for `reset` and `poll`. Returns the unsubscribe. */
  on(types: readonly StreamEvent[], handler: (signal: LiveSignal) => void): () => void {
    const subscription: Subscription = { types: new Set([...types, 'reset', 'poll']), handler };
    this.#subscriptions.add(subscription);
    return () => this.#subscriptions.delete(subscription);
  }

  start(): () => void {
    if (!this.#running) {
      this.#running = true;
      this.#connect();
    }
    return () => this.stop();
  }

  stop(): void {
    this.#running = false;
    this.#source?.close();
    this.#source = undefined;
    clearInterval(this.#pollTimer);
    clearTimeout(this.#retryTimer);
    this.#pollTimer = undefined;
    this.mode = 'connecting';
  }

  #emit(signal: LiveSignal): void {
    for (const subscription of this.#subscriptions) {
      if (subscription.types.has(signal.type)) subscription.handler(signal);
    }
  }

  #connect(): void {
    if (!this.#running) return;
    let opened = false;
    const source = new EventSource(this.#url, { withCredentials: true });
    this.#source = source;
    source.onopen = () => {
      const resumed = opened;
      opened = true;
      this.#failures = 0;
      this.#stopPolling();
      // The first open after polling or a re-created source: what we show may be stale.
      if (!resumed && this.mode !== 'connecting') this.#emit({ type: 'reset', data: null });
      this.mode = 'stream';
    };
    for (const type of STREAM_EVENTS) {
      source.addEventListener(type, (event) => this.#emit({ type, data: parse((event as MessageEvent<string>).data) }));
    }
    source.addEventListener('reset', () => this.#emit({ type: 'reset', data: null }));
    source.onerror = () => {
      // CONNECTING: the browser retries by itself and resumes with Last-Event-ID.
      if (source.readyState !== EventSource.CLOSED || this.#source !== source) return;
      this.#source = undefined;
      void this.#diagnose();
    };
  }

  /** The stream closed for good: ask once with a plain GET why, then poll, re-sign-in or retry. */
  async #diagnose(): Promise<void> {
    const status = await probe(this.#url);
    if (!this.#running) return;
    if (status === 401) {
      // The session is being restored: if it comes back without a sign-in (nothing restarts
      // the stream then), this retry reconnects; a sign-out stops the stream and its timers.
      this.#onUnauthorized?.();
      this.mode = 'offline';
      this.#failures += 1;
      this.#retryTimer = setTimeout(() => this.#connect(), Math.min(30_000, 1000 * 2 ** Math.min(this.#failures, 5)));
      return;
    }
    if (status === 404) {
      this.#startPolling();
      this.#retryTimer = setTimeout(() => this.#connect(), this.#probeMs);
      return;
    }
    // Anything else (a restarting hub, a proxy error): poll meanwhile, back off, try again.
    this.#failures += 1;
    this.#startPolling();
    this.mode = status === 0 ? 'offline' : 'polling';
    this.#retryTimer = setTimeout(() => this.#connect(), Math.min(30_000, 1000 * 2 ** Math.min(this.#failures, 5)));
  }

  #startPolling(): void {
    this.mode = 'polling';
    if (this.#pollTimer !== undefined) return;
    this.#emit({ type: 'poll', data: null });
    this.#pollTimer = setInterval(() => {
      if (document.visibilityState !== 'hidden') this.#emit({ type: 'poll', data: null });
    }, this.#pollMs);
  }

  #stopPolling(): void {
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
  }
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data) as unknown;
  } catch {
    return null;
  }
}

/** The status of a GET of the stream (0 when the hub is unreachable); the body is never read. */
async function probe(url: string): Promise<number> {
  const controller = new AbortController();
  try {
    const response = await fetch(url, { headers: { accept: 'text/event-stream', [CSRF_HEADER]: '1' }, credentials: 'same-origin', cache: 'no-store', signal: controller.signal });
    return response.status;
  } catch {
    return 0;
  } finally {
    controller.abort();
  }
}
