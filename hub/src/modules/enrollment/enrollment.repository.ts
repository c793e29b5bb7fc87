/**
 * Device identities and enrollment tokens (tables owned by the enrollment module).
 *
 * - `device_credentials`: one row per device id that ever asked to enroll: its Ed25519 public
 *   key, its status (pending → accepted → active, or revoked), the scrypt hash of its current
 *   MQTT password, and the `ts` of the last claim accepted from it (replay guard).
 *   Since migration 2 also a Mosquitto `$7$` hash of the same password (`broker_hash`), written
 *   at issuance because the password itself is never kept: it is what `cairn broker config
 *   --mosquitto` puts in an external broker's password file. Devices that enrolled before it
 *   have none and must enroll again to reach an external broker.
 * - `enrollment_tokens`: `cet_<id>_<secret>`; only the secret's scrypt hash is kept, with labels
 *   given to the devices it enrolls, a use count and an expiry.
 *
 * Status rules: a revoked device stays revoked (a stolen device must never come back by
 * enrolling again; a replacement gets a new id). A device id is bound to the first public key
 * that claimed it; another key for the same id is refused until the operator forgets the id.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { LabelsT } from '@cairn/shared';

const MIGRATIONS = [
  `CREATE TABLE device_credentials (
     device_id TEXT PRIMARY KEY,
     public_key TEXT NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'active', 'revoked')),
     secret_hash TEXT,
     last_claim_ts INTEGER NOT NULL,
     method TEXT,
     token_id TEXT,
     requested_at INTEGER NOT NULL,
     requested_from TEXT,
     enrolled_at INTEGER,
     revoked_at INTEGER
   );
   CREATE INDEX device_credentials_by_status ON device_credentials (status);
   CREATE TABLE enrollment_tokens (
     id TEXT PRIMARY KEY,
     secret_hash TEXT NOT NULL,
     labels TEXT NOT NULL DEFAULT '{}',
     max_uses INTEGER,
     uses INTEGER NOT NULL DEFAULT 0,
     expires_at INTEGER NOT NULL,
     created_at INTEGER NOT NULL,
     created_by TEXT NOT NULL,
     revoked_at INTEGER
   );`,
  `ALTER TABLE device_credentials ADD COLUMN broker_hash TEXT;`,
];

/** The two stored forms of one issued MQTT password: scrypt for the embedded broker, `$7$` for Mosquitto. */
export interface PasswordHashes {
  secretHash: string;
  brokerHash: string;
}

/** What an external broker's password file needs: active devices, and those that cannot be listed. */
export interface BrokerAccounts {
  accounts: { deviceId: string; brokerHash: string }[];
  /** Active devices enrolled before broker hashes were stored: they must enroll again. */
  needReEnrollment: string[];
}

/**
 * Reads the broker accounts from a hub database opened read-only (`cairn broker config` runs
 * beside a live hub and must not migrate its file); a database from before migration 2 lists
 * every active device as needing re-enrollment.
 */
export function readBrokerAccounts(db: Db): BrokerAccounts {
  const columns = (db.prepare('PRAGMA table_info(device_credentials)').all() as { name: string }[]).map((c) => c.name);
  const hash = columns.includes('broker_hash') ? 'broker_hash' : 'NULL';
  const rows = db.prepare(`SELECT device_id, ${hash} AS broker_hash FROM device_credentials WHERE status = 'active' ORDER BY device_id`).all() as { device_id: string; broker_hash: string | null }[];
  return {
    accounts: rows.flatMap((r) => (r.broker_hash ? [{ deviceId: r.device_id, brokerHash: r.broker_hash }] : [])),
    needReEnrollment: rows.filter((r) => !r.broker_hash).map((r) => r.device_id),
  };
}

export type CredentialStatus = 'pending' | 'accepted' | 'active' | 'revoked';

export interface DeviceCredential {
  deviceId: string;
  publicKey: string;
  status: CredentialStatus;
  secretHash: string | null;
  lastClaimTs: number;
  method: 'token' | 'accepted' | null;
  tokenId: string | null;
  requestedAt: number;
  requestedFrom: string | null;
  enrolledAt: number | null;
  revokedAt: number | null;
}

export interface EnrollmentToken {
  id: string;
  secretHash: string;
  labels: LabelsT;
  maxUses: number | null;
  uses: number;
  expiresAt: number;
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
}

interface CredentialRow {
  device_id: string;
  public_key: string;
  status: CredentialStatus;
  secret_hash: string | null;
  last_claim_ts: number;
  method: 'token' | 'accepted' | null;
  token_id: string | null;
  requested_at: number;
  requested_from: string | null;
  enrolled_at: number | null;
  revoked_at: number | null;
}

interface TokenRow {
  id: string;
  secret_hash: string;
  labels: string;
  max_uses: number | null;
  uses: number;
  expires_at: number;
  created_at: number;
  created_by: string;
  revoked_at: number | null;
}

const toCredential = (r: CredentialRow): DeviceCredential => ({
  deviceId: r.device_id,
  publicKey: r.public_key,
  status: r.status,
  secretHash: r.secret_hash,
  lastClaimTs: r.last_claim_ts,
  method: r.method,
  tokenId: r.token_id,
  requestedAt: r.requested_at,
  requestedFrom: r.requested_from,
  enrolledAt: r.enrolled_at,
  revokedAt: r.revoked_at,
});

