/**
 * Rollouts and their devices (tables owned by the rollouts module).
 *
 * `rollout_devices` holds one row per device a rollout has told to change, with the model the
 * device had before (what a rollback returns it to). `active` is 1 while the rollout is not
 * finished; a partial unique index on it makes "one active rollout per device" a database
 * invariant, not only a check.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { RolloutSpec } from './rollout-spec.js';

const MIGRATIONS = [
  `CREATE TABLE rollouts (
     id TEXT PRIMARY KEY,
     kind TEXT NOT NULL,
     model_name TEXT NOT NULL,
     model_version TEXT NOT NULL,
     digest TEXT NOT NULL,
     spec TEXT NOT NULL,
     state TEXT NOT NULL,
     stage INTEGER NOT NULL DEFAULT 0,
     stage_started_at INTEGER,
     stage_healthy_at INTEGER,
     waiting TEXT,
     stop_reason TEXT,
     gates TEXT,
     created_by TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     started_at INTEGER,
     finished_at INTEGER,
     updated_at INTEGER NOT NULL
   );
   CREATE INDEX rollouts_by_state ON rollouts (state);
   CREATE TABLE rollout_devices (
     rollout_id TEXT NOT NULL REFERENCES rollouts (id),
     device_id TEXT NOT NULL,
     stage INTEGER NOT NULL,
     state TEXT NOT NULL,
     phase TEXT,
     reason TEXT,
     active INTEGER NOT NULL,
     previous_model TEXT,
     previous_digest TEXT,
     assigned_at INTEGER NOT NULL,
     updated_at INTEGER NOT NULL,
     PRIMARY KEY (rollout_id, device_id)
   );
   CREATE UNIQUE INDEX rollout_devices_one_active ON rollout_devices (device_id) WHERE active = 1;
   CREATE INDEX rollout_devices_by_device ON rollout_devices (device_id);
   CREATE TABLE rollout_history (
     rollout_id TEXT NOT NULL REFERENCES rollouts (id),
     ts INTEGER NOT NULL,
     kind TEXT NOT NULL,
     detail TEXT NOT NULL
   );
   CREATE INDEX rollout_history_by_rollout ON rollout_history (rollout_id, ts);`,
];

/** created → (scheduled) → running ⇄ paused → completed | aborted | rolled_back. */
export const ROLLOUT_STATES = ['created', 'scheduled', 'running', 'paused', 'completed', 'aborted', 'rolled_back'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];
/** States in which a rollout owns its devices. */
export const ACTIVE_STATES: readonly RolloutState[] = ['created', 'scheduled', 'running', 'paused'];

/**
 * assigned: told to change, no final report yet; committed; failed (the device refused, failed or
 * rolled the model back); timed_out: no final report within the stage's timeout (it may still
 * report later); reverting/reverted: told to return to its previous model / did; kept: a rollback
 * found no previous model to return to, so the device keeps this one.
 */
export const ROLLOUT_DEVICE_STATES = ['assigned', 'committed', 'failed', 'timed_out', 'reverting', 'reverted', 'kept'] as const;
export type RolloutDeviceState = (typeof ROLLOUT_DEVICE_STATES)[number];

export type RolloutKind = 'staged' | 'direct';

/** Why a running rollout is not telling more devices to change right now. */
export type Waiting = { reason: 'outside_window'; opensAt: number } | { reason: 'approval_required'; devices: number; canary: number } | { reason: 'rate_limited'; perMinute: number } | { reason: 'scheduled'; startAt: number };

export interface StopReason {
  kind: 'operator' | 'breach';
  actor?: string;
  stage?: number;
  /** For a breach: what tripped (failure_threshold, or a gate's name) and the values. */
  cause?: string;
  detail?: unknown;
}

export interface RolloutRow {
  id: string;
  kind: RolloutKind;
  modelName: string;
  modelVersion: string;
  digest: string;
  spec: RolloutSpec;
  state: RolloutState;
  stage: number;
  stageStartedAt: number | null;
  /** When the current stage first met its success threshold (its bake started). */
  stageHealthyAt: number | null;
  waiting: Waiting | null;
  stopReason: StopReason | null;
  /** The last evaluation of the current stage's quality gates. */
  gates: unknown;
  createdBy: string;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
}

