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
  memoizeStatements(db);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    module TEXT NOT NULL, version INTEGER NOT NULL, applied_at INTEGER NOT NULL,
    PRIMARY KEY (module, version))`);
  return db;
}

/** Beyond this many distinct SQL texts (dynamic SQL such as IN lists), the memo starts over. */
const MAX_MEMOIZED_STATEMENTS = 2000;

/**
 * better-sqlite3 compiles SQL at every `prepare` (tens of microseconds; at 10,000 devices per
 * deployment the compiling cost more than the queries), and repositories prepare inline at each
 * use, which keeps the SQL next to the code that reads it. So the database memoizes statements
 * by their SQL text. Safe because a statement is free again once its call returned — only an
 * unfinished `iterate()` holds one (audit-verify's loop, which never prepares its own SQL again)
 * — and because SQLite recompiles a statement whose tables a migration changed. A statement's
 * mode (`pluck`, `raw`, `expand`, `safeIntegers`) sticks to its SQL text: code that sets one must
 * be the only user of that text.
 */
function memoizeStatements(db: Db): void {
  const compile = db.prepare.bind(db);
  const memo = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let statement = memo.get(sql);
    if (!statement) {
      if (memo.size >= MAX_MEMOIZED_STATEMENTS) memo.clear();
      statement = compile(sql);
      memo.set(sql, statement);
    }
    return statement;
  }) as Db['prepare'];
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

/**
 * A `WHERE` clause of column equalities for the filters that are set (undefined ones are left
 * out), with its arguments; an empty string when none is. Column names come from code, never
 * from a request.
 */
export function whereEqual(filters: Record<string, string | number | undefined>): { where: string; args: (string | number)[] } {
  const set = Object.entries(filters).filter((e): e is [string, string | number] => e[1] !== undefined);
  return { where: set.length ? `WHERE ${set.map(([column]) => `${column} = ?`).join(' AND ')}` : '', args: set.map(([, v]) => v) };
}
