/**
 * Alerts, work orders and the per-device state their rules keep between messages (tables owned
 * by the alerts module). Deduplication is a database invariant: a partial unique index allows at
 * most one unresolved alert per (device, cause, key) — the key is the fault class for
 * maintenance alerts and empty otherwise.
 *
 * Telemetry reaches the rules at fleet ingest rates, so the hot path touches memory only:
 * statements are prepared once, the drift hysteresis state is cached (open/closed written at
 * once, streaks flushed periodically), and `hasUnresolved` answers from an
 * index of unresolved (device, cause, key) kept with every insert and resolve.
 */
import { randomBytes } from 'node:crypto';
import type { Db } from '../../infra/db.js';
import { migrate, whereEqual } from '../../infra/db.js';
import { CLOSED_DRIFT_STATE, sameDriftState, type DriftHysteresisState } from './drift-hysteresis.js';

const MIGRATIONS = [
  `CREATE TABLE alerts (
     id TEXT PRIMARY KEY,
     device_id TEXT NOT NULL,
     cause TEXT NOT NULL,
     dedup_key TEXT NOT NULL DEFAULT '',
     severity TEXT NOT NULL,
     state TEXT NOT NULL,
     summary TEXT NOT NULL,
     details TEXT NOT NULL,
     model TEXT,
     opened_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     occurrences INTEGER NOT NULL DEFAULT 1,
     acknowledged_at INTEGER,
     acknowledged_by TEXT,
     resolved_at INTEGER,
     resolved_by TEXT,
     work_order_id TEXT
   );
   CREATE UNIQUE INDEX alerts_one_unresolved ON alerts (device_id, cause, dedup_key) WHERE state != 'resolved';
   CREATE INDEX alerts_by_time ON alerts (opened_at);
   CREATE INDEX alerts_by_device ON alerts (device_id, cause, dedup_key, opened_at);
   CREATE TABLE work_orders (
     id TEXT PRIMARY KEY,
     alert_id TEXT NOT NULL REFERENCES alerts (id),
     device_id TEXT NOT NULL,
     machine TEXT NOT NULL,
     fault_class TEXT NOT NULL,
     confidence REAL NOT NULL,
     evidence TEXT NOT NULL,
     model TEXT NOT NULL,
     state TEXT NOT NULL,
     opened_at INTEGER NOT NULL,
     acknowledged_at INTEGER,
     acknowledged_by TEXT,
     done_at INTEGER,
     done_by TEXT
   );
   CREATE INDEX work_orders_by_time ON work_orders (opened_at);
   CREATE TABLE alert_drift_state (
     device_id TEXT PRIMARY KEY,
     open INTEGER NOT NULL,
     alert_streak INTEGER NOT NULL,
     ok_streak INTEGER NOT NULL
   );
   CREATE TABLE alert_ingest_interval (
     device_id TEXT PRIMARY KEY,
     interval_ms INTEGER NOT NULL
   );`,
];

export const ALERT_CAUSES = ['drift', 'offline', 'rollback', 'ingest_gap', 'maintenance'] as const;
export type AlertCause = (typeof ALERT_CAUSES)[number];
export const ALERT_STATES = ['open', 'acknowledged', 'resolved'] as const;
export type AlertState = (typeof ALERT_STATES)[number];
export type Severity = 'warning' | 'critical';
export const WORK_ORDER_STATES = ['open', 'acknowledged', 'done'] as const;
export type WorkOrderState = (typeof WORK_ORDER_STATES)[number];

export interface ModelRef {
  name: string;
  version: string;
}

export interface Alert {
  id: string;
  deviceId: string;
  cause: AlertCause;
  key: string;
  severity: Severity;
  state: AlertState;
  summary: string;
  details: Record<string, unknown>;
  model: ModelRef | null;
  openedAt: number;
  lastSeenAt: number;
  occurrences: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  resolvedBy: string | null;
  workOrderId: string | null;
}

export interface WorkOrder {
  id: string;
  alertId: string;
  deviceId: string;
  machine: string;
  faultClass: string;
  confidence: number;
  evidence: { rule: string; windows: { ts: number; probability: number }[] };
  model: ModelRef & { digest: string };
  state: WorkOrderState;
  openedAt: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  doneAt: number | null;
  doneBy: string | null;
}

