/**
 * Resumable, windowed blob download over MQTT (DESIGN §2).
 *
 * The agent asks `blob/req {digest, from, count}` for up to BLOB_MAX_WINDOW chunks at a time;
 * the hub answers with one binary `blob/res` frame per chunk, `{digest, index, total}` plus
 * BLOB_CHUNK_BYTES of data (less for the last chunk), `total` being the number of chunks.
 * Each chunk is written at its offset into `blobs/partial/<digest>` and counted only once the
 * write has completed. What is missing is asked for again after a reconnect, or after
 * `chunkTimeoutMs` without progress; after `maxRetries` such timeouts in a row the download
 * fails (`download_failed`). Time spent offline does not use up retries.
 *
 * Refused outright: a frame whose `total` disagrees with the manifest size, or whose chunk
 * would make the blob longer (or shorter) than the manifest says (`size_mismatch`), and an
 * error frame from the hub (`download_failed`, with the hub's message). When every chunk is in,
 * the file's SHA-256 must equal the manifest digest (`digest_mismatch` otherwise) before it is
 * moved into `blobs/sha256/<digest>`.
 *
 * One download runs at a time. A superseded download keeps its partial file and the list of
 * chunks written, so a later download of the same digest resumes where it stopped.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BLOB_CHUNK_BYTES, BLOB_MAX_WINDOW, decodeBlobFrame } from '@cairn/shared';
import type { BlobStore } from '../adapters/blob-store.js';
import type { Connection } from './connection.js';
import type { DropCounter } from './drop-counter.js';
import { DeploymentFailure, SupersededError } from '../errors.js';

export interface DownloaderOptions {
  connection: Connection;
  blobs: BlobStore;
  drops: DropCounter;
  logger: Logger;
  /** Re-request what is missing after this long without a new chunk; default 15 s. */
  chunkTimeoutMs?: number;
  /** Timeouts in a row (while connected) before the download fails; default 6. */
  maxRetries?: number;
  /** Chunks per request, at most BLOB_MAX_WINDOW. */
  window?: number;
}

export interface BlobTarget {
  digest: string;
  size: number;
}

export interface DownloadProgress {
  digest: string;
  received: number;
  total: number;
}

interface Job {
  digest: string;
  size: number;
  total: number;
  file: FileHandle;
  /** 1 once the chunk's bytes are written. */
  received: Uint8Array;
  count: number;
  writing: Set<number>;
  writes: Set<Promise<void>>;
  outstanding: { from: number; count: number } | null;
  retries: number;
  timer: NodeJS.Timeout | null;
  settled: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Free space kept beyond the blob itself (state.json, logs, the next partial). */
const DISK_MARGIN_BYTES = 4 * 1024 * 1024;

export class Downloader {
  private job: Job | null = null;
  private resumable: { digest: string; received: Uint8Array } | null = null;
  private readonly chunkTimeoutMs: number;
  private readonly maxRetries: number;
  private readonly window: number;

  constructor(private readonly options: DownloaderOptions) {
    this.chunkTimeoutMs = options.chunkTimeoutMs ?? 15_000;
    this.maxRetries = options.maxRetries ?? 6;
    this.window = Math.max(1, Math.min(BLOB_MAX_WINDOW, options.window ?? BLOB_MAX_WINDOW));
  }

  start(): void {}

  stop(): void {
    if (this.job) this.settle(this.job, new SupersededError('the agent is stopping'));
  }

  get progress(): DownloadProgress | null {
    return this.job ? { digest: this.job.digest, received: this.job.count, total: this.job.total } : null;
  }

  /**
   * Downloads and verifies one blob; resolves with its path in the content-addressed store.
   * `onVerifying` runs once every chunk is in, before the digest check. Rejects with a
   * DeploymentFailure, or a SupersededError when `signal` aborts.
   */
  async download(target: BlobTarget, signal: AbortSignal, onVerifying?: () => Promise<void> | void): Promise<string> {
    const { blobs, logger } = this.options;
    const { digest, size } = target;
    if (this.job) throw new Error('a download is already running');
    if (signal.aborted) throw new SupersededError();
    const total = Math.ceil(size / BLOB_CHUNK_BYTES);
    const partial = blobs.partialPathOf(digest);

    const resume = this.resumable?.digest === digest && this.resumable.received.length === total ? this.resumable : null;
    this.resumable = null;
    await blobs.removePartialsExcept(resume ? digest : null);
    const free = await blobs.freeBytes();
    if (free < size + DISK_MARGIN_BYTES) {
      throw new DeploymentFailure('insufficient_disk', `not enough free disk space: the blob needs ${size} bytes (+${DISK_MARGIN_BYTES} margin), ${free} are available`);
    }
    const partialExists = await stat(partial).then(
      () => true,
      () => false,
    );
    const received = resume && partialExists ? resume.received : new Uint8Array(total);
    const file = await open(partial, resume && partialExists ? 'r+' : 'w', 0o600);
    let job!: Job;
    const done = new Promise<void>((resolve, reject) => {
      job = {
        digest,
        size,
        total,
        file,
        received,
        count: received.reduce((n, r) => n + r, 0),
        writing: new Set(),
        writes: new Set(),
        outstanding: null,
        retries: 0,
        timer: null,
        settled: false,
        resolve,
        reject,
      };
    });
    const onAbort = (): void => this.settle(job, new SupersededError());
    signal.addEventListener('abort', onAbort, { once: true });
    this.job = job;
    if (job.count > 0) logger.info({ digest, received: job.count, total }, 'resuming download');
    else logger.info({ digest, size, total }, 'downloading blob');

    try {
      if (job.count === total) this.settle(job);
      else this.requestNext(job);
      await done;
      await file.sync();
    } catch (err) {
      await Promise.allSettled([...job.writes]);
      if (err instanceof SupersededError) {
        this.resumable = { digest, received: job.received };
      } else {
        await file.close().catch(() => undefined);
        await blobs.removePartial(digest).catch(() => undefined);
      }
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (job.timer) clearTimeout(job.timer);
      if (this.job === job) this.job = null;
      await file.close().catch(() => undefined);
    }

    await onVerifying?.();
    if (signal.aborted) {
      this.resumable = { digest, received: job.received };
      throw new SupersededError();
    }
    const check = await blobs.check(partial, digest, size);
    if (!check.ok) {
      await blobs.removePartial(digest).catch(() => undefined);
      if (check.size !== size) throw new DeploymentFailure('size_mismatch', `the blob has ${check.size} bytes, the manifest says ${size}`);
      throw new DeploymentFailure('digest_mismatch', `the blob's SHA-256 is ${check.digest}, the manifest says ${digest}`);
    }
    const path = await blobs.commitPartial(digest);
    logger.info({ digest, size }, 'blob downloaded and verified');
    return path;
  }

