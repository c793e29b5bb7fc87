/**
 * Model versions and their signed manifests (tables owned by the registry module). A version is
 * immutable once pushed: same name@version can never point at other bytes.
 */
import type { Db } from '../../infra/db.js';
import { migrate } from '../../infra/db.js';
import type { ManifestT, SignatureT, SignedManifestT } from '@cairn/shared';

const MIGRATIONS = [
  `CREATE TABLE models (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     release_counter INTEGER NOT NULL UNIQUE,
     digest TEXT NOT NULL,
     size INTEGER NOT NULL,
     manifest TEXT NOT NULL,
     signatures TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     PRIMARY KEY (name, version)
   );`,
  // Who pushed each version (an audit actor, e.g. `user:alice`; NULL before operators existed),
  // and who approved it for more than a canary (approval-policy.ts).
  `ALTER TABLE models ADD COLUMN pushed_by TEXT;
   CREATE TABLE model_approvals (
     name TEXT NOT NULL,
     version TEXT NOT NULL,
     approved_by TEXT NOT NULL,
     approved_at INTEGER NOT NULL,
     PRIMARY KEY (name, version, approved_by),
     FOREIGN KEY (name, version) REFERENCES models (name, version)
   );`,
];

export interface Approval {
  by: string;
  at: number;
}

export interface ModelVersion {
  name: string;
  version: string;
  releaseCounter: number;
  digest: string;
  size: number;
  createdAt: number;
  bundle: SignedManifestT;
  pushedBy: string | null;
}

interface Row {
  name: string;
  version: string;
  release_counter: number;
  digest: string;
  size: number;
  manifest: string;
  signatures: string;
  created_at: number;
  pushed_by: string | null;
}

const toModel = (r: Row): ModelVersion => ({
  name: r.name,
  version: r.version,
  releaseCounter: r.release_counter,
  digest: r.digest,
  size: r.size,
  createdAt: r.created_at,
  pushedBy: r.pushed_by,
  bundle: { manifest: JSON.parse(r.manifest) as ManifestT, signatures: JSON.parse(r.signatures) as SignatureT[] },
});

export class RegistryRepository {
  constructor(private readonly db: Db) {
    migrate(db, 'registry', MIGRATIONS);
  }

  nextReleaseCounter(): number {
    return ((this.db.prepare('SELECT MAX(release_counter) AS m FROM models').get() as { m: number | null }).m ?? 0) + 1;
  }

  get(name: string, version: string): ModelVersion | null {
    const row = this.db.prepare('SELECT * FROM models WHERE name = ? AND version = ?').get(name, version) as Row | undefined;
    return row ? toModel(row) : null;
  }

  list(): ModelVersion[] {
    return (this.db.prepare('SELECT * FROM models ORDER BY name, release_counter').all() as Row[]).map(toModel);
  }

  /** Inserts a new version; returns false when name@version already exists. */
  insert(bundle: SignedManifestT, now: number, pushedBy: string): boolean {
    const m = bundle.manifest;
    const file = m.files[0]!;
    const result = this.db
      .prepare(
        `INSERT INTO models (name, version, release_counter, digest, size, manifest, signatures, created_at, pushed_by)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING`,
      )
      .run(m.name, m.version, m.releaseCounter, file.digest, file.size, JSON.stringify(m), JSON.stringify(bundle.signatures), now, pushedBy);
    return result.changes > 0;
  }

  /** Replaces the signatures of a version's manifest (the manifest itself is immutable). */
  replaceSignatures(name: string, version: string, signatures: SignatureT[]): void {
    this.db.prepare('UPDATE models SET signatures = ? WHERE name = ? AND version = ?').run(JSON.stringify(signatures), name, version);
  }

  approvals(name: string, version: string): Approval[] {
    return (this.db.prepare('SELECT approved_by, approved_at FROM model_approvals WHERE name = ? AND version = ? ORDER BY approved_at').all(name, version) as { approved_by: string; approved_at: number }[]).map((r) => ({
      by: r.approved_by,
      at: r.approved_at,
    }));
  }

  /** Records an approval; false when this approver had already approved the version. */
  approve(name: string, version: string, by: string, now: number): boolean {
    return this.db.prepare('INSERT INTO model_approvals (name, version, approved_by, approved_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING').run(name, version, by, now).changes > 0;
  }
}
