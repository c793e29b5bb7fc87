/**
 * Content-addressed blob storage: `<data>/blobs/sha256/<digest>`. A blob is written to a temp
 * file, hashed while streaming, and renamed into place, so a stored blob is always complete and
 * its name is its SHA-256.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';

export interface StagedBlob {
  path: string;
  digest: string;
  size: number;
  /** Moves the staged file into the store (idempotent for identical content). */
  commit(): string;
  discard(): void;
}

export class BlobTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`blob exceeds ${limit} bytes`);
  }
}

export class BlobStore {
  private readonly root: string;
  private readonly tmp: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'blobs', 'sha256');
    this.tmp = join(dataDir, 'blobs', 'tmp');
    mkdirSync(this.root, { recursive: true });
    mkdirSync(this.tmp, { recursive: true });
  }

  pathOf(digest: string): string {
    if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`not a sha256 digest: ${digest}`);
    return join(this.root, digest);
  }

  has(digest: string): boolean {
    return existsSync(this.pathOf(digest));
  }

  size(digest: string): number {
    return statSync(this.pathOf(digest)).size;
  }

  /** Streams `source` into a temp file, hashing it; refuses more than `maxBytes`. */
  async stage(source: Readable, maxBytes: number): Promise<StagedBlob> {
    const path = join(this.tmp, `${Date.now()}-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let size = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, callback) {
        size += chunk.length;
        if (size > maxBytes) return callback(new BlobTooLargeError(maxBytes));
        hash.update(chunk);
        callback(null, chunk);
      },
    });
    try {
      await pipeline(source, meter, createWriteStream(path, { flush: true }));
    } catch (err) {
      rmSync(path, { force: true });
      throw err;
    }
    const digest = hash.digest('hex');
    return {
      path,
      digest,
      size,
      commit: () => {
        const target = this.pathOf(digest);
        if (existsSync(target)) rmSync(path, { force: true });
        else renameSync(path, target);
        return target;
      },
      discard: () => rmSync(path, { force: true }),
    };
  }

  /** Opens a stored blob for positional reads (chunk serving). */
  open(digest: string): Promise<FileHandle> {
    return open(this.pathOf(digest), 'r');
  }
}