  /** After every (re)connect: the hub's answers to earlier requests are gone, ask again. */
  onConnect(): void {
    const job = this.job;
    if (job && !job.settled) {
      job.outstanding = null;
      this.requestNext(job);
    }
  }

  /** A binary blob/res frame from the hub. */
  onFrame(payload: Buffer): void {
    const { drops } = this.options;
    const frame = decodeBlobFrame(payload);
    if (!frame.ok) {
      drops.drop('blob/res', 'malformed', frame.message);
      return;
    }
    const { header, chunk } = frame;
    const job = this.job;
    if (!job || job.settled || header.digest !== job.digest) {
      drops.drop('blob/res', 'stale', `frame for ${header.digest.slice(0, 12)} with no download of it running`, 'debug');
      return;
    }
    if (header.error !== undefined) {
      this.settle(job, new DeploymentFailure('download_failed', `the hub could not serve the blob: ${header.error}`));
      return;
    }
    if (header.total !== job.total) {
      this.settle(job, new DeploymentFailure('size_mismatch', `the hub says the blob has ${header.total} chunks; the manifest size ${job.size} means ${job.total}`));
      return;
    }
    const { index } = header;
    if (index >= job.total) {
      this.settle(job, new DeploymentFailure('size_mismatch', `chunk ${index} is beyond the ${job.total} chunks of the manifest size`));
      return;
    }
    const expected = index === job.total - 1 ? job.size - index * BLOB_CHUNK_BYTES : BLOB_CHUNK_BYTES;
    if (chunk.length !== expected) {
      const what = chunk.length > expected ? 'more than the manifest size allows' : 'fewer than a chunk of this blob must hold';
      this.settle(job, new DeploymentFailure('size_mismatch', `chunk ${index} has ${chunk.length} bytes, ${what} (${expected})`));
      return;
    }
    if (job.received[index] || job.writing.has(index)) return; // a duplicate: already have it
    job.writing.add(index);
    const write = job.file.write(chunk, 0, chunk.length, index * BLOB_CHUNK_BYTES).then(
      () => {
        job.writing.delete(index);
        if (job.settled) return;
        job.received[index] = 1;
        job.count++;
        job.retries = 0;
        if (job.count === job.total) {
          this.settle(job);
          return;
        }
        this.armTimer(job);
        if (job.outstanding && this.windowArrived(job, job.outstanding)) this.requestNext(job);
      },
      (err: Error) => this.settle(job, new DeploymentFailure('download_failed', `cannot write the blob: ${err.message}`)),
    );
    job.writes.add(write);
    void write.finally(() => job.writes.delete(write));
  }

  private requestNext(job: Job): void {
    if (job.settled) return;
    this.armTimer(job);
    if (!this.options.connection.connected) return; // onConnect asks again
    const missing = (i: number): boolean => !job.received[i] && !job.writing.has(i);
    let from = 0;
    while (from < job.total && !missing(from)) from++;
    if (from >= job.total) return; // only writes in flight
    let count = 0;
    while (from + count < job.total && count < this.window && missing(from + count)) count++;
    job.outstanding = { from, count };
    this.options.connection.publish('blob/req', { digest: job.digest, from, count }).catch((err: Error) => this.options.logger.debug({ err }, 'blob/req not acknowledged'));
  }

  private windowArrived(job: Job, window: { from: number; count: number }): boolean {
    for (let i = window.from; i < window.from + window.count; i++) {
      if (!job.received[i] && !job.writing.has(i)) return false;
    }
    return true;
  }

  private armTimer(job: Job): void {
    if (job.timer) clearTimeout(job.timer);
    job.timer = setTimeout(() => this.onTimeout(job), this.chunkTimeoutMs);
  }

  private onTimeout(job: Job): void {
    job.timer = null;
    if (job.settled) return;
    if (!this.options.connection.connected) {
      this.armTimer(job);
      return;
    }
    job.retries++;
    if (job.retries > this.maxRetries) {
      this.settle(job, new DeploymentFailure('download_failed', `no new chunk after ${this.maxRetries} requests ${this.chunkTimeoutMs} ms apart (${job.count}/${job.total} chunks received)`));
      return;
    }
    this.options.logger.info({ digest: job.digest, received: job.count, total: job.total, retry: job.retries }, 'no progress: asking again for the missing chunks');
    job.outstanding = null;
    this.requestNext(job);
  }

  private settle(job: Job, err?: Error): void {
    if (job.settled) return;
    job.settled = true;
    if (job.timer) clearTimeout(job.timer);
    job.timer = null;
    if (err) job.reject(err);
    else job.resolve();
  }
}
