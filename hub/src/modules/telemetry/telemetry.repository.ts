/**
 * Telemetry storage (tables owned by the telemetry module).
 *
 * - `telemetry_raw`: one row per interval summary, stored once per (device, seq): agents resend
 *   after reconnects and restarts, and a duplicate must change nothing. Rows are appended in
 *   arrival order (an AUTOINCREMENT id, never reused), which keeps inserts cheap: a fleet's
 *   summaries interleave devices, and a table clustered by device would rewrite a page per
 *   summary. The summary is kept in
 *   typed columns (queries aggregate them; far smaller than a JSON body); the active bundle is a
 *   reference into `telemetry_bundles`, and the drift section's per-feature map is packed
 *   (feature-psi-codec.ts) against a name list in `telemetry_feature_sets`.
 * - `telemetry_minute` / `telemetry_hour`: rollups per (device, bucket start, model name@version),
 *   built by `rollUp()` from the raw rows appended since its watermark (`telemetry_rollup_state`,
 *   moved in the same transaction as the rollup rows, so each summary is counted exactly once; a
 *   duplicate is never appended, and late data — an outbox replayed hours later — lands in the
 *   bucket of its own `ts`). Rollup queries call `rollUp()` first, so they are never behind.
 *   Combination rules (also in the README):
 *     summaries, inferences, errors: sums;
 *     latency p50: mean of the summaries' p50 weighted by their inferences (`p50_wsum / lat_n`);
 *     latency p95: max of the summaries' p95 (a conservative upper bound: percentiles of
 *       different intervals cannot be merged exactly without the histograms);
 *     cpu %, rss MB: mean over summaries (`*_sum / summaries`);
 *     prediction PSI and max feature PSI: max.
 * - `telemetry_latest`: each device's newest summary time and drift state, persisted by
 *   `rollUp()`; `latestByDevice()` answers from memory, updated at every commit.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { DriftSummaryT, TelemetryT } from '@cairn/shared';
import { HOUR_MS, MINUTE_MS } from './series-query.js';
import { decodeFeaturePsi, encodeFeaturePsi } from './feature-psi-codec.js';

const ROLLUP_COLUMNS = `
     summaries INTEGER NOT NULL,
     inferences INTEGER NOT NULL,
     errors INTEGER NOT NULL,
     lat_n INTEGER NOT NULL,
     p50_wsum REAL NOT NULL,
     p95_max REAL,
     cpu_sum REAL NOT NULL,
     rss_sum REAL NOT NULL,
     psi_pred_max REAL,
     psi_feat_max REAL`;

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
  // Columns instead of a JSON body, rollups, and each device's latest state. The summaries of
  // migration 1 are moved over (their rollups are rebuilt from them).
  `CREATE TABLE telemetry_bundles (
     id INTEGER PRIMARY KEY,
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     digest TEXT NOT NULL,
     deployment_id TEXT NOT NULL,
     UNIQUE (name, version, digest, deployment_id)
   );
   CREATE TABLE telemetry_feature_sets (
     id INTEGER PRIMARY KEY,
     names TEXT NOT NULL UNIQUE
   );
   CREATE TABLE telemetry_raw (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     device_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     ts INTEGER NOT NULL,
     received_at INTEGER NOT NULL,
     interval_ms INTEGER NOT NULL,
     inferences INTEGER NOT NULL,
     errors INTEGER NOT NULL,
     p50 REAL, p95 REAL, p99 REAL, lat_max REAL,
     cpu_pct REAL NOT NULL,
     rss_mb REAL NOT NULL,
     bundle_id INTEGER REFERENCES telemetry_bundles (id),
     outbox_depth INTEGER, outbox_dropped INTEGER,
     drift_window_ms INTEGER, drift_samples INTEGER, drift_status TEXT,
     prediction_psi REAL, max_feature_psi REAL, max_feature TEXT,
     drift_feature_set INTEGER REFERENCES telemetry_feature_sets (id), drift_features BLOB
   );
   CREATE UNIQUE INDEX telemetry_raw_by_seq ON telemetry_raw (device_id, seq);
   CREATE INDEX telemetry_raw_by_time ON telemetry_raw (device_id, ts);
   CREATE TABLE telemetry_rollup_state (one INTEGER PRIMARY KEY CHECK (one = 1), rolled_up_to INTEGER NOT NULL);
   INSERT INTO telemetry_rollup_state VALUES (1, 0);
   CREATE TABLE telemetry_minute (
     device_id TEXT NOT NULL, bucket INTEGER NOT NULL, model TEXT NOT NULL,${ROLLUP_COLUMNS},
     PRIMARY KEY (device_id, bucket, model)
   ) WITHOUT ROWID;
   CREATE TABLE telemetry_hour (
     device_id TEXT NOT NULL, bucket INTEGER NOT NULL, model TEXT NOT NULL,${ROLLUP_COLUMNS},
     PRIMARY KEY (device_id, bucket, model)
   ) WITHOUT ROWID;
   CREATE INDEX telemetry_minute_by_model ON telemetry_minute (model, bucket);
   CREATE INDEX telemetry_hour_by_model ON telemetry_hour (model, bucket);
   CREATE TABLE telemetry_latest (
     device_id TEXT PRIMARY KEY,
     ts INTEGER NOT NULL,
     drift_status TEXT,
     prediction_psi REAL,
     max_feature_psi REAL
   ) WITHOUT ROWID;`,
];

/** The store's view of one new summary waiting in a batch. */
export interface PendingSummary {
  deviceId: string;
  summary: TelemetryT;
  receivedAt: number;
}