/** What a rule raises; the repository adds ids, state and times. */
export interface AlertInput {
  deviceId: string;
  cause: AlertCause;
  key?: string;
  severity: Severity;
  summary: string;
  details: Record<string, unknown>;
  model: ModelRef | null;
}


interface AlertRow {
  id: string;
  device_id: string;
  cause: AlertCause;
  dedup_key: string;
  severity: Severity;
  state: AlertState;
  summary: string;
  details: string;
  model: string | null;
  opened_at: number;
  last_seen_at: number;
  occurrences: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  resolved_at: number | null;
  resolved_by: string | null;
  work_order_id: string | null;
}

interface WorkOrderRow {
  id: string;
  alert_id: string;
  device_id: string;
  machine: string;
  fault_class: string;
  confidence: number;
  evidence: string;
  model: string;
  state: WorkOrderState;
  opened_at: number;
  acknowledged_at: number | null;
  acknowledged_by: string | null;
  done_at: number | null;
  done_by: string | null;
}

const toAlert = (r: AlertRow): Alert => ({
  id: r.id,
  deviceId: r.device_id,
  cause: r.cause,
  key: r.dedup_key,
  severity: r.severity,
  state: r.state,
  summary: r.summary,
  details: JSON.parse(r.details) as Record<string, unknown>,
  model: r.model ? (JSON.parse(r.model) as ModelRef) : null,
  openedAt: r.opened_at,
  lastSeenAt: r.last_seen_at,
  occurrences: r.occurrences,
  acknowledgedAt: r.acknowledged_at,
  acknowledgedBy: r.acknowledged_by,
  resolvedAt: r.resolved_at,
  resolvedBy: r.resolved_by,
  workOrderId: r.work_order_id,
});

const toWorkOrder = (r: WorkOrderRow): WorkOrder => ({
  id: r.id,
  alertId: r.alert_id,
  deviceId: r.device_id,
  machine: r.machine,
  faultClass: r.fault_class,
  confidence: r.confidence,
  evidence: JSON.parse(r.evidence) as WorkOrder['evidence'],
  model: JSON.parse(r.model) as WorkOrder['model'],
  state: r.state,
  openedAt: r.opened_at,
  acknowledgedAt: r.acknowledged_at,
  acknowledgedBy: r.acknowledged_by,
  doneAt: r.done_at,
  doneBy: r.done_by,
});

/** Short random ids with a kind prefix (`al_…`, `wo_…`), safe in URLs and CLI arguments. */
const newId = (prefix: string) => `${prefix}_${randomBytes(8).toString('hex')}`;

export interface AlertFilter {
  state?: AlertState | undefined;
  deviceId?: string | undefined;
  cause?: AlertCause | undefined;
  limit: number;
}

const indexKey = (deviceId: string, cause: AlertCause, key: string) => `${deviceId}\u0000${cause}\u0000${key}`;

export class AlertsRepository {
  private readonly unresolvedIndex = new Set<string>();
  private readonly drift = new Map<string, DriftHysteresisState>();
  private readonly dirtyDrift = new Set<string>();

  constructor(private readonly db: Db) {
    migrate(db, 'alerts', MIGRATIONS);
    this.resync();
  }

  /**
   * Reloads the in-memory index and hysteresis cache from the tables: at start, and after a
   * transaction rolled back (its changes to memory did not happen). Streak progress not yet
   * flushed is dropped, as in a crash.
   */
  resync(): void {
    this.unresolvedIndex.clear();
    this.drift.clear();
    this.dirtyDrift.clear();
    for (const r of this.db.prepare("SELECT device_id, cause, dedup_key FROM alerts WHERE state != 'resolved'").all() as { device_id: string; cause: AlertCause; dedup_key: string }[]) {
      this.unresolvedIndex.add(indexKey(r.device_id, r.cause, r.dedup_key));
    }
    for (const r of this.db.prepare('SELECT device_id, open, alert_streak, ok_streak FROM alert_drift_state').all() as { device_id: string; open: number; alert_streak: number; ok_streak: number }[]) {
      this.drift.set(r.device_id, { open: r.open === 1, alertStreak: r.alert_streak, okStreak: r.ok_streak });
    }
  }

  /** Whether (device, cause, key) has an unresolved alert, from memory. */
  hasUnresolved(deviceId: string, cause: AlertCause, key = ''): boolean {
    return this.unresolvedIndex.has(indexKey(deviceId, cause, key));
  }