export interface RolloutDeviceRow {
  rolloutId: string;
  deviceId: string;
  stage: number;
  state: RolloutDeviceState;
  phase: string | null;
  reason: string | null;
  previousModel: string | null;
  previousDigest: string | null;
  assignedAt: number;
  updatedAt: number;
}

export interface HistoryEntry {
  ts: number;
  kind: string;
  detail: unknown;
}

interface RawRollout {
  id: string;
  kind: RolloutKind;
  model_name: string;
  model_version: string;
  digest: string;
  spec: string;
  state: RolloutState;
  stage: number;
  stage_started_at: number | null;
  stage_healthy_at: number | null;
  waiting: string | null;
  stop_reason: string | null;
  gates: string | null;
  created_by: string;
  created_at: number;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

interface RawDevice {
  rollout_id: string;
  device_id: string;
  stage: number;
  state: RolloutDeviceState;
  phase: string | null;
  reason: string | null;
  previous_model: string | null;
  previous_digest: string | null;
  assigned_at: number;
  updated_at: number;
}

const json = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

const toRollout = (r: RawRollout): RolloutRow => ({
  id: r.id,
  kind: r.kind,
  modelName: r.model_name,
  modelVersion: r.model_version,
  digest: r.digest,
  spec: JSON.parse(r.spec) as RolloutSpec,
  state: r.state,
  stage: r.stage,
  stageStartedAt: r.stage_started_at,
  stageHealthyAt: r.stage_healthy_at,
  waiting: json<Waiting>(r.waiting),
  stopReason: json<StopReason>(r.stop_reason),
  gates: json<unknown>(r.gates),
  createdBy: r.created_by,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  updatedAt: r.updated_at,
});

const toDevice = (r: RawDevice): RolloutDeviceRow => ({
  rolloutId: r.rollout_id,
  deviceId: r.device_id,
  stage: r.stage,
  state: r.state,
  phase: r.phase,
  reason: r.reason,
  previousModel: r.previous_model,
  previousDigest: r.previous_digest,
  assignedAt: r.assigned_at,
  updatedAt: r.updated_at,
});

/** The columns `update` may change. */
export type RolloutChange = Partial<Pick<RolloutRow, 'state' | 'stage' | 'stageStartedAt' | 'stageHealthyAt' | 'waiting' | 'stopReason' | 'gates' | 'startedAt' | 'finishedAt'>>;

const COLUMN: Record<keyof RolloutChange, string> = {
  state: 'state',
  stage: 'stage',
  stageStartedAt: 'stage_started_at',
  stageHealthyAt: 'stage_healthy_at',
  waiting: 'waiting',
  stopReason: 'stop_reason',
  gates: 'gates',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
};
const JSON_COLUMNS = new Set<keyof RolloutChange>(['waiting', 'stopReason', 'gates']);

export class RolloutsRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'rollouts', MIGRATIONS);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  insert(r: Pick<RolloutRow, 'id' | 'kind' | 'modelName' | 'modelVersion' | 'digest' | 'spec' | 'state' | 'createdBy' | 'createdAt'>): void {
    this.db
      .prepare('INSERT INTO rollouts (id, kind, model_name, model_version, digest, spec, state, created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(r.id, r.kind, r.modelName, r.modelVersion, r.digest, JSON.stringify(r.spec), r.state, r.createdBy, r.createdAt, r.createdAt);
  }

  get(id: string): RolloutRow | null {
    const row = this.db.prepare('SELECT * FROM rollouts WHERE id = ?').get(id) as RawRollout | undefined;
    return row ? toRollout(row) : null;
  }

