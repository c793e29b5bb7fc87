/**
 * The audit log: every state-changing action, append-only, hash-chained (table owned by the
 * audit module).
 *
 * Each row stores who (`user:<name>`, `system`, `device:<id>`, `anonymous` for a failed login),
 * with which credential (`token:<id>` or `session:<digest prefix>`), from where (source address),
 * what (action, target), when, and the state before and after (JSON; never a secret). Its `hash`
 * is SHA-256 over the RFC 8785 canonical JSON of all those fields plus `prevHash`, the previous
 * row's hash (64 zeros for the first row). Ids count up from 1 without gaps.
 *
 * SQLite triggers refuse UPDATE and DELETE on the rows; `audit_head` keeps the id and hash of the
 * last row, updated in the same transaction as each append, and every append logs them (the
 * anchor an operator can keep off the hub). `verifyAuditChain` (audit-verify.ts) checks it all.
 *
 * Callers append inside the transaction of the change they record, so a change and its audit
 * row commit or roll back together.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { canonicalJson } from '@cairn/shared';
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';

const MIGRATIONS = [
  `CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     at INTEGER NOT NULL,
     actor TEXT NOT NULL,
     credential TEXT,
     source_ip TEXT,
     action TEXT NOT NULL,
     target TEXT,
     before TEXT,
     after TEXT,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   );
   CREATE INDEX audit_log_actor ON audit_log (actor, id);
   CREATE INDEX audit_log_action ON audit_log (action, id);
   CREATE INDEX audit_log_target ON audit_log (target, id);
   CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
   CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
   CREATE TABLE audit_head (
     singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
     last_id INTEGER NOT NULL,
     last_hash TEXT NOT NULL
   );
   CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head WHEN NEW.last_id <= OLD.last_id BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward'); END;
   CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END;`,
];

export const GENESIS_HASH = '0'.repeat(64);

/** Who did it and from where; derived from the request by the access hook (`request.actor`). */
export interface AuditActor {
  actor: string;
  credential: string | null;
  sourceIp: string | null;
}

export const SYSTEM_ACTOR: AuditActor = { actor: 'system', credential: null, sourceIp: null };

export interface AuditChange {
  action: string;
  target: string | null;
  before?: unknown;
  after?: unknown;
}

export interface AuditEntry extends AuditActor {
  id: number;
  at: number;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
  prevHash: string;
  hash: string;
}

export interface AuditRow {
  id: number;
  at: number;
  actor: string;
  credential: string | null;
  source_ip: string | null;
  action: string;
  target: string | null;
  before: string | null;
  after: string | null;
  prev_hash: string;
  hash: string;
}

/** The hashed content of a row: every column except `hash`, with before/after as JSON values. */
export function rowHash(row: Omit<AuditRow, 'hash'>): string {
  const content = {
    id: row.id,
    at: row.at,
    actor: row.actor,
    credential: row.credential,
    sourceIp: row.source_ip,
    action: row.action,
    target: row.target,
    before: row.before === null ? null : (JSON.parse(row.before) as unknown),
    after: row.after === null ? null : (JSON.parse(row.after) as unknown),
    prevHash: row.prev_hash,
  };
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}

const toEntry = (r: AuditRow): AuditEntry => ({
  id: r.id,
  at: r.at,
  actor: r.actor,
  credential: r.credential,
  sourceIp: r.source_ip,
  action: r.action,
  target: r.target,
  before: r.before === null ? null : JSON.parse(r.before),
  after: r.after === null ? null : JSON.parse(r.after),
  prevHash: r.prev_hash,
  hash: r.hash,
});

export interface AuditQuery {
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  from?: number | undefined;
  to?: number | undefined;
  /** Entries with an id below this one (the previous page's `nextCursor`). */
  before?: number | undefined;
  limit: number;
}

export class AuditLog {
  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly clock: () => number,
  ) {
    migrate(db, 'audit', MIGRATIONS);
  }

  /** Appends one entry and returns it. Runs in the caller's transaction when there is one. */
  append(who: AuditActor, change: AuditChange): AuditEntry {
    const entry = this.db.transaction(() => {
      const head = this.head();
      const partial = {
        id: (head?.id ?? 0) + 1,
        at: this.clock(),
        actor: who.actor,
        credential: who.credential,
        source_ip: who.sourceIp,
        action: change.action,
        target: change.target,
        before: change.before === undefined || change.before === null ? null : canonicalJson(change.before),
        after: change.after === undefined || change.after === null ? null : canonicalJson(change.after),
        prev_hash: head?.hash ?? GENESIS_HASH,
      };
      const row: AuditRow = { ...partial, hash: rowHash(partial) };
      this.db
        .prepare(
          `INSERT INTO audit_log (id, at, actor, credential, source_ip, action, target, before, after, prev_hash, hash)
           VALUES (@id, @at, @actor, @credential, @source_ip, @action, @target, @before, @after, @prev_hash, @hash)`,
        )
        .run(row);
      this.db
        .prepare('INSERT INTO audit_head (singleton, last_id, last_hash) VALUES (1, ?, ?) ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash')
        .run(row.id, row.hash);
      return toEntry(row);
    })();
    // The anchor outside the database: a log shipped elsewhere can prove what the head was.
    this.logger.info({ audit: { id: entry.id, hash: entry.hash, action: entry.action, actor: entry.actor } }, 'audit appended');
    return entry;
  }

  head(): { id: number; hash: string } | null {
    const row = this.db.prepare('SELECT last_id, last_hash FROM audit_head WHERE singleton = 1').get() as { last_id: number; last_hash: string } | undefined;
    return row ? { id: row.last_id, hash: row.last_hash } : null;
  }

  /** Newest first. A target filter ending in `*` matches by prefix (`model:pdm@*`). */
  list(q: AuditQuery): AuditEntry[] {
    const prefix = q.target?.endsWith('*') ? q.target.slice(0, -1) : undefined;
    const conditions: [string, (string | number)[] | undefined][] = [
      ['actor = ?', q.actor === undefined ? undefined : [q.actor]],
      ['action = ?', q.action === undefined ? undefined : [q.action]],
      ['target = ?', q.target === undefined || prefix !== undefined ? undefined : [q.target]],
      ['substr(target, 1, ?) = ?', prefix === undefined ? undefined : [prefix.length, prefix]],
      ['at >= ?', q.from === undefined ? undefined : [q.from]],
      ['at < ?', q.to === undefined ? undefined : [q.to]],
      ['id < ?', q.before === undefined ? undefined : [q.before]],
    ];
    const where = conditions.filter(([, values]) => values !== undefined);
    const args = where.flatMap(([, values]) => values!);
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.map(([condition]) => condition).join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, q.limit) as AuditRow[]).map(toEntry);
  }
}
