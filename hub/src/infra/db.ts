/**
 * The hub's SQLite database (better-sqlite3, WAL mode). Each module owns its tables and brings
 * its own numbered migrations; `migrate(module, steps)` applies the steps not yet applied, each
 * in a transaction, and records them in `schema_migrations`. Steps are append-only: never edit
 * a shipped step, add a new one.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

export function openDatabase(file: string): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL'); // durable across process crashes in WAL mode; fsync at checkpoints
  // Telemetry ingest writes index pages all over the file at fleet rates: a larger page cache,
  // and a checkpoint every ~40 MB of WAL instead of every 4 MB (each one syncs and rewrites the
  // pages), doubled the stored summaries per second on the reference machine (BENCHMARKS.md).
  db.pragma('cache_size = -65536');
  db.pragma('wal_autocheckpoint = 10000');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (module, version))`);
  return db;
}

export function migrate(db: Db, module: string, steps: readonly string[]): void {
  const current = (db.prepare('SELECT MAX(version) AS v FROM schema_migrations WHERE module = ?').get(module) as { v: number | null }).v ?? 0;
  if (current > steps.length) {
    throw new Error(`database has ${module} schema version ${current}, newer than this hub knows (${steps.length}); refusing to run an older hub on it`);
  }
  const record = db.prepare('INSERT INTO schema_migrations (module, version, applied_at) VALUES (?, ?, ?)');
  for (let version = current + 1; version <= steps.length; version++) {
    db.transaction(() => {
      db.exec(steps[version - 1]!);
      record.run(module, version, Date.now());
    })();
  }
}
