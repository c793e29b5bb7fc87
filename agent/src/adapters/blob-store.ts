/**
 * Content-addressed blob storage on the device: `blobs/sha256/<digest>` holds only blobs whose
 * SHA-256 was verified on the way in; `blobs/partial/<digest>` holds a download in progress and
 * `blobs/partial/<digest>.chunks` its chunk record.
 *
 * The chunk record says which chunks of the partial file are durably on disk, so that a download
 * resumes across restarts. Its contract: it is replaced atomically (writeFileAtomic) and only
 * after the data it claims was fsynced, so it never claims a chunk a power loss could have lost.
 * It is bound to the digest, the blob size and the chunk size; a record that does not match them,
 * cannot be parsed, or claims bytes beyond the end of the partial file is unusable, and the
 * download starts again from zero. The record proves nothing about the bytes themselves: the
 * whole-blob SHA-256 check stays the gate before a blob enters `sha256/`.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Type } from 'typebox';
import { Compile, Sha256Hex } from '@cairn/shared';
import { fsyncDirectory, writeFileAtomic } from './atomic-file.js';

export interface BlobCheck {
  ok: boolean;
  digest: string;
  size: number;
}

/**
 * `<digest>.chunks`, JSON. `chunks` is a bitmap in base64: bit `i % 8` of byte `i >> 3` is set
 * when chunk `i` (bytes `i * chunkBytes` up to the next chunk or `size`) is durably written.
 */
export const ChunkRecord = Type.Object(
  {
    format: Type.Literal('cairn.partial/v1'),
    digest: Sha256Hex,
    size: Type.Integer({ minimum: 0 }),
    chunkBytes: Type.Integer({ minimum: 1 }),
    chunks: Type.String({ maxLength: 1 << 24 }),
  },
  { additionalProperties: false },
);
const chunkRecordValidator = Compile(ChunkRecord);

/** A partial download's chunk record as read back: one byte per chunk, 1 = durably on disk. */
export type ChunkRecordRead = { kind: 'none' } | { kind: 'ok'; chunks: Uint8Array } | { kind: 'unusable'; why: string };

const CHUNK_RECORD_SUFFIX = '.chunks';

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

  chunkRecordPathOf(digest: string): string {
    return `${this.partialPathOf(digest)}${CHUNK_RECORD_SUFFIX}`;
  }

  /**
   * Reads the chunk record of `digest`'s partial download and checks that it belongs to this
   * blob (digest, size, chunk size) and to the partial file beside it (long enough to hold every
   * chunk it claims). `none`: there is no record.
   */
  async readChunkRecord(digest: string, size: number, chunkBytes: number): Promise<ChunkRecordRead> {
    let text: string;
    try {
      text = await readFile(this.chunkRecordPathOf(digest), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
      return { kind: 'unusable', why: `it cannot be read (${(err as Error).message})` };
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return { kind: 'unusable', why: 'it is not JSON' };
    }
    if (!chunkRecordValidator.Check(value)) return { kind: 'unusable', why: 'it does not match the chunk record schema' };
    if (value.digest !== digest || value.size !== size || value.chunkBytes !== chunkBytes) {
      return { kind: 'unusable', why: `it is for ${value.digest.slice(0, 12)}, ${value.size} bytes in chunks of ${value.chunkBytes}, not ${digest.slice(0, 12)}, ${size} bytes in chunks of ${chunkBytes}` };
    }
    const total = Math.ceil(size / chunkBytes);
    const bitmap = Buffer.from(value.chunks, 'base64');
    if (bitmap.length !== Math.ceil(total / 8) || bitmap.toString('base64') !== value.chunks) return { kind: 'unusable', why: `its bitmap does not have ${total} bits` };
    const chunks = new Uint8Array(total);
    let end = 0;
    for (let i = 0; i < bitmap.length * 8; i++) {
      if (!(bitmap[i >> 3]! & (1 << (i & 7)))) continue;
      if (i >= total) return { kind: 'unusable', why: `it claims chunk ${i} of a blob of ${total} chunks` };
      chunks[i] = 1;
      end = Math.min(size, (i + 1) * chunkBytes);
    }
    const length = await stat(this.partialPathOf(digest)).then(
      (s) => s.size,
      () => -1,
    );
    if (length < end) return { kind: 'unusable', why: length < 0 ? 'the partial file is missing' : `it claims ${end} bytes, the partial file has ${length}` };
    return { kind: 'ok', chunks };
  }

  /**
   * Replaces the chunk record (atomically). Call it only once the claimed chunks are fsynced.
   * `chunks`: one byte per chunk, non-zero = durably on disk.
   */
  async writeChunkRecord(digest: string, size: number, chunkBytes: number, chunks: Uint8Array): Promise<void> {
    const bitmap = Buffer.alloc(Math.ceil(chunks.length / 8));
    chunks.forEach((on, i) => {
      if (on) bitmap[i >> 3]! |= 1 << (i & 7);
    });
    const record = { format: 'cairn.partial/v1', digest, size, chunkBytes, chunks: bitmap.toString('base64') };
    await writeFileAtomic(this.chunkRecordPathOf(digest), `${JSON.stringify(record)}\n`);
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

  /** Moves a verified partial file into the content-addressed store; its chunk record goes. */
  async commitPartial(digest: string): Promise<string> {
    const target = this.pathOf(digest);
    await rename(this.partialPathOf(digest), target);
    await fsyncDirectory(this.verifiedDir);
    // A crash before this leaves a record without a partial file: unusable, and collected.
    await rm(this.chunkRecordPathOf(digest), { force: true });
    return target;
  }

  async remove(digest: string): Promise<void> {
    await rm(this.pathOf(digest), { force: true });
  }

  /** Deletes a partial download: its chunk record first, then its bytes. */
  async removePartial(digest: string): Promise<void> {
    await rm(this.chunkRecordPathOf(digest), { force: true });
    await rm(this.partialPathOf(digest), { force: true });
  }

  /**
   * Deletes every partial download (bytes, chunk record, stray temp files) except the bytes and
   * record of `keep`. Call it when no download is running: it would delete a record being written.
   */
  async removePartialsExcept(keep: string | null): Promise<void> {
    const kept = keep === null ? [] : [checkDigest(keep), `${keep}${CHUNK_RECORD_SUFFIX}`];
    for (const entry of await readdir(this.partialDir).catch(() => [] as string[])) {
      if (!kept.includes(entry)) await rm(join(this.partialDir, entry), { force: true });
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