  get(id: string): Alert | null {
    const row = this.db.prepare('SELECT * FROM alerts WHERE id = ?').get(id) as AlertRow | undefined;
    return row ? toAlert(row) : null;
  }

  /** The unresolved alert of (device, cause, key), if any (there is at most one). */
  unresolved(deviceId: string, cause: AlertCause, key = ''): Alert | null {
    const row = this.db.prepare("SELECT * FROM alerts WHERE device_id = ? AND cause = ? AND dedup_key = ? AND state != 'resolved'").get(deviceId, cause, key) as AlertRow | undefined;
    return row ? toAlert(row) : null;
  }

  /** The newest alert of (device, cause, key), whatever its state. */
  latest(deviceId: string, cause: AlertCause, key = ''): Alert | null {
    const row = this.db.prepare('SELECT * FROM alerts WHERE device_id = ? AND cause = ? AND dedup_key = ? ORDER BY opened_at DESC, rowid DESC LIMIT 1').get(deviceId, cause, key) as AlertRow | undefined;
    return row ? toAlert(row) : null;
  }

  /** Every unresolved alert of one cause (the clock-driven checks walk them). */
  unresolvedOf(cause: AlertCause): Alert[] {
    return (this.db.prepare("SELECT * FROM alerts WHERE cause = ? AND state != 'resolved'").all(cause) as AlertRow[]).map(toAlert);
  }

  list(filter: AlertFilter): Alert[] {
    const { where, args } = whereEqual({ state: filter.state, device_id: filter.deviceId, cause: filter.cause });
    return (this.db.prepare(`SELECT * FROM alerts ${where} ORDER BY opened_at DESC, rowid DESC LIMIT ?`).all(...args, filter.limit) as AlertRow[]).map(toAlert);
  }

  insert(input: AlertInput, now: number): Alert {
    const id = newId('al');
    this.db.prepare(
        `INSERT INTO alerts (id, device_id, cause, dedup_key, severity, state, summary, details, model, opened_at, last_seen_at)
         VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)`,
      )
      .run(id, input.deviceId, input.cause, input.key ?? '', input.severity, input.summary, JSON.stringify(input.details), input.model ? JSON.stringify(input.model) : null, now, now);
    this.unresolvedIndex.add(indexKey(input.deviceId, input.cause, input.key ?? ''));
    return this.get(id)!;
  }

  /** A recurrence of an unresolved alert: one more occurrence, seen now, with the newest summary and details. */
  recur(id: string, input: AlertInput, now: number): Alert {
    this.db.prepare('UPDATE alerts SET occurrences = occurrences + 1, last_seen_at = ?, summary = ?, details = ?, model = COALESCE(?, model) WHERE id = ?')
      .run(now, input.summary, JSON.stringify(input.details), input.model ? JSON.stringify(input.model) : null, id);
    return this.get(id)!;
  }

  acknowledge(id: string, by: string, now: number): void {
    this.db.prepare("UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE id = ?").run(now, by, id);
  }

  resolve(alert: Alert, by: string, now: number): void {
    this.db.prepare("UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_by = ? WHERE id = ?").run(now, by, alert.id);
    this.unresolvedIndex.delete(indexKey(alert.deviceId, alert.cause, alert.key));
  }

  linkWorkOrder(alertId: string, workOrderId: string): void {
    this.db.prepare('UPDATE alerts SET work_order_id = ? WHERE id = ?').run(workOrderId, alertId);
  }

  countUnresolvedByCause(): Map<AlertCause, number> {
    const rows = this.db.prepare("SELECT cause, count(*) AS n FROM alerts WHERE state != 'resolved' GROUP BY cause").all() as { cause: AlertCause; n: number }[];
    return new Map(rows.map((r) => [r.cause, r.n]));
  }

  /** For the fleet summary: unresolved alerts, devices with at least one, and work orders not done. */
  summary(): { openAlerts: number; alertingDevices: number; openWorkOrders: number } {
    const alerts = this.db.prepare("SELECT count(*) AS n, count(DISTINCT device_id) AS d FROM alerts WHERE state != 'resolved'").get() as { n: number; d: number };
    const workOrders = this.db.prepare("SELECT count(*) AS n FROM work_orders WHERE state != 'done'").get() as { n: number };
    return { openAlerts: alerts.n, alertingDevices: alerts.d, openWorkOrders: workOrders.n };
  }

