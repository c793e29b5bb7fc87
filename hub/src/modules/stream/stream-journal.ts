/**
 * The live stream's journal (table owned by the stream module): every event that carries an id,
 * so a client reconnecting with Last-Event-ID gets exactly the events it missed, across
 * reconnects and hub restarts. Bounded by count and age (`prune`); what was pruned cannot be
 * replayed, and a client behind it is told to `reset`.
 *
 * Ids: `INTEGER PRIMARY KEY AUTOINCREMENT` never hands out an id twice, even after the newest rows
 * were pruned, so ids only grow, across restarts too. A new journal starts at a random id below
 * 2^50 (set in the migration, and kept in `stream_origin`), so an id remembered from another
 * hub's database — or from this database before it was deleted — almost surely falls outside
 * this journal's range [origin, head] and gets `reset` (`unknown_id`) rather than a wrong resume. Ids stay below 2^53: exact as JSON and JavaScript numbers.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';

const MIGRATIONS = [
  `CREATE TABLE stream_events (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL,
     event TEXT NOT NULL,
     data TEXT NOT NULL
   );
   CREATE INDEX stream_events_by_time ON stream_events (ts);
   INSERT INTO sqlite_sequence (name, seq) VALUES ('stream_events', random() & 1125899906842623);
   CREATE TABLE stream_origin (base INTEGER NOT NULL);
   INSERT INTO stream_origin (base) SELECT seq FROM sqlite_sequence WHERE name = 'stream_events';`,
];

export interface JournaledEvent {
  id: number;
  event: string;
  /** The event's JSON text, as sent. */
  data: string;
}

/** Where a client that gives a Last-Event-ID continues. */
export type ResumePoint =
  | { kind: 'replay' }
  /** `too_old`: events after the id were pruned; `unknown_id`: not an id this journal handed out (another database, or not an id at all). */
  | { kind: 'reset'; reason: 'too_old' | 'unknown_id' };

export class StreamJournal {
  private readonly insert;
  private readonly page;
  private readonly headQuery;
  private readonly oldestQuery;
  /** The head before the first event: ids at or after it are this journal's. */
  private readonly base: number;

  constructor(private readonly db: Db) {
    migrate(db, 'stream', MIGRATIONS);
    this.insert = db.prepare('INSERT INTO stream_events (ts, event, data) VALUES (?, ?, ?)');
    this.page = db.prepare('SELECT id, event, data FROM stream_events WHERE id > ? ORDER BY id LIMIT ?');
    this.headQuery = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'stream_events'").pluck();
    this.oldestQuery = db.prepare('SELECT MIN(id) FROM stream_events').pluck();
    this.base = db.prepare('SELECT base FROM stream_origin').pluck().get() as number;
  }

  /** Stores an event and returns its id, greater than every id handed out before. */
  append(event: string, data: string, now: number): number {
    return Number(this.insert.run(now, event, data).lastInsertRowid);
  }

  /** The newest id handed out (the journal's starting point while it is empty). */
  head(): number {
    return this.headQuery.get() as number;
  }

  /** The events after `id`, oldest first, at most `limit`. */
  after(id: number, limit: number): JournaledEvent[] {
    return this.page.all(id, limit) as JournaledEvent[];
  }

  /**
   * Whether a client that saw everything up to `lastEventId` can be brought up to date from the
   * journal. Rows are only ever deleted oldest first, so the journal holds every id from its
   * oldest row to the head: a client at oldest - 1 or later has missed nothing that is gone.
   */
  resumePoint(lastEventId: string): ResumePoint {
    if (!/^\d{1,16}$/.test(lastEventId)) return { kind: 'reset', reason: 'unknown_id' };
    const id = Number(lastEventId);
    const head = this.head();
    if (id > head || id < this.base) return { kind: 'reset', reason: 'unknown_id' };
    const oldest = this.oldestQuery.get() as number | null;
    const floor = oldest === null ? head : oldest - 1;
    return id < floor ? { kind: 'reset', reason: 'too_old' } : { kind: 'replay' };
  }

  /**
   * Keeps the newest `maxEvents` events and none stamped before `notBefore`. Deletes a prefix
   * by id (never a row in the middle, even if the clock went back), which `resumePoint` relies on.
   */
  prune(maxEvents: number, notBefore: number): number {
    const byAge = this.db.prepare('SELECT MAX(id) FROM stream_events WHERE ts < ?').pluck().get(notBefore) as number | null;
    const byCount = this.head() - maxEvents;
    const upTo = Math.max(byAge ?? 0, byCount);
    return this.db.prepare('DELETE FROM stream_events WHERE id <= ?').run(upTo).changes;
  }
}
