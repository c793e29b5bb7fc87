/**
 * The durable outbox (DESIGN §4): telemetry summaries and events go through a bounded SQLite
 * table (`<stateDir>/outbox.db`) before they reach the broker, so neither a broker outage nor
 * an agent restart loses them.
 *
 * Contracts:
 * - `enqueue` validates the payload against its schema and makes it durable (synchronous=FULL)
 *   before it returns; a payload that fails validation is refused with the reason.
 * - Records are published at QoS 1 in insertion order while connected, at most `window` in
 *   flight, and deleted only on PUBACK. After a disconnect or a restart whatever was not
 *   acknowledged is published again, oldest first. The hub dedupes on the record's own id
 *   (telemetry `seq`, event `eventId`), so a record published twice is stored once.
 * - The bound counts records. When an enqueue would pass it, the oldest telemetry is deleted
 *   (never events) and counted in `dropped`, which persists across restarts and is reported.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { existsSync, renameSync } from 'node:fs';
import { encodePayload, type PayloadOf, type TelemetryT } from '@cairn/shared';
import type { Connection } from './connection.js';

export type OutboxKind = 'telemetry' | 'events';

export interface OutboxOptions {
  stateDir: string;
  /**
   * A bound above every telemetry seq this device has used (state.json's ceiling). A new
   * outbox.db starts its counter at max(ceiling, clock): the hub may hold seqs that a lost
   * database had already used.
   */
  telemetrySeqCeiling: () => number;
  clock: () => number;
  connection: Connection;
  logger: Logger;
  /** Records kept at most before the oldest telemetry is dropped; default 10,000. */
  maxRecords?: number;
  /** Records published and not yet acknowledged at once; default 16. */
  window?: number;
}

export interface OutboxStats {
  depth: number;
  inFlight: number;
  /** Telemetry records dropped by the bound, ever. */
  dropped: number;
  published: number;
  /** The seq the next telemetry summary takes. */
  nextTelemetrySeq: number;
}

interface Row {
  id: number;
  kind: OutboxKind;
  payload: Buffer;
}

export const OUTBOX_FILE = 'outbox.db';

export class Outbox {
  private db: Database.Database | null = null;
  private readonly inFlight = new Set<number>();
  /** Bumped on every disconnect: acknowledgements of an older connection are still honoured, its sends are not retried by it. */
  private generation = 0;
  private published = 0;
  private pumping = false;
  /** Publishes refused in a row while connected; each waits longer before the record is retried (no spin). */
  private refusals = 0;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly maxRecords: number;
  private readonly window: number;
  private statements!: {
    insert: Database.Statement<[string, string, Buffer, number]>;
    count: Database.Statement<[], { n: number }>;
    oldestTelemetry: Database.Statement<[number], { id: number }>;
    remove: Database.Statement<[number]>;
    next: Database.Statement<[number, number], Row>;
    getDropped: Database.Statement<[], { value: number } | undefined>;
    addDropped: Database.Statement<[number]>;
    nextSeq: Database.Statement<[], { value: number }>;
    setNextSeq: Database.Statement<[number]>;
  };

  constructor(private readonly options: OutboxOptions) {
    this.maxRecords = options.maxRecords ?? 10_000;
    this.window = options.window ?? 16;
  }

  start(): void {
    const path = join(this.options.stateDir, OUTBOX_FILE);
    let fresh = !existsSync(path);
    let db: Database.Database;
    try {
      db = openOutbox(path);
    } catch (err) {
      // A damaged file must not keep the agent from serving: keep it aside, start a new one.
      const aside = `${path}.corrupt-${this.options.clock()}`;
      for (const suffix of ['', '-wal', '-shm']) if (existsSync(path + suffix)) renameSync(path + suffix, aside + suffix);
      this.options.logger.error({ err, keptAs: aside }, 'outbox.db is unusable; starting a new one (records it held are not sent)');
      db = openOutbox(path);
      fresh = true;
    }
    this.statements = {
      insert: db.prepare('INSERT INTO outbox (kind, dedupe, payload, created_at) VALUES (?, ?, ?, ?)'),
      count: db.prepare('SELECT count(*) AS n FROM outbox'),
      oldestTelemetry: db.prepare("SELECT id FROM outbox WHERE kind = 'telemetry' ORDER BY id LIMIT ?"),
      remove: db.prepare('DELETE FROM outbox WHERE id = ?'),
      next: db.prepare('SELECT id, kind, payload FROM outbox WHERE id > ? ORDER BY id LIMIT ?'),
      getDropped: db.prepare("SELECT value FROM outbox_meta WHERE key = 'dropped'"),
      addDropped: db.prepare("UPDATE outbox_meta SET value = value + ? WHERE key = 'dropped'"),
      nextSeq: db.prepare("SELECT value FROM outbox_meta WHERE key = 'next_telemetry_seq'"),
      setNextSeq: db.prepare("UPDATE outbox_meta SET value = ? WHERE key = 'next_telemetry_seq'"),
    };
    // Only a new database needs a starting point; an existing one holds the counter itself.
    if (fresh) this.statements.setNextSeq.run(Math.max(this.options.telemetrySeqCeiling(), Math.floor(this.options.clock())));
    this.db = db;
    this.options.connection.on('connect', this.onConnect);
    this.options.connection.on('disconnect', this.onDisconnect);
  }

