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
];

export interface ModelVersion {
  name: string;
  version: string;
  releaseCounter: number;
  digest: string;
  size: number;
  createdAt: number;
  bundle: SignedManifestT;
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
}

const toModel = (r: Row): ModelVersion => ({
  name: r.name,
  version: r.version,
  releaseCounter: r.release_counter,
  digest: r.digest,
  size: r.size,
  createdAt: r.created_at,
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
  insert(bundle: SignedManifestT, now: number): boolean {
    const m = bundle.manifest;
    const file = m.files[0]!;
    const result = this.db
      .prepare(
        `INSERT INTO models (name, version, release_counter, digest, size, manifest, signatures, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version) DO NOTHING`,
      )
      .run(m.name, m.version, m.releaseCounter, file.digest, file.size, JSON.stringify(m), JSON.stringify(bundle.signatures), now);
    return result.changes > 0;
  }
}
