/**
 * Devices and their events (tables owned by the devices module). A device row appears when the
 * device enrolls (modules/enrollment) or, at the latest, with its first birth message.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { DeviceEventT, LabelsT, ReportedT } from '@cairn/shared';

const MIGRATIONS = [
  `CREATE TABLE devices (
     id TEXT PRIMARY KEY,
     online INTEGER NOT NULL DEFAULT 0,
     epoch INTEGER NOT NULL DEFAULT -1,
     agent_version TEXT,
     first_seen_at INTEGER NOT NULL,
     last_seen_at INTEGER,
     reported_labels TEXT NOT NULL DEFAULT '{}',
     operator_labels TEXT NOT NULL DEFAULT '{}',
     reported TEXT,
     reported_at INTEGER
   );
   CREATE TABLE device_events (
     device_id TEXT NOT NULL,
     event_id TEXT NOT NULL,
     ts INTEGER NOT NULL,
     type TEXT NOT NULL,
     body TEXT NOT NULL,
     received_at INTEGER NOT NULL,
     PRIMARY KEY (device_id, event_id)
   );
   CREATE INDEX device_events_by_time ON device_events (device_id, ts);`,
];

interface DeviceRow {
  id: string;
  online: number;
  epoch: number;
  agent_version: string | null;
  first_seen_at: number;
  last_seen_at: number | null;
  reported_labels: string;
  operator_labels: string;
  reported: string | null;
}

export interface Device {
  id: string;
  online: boolean;
  epoch: number;
  agentVersion: string | null;
  firstSeenAt: number;
  lastSeenAt: number | null;
  /** Effective labels: what the agent reports, overridden by what operators set. */
  labels: Record<string, string>;
  reportedLabels: Record<string, string>;
  operatorLabels: Record<string, string>;
  reported: ReportedT | null;
}

export class DevicesRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'devices', MIGRATIONS);
  }

  private toDevice(row: DeviceRow): Device {
    const reportedLabels = JSON.parse(row.reported_labels) as Record<string, string>;
    const operatorLabels = JSON.parse(row.operator_labels) as Record<string, string>;
    return {
      id: row.id,
      online: row.online === 1,
      epoch: row.epoch,
      agentVersion: row.agent_version,
      firstSeenAt: row.first_seen_at,
      lastSeenAt: row.last_seen_at,
      labels: { ...reportedLabels, ...operatorLabels },
      reportedLabels,
      operatorLabels,
      reported: row.reported ? (JSON.parse(row.reported) as ReportedT) : null,
    };
  }

  get(id: string): Device | null {
    const row = this.db.prepare('SELECT * FROM devices WHERE id = ?').get(id) as DeviceRow | undefined;
    return row ? this.toDevice(row) : null;
  }

  list(): Device[] {
    return (this.db.prepare('SELECT * FROM devices ORDER BY id').all() as DeviceRow[]).map((r) => this.toDevice(r));
  }

  countOnline(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM devices WHERE online = 1').get() as { n: number }).n;
  }

  private ensure(id: string, now: number): void {
    this.db.prepare('INSERT INTO devices (id, first_seen_at) VALUES (?, ?) ON CONFLICT (id) DO NOTHING').run(id, now);
  }

  /** An enrolled device: its row exists from now on, with `labels` (from its enrollment token) merged into the operator labels. */
  register(id: string, labels: LabelsT, now: number): void {
    this.ensure(id, now);
    if (Object.keys(labels).length > 0) this.updateOperatorLabels(id, labels);
  }

  /**
   * Records a birth. Returns false when the birth is older than the epoch already seen (a
   * delayed retained message), which changes nothing.
   */
  markOnline(id: string, epoch: number, agentVersion: string, now: number): boolean {
    this.ensure(id, now);
    const result = this.db
      .prepare('UPDATE devices SET online = 1, epoch = ?, agent_version = ?, last_seen_at = ? WHERE id = ? AND epoch <= ?')
      .run(epoch, agentVersion, now, id, epoch);
    return result.changes > 0;
  }

  /** Records a Last Will or graceful offline; ignored when its epoch is older than the last birth. */
  markOffline(id: string, epoch: number, now: number): boolean {
    const result = this.db.prepare('UPDATE devices SET online = 0, last_seen_at = ? WHERE id = ? AND epoch <= ? AND online = 1').run(now, id, epoch);
    return result.changes > 0;
  }

  /**
   * Marks every device offline. The embedded broker keeps sessions in memory, so at start no
   * device is connected, and Wills of devices that died while the hub was down never come.
   */
  markAllOffline(): number {
    return this.db.prepare('UPDATE devices SET online = 0 WHERE online = 1').run().changes;
  }

  saveReported(id: string, reported: ReportedT, now: number): void {
    this.ensure(id, now);
    this.db
      .prepare('UPDATE devices SET reported = ?, reported_at = ?, reported_labels = ?, agent_version = ?, last_seen_at = ? WHERE id = ?')
      .run(JSON.stringify(reported), now, JSON.stringify(reported.labels), reported.agentVersion, now, id);
  }

  touch(id: string, now: number): void {
    this.db.prepare('UPDATE devices SET last_seen_at = ? WHERE id = ?').run(now, id);
  }

  /** Sets (string) or removes (null) operator labels. */
  updateOperatorLabels(id: string, changes: Record<string, string | null>): Device | null {
    return this.db.transaction(() => {
      const device = this.get(id);
      if (!device) return null;
      const labels: LabelsT = { ...device.operatorLabels };
      for (const [k, v] of Object.entries(changes)) {
        if (v === null) delete labels[k];
        else labels[k] = v;
      }
      this.db.prepare('UPDATE devices SET operator_labels = ? WHERE id = ?').run(JSON.stringify(labels), id);
      return this.get(id);
    })();
  }

  /** Stores an event once per (device, eventId); returns false for a duplicate delivery. */
  addEvent(id: string, event: DeviceEventT, now: number): boolean {
    this.ensure(id, now);
    const result = this.db
      .prepare('INSERT INTO device_events (device_id, event_id, ts, type, body, received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
      .run(id, event.eventId, event.ts, event.type, JSON.stringify(event), now);
    return result.changes > 0;
  }

  /** Events of one type a device sent with ts >= since (the quality gates count maintenance alerts). */
  countEvents(id: string, type: DeviceEventT['type'], since: number): number {
    return (this.db.prepare('SELECT count(*) AS n FROM device_events WHERE device_id = ? AND type = ? AND ts >= ?').get(id, type, since) as { n: number }).n;
  }

  events(id: string, limit: number): DeviceEventT[] {
    return (this.db.prepare('SELECT body FROM device_events WHERE device_id = ? ORDER BY ts DESC, received_at DESC LIMIT ?').all(id, limit) as { body: string }[]).map(
      (r) => JSON.parse(r.body) as DeviceEventT,
    );
  }
}
