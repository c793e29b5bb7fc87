/**
 * The delivery loop: POSTs due queue rows to their endpoints, signed, and records the outcome.
 * A 2xx answer delivers; anything else (another status, a timeout, a refused connection) is
 * retried after an exponential backoff with jitter until `maxAttempts`, then the row is
 * `failed` (kept, counted, shown by `GET /api/v1/webhooks`). Due times are read from
 * `ctx.clock` (tests move a fake clock); the loop itself wakes on a short real timer and when an
 * event is queued. Redirects are not followed (a signed body goes only where configured).
 */
import type { HubConfig } from '../../infra/config.js';
import type { HubContext } from '../../infra/context.js';
import type { Delivery, WebhookQueueRepository } from './webhook-queue.repository.js';
import { signWebhook } from './webhook-signature.js';

export type WebhookEndpoint = HubConfig['webhooks']['endpoints'][number];

/** Deliveries attempted at once. */
const BATCH = 16;
/** How often an idle loop looks for due rows (real time; due times are the hub clock's). */
const IDLE_POLL_MS = 250;
const PRUNE_EVERY_MS = 3600_000;

/**
 * Delay before the attempt after failed attempt `attempt` (1-based): "equal jitter" on a doubling
 * base — a uniform draw in [d/2, d] with d = min(max, base·2^(attempt−1)) — so receivers that
 * came back are not hit by every hub at once, and each delay is at least the previous one until
 * the cap.
 */
export function retryDelayMs(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const d = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 40));
  return Math.round(d / 2 + random() * (d / 2));
}

/**
 * An endpoint URL without its `user:password@` part, and that part as a Basic authorization
 * header: fetch refuses URLs with credentials, and the API must not show them.
 */
export function splitCredentials(url: string): { url: string; authorization: string | null } {
  const u = new URL(url);
  if (!u.username && !u.password) return { url: u.toString(), authorization: null };
  const authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
  u.username = '';
  u.password = '';
  return { url: u.toString(), authorization };
}

export class WebhookDelivery {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly stopping = new AbortController();
  private lastPrune = 0;

  constructor(
    private readonly ctx: HubContext,
    private readonly queue: WebhookQueueRepository,
    private readonly endpoints: ReadonlyMap<string, WebhookEndpoint>,
  ) {}

  start(): void {
    this.ctx.metrics.webhookQueueDepth.set(this.queue.pendingCount());
    this.kick();
  }

  /** Runs a pass now (after an event was queued); a pass under way is followed by another. */
  kick(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.running) return;
    this.running = this.pass()
      .catch((err) => this.ctx.logger.error({ err }, 'webhook delivery pass failed'))
      .finally(() => {
        this.running = null;
        if (!this.stopped) this.timer = setTimeout(() => this.kick(), IDLE_POLL_MS).unref();
      });
  }

  /** Stops the loop; attempts in flight are aborted and stay pending (due again after their backoff). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.stopping.abort();
    await this.running;
  }

  private async pass(): Promise<void> {
    for (;;) {
      const now = this.ctx.clock();
      if (now - this.lastPrune > PRUNE_EVERY_MS) {
        this.queue.pruneDelivered(now);
        this.lastPrune = now;
      }
      const due = this.queue.due(now, BATCH);
      if (due.length === 0 || this.stopped) return;
      // One endpoint's deliveries go one after another, oldest first, so the events of one work
      // order reach it in order unless a retry intervenes; endpoints are served side by side.
      const byEndpoint = new Map<string, typeof due>();
      for (const d of due) byEndpoint.set(d.endpoint, [...(byEndpoint.get(d.endpoint) ?? []), d]);
      await Promise.all(
        [...byEndpoint.values()].map(async (deliveries) => {
          for (const d of deliveries) if (!this.stopped) await this.attempt(d);
        }),
      );
      this.ctx.metrics.webhookQueueDepth.set(this.queue.pendingCount());
      if (due.length < BATCH) return;
    }
  }

  private async attempt(d: Delivery): Promise<void> {
    const { maxAttempts, retryBaseMs, retryMaxMs, timeoutMs } = this.ctx.config.webhooks;
    const endpoint = this.endpoints.get(d.endpoint);
    if (!endpoint) {
      this.queue.failed(d.id, null, 'endpoint_removed', this.ctx.clock());
      this.ctx.metrics.webhookDeliveries.inc({ result: 'failed' });
      this.ctx.logger.warn({ delivery: d.id, endpoint: d.endpoint }, 'webhook endpoint no longer configured; delivery failed');
      return;
    }
    const attempt = d.attempts + 1;
    const started = this.ctx.clock();
    const backoff = retryDelayMs(attempt, retryBaseMs, retryMaxMs);
    this.queue.beginAttempt(d.id, started, started + timeoutMs + backoff);
    const timestamp = String(Math.floor(started / 1000));
    const target = splitCredentials(endpoint.url);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const response = await fetch(target.url, {
        method: 'POST',
        redirect: 'manual',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'cairn-hub',
          'x-cairn-event': d.eventType,
          'x-cairn-delivery': d.id,
          'x-cairn-timestamp': timestamp,
          'x-cairn-signature': signWebhook(endpoint.secret, timestamp, d.body),
          ...(target.authorization ? { authorization: target.authorization } : {}),
        },
        body: d.body,
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), this.stopping.signal]),
      });
      status = response.status;
      await response.arrayBuffer().catch(() => undefined);
      if (status < 200 || status > 299) error = `http_${status}`;
    } catch (err) {
      if (this.stopping.signal.aborted) return; // the hub is stopping: the row stays pending
      error = (err as Error).name === 'TimeoutError' ? 'timeout' : `network: ${((err as Error).cause as Error | undefined)?.message ?? (err as Error).message}`.slice(0, 200);
    }
    const now = this.ctx.clock();
    if (error === null) {
      this.queue.delivered(d.id, status!, now);
      this.ctx.metrics.webhookDeliveries.inc({ result: 'delivered' });
      this.ctx.logger.debug({ delivery: d.id, endpoint: endpoint.name, event: d.eventType, attempt }, 'webhook delivered');
    } else if (attempt >= maxAttempts) {
      this.queue.failed(d.id, status, error, now);
      this.ctx.metrics.webhookDeliveries.inc({ result: 'failed' });
      this.ctx.logger.warn({ delivery: d.id, endpoint: endpoint.name, event: d.eventType, attempts: attempt, error }, 'webhook delivery failed for good');
    } else {
      this.queue.attemptFailed(d.id, status, error, now + backoff);
      this.ctx.metrics.webhookDeliveries.inc({ result: 'retry' });
      this.ctx.logger.info({ delivery: d.id, endpoint: endpoint.name, event: d.eventType, attempt, error }, 'webhook delivery failed; will retry');
    }
  }
}
