/**
 * Operators, their API tokens and console sessions (tables owned by the operators module).
 * Secrets never reach these tables: passwords as scrypt hashes, tokens and session ids as
 * SHA-256 digests. Nothing here returns a hash to a caller except `passwordHashOf`, which only
 * the login path uses.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { Role } from './access.js';

const MIGRATIONS = [
  `CREATE TABLE users (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     username TEXT NOT NULL UNIQUE,
     role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
     password_hash TEXT NOT NULL,
     disabled INTEGER NOT NULL DEFAULT 0,
     created_at INTEGER NOT NULL,
     created_by TEXT NOT NULL
   );
   CREATE TABLE api_tokens (
     id TEXT PRIMARY KEY,
     user_id INTEGER NOT NULL REFERENCES users (id),
     name TEXT NOT NULL,
     digest TEXT NOT NULL UNIQUE,
     role TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
     scopes TEXT,
     created_at INTEGER NOT NULL,
     expires_at INTEGER,
     last_used_at INTEGER,
     revoked_at INTEGER
   );
   CREATE TABLE sessions (
     digest TEXT PRIMARY KEY,
     user_id INTEGER NOT NULL REFERENCES users (id),
     created_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     source_ip TEXT
   );
   CREATE INDEX sessions_user ON sessions (user_id);`,
];

export interface User {
  id: number;
  username: string;
  role: Role;
  disabled: boolean;
  createdAt: number;
  createdBy: string;
}

export interface ApiToken {
  id: string;
  userId: number;
  username: string;
  name: string;
  role: Role;
  scopes: string[] | null;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

export interface Session {
  digest: string;
  userId: number;
  createdAt: number;
  lastSeenAt: number;
  expiresAt: number;
}

interface UserRow {
  id: number;
  username: string;
  role: Role;
  disabled: number;
  created_at: number;
  created_by: string;
}

interface TokenRow {
  id: string;
  user_id: number;
  username: string;
  name: string;
  role: Role;
  scopes: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

const toUser = (r: UserRow): User => ({ id: r.id, username: r.username, role: r.role, disabled: r.disabled !== 0, createdAt: r.created_at, createdBy: r.created_by });
const toToken = (r: TokenRow): ApiToken => ({
  id: r.id,
  userId: r.user_id,
  username: r.username,
  name: r.name,
  role: r.role,
  scopes: r.scopes === null ? null : (JSON.parse(r.scopes) as string[]),
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

const USER_COLUMNS = 'id, username, role, disabled, created_at, created_by';
const TOKEN_SELECT = 'SELECT t.*, u.username FROM api_tokens t JOIN users u ON u.id = t.user_id';

/** `last_used_at` and `last_seen_at` are written at most this often per token or session. */
const TOUCH_INTERVAL_MS = 60_000;