  stop(): void {
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    this.options.connection.off('connect', this.onConnect);
    this.options.connection.off('disconnect', this.onDisconnect);
    this.db?.close();
    this.db = null;
    this.inFlight.clear();
  }

  /** Makes an event durable and schedules its publication. Throws on an invalid payload or a closed outbox. */
  enqueueEvent(event: PayloadOf<'events'>): void {
    const payload = encodePayload('events', event);
    this.requireDb().transaction(() => this.insert('events', event.eventId, payload))();
    this.pump();
  }

  /** Takes the next telemetry seq and stores the summary under it, in one transaction. */
  enqueueTelemetry(summary: Omit<TelemetryT, 'seq'>): TelemetryT {
    const db = this.requireDb();
    const stored = db.transaction(() => {
      const seq = this.statements.nextSeq.get()!.value;
      const value: TelemetryT = { seq, ...summary };
      this.insert('telemetry', String(seq), encodePayload('telemetry', value));
      this.statements.setNextSeq.run(seq + 1);
      return value;
    })();
    this.pump();
    return stored;
  }

  /** Inside a transaction: makes room under the bound (oldest telemetry first), then inserts. */
  private insert(kind: OutboxKind, dedupe: string, payload: Buffer): void {
    const { insert, count, oldestTelemetry, remove, addDropped } = this.statements;
    const over = count.get()!.n + 1 - this.maxRecords;
    if (over > 0) {
      const victims = oldestTelemetry.all(over).filter((r) => !this.inFlight.has(r.id));
      for (const victim of victims) remove.run(victim.id);
      if (victims.length > 0) addDropped.run(victims.length);
    }
    insert.run(kind, dedupe, payload, this.options.clock());
  }

  get stats(): OutboxStats {
    if (!this.db) return { depth: 0, inFlight: 0, dropped: 0, published: this.published, nextTelemetrySeq: 0 };
    const { count, getDropped, nextSeq } = this.statements;
    return { depth: count.get()!.n, inFlight: this.inFlight.size, dropped: getDropped.get()?.value ?? 0, published: this.published, nextTelemetrySeq: nextSeq.get()!.value };
  }

  /** Resolves once nothing is left to publish, or after `timeoutMs` (used by a graceful stop). */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.db && this.statements.count.get()!.n > 0) {
      if (Date.now() >= deadline || !this.options.connection.connected) return false;
      this.pump();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return true;
  }

  private readonly onConnect = (): void => {
    this.pump();
  };

  private readonly onDisconnect = (): void => {
    // Unacknowledged records go out again after the next connect, oldest first.
    this.generation++;
    this.inFlight.clear();
  };

  /** Publishes the oldest records not in flight, up to the window. */
  private pump(): void {
    if (this.pumping || !this.db || !this.options.connection.connected) return;
    this.pumping = true;
    try {
      const free = this.window - this.inFlight.size;
      if (free <= 0) return;
      const after = this.inFlight.size > 0 ? Math.max(...this.inFlight) : 0;
      const generation = this.generation;
      for (const row of this.statements.next.all(after, free)) {
        this.inFlight.add(row.id);
        this.options.connection.publishEncoded(row.kind, row.payload).then(
          () => {
            this.statements.remove.run(row.id);
            this.published++;
            this.refusals = 0;
            this.settle(row.id, generation);
          },
          (err: Error) => {
            // A publish refused while the connection stays up (a client-side refusal) would be
            // retried at once, forever: the record waits, longer after each refusal in a row
            // (50 ms doubling to 30 s), or until the next connect sends everything again.
            const delay = Math.min(30_000, 50 * 2 ** Math.min(this.refusals++, 10));
            this.options.logger.debug({ err, id: row.id, retryInMs: delay }, 'outbox record not acknowledged; it is sent again later or after the next connect');
            const timer = setTimeout(() => {
              this.retryTimers.delete(timer);
              this.settle(row.id, generation);
            }, delay);
            timer.unref();
            this.retryTimers.add(timer);
          },
        );
      }
    } catch (err) {
      this.options.logger.error({ err }, 'the outbox could not publish');
    } finally {
      this.pumping = false;
    }
  }

  private settle(id: number, generation: number): void {
    if (!this.db) return;
    if (generation === this.generation) this.inFlight.delete(id);
    this.pump();
  }

  private requireDb(): Database.Database {
    if (!this.db) throw new Error('the outbox is not started');
    return this.db;
  }
}

/** Opens (or creates) the outbox database and its tables; throws on a file that is not one. */
function openOutbox(path: string): Database.Database {
  const db = new Database(path);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('telemetry', 'events')),
        dedupe TEXT NOT NULL,
        payload BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('dropped', 0);
      INSERT OR IGNORE INTO outbox_meta (key, value) VALUES ('next_telemetry_seq', 0);
    `);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}
