/**
 * Content-addressed blob storage on the device: `blobs/sha256/<digest>` holds only blobs whose
 * SHA-256 was verified on the way in; `blobs/partial/<digest>` holds downloads in progress.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { fsyncDirectory } from './atomic-file.js';

export interface BlobCheck {
  ok: boolean;
  digest: string;
  size: number;
}

export class BlobStore {
  readonly root: string;
  private readonly verifiedDir: string;
  private readonly partialDir: string;

  constructor(stateDir: string) {
    this.root = join(stateDir, 'blobs');
    this.verifiedDir = join(this.root, 'sha256');
    this.partialDir = join(this.root, 'partial');
  }

  async start(): Promise<void> {
    await mkdir(this.verifiedDir, { recursive: true, mode: 0o700 });
    await mkdir(this.partialDir, { recursive: true, mode: 0o700 });
  }

  pathOf(digest: string): string {
    return join(this.verifiedDir, checkDigest(digest));
  }

  partialPathOf(digest: string): string {
    return join(this.partialDir, checkDigest(digest));
  }

  async has(digest: string): Promise<boolean> {
    return stat(this.pathOf(digest)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  /** Hashes a stored (or partial) file and compares it with what it must be. */
  async check(path: string, digest: string, size: number): Promise<BlobCheck> {
    const actual = await hashFile(path);
    return { ok: actual.digest === digest && actual.size === size, ...actual };
  }

  /** Moves a verified partial file into the content-addressed store. */
  async commitPartial(digest: string): Promise<string> {
    const target = this.pathOf(digest);
    await rename(this.partialPathOf(digest), target);
    await fsyncDirectory(this.verifiedDir);
    return target;
  }

  async remove(digest: string): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  async removePartial(digest: string): Promise<void> {
    await rm(this.partialPathOf(digest), { force: true });
  }

  /** Deletes every partial download except `keep` (only one download runs at a time). */
  async removePartialsExcept(keep: string | null): Promise<void> {
    for (const entry of await readdir(this.partialDir).catch(() => [] as string[])) {
      if (entry !== keep) await rm(join(this.partialDir, entry), { force: true });
    }
  }

  /** Deletes every verified blob whose digest is not in `keep`. */
  async removeAllExcept(keep: ReadonlySet<string>): Promise<void> {
    for (const entry of await readdir(this.verifiedDir).catch(() => [] as string[])) {
      if (!keep.has(entry)) await rm(join(this.verifiedDir, entry), { force: true });
    }
  }

  /** Bytes available to this (unprivileged) process on the blob volume. */
  async freeBytes(): Promise<number> {
    const s = await statfs(this.root);
    return Number(s.bavail) * Number(s.bsize);
  }
}

export async function hashFile(path: string): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: hash.digest('hex'), size };
}

function checkDigest(digest: string): string {
  // The digest becomes a file name: never let anything but 64 hex digits near the filesystem.
  if (!/^[0-9a-f]{64}$/.test(digest)) throw new Error(`not a sha256 digest: ${digest.slice(0, 80)}`);
  return digest;
}
