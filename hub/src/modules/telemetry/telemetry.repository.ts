/**
 * Telemetry summaries (table owned by the telemetry module), stored once per (device, seq):
 * agents resend after reconnects and restarts, and a duplicate must change nothing.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { TelemetryT } from '@cairn/shared';

const MIGRATIONS = [
  `CREATE TABLE telemetry (
     device_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     body TEXT NOT NULL,
     PRIMARY KEY (device_id, seq)
   ) WITHOUT ROWID;
   CREATE INDEX telemetry_by_time ON telemetry (device_id, ts);`,
];

export class TelemetryRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'telemetry', MIGRATIONS);
  }

  /** Returns false when (device, seq) was already stored. */
  insert(deviceId: string, t: TelemetryT, now: number): boolean {
    return (
      this.db.prepare('INSERT INTO telemetry (device_id, seq, ts, received_at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING').run(deviceId, t.seq, t.ts, now, JSON.stringify(t)).changes > 0
    );
  }

  /** Summaries of one device with from <= ts < to, oldest first, at most `limit` (the newest ones). */
  range(deviceId: string, from: number, to: number, limit: number): TelemetryT[] {
    const rows = this.db.prepare('SELECT body FROM telemetry WHERE device_id = ? AND ts >= ? AND ts < ? ORDER BY ts DESC, seq DESC LIMIT ?').all(deviceId, from, to, limit) as { body: string }[];
    return rows.map((r) => JSON.parse(r.body) as TelemetryT).reverse();
  }
}
