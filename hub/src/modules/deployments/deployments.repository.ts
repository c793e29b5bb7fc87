/**
 * Deployments and the signed desired document of every device (tables owned by the deployments
 * module). `desired` keeps exactly the bytes that were signed and published, so re-publishing
 * after a restart delivers the identical document (agents treat it as already applied).
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';

const MIGRATIONS = [
  `CREATE TABLE deployments (
     id TEXT PRIMARY KEY,
     model_name TEXT NOT NULL,
     model_version TEXT NOT NULL,
     digest TEXT NOT NULL,
     target TEXT NOT NULL,
     created_at INTEGER NOT NULL
   );
   CREATE TABLE deployment_targets (
     deployment_id TEXT NOT NULL REFERENCES deployments (id),
     device_id TEXT NOT NULL,
     seq INTEGER NOT NULL,
     PRIMARY KEY (deployment_id, device_id)
   );
   CREATE TABLE desired (
     device_id TEXT PRIMARY KEY,
     seq INTEGER NOT NULL,
     deployment_id TEXT NOT NULL,
     digest TEXT,
     document TEXT NOT NULL,
     expires_at INTEGER NOT NULL,
     published_at INTEGER NOT NULL
   );`,
];

export interface DeploymentRow {
  id: string;
  modelName: string;
  modelVersion: string;
  digest: string;
  target: { deviceIds?: string[]; selector?: string };
  createdAt: number;
  deviceIds: string[];
}

export type DesiredHead = Pick<DesiredRow, 'seq' | 'deploymentId' | 'digest'>;

export interface DesiredRow {
  deviceId: string;
  seq: number;
  deploymentId: string;
  digest: string | null;
  document: string;
  expiresAt: number;
}

interface RawDesired {
  device_id: string;
  seq: number;
  deployment_id: string;
  digest: string | null;
  document: string;
  expires_at: number;
}

const toDesired = (r: RawDesired): DesiredRow => ({
  deviceId: r.device_id,
  seq: r.seq,
  deploymentId: r.deployment_id,
  digest: r.digest,
  document: r.document,
  expiresAt: r.expires_at,
});

export class DeploymentsRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'deployments', MIGRATIONS);
  }

  /** The seq, deployment and bundle digest of the device's current desired document, without reading the document (~10 KiB). */
  desiredHead(deviceId: string): DesiredHead | null {
    const row = this.db.prepare('SELECT seq, deployment_id, digest FROM desired WHERE device_id = ?').get(deviceId) as { seq: number; deployment_id: string; digest: string | null } | undefined;
    return row ? { seq: row.seq, deploymentId: row.deployment_id, digest: row.digest } : null;
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  insertDeployment(d: Omit<DeploymentRow, 'deviceIds'>): void {
    this.db
      .prepare('INSERT INTO deployments (id, model_name, model_version, digest, target, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(d.id, d.modelName, d.modelVersion, d.digest, JSON.stringify(d.target), d.createdAt);
  }

  addTarget(deploymentId: string, deviceId: string, seq: number): void {
    this.db.prepare('INSERT INTO deployment_targets (deployment_id, device_id, seq) VALUES (?, ?, ?) ON CONFLICT (deployment_id, device_id) DO UPDATE SET seq = excluded.seq').run(deploymentId, deviceId, seq);
  }

  getDeployment(id: string): DeploymentRow | null {
    const row = this.db.prepare('SELECT * FROM deployments WHERE id = ?').get(id) as
      | { id: string; model_name: string; model_version: string; digest: string; target: string; created_at: number }
      | undefined;
    if (!row) return null;
    const deviceIds = (this.db.prepare('SELECT device_id FROM deployment_targets WHERE deployment_id = ? ORDER BY device_id').all(id) as { device_id: string }[]).map((r) => r.device_id);
    return { id: row.id, modelName: row.model_name, modelVersion: row.model_version, digest: row.digest, target: JSON.parse(row.target), createdAt: row.created_at, deviceIds };
  }

  listDeployments(limit: number): DeploymentRow[] {
    const ids = this.db.prepare('SELECT id FROM deployments ORDER BY created_at DESC, id DESC LIMIT ?').all(limit) as { id: string }[];
    return ids.map((r) => this.getDeployment(r.id)!);
  }

  /** The model a deployment assigned (`name@version`), without loading its targets. */
  modelOf(deploymentId: string): { name: string; version: string; digest: string } | null {
    const row = this.db.prepare('SELECT model_name, model_version, digest FROM deployments WHERE id = ?').get(deploymentId) as
      | { model_name: string; model_version: string; digest: string }
      | undefined;
    return row ? { name: row.model_name, version: row.model_version, digest: row.digest } : null;
  }

  desiredFor(deviceId: string): DesiredRow | null {
    const row = this.db.prepare('SELECT * FROM desired WHERE device_id = ?').get(deviceId) as RawDesired | undefined;
    return row ? toDesired(row) : null;
  }

  /** Devices whose current desired document comes from a deployment of this model version. */
  devicesAssigned(modelName: string, modelVersion: string): string[] {
    return (
      this.db
        .prepare('SELECT d.device_id FROM desired d JOIN deployments p ON p.id = d.deployment_id WHERE p.model_name = ? AND p.model_version = ?')
        .all(modelName, modelVersion) as { device_id: string }[]
    ).map((r) => r.device_id);
  }

  allDesired(): DesiredRow[] {
    return (this.db.prepare('SELECT * FROM desired ORDER BY device_id').all() as RawDesired[]).map(toDesired);
  }

  expiringBefore(ts: number): DesiredRow[] {
    return (this.db.prepare('SELECT * FROM desired WHERE expires_at < ? ORDER BY device_id').all(ts) as RawDesired[]).map(toDesired);
  }

  saveDesired(row: DesiredRow, now: number): void {
    this.db
      .prepare(
        `INSERT INTO desired (device_id, seq, deployment_id, digest, document, expires_at, published_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (device_id) DO UPDATE SET seq = excluded.seq, deployment_id = excluded.deployment_id, digest = excluded.digest,
           document = excluded.document, expires_at = excluded.expires_at, published_at = excluded.published_at`,
      )
      .run(row.deviceId, row.seq, row.deploymentId, row.digest, row.document, row.expiresAt, now);
  }
}