export interface LatestTelemetry {
  ts: number;
  driftStatus: DriftSummaryT['status'] | null;
  predictionPsi: number | null;
  maxFeaturePsi: number | null;
}

export type SeriesSource = 'raw' | 'minute' | 'hour';

/** Which summaries a series covers: one device, a set of devices (a selector's), or one model version on any device. */
export type SeriesScope = { kind: 'devices'; ids: readonly string[] } | { kind: 'model'; model: string };

/** One bucket's aggregates before they become an API point (see the combination rules above). */
export interface BucketAggregate {
  t: number;
  summaries: number;
  inferences: number;
  errors: number;
  latN: number;
  p50WSum: number;
  p95Max: number | null;
  cpuSum: number;
  rssSum: number;
  psiPredMax: number | null;
  psiFeatMax: number | null;
}

interface RawRow {
  seq: number;
  ts: number;
  interval_ms: number;
  inferences: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  lat_max: number | null;
  cpu_pct: number;
  rss_mb: number;
  name: string | null;
  version: string | null;
  digest: string | null;
  deployment_id: string | null;
  outbox_depth: number | null;
  outbox_dropped: number | null;
  drift_window_ms: number | null;
  drift_samples: number | null;
  drift_status: DriftSummaryT['status'] | null;
  prediction_psi: number | null;
  max_feature_psi: number | null;
  max_feature: string | null;
  drift_feature_set: number | null;
  drift_features: Buffer | null;
}

/** Rows folded per rollup transaction by the periodic job: a few tens of milliseconds of work. */
export const ROLLUP_CHUNK_ROWS = 20_000;

export class TelemetryRepository {
  private readonly bundleIds = new Map<string, number>();
  private readonly latest = new Map<string, LatestTelemetry>();
  private readonly featureSetIds = new Map<string, number>();
  private readonly featureSetNames = new Map<number, string[]>();
  private lastFeatureSet: { names: readonly string[]; id: number } | null = null;
  private rawRowCount: number;

  constructor(private readonly db: Db) {
    migrate(db, 'telemetry', MIGRATIONS);
    this.moveVersion1Rows();
    this.rawRowCount = (db.prepare('SELECT COUNT(*) AS n FROM telemetry_raw').get() as { n: number }).n;
    while (this.rollUp(ROLLUP_CHUNK_ROWS) > 0);
    for (const [id, latest] of this.readLatest()) this.latest.set(id, latest);
  }

  /** Raw summaries stored now (kept up to date by inserts and retention, counted once at start). */
  get rawRows(): number {
    return this.rawRowCount;
  }