const toToken = (r: TokenRow): EnrollmentToken => ({
  id: r.id,
  secretHash: r.secret_hash,
  labels: JSON.parse(r.labels) as LabelsT,
  maxUses: r.max_uses,
  uses: r.uses,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  createdBy: r.created_by,
  revokedAt: r.revoked_at,
});

export class EnrollmentRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'enrollment', MIGRATIONS);
  }

  credential(deviceId: string): DeviceCredential | null {
    const row = this.db.prepare('SELECT * FROM device_credentials WHERE device_id = ?').get(deviceId) as CredentialRow | undefined;
    return row ? toCredential(row) : null;
  }

  credentials(status?: CredentialStatus): DeviceCredential[] {
    const rows = (status === undefined
      ? this.db.prepare('SELECT * FROM device_credentials ORDER BY device_id').all()
      : this.db.prepare('SELECT * FROM device_credentials WHERE status = ? ORDER BY device_id').all(status)) as CredentialRow[];
    return rows.map(toCredential);
  }

  countPending(): number {
    return (this.db.prepare("SELECT COUNT(*) AS n FROM device_credentials WHERE status = 'pending'").get() as { n: number }).n;
  }

  /** A first claim from a device id without a token: pending. */
  insertPending(deviceId: string, publicKey: string, claimTs: number, from: string | null, now: number): void {
    this.db
      .prepare("INSERT INTO device_credentials (device_id, public_key, status, last_claim_ts, requested_at, requested_from) VALUES (?, ?, 'pending', ?, ?, ?)")
      .run(deviceId, publicKey, claimTs, now, from);
  }

  /** Records a newer claim (the replay guard moves forward even when nothing else changes). */
  recordClaim(deviceId: string, claimTs: number, from: string | null): void {
    this.db.prepare('UPDATE device_credentials SET last_claim_ts = ?, requested_from = ? WHERE device_id = ?').run(claimTs, from, deviceId);
  }

  /** The device becomes active with new password hashes (token enrollment, collection after acceptance, or rotation). */
  activate(deviceId: string, publicKey: string, { secretHash, brokerHash }: PasswordHashes, claimTs: number, method: 'token' | 'accepted', tokenId: string | null, from: string | null, now: number): void {
    this.db
      .prepare(
        `INSERT INTO device_credentials (device_id, public_key, status, secret_hash, broker_hash, last_claim_ts, method, token_id, requested_at, requested_from, enrolled_at)
         VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device_id) DO UPDATE SET status = 'active', secret_hash = excluded.secret_hash, broker_hash = excluded.broker_hash, last_claim_ts = excluded.last_claim_ts,
           method = excluded.method, token_id = excluded.token_id, requested_from = excluded.requested_from, enrolled_at = excluded.enrolled_at`,
      )
      .run(deviceId, publicKey, secretHash, brokerHash, claimTs, method, tokenId, now, from, now);
  }

  /** pending → accepted; false when the device is not pending. */
  accept(deviceId: string): boolean {
    return this.db.prepare("UPDATE device_credentials SET status = 'accepted' WHERE device_id = ? AND status = 'pending'").run(deviceId).changes > 0;
  }

  /** Any status → revoked, password hashes dropped; false when the id is unknown or already revoked. */
  revoke(deviceId: string, now: number): boolean {
    return this.db.prepare("UPDATE device_credentials SET status = 'revoked', secret_hash = NULL, broker_hash = NULL, revoked_at = ? WHERE device_id = ? AND status != 'revoked'").run(now, deviceId).changes > 0;
  }

  /** Forgets a pending or revoked id so that it can enroll again with a new key. */
  forget(deviceId: string): boolean {
    return this.db.prepare("DELETE FROM device_credentials WHERE device_id = ? AND status IN ('pending', 'revoked')").run(deviceId).changes > 0;
  }

  insertToken(token: Omit<EnrollmentToken, 'uses' | 'revokedAt'>): void {
    this.db
      .prepare('INSERT INTO enrollment_tokens (id, secret_hash, labels, max_uses, expires_at, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(token.id, token.secretHash, JSON.stringify(token.labels), token.maxUses, token.expiresAt, token.createdAt, token.createdBy);
  }

  token(id: string): EnrollmentToken | null {
    const row = this.db.prepare('SELECT * FROM enrollment_tokens WHERE id = ?').get(id) as TokenRow | undefined;
    return row ? toToken(row) : null;
  }

  tokens(): EnrollmentToken[] {
    return (this.db.prepare('SELECT * FROM enrollment_tokens ORDER BY created_at DESC').all() as TokenRow[]).map(toToken);
  }

  /** Takes one use of a token; false when it is used up (checked and counted in one statement). */
  useToken(id: string, now: number): boolean {
    return (
      this.db
        .prepare('UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ? AND revoked_at IS NULL AND expires_at > ? AND (max_uses IS NULL OR uses < max_uses)')
        .run(id, now).changes > 0
    );
  }

  revokeToken(id: string, now: number): boolean {
    return this.db.prepare('UPDATE enrollment_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id).changes > 0;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}