  list(options: { states?: readonly RolloutState[]; limit: number; includeDirect?: boolean }): RolloutRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (options.states) {
      where.push(`state IN (${options.states.map(() => '?').join(', ')})`);
      args.push(...options.states);
    }
    if (!options.includeDirect) where.push("kind = 'staged'");
    const sql = `SELECT * FROM rollouts ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, rowid DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...args, options.limit) as RawRollout[]).map(toRollout);
  }

  /** Rollouts of every kind in these states, oldest first (evaluation order). */
  inStates(states: readonly RolloutState[]): RolloutRow[] {
    return (this.db.prepare(`SELECT * FROM rollouts WHERE state IN (${states.map(() => '?').join(', ')}) ORDER BY created_at, rowid`).all(...states) as RawRollout[]).map(toRollout);
  }

  update(id: string, change: RolloutChange, now: number): void {
    const keys = Object.keys(change) as (keyof RolloutChange)[];
    const sets = keys.map((k) => `${COLUMN[k]} = ?`);
    const values = keys.map((k) => (JSON_COLUMNS.has(k) ? (change[k] === null ? null : JSON.stringify(change[k])) : change[k]));
    this.db.prepare(`UPDATE rollouts SET ${[...sets, 'updated_at = ?'].join(', ')} WHERE id = ?`).run(...values, now, id);
  }

  addHistory(rolloutId: string, ts: number, kind: string, detail: unknown): void {
    this.db.prepare('INSERT INTO rollout_history (rollout_id, ts, kind, detail) VALUES (?, ?, ?, ?)').run(rolloutId, ts, kind, JSON.stringify(detail));
  }

  history(rolloutId: string, limit: number): HistoryEntry[] {
    return (this.db.prepare('SELECT ts, kind, detail FROM rollout_history WHERE rollout_id = ? ORDER BY ts DESC, rowid DESC LIMIT ?').all(rolloutId, limit) as { ts: number; kind: string; detail: string }[])
      .map((r) => ({ ts: r.ts, kind: r.kind, detail: JSON.parse(r.detail) as unknown }))
      .reverse();
  }

  /** Adds a device; false when another active rollout holds it (the unique index refused it). */
  addDevice(d: Omit<RolloutDeviceRow, 'phase' | 'reason' | 'updatedAt'>, active: boolean): boolean {
    try {
      this.db
        .prepare(
          'INSERT INTO rollout_devices (rollout_id, device_id, stage, state, active, previous_model, previous_digest, assigned_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(d.rolloutId, d.deviceId, d.stage, d.state, active ? 1 : 0, d.previousModel, d.previousDigest, d.assignedAt, d.assignedAt);
      return true;
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') return false;
      throw err;
    }
  }

  devices(rolloutId: string): RolloutDeviceRow[] {
    return (this.db.prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? ORDER BY assigned_at, device_id').all(rolloutId) as RawDevice[]).map(toDevice);
  }

  device(rolloutId: string, deviceId: string): RolloutDeviceRow | null {
    const row = this.db.prepare('SELECT * FROM rollout_devices WHERE rollout_id = ? AND device_id = ?').get(rolloutId, deviceId) as RawDevice | undefined;
    return row ? toDevice(row) : null;
  }

  setDeviceState(rolloutId: string, deviceId: string, state: RolloutDeviceState, phase: string | null, reason: string | null, now: number): void {
    this.db.prepare('UPDATE rollout_devices SET state = ?, phase = ?, reason = ?, updated_at = ? WHERE rollout_id = ? AND device_id = ?').run(state, phase, reason, now, rolloutId, deviceId);
  }

  /** The active rollout holding a device, if any. */
  activeRolloutOf(deviceId: string): string | null {
    const row = this.db.prepare('SELECT rollout_id FROM rollout_devices WHERE device_id = ? AND active = 1').get(deviceId) as { rollout_id: string } | undefined;
    return row?.rollout_id ?? null;
  }

  /** Every device held by an active rollout, with the rollout. */
  activeClaims(): Map<string, string> {
    const rows = this.db.prepare('SELECT device_id, rollout_id FROM rollout_devices WHERE active = 1').all() as { device_id: string; rollout_id: string }[];
    return new Map(rows.map((r) => [r.device_id, r.rollout_id]));
  }

  /** A finished rollout lets go of its devices. */
  release(rolloutId: string): void {
    this.db.prepare('UPDATE rollout_devices SET active = 0 WHERE rollout_id = ?').run(rolloutId);
  }

  assignedSince(rolloutId: string, since: number): number {
    return (this.db.prepare("SELECT count(*) AS n FROM rollout_devices WHERE rollout_id = ? AND assigned_at > ? AND state NOT IN ('reverting', 'reverted', 'kept')").get(rolloutId, since) as { n: number }).n;
  }
}