  /**
   * Stores a batch in one transaction. Returns, per item, whether it was new; only new summaries
   * reach the rollups and the latest state. Throws (nothing stored) when the transaction fails.
   */
  storeBatch(items: readonly PendingSummary[]): boolean[] {
    let fresh: boolean[];
    try {
      fresh = this.db.transaction(() => items.map((item) => this.storeOne(item)))();
    } catch (err) {
      // Lookup rows (bundles, feature lists) this transaction inserted are gone with it, and
      // SQLite may hand their ids to other rows: forget every remembered id, they are read again.
      this.forgetLookupIds();
      throw err;
    }
    items.forEach((item, i) => {
      if (!fresh[i]) return;
      this.rawRowCount++;
      const known = this.latest.get(item.deviceId);
      const t = item.summary;
      if (!known || t.ts >= known.ts) this.latest.set(item.deviceId, { ts: t.ts, driftStatus: t.drift?.status ?? null, predictionPsi: t.drift?.predictionPsi ?? null, maxFeaturePsi: t.drift?.maxFeaturePsi ?? null });
    });
    return fresh;
  }

  private storeOne({ deviceId, summary: t, receivedAt }: PendingSummary): boolean {
    const packed = t.drift ? encodeFeaturePsi(t.drift.features) : null;
    const inserted = this.db.prepare(
      `INSERT INTO telemetry_raw (device_id, seq, ts, received_at, interval_ms, inferences, errors, p50, p95, p99, lat_max, cpu_pct, rss_mb, bundle_id,
         outbox_depth, outbox_dropped, drift_window_ms, drift_samples, drift_status, prediction_psi, max_feature_psi, max_feature, drift_feature_set, drift_features)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
    ).run(
      deviceId, t.seq, t.ts, receivedAt, t.intervalMs, t.inferences, t.errors,
      t.latencyMs?.p50 ?? null, t.latencyMs?.p95 ?? null, t.latencyMs?.p99 ?? null, t.latencyMs?.max ?? null,
      t.cpuPct, t.rssMb, t.active ? this.bundleId(t.active) : null,
      t.outbox?.depth ?? null, t.outbox?.dropped ?? null,
      t.drift?.windowMs ?? null, t.drift?.samples ?? null, t.drift?.status ?? null,
      t.drift?.predictionPsi ?? null, t.drift?.maxFeaturePsi ?? null, t.drift?.maxFeature ?? null,
      packed ? this.featureSetId(packed.names) : null, packed?.values ?? null,
    ).changes > 0;
    return inserted;
  }

  /**
   * Folds the raw rows appended since the watermark into the minute and hour rollups and the
   * persisted latest state, at most `maxRows` of them per transaction (so a job's pauses stay
   * short); returns how many rows it folded. Call until it returns 0 to catch up fully.
   */
  rollUp(maxRows = Number.MAX_SAFE_INTEGER): number {
    return this.db.transaction(() => {
      const from = (this.db.prepare('SELECT rolled_up_to AS n FROM telemetry_rollup_state').get() as { n: number }).n;
      const last = (this.db.prepare('SELECT MAX(id) AS n FROM telemetry_raw').get() as { n: number | null }).n ?? from;
      const to = Math.min(last, from + maxRows);
      if (to <= from) return 0;
      for (const [table, width] of [['telemetry_minute', MINUTE_MS], ['telemetry_hour', HOUR_MS]] as const) this.foldStatement(table, width).run(from, to);
      this.db.prepare(
        `INSERT INTO telemetry_latest (device_id, ts, drift_status, prediction_psi, max_feature_psi)
         SELECT device_id, MAX(ts), drift_status, prediction_psi, max_feature_psi FROM telemetry_raw WHERE id > ? AND id <= ? GROUP BY device_id
         ON CONFLICT (device_id) DO UPDATE SET ts = excluded.ts, drift_status = excluded.drift_status,
           prediction_psi = excluded.prediction_psi, max_feature_psi = excluded.max_feature_psi
         WHERE excluded.ts >= telemetry_latest.ts`,
      ).run(from, to); // SQLite takes the bare columns from the row holding MAX(ts)
      this.db.prepare('UPDATE telemetry_rollup_state SET rolled_up_to = ?').run(to);
      return to - from;
    })();
  }

  private foldStatement(table: 'telemetry_minute' | 'telemetry_hour', width: number) {
    // max(NULL, x) is NULL in SQLite, so merging maxima skips NULLs explicitly.
    const max = (column: string) => `CASE WHEN excluded.${column} IS NULL THEN ${column} WHEN ${column} IS NULL THEN excluded.${column} ELSE max(${column}, excluded.${column}) END`;
    return this.db.prepare(
      `INSERT INTO ${table} (device_id, bucket, model, summaries, inferences, errors, lat_n, p50_wsum, p95_max, cpu_sum, rss_sum, psi_pred_max, psi_feat_max)
       SELECT r.device_id, (r.ts / ${width}) * ${width} AS bucket, COALESCE(b.name || '@' || b.version, '') AS model,
         COUNT(*), SUM(r.inferences), SUM(r.errors), SUM(CASE WHEN r.p50 IS NULL THEN 0 ELSE r.inferences END), TOTAL(r.p50 * r.inferences), MAX(r.p95),
         TOTAL(r.cpu_pct), TOTAL(r.rss_mb), MAX(r.prediction_psi), MAX(r.max_feature_psi)
       FROM telemetry_raw r LEFT JOIN telemetry_bundles b ON b.id = r.bundle_id
       WHERE r.id > ? AND r.id <= ?
       GROUP BY r.device_id, bucket, model
       ON CONFLICT (device_id, bucket, model) DO UPDATE SET
         summaries = summaries + excluded.summaries, inferences = inferences + excluded.inferences, errors = errors + excluded.errors,
         lat_n = lat_n + excluded.lat_n, p50_wsum = p50_wsum + excluded.p50_wsum, p95_max = ${max('p95_max')},
         cpu_sum = cpu_sum + excluded.cpu_sum, rss_sum = rss_sum + excluded.rss_sum,
         psi_pred_max = ${max('psi_pred_max')}, psi_feat_max = ${max('psi_feat_max')}`,
    );
  }

  private bundleId(active: NonNullable<TelemetryT['active']>): number {
    const key = `${active.name}\0${active.version}\0${active.digest}\0${active.deploymentId}`;
    let id = this.bundleIds.get(key);
    if (id === undefined) {
      this.db.prepare('INSERT INTO telemetry_bundles (name, version, digest, deployment_id) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(active.name, active.version, active.digest, active.deploymentId);
      id = (this.db.prepare('SELECT id FROM telemetry_bundles WHERE name = ? AND version = ? AND digest = ? AND deployment_id = ?').get(active.name, active.version, active.digest, active.deploymentId) as { id: number }).id;
      this.bundleIds.set(key, id);
    }
    return id;
  }

  /**
   * The id of an ordered feature name list. A fleet sends the same few lists in every summary,
   * so the list of the previous summary is compared first, name by name: cheaper than
   * serializing every summary's list to look it up.
   */
  private featureSetId(names: readonly string[]): number {
    const last = this.lastFeatureSet;
    if (last && last.names.length === names.length && last.names.every((name, i) => name === names[i])) return last.id;
    const key = JSON.stringify(names);
    let id = this.featureSetIds.get(key);
    if (id === undefined) {
      this.db.prepare('INSERT INTO telemetry_feature_sets (names) VALUES (?) ON CONFLICT DO NOTHING').run(key);
      id = (this.db.prepare('SELECT id FROM telemetry_feature_sets WHERE names = ?').get(key) as { id: number }).id;
      this.featureSetIds.set(key, id);
    }
    this.lastFeatureSet = { names, id };
    return id;
  }

  private forgetLookupIds(): void {
    this.bundleIds.clear();
    this.featureSetIds.clear();
    this.featureSetNames.clear();
    this.lastFeatureSet = null;
  }

  private featureNames(id: number): string[] {
    let names = this.featureSetNames.get(id);
    if (!names) {
      names = JSON.parse((this.db.prepare('SELECT names FROM telemetry_feature_sets WHERE id = ?').get(id) as { names: string }).names) as string[];
      this.featureSetNames.set(id, names);
    }
    return names;
  }


  /** Summaries of one device with from <= ts < to, oldest first, at most `limit` (the newest ones). */
  range(deviceId: string, from: number, to: number, limit: number): TelemetryT[] {
    const rows = this.db.prepare(
      `SELECT r.*, b.name, b.version, b.digest, b.deployment_id FROM telemetry_raw r LEFT JOIN telemetry_bundles b ON b.id = r.bundle_id
       WHERE r.device_id = ? AND r.ts >= ? AND r.ts < ? ORDER BY r.ts DESC, r.seq DESC LIMIT ?`,
    ).all(deviceId, from, to, limit) as RawRow[];
    return rows.map((r) => this.toTelemetry(r)).reverse();
  }

  /**
   * Aggregates per bucket of `stepMs` (aligned to the epoch) over from <= t < to. `raw` groups
   * summaries by their ts; `minute`/`hour` group rollup buckets (stepMs must be a multiple of
   * the rollup's width). Buckets without data are absent.
   */
  series(source: SeriesSource, scope: SeriesScope, from: number, to: number, stepMs: number): BucketAggregate[] {
    if (source !== 'raw') this.rollUp();
    // One device (the common chart) is an equality on the leading key column; a set goes through json_each.
    const one = scope.kind === 'devices' && scope.ids.length === 1;
    const filter = scope.kind === 'model' ? 'model = ?' : one ? 'device_id = ?' : 'device_id IN (SELECT value FROM json_each(?))';
    const arg = scope.kind === 'model' ? scope.model : one ? scope.ids[0]! : JSON.stringify(scope.ids);
    let sql: string;
    if (source === 'raw') {
      const rawFilter =
        scope.kind === 'model'
          ? `bundle_id IN (SELECT id FROM telemetry_bundles WHERE name || '@' || version = ?)`
          : filter;
      sql = `SELECT (ts / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS t, COUNT(*) AS summaries, SUM(inferences) AS inferences, SUM(errors) AS errors,
               SUM(CASE WHEN p50 IS NULL THEN 0 ELSE inferences END) AS latN, TOTAL(p50 * inferences) AS p50WSum, MAX(p95) AS p95Max,
               TOTAL(cpu_pct) AS cpuSum, TOTAL(rss_mb) AS rssSum, MAX(prediction_psi) AS psiPredMax, MAX(max_feature_psi) AS psiFeatMax
             FROM telemetry_raw WHERE ${rawFilter} AND ts >= ? AND ts < ? GROUP BY t ORDER BY t`;
    } else {
      const table = source === 'minute' ? 'telemetry_minute' : 'telemetry_hour';
      sql = `SELECT (bucket / CAST(? AS INTEGER)) * CAST(? AS INTEGER) AS t, SUM(summaries) AS summaries, SUM(inferences) AS inferences, SUM(errors) AS errors,
               SUM(lat_n) AS latN, TOTAL(p50_wsum) AS p50WSum, MAX(p95_max) AS p95Max, TOTAL(cpu_sum) AS cpuSum, TOTAL(rss_sum) AS rssSum,
               MAX(psi_pred_max) AS psiPredMax, MAX(psi_feat_max) AS psiFeatMax
             FROM ${table} WHERE ${filter} AND bucket >= ? AND bucket < ? GROUP BY t ORDER BY t`;
    }
    // stepMs is bound, not written into the SQL: one statement per source and scope kind, however many steps are asked for.
    return this.db.prepare(sql).all(stepMs, stepMs, arg, from, to) as BucketAggregate[];
  }

  /** How many devices sent summaries of `model` (name@version) with from <= ts < to (hour buckets overlapping the range). */
  devicesWithModel(model: string, from: number, to: number): number {
    this.rollUp();
    return (
      this.db.prepare('SELECT COUNT(DISTINCT device_id) AS n FROM telemetry_hour WHERE model = ? AND bucket >= ? AND bucket < ?').get(model, Math.floor(from / HOUR_MS) * HOUR_MS, to) as { n: number }
    ).n;
  }

  /** Each device's newest summary time and drift state (a copy). */
  latestByDevice(): Map<string, LatestTelemetry> {
    return new Map(this.latest);
  }

  private readLatest(): Map<string, LatestTelemetry> {
    const rows = this.db.prepare('SELECT device_id, ts, drift_status, prediction_psi, max_feature_psi FROM telemetry_latest').all() as Array<{
      device_id: string;
      ts: number;
      drift_status: DriftSummaryT['status'] | null;
      prediction_psi: number | null;
      max_feature_psi: number | null;
    }>;
    return new Map(rows.map((r) => [r.device_id, { ts: r.ts, driftStatus: r.drift_status, predictionPsi: r.prediction_psi, maxFeaturePsi: r.max_feature_psi }]));
  }

  /**
   * Deletes raw summaries with ts < rawBefore and rollup buckets starting before their cutoffs,
   * one device at a time (the (device, ts) index serves each delete; no index on ts alone is
   * needed for this). Returns the rows deleted per table.
   */
  applyRetention(cutoffs: { rawBefore: number; minuteBefore: number; hourBefore: number }): { raw: number; minute: number; hour: number } {
    this.rollUp(); // a raw row is deleted only once it is in the rollups
    const devices = [...this.latest.keys()];
    const deleted = { raw: 0, minute: 0, hour: 0 };
    for (const id of devices) {
      this.db.transaction(() => {
        deleted.raw += this.db.prepare('DELETE FROM telemetry_raw WHERE device_id = ? AND ts < ?').run(id, cutoffs.rawBefore).changes;
        deleted.minute += this.db.prepare('DELETE FROM telemetry_minute WHERE device_id = ? AND bucket < ?').run(id, cutoffs.minuteBefore).changes;
        deleted.hour += this.db.prepare('DELETE FROM telemetry_hour WHERE device_id = ? AND bucket < ?').run(id, cutoffs.hourBefore).changes;
      })();
    }
    this.rawRowCount -= deleted.raw;
    return deleted;
  }

  private toTelemetry(r: RawRow): TelemetryT {
    const t: TelemetryT = {
      seq: r.seq,
      ts: r.ts,
      intervalMs: r.interval_ms,
      inferences: r.inferences,
      errors: r.errors,
      latencyMs: r.p50 === null ? null : { p50: r.p50, p95: r.p95!, p99: r.p99!, max: r.lat_max! },
      rssMb: r.rss_mb,
      cpuPct: r.cpu_pct,
      active: r.name === null ? null : { name: r.name, version: r.version!, digest: r.digest!, deploymentId: r.deployment_id! },
    };
    if (r.outbox_depth !== null) t.outbox = { depth: r.outbox_depth, dropped: r.outbox_dropped! };
    if (r.drift_status !== null) {
      t.drift = {
        windowMs: r.drift_window_ms!,
        samples: r.drift_samples!,
        predictionPsi: r.prediction_psi,
        maxFeaturePsi: r.max_feature_psi,
        maxFeature: r.max_feature,
        features: decodeFeaturePsi(this.featureNames(r.drift_feature_set!), r.drift_features!),
        status: r.drift_status,
      };
    }
    return t;
  }

  /** Migration 1 kept whole JSON bodies; move them into the columns (and rollups) once, then drop the old table. */
  private moveVersion1Rows(): void {
    const old = this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'telemetry'").get();
    if (!old) return;
    this.db.transaction(() => {
      for (const row of this.db.prepare('SELECT device_id, received_at, body FROM telemetry').iterate() as Iterable<{ device_id: string; received_at: number; body: string }>) {
        this.storeOne({ deviceId: row.device_id, summary: JSON.parse(row.body) as TelemetryT, receivedAt: row.received_at });
      }
      this.db.exec('DROP TABLE telemetry');
    })();
  }
}