  // Work orders.

  getWorkOrder(id: string): WorkOrder | null {
    const row = this.db.prepare('SELECT * FROM work_orders WHERE id = ?').get(id) as WorkOrderRow | undefined;
    return row ? toWorkOrder(row) : null;
  }

  listWorkOrders(filter: { state?: WorkOrderState | undefined; deviceId?: string | undefined; limit: number }): WorkOrder[] {
    const { where, args } = whereEqual({ state: filter.state, device_id: filter.deviceId });
    return (this.db.prepare(`SELECT * FROM work_orders ${where} ORDER BY opened_at DESC, rowid DESC LIMIT ?`).all(...args, filter.limit) as WorkOrderRow[]).map(toWorkOrder);
  }

  insertWorkOrder(input: Omit<WorkOrder, 'id' | 'state' | 'openedAt' | 'acknowledgedAt' | 'acknowledgedBy' | 'doneAt' | 'doneBy'>, now: number): WorkOrder {
    const id = newId('wo');
    this.db.prepare(
        `INSERT INTO work_orders (id, alert_id, device_id, machine, fault_class, confidence, evidence, model, state, opened_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'open', ?)`,
      )
      .run(id, input.alertId, input.deviceId, input.machine, input.faultClass, input.confidence, JSON.stringify(input.evidence), JSON.stringify(input.model), now);
    return this.getWorkOrder(id)!;
  }

  acknowledgeWorkOrder(id: string, by: string, now: number): void {
    this.db.prepare("UPDATE work_orders SET state = 'acknowledged', acknowledged_at = ?, acknowledged_by = ? WHERE id = ?").run(now, by, id);
  }

  finishWorkOrder(id: string, by: string, now: number): void {
    this.db.prepare("UPDATE work_orders SET state = 'done', done_at = ?, done_by = ? WHERE id = ?").run(now, by, id);
  }

  // Rule state kept between messages.

  driftState(deviceId: string): DriftHysteresisState | null {
    return this.drift.get(deviceId) ?? null;
  }

  /**
   * Records a device's hysteresis state. An open/closed change is written at once (in the
   * caller's transaction, with the alert it opens or resolves); a streak that merely moves is
   * kept in memory until `flushDriftStates` (every check and at close), so a noisy fleet does not
   * cost a commit per summary. A crash loses at most one check period of streak progress: an
   * alert then opens or resolves that many summaries later, never wrongly.
   */
  saveDriftState(deviceId: string, next: DriftHysteresisState): void {
    const current = this.drift.get(deviceId) ?? CLOSED_DRIFT_STATE;
    if (sameDriftState(current, next)) return;
    this.drift.set(deviceId, { ...next });
    if (current.open === next.open) {
      this.dirtyDrift.add(deviceId);
      return;
    }
    this.writeDriftState(deviceId, next);
    this.dirtyDrift.delete(deviceId);
  }

  /** Writes the streaks that moved since the last flush, in one transaction. */
  flushDriftStates(): void {
    if (this.dirtyDrift.size === 0) return;
    this.db.transaction(() => {
      for (const deviceId of this.dirtyDrift) this.writeDriftState(deviceId, this.drift.get(deviceId)!);
    })();
    this.dirtyDrift.clear();
  }

  private writeDriftState(deviceId: string, s: DriftHysteresisState): void {
    this.db.prepare('INSERT INTO alert_drift_state (device_id, open, alert_streak, ok_streak) VALUES (?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET open = excluded.open, alert_streak = excluded.alert_streak, ok_streak = excluded.ok_streak').run(
      deviceId,
      s.open ? 1 : 0,
      s.alertStreak,
      s.okStreak,
    );
  }

  /** Each device's telemetry interval as last seen (the silence check's unit, kept across restarts). */
  ingestIntervals(): Map<string, number> {
    const rows = this.db.prepare('SELECT device_id, interval_ms FROM alert_ingest_interval').all() as { device_id: string; interval_ms: number }[];
    return new Map(rows.map((r) => [r.device_id, r.interval_ms]));
  }

  saveIngestInterval(deviceId: string, intervalMs: number): void {
    this.db.prepare('INSERT INTO alert_ingest_interval (device_id, interval_ms) VALUES (?, ?) ON CONFLICT (device_id) DO UPDATE SET interval_ms = excluded.interval_ms').run(deviceId, intervalMs);
  }
}
