/**
 * Recomputes the audit chain of a hub database (`cairn audit verify` opens the file read-only,
 * so it works with the hub running or stopped, and without the hub's cooperation).
 *
 * Detected, naming the first bad row:
 * - an edited row (any column): its recomputed hash differs (`hash_mismatch`);
 * - a row whose hash was recomputed after an edit: the next row's `prev_hash` differs
 *   (`prev_hash_mismatch`);
 * - a deleted row in the middle: the ids jump (`id_gap`);
 * - a truncated tail: `audit_head` or SQLite's AUTOINCREMENT counter names a later row than the
 *   last one present (`tail_missing`);
 * - with `--anchor ID:HASH` (taken earlier from a hub log line `audit appended` or from
 *   `cairn audit head`, and kept off the hub): a row that no longer has that hash, or is gone
 *   (`anchor_mismatch`).
 *
 * Not detected without an anchor: someone with write access to the database file who rewrites
 * every row after the edit with recomputed hashes and also rewrites `audit_head` and
 * `sqlite_sequence` — the chain is then consistent. An anchor kept elsewhere bounds that to the
 * rows appended after the anchor.
 */
import Database from 'better-sqlite3';
import type { Db } from '../../infra/db.js';
import { GENESIS_HASH, rowHash, type AuditRow } from './audit-log.js';

export type ChainProblem = 'hash_mismatch' | 'prev_hash_mismatch' | 'id_gap' | 'tail_missing' | 'anchor_mismatch';

export interface ChainReport {
  ok: boolean;
  rows: number;
  last: { id: number; hash: string } | null;
  problem?: { id: number; reason: ChainProblem; message: string };
}

export function verifyAuditChain(db: Db, anchor?: { id: number; hash: string }): ChainReport {
  let rows = 0;
  let prev: { id: number; hash: string } | null = null;
  let anchorSeen = false;
  const fail = (id: number, reason: ChainProblem, message: string): ChainReport => ({ ok: false, rows, last: prev, problem: { id, reason, message } });

  for (const row of db.prepare('SELECT * FROM audit_log ORDER BY id').iterate() as IterableIterator<AuditRow>) {
    const expectedId: number = (prev?.id ?? 0) + 1;
    if (row.id !== expectedId) return fail(row.id, 'id_gap', `row ${row.id} follows row ${prev?.id ?? '(none)'}: row${row.id - expectedId > 1 ? `s ${expectedId}–${row.id - 1} are` : ` ${expectedId} is`} missing`);
    if (row.prev_hash !== (prev?.hash ?? GENESIS_HASH)) return fail(row.id, 'prev_hash_mismatch', `row ${row.id} does not chain to row ${prev?.id ?? '(genesis)'}: that row was changed`);
    const { hash, ...content } = row;
    if (rowHash(content) !== hash) return fail(row.id, 'hash_mismatch', `row ${row.id} was edited: its content does not match its hash`);
    if (anchor && row.id === anchor.id) {
      if (row.hash !== anchor.hash) return fail(row.id, 'anchor_mismatch', `row ${row.id} has hash ${row.hash.slice(0, 12)}…, the anchor says ${anchor.hash.slice(0, 12)}…`);
      anchorSeen = true;
    }
    prev = { id: row.id, hash: row.hash };
    rows++;
  }

  const lastId = prev?.id ?? 0;
  const head = db.prepare('SELECT last_id, last_hash FROM audit_head WHERE singleton = 1').get() as { last_id: number; last_hash: string } | undefined;
  if (head && (head.last_id !== lastId || head.last_hash !== prev?.hash)) {
    return fail(Math.min(head.last_id, lastId + 1), 'tail_missing', `the head record names row ${head.last_id} (${head.last_hash.slice(0, 12)}…), the log ends at row ${lastId || '(empty)'}: rows were removed from the end`);
  }
  const sequence = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'audit_log'").get() as { seq: number } | undefined;
  if (sequence && sequence.seq > lastId) return fail(lastId + 1, 'tail_missing', `ids up to ${sequence.seq} were used, the log ends at row ${lastId || '(empty)'}: rows were removed from the end`);
  if (anchor && !anchorSeen) return fail(anchor.id, 'anchor_mismatch', `the anchor names row ${anchor.id}, which is not in the log (it ends at row ${lastId || '(empty)'})`);
  return { ok: true, rows, last: prev };
}

/** Verifies the audit chain of a hub database file, opened read-only (the hub may be running). */
export function verifyAuditDatabase(file: string, anchor?: { id: number; hash: string }): ChainReport {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return verifyAuditChain(db, anchor);
  } finally {
    db.close();
  }
}