export class OperatorsRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'operators', MIGRATIONS);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  countUsers(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n;
  }

  /** Enabled admins; the last one cannot be demoted or disabled. */
  countActiveAdmins(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM users WHERE role = 'admin' AND disabled = 0").get() as { n: number }).n;
  }

  user(username: string): User | null {
    const row = this.db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE username = ?`).get(username) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  userById(id: number): User | null {
    const row = this.db.prepare(`SELECT ${USER_COLUMNS} FROM users WHERE id = ?`).get(id) as UserRow | undefined;
    return row ? toUser(row) : null;
  }

  users(): User[] {
    return (this.db.prepare(`SELECT ${USER_COLUMNS} FROM users ORDER BY username`).all() as UserRow[]).map(toUser);
  }

  passwordHashOf(username: string): string | null {
    return (this.db.prepare('SELECT password_hash FROM users WHERE username = ?').get(username) as { password_hash: string } | undefined)?.password_hash ?? null;
  }

  insertUser(u: { username: string; role: Role; passwordHash: string; createdAt: number; createdBy: string }): User {
    const id = this.db
      .prepare('INSERT INTO users (username, role, password_hash, created_at, created_by) VALUES (?, ?, ?, ?, ?)')
      .run(u.username, u.role, u.passwordHash, u.createdAt, u.createdBy).lastInsertRowid;
    return this.userById(Number(id))!;
  }

  updateUser(id: number, changes: { role?: Role; disabled?: boolean; passwordHash?: string }): User {
    if (changes.role !== undefined) this.db.prepare('UPDATE users SET role = ? WHERE id = ?').run(changes.role, id);
    if (changes.disabled !== undefined) this.db.prepare('UPDATE users SET disabled = ? WHERE id = ?').run(changes.disabled ? 1 : 0, id);
    if (changes.passwordHash !== undefined) this.db.prepare('UPDATE users SET password_hash = ? WHERE id = ?').run(changes.passwordHash, id);
    return this.userById(id)!;
  }

  insertToken(t: { id: string; userId: number; name: string; digest: string; role: Role; scopes: string[] | null; createdAt: number; expiresAt: number | null }): ApiToken {
    this.db
      .prepare('INSERT INTO api_tokens (id, user_id, name, digest, role, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
      .run(t.id, t.userId, t.name, t.digest, t.role, t.scopes === null ? null : JSON.stringify(t.scopes), t.createdAt, t.expiresAt);
    return this.token(t.id)!;
  }

  token(id: string): ApiToken | null {
    const row = this.db.prepare(`${TOKEN_SELECT} WHERE t.id = ?`).get(id) as TokenRow | undefined;
    return row ? toToken(row) : null;
  }

  tokenByDigest(digest: string): ApiToken | null {
    const row = this.db.prepare(`${TOKEN_SELECT} WHERE t.digest = ?`).get(digest) as TokenRow | undefined;
    return row ? toToken(row) : null;
  }

  /** All tokens, or one user's; revoked ones included (they explain past audit entries). */
  tokens(userId?: number): ApiToken[] {
    const rows = userId === undefined ? this.db.prepare(`${TOKEN_SELECT} ORDER BY t.created_at, t.id`).all() : this.db.prepare(`${TOKEN_SELECT} WHERE t.user_id = ? ORDER BY t.created_at, t.id`).all(userId);
    return (rows as TokenRow[]).map(toToken);
  }

  revokeToken(id: string, now: number): ApiToken {
    this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id);
    return this.token(id)!;
  }

  touchToken(token: ApiToken, now: number): void {
    if (token.lastUsedAt === null || now - token.lastUsedAt >= TOUCH_INTERVAL_MS) this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now, token.id);
  }

  insertSession(s: Session & { sourceIp: string | null }): void {
    this.db
      .prepare('INSERT INTO sessions (digest, user_id, created_at, last_seen_at, expires_at, source_ip) VALUES (?, ?, ?, ?, ?, ?)')
      .run(s.digest, s.userId, s.createdAt, s.lastSeenAt, s.expiresAt, s.sourceIp);
  }

  session(digest: string): Session | null {
    const row = this.db.prepare('SELECT * FROM sessions WHERE digest = ?').get(digest) as
      | { digest: string; user_id: number; created_at: number; last_seen_at: number; expires_at: number }
      | undefined;
    return row ? { digest: row.digest, userId: row.user_id, createdAt: row.created_at, lastSeenAt: row.last_seen_at, expiresAt: row.expires_at } : null;
  }

  touchSession(session: Session, now: number): void {
    if (now - session.lastSeenAt >= TOUCH_INTERVAL_MS) this.db.prepare('UPDATE sessions SET last_seen_at = ? WHERE digest = ?').run(now, session.digest);
  }

  deleteSession(digest: string): void {
    this.db.prepare('DELETE FROM sessions WHERE digest = ?').run(digest);
  }

  deleteSessionsOf(userId: number): number {
    return this.db.prepare('DELETE FROM sessions WHERE user_id = ?').run(userId).changes;
  }

  /** Drops sessions past their absolute expiry or idle longer than `idleMs`. */
  pruneSessions(now: number, idleMs: number): number {
    return this.db.prepare('DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?').run(now, now - idleMs).changes;
  }
}
