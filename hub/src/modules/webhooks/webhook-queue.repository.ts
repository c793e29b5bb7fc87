/**
 * The webhook delivery queue (table owned by the webhooks module): one row per event × endpoint,
 * written when the event happens and kept until delivered (pruned after a week) or failed
 * (kept). A row is `pending` until a 2xx answer (`delivered`) or its last attempt (`failed`).
 * Starting an attempt counts it and moves `next_attempt_at` past the attempt's timeout and
 * backoff first (a lease), so a delivery in flight when the hub dies is simply due again
 * later — at least once — and never due again while the attempt may still be running.
 */
import { randomUUID } from 'node:crypto';
import type { Db } from '../../infra/db.js';
import { migrate, whereEqual } from '../../infra/db.js';

const MIGRATIONS = [
  `CREATE TABLE webhook_deliveries (
     id TEXT PRIMARY KEY,
     event_id TEXT NOT NULL,
     endpoint TEXT NOT NULL,
     event_type TEXT NOT NULL,
     body TEXT NOT NULL,
     state TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     last_attempt_at INTEGER,
     last_status INTEGER,
     last_error TEXT,
     finished_at INTEGER
   );
   CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
   CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (created_at);`,
];

export const DELIVERY_STATES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface Delivery {
  id: string;
  eventId: string;
  endpoint: string;
  eventType: string;
  body: string;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  lastAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  finishedAt: number | null;
}

interface Row {
  id: string;
  event_id: string;
  endpoint: string;
  event_type: string;
  body: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: number;
  created_at: number;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  finished_at: number | null;
}

const toDelivery = (r: Row): Delivery => ({
  id: r.id,
  eventId: r.event_id,
  endpoint: r.endpoint,
  eventType: r.event_type,
  body: r.body,
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at,
  createdAt: r.created_at,
  lastAttemptAt: r.last_attempt_at,
  lastStatus: r.last_status,
  lastError: r.last_error,
  finishedAt: r.finished_at,
});

/** Delivered rows are kept this long for `GET /api/v1/webhooks`, then pruned. */
const DELIVERED_RETENTION_MS = 7 * 24 * 3600_000;

export class WebhookQueueRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'webhooks', MIGRATIONS);
  }

  /** Queues one event for each endpoint, in one transaction. */
  enqueue(event: { id: string; type: string; body: string }, endpoints: readonly string[], now: number): void {
    const insert = this.db.prepare("INSERT INTO webhook_deliveries (id, event_id, endpoint, event_type, body, state, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)");
    this.db.transaction(() => {
      for (const endpoint of endpoints) insert.run(randomUUID(), event.id, endpoint, event.type, event.body, now, now);
    })();
  }

  /** Pending deliveries due at `now`, oldest first. */
  due(now: number, limit: number): Delivery[] {
    return (this.db.prepare("SELECT * FROM webhook_deliveries WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at, created_at LIMIT ?").all(now, limit) as Row[]).map(toDelivery);
  }

  /**
   * Counts the attempt and leases the row: it is due again at `leaseUntil` should this attempt
   * never finish (a crash). The last status and error describe finished attempts only, so they
   * are cleared while this one is in flight.
   */
  beginAttempt(id: string, now: number, leaseUntil: number): void {
    this.db.prepare('UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = ?, next_attempt_at = ?, last_status = NULL, last_error = NULL WHERE id = ?').run(now, leaseUntil, id);
  }

  delivered(id: string, status: number, now: number): void {
    this.db.prepare("UPDATE webhook_deliveries SET state = 'delivered', last_status = ?, last_error = NULL, finished_at = ? WHERE id = ?").run(status, now, id);
  }

  /** Records why an attempt failed; the row stays pending, due again at `retryAt`. */
  attemptFailed(id: string, status: number | null, error: string, retryAt: number): void {
    this.db.prepare('UPDATE webhook_deliveries SET last_status = ?, last_error = ?, next_attempt_at = ? WHERE id = ?').run(status, error, retryAt, id);
  }

  failed(id: string, status: number | null, error: string, now: number): void {
    this.db.prepare("UPDATE webhook_deliveries SET state = 'failed', last_status = ?, last_error = ?, finished_at = ? WHERE id = ?").run(status, error, now, id);
  }

  counts(): Map<string, Record<DeliveryState, number>> {
    const rows = this.db.prepare('SELECT endpoint, state, count(*) AS n FROM webhook_deliveries GROUP BY endpoint, state').all() as { endpoint: string; state: DeliveryState; n: number }[];
    const out = new Map<string, Record<DeliveryState, number>>();
    for (const r of rows) {
      const c = out.get(r.endpoint) ?? { pending: 0, delivered: 0, failed: 0 };
      c[r.state] = r.n;
      out.set(r.endpoint, c);
    }
    return out;
  }

  pendingCount(): number {
    return (this.db.prepare("SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending'").get() as { n: number }).n;
  }

  recent(filter: { state?: DeliveryState | undefined; endpoint?: string | undefined; limit: number }): Delivery[] {
    const { where, args } = whereEqual({ state: filter.state, endpoint: filter.endpoint });
    return (this.db.prepare(`SELECT * FROM webhook_deliveries ${where} ORDER BY created_at DESC, rowid DESC LIMIT ?`).all(...args, filter.limit) as Row[]).map(toDelivery);
  }

  pruneDelivered(now: number): number {
    return this.db.prepare("DELETE FROM webhook_deliveries WHERE state = 'delivered' AND finished_at < ?").run(now - DELIVERED_RETENTION_MS).changes;
  }
}
