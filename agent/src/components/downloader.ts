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
 * Resume across restarts: after every window's worth of chunks written (and on a stall, on stop,
 * on supersession and when the last chunk is in) a checkpoint fsyncs the partial file and then
 * replaces its chunk record (BlobStore), so the record only claims chunks that are on disk. A
 * later download of the same digest, in this process or the next, asks only for the chunks the
 * record does not claim; a crash loses at most the chunks since the last checkpoint. An unusable
 * record (another blob or chunk size, garbled, longer than the file) restarts the download from
 * zero. There are no per-chunk hashes in the protocol, so a kept chunk is "written and fsynced",
 * not "verified": if a blob that used kept chunks fails the digest check, the kept bytes are the
 * suspect (a torn write, a damaged medium), so the partial is discarded and the blob fetched once
 * more from zero; only freshly fetched bytes that fail the check are the bundle's fault.
 *
 * One download runs at a time; starting one deletes the partials of every other digest. A
 * superseded download, or one that failed for a transient reason (`download_failed`), keeps its
 * partial file and record for a later resume; a size or digest mismatch deletes them.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BLOB_CHUNK_BYTES, BLOB_MAX_WINDOW, decodeBlobFrame } from '@cairn/shared';
import type { BlobStore } from '../adapters/blob-store.js';
import type { Connection } from './connection.js';
import type { DropCounter } from './drop-counter.js';
import { DeploymentFailure, SupersededError, throwIfAborted } from '../errors.js';

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

/** The phases a download passes through, with a note for the event when there is one to tell. */
export type OnDownloadPhase = (phase: 'downloading' | 'verifying', note?: string) => Promise<void> | void;

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
  /** Chunks written since the last checkpoint was asked for. */
  sinceCheckpoint: number;
  /** The checkpoint being written; `dirty`: another one was asked for meanwhile. */
  checkpoint: Promise<void> | null;
  dirty: boolean;
  settled: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Free space kept beyond the blob itself (state.json, logs, the next partial). */
const DISK_MARGIN_BYTES = 4 * 1024 * 1024;

export class Downloader {
  private job: Job | null = null;
  private running = false;
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
   * Downloads (or resumes) and verifies one blob; resolves with its path in the
   * content-addressed store. `onPhase` runs when fetching starts (with a note when chunks are
   * kept from before) and once every chunk is in, before the digest check. Rejects with a
   * DeploymentFailure, or a SupersededError when `signal` aborts.
   */
  async download(target: BlobTarget, signal: AbortSignal, onPhase: OnDownloadPhase = () => undefined): Promise<string> {
    const { blobs, logger } = this.options;
    const { digest, size } = target;
    if (this.running) throw new Error('a download is already running');
    throwIfAborted(signal);
    this.running = true;
    try {
      await blobs.removePartialsExcept(digest);
      const kept = await this.fetch(target, signal, onPhase, 'resume');
      await onPhase('verifying');
      throwIfAborted(signal);
      const partial = blobs.partialPathOf(digest);
      let check = await blobs.check(partial, digest, size);
      if (!check.ok && kept > 0) {
        logger.warn({ digest, kept, actual: check.digest }, 'a blob resumed from kept chunks does not match its digest: downloading it again from zero');
        await blobs.removePartial(digest);
        await this.fetch(target, signal, onPhase, `${kept} chunks kept from before did not verify (SHA-256 ${check.digest.slice(0, 12)}…): downloading the whole blob again`);
        await onPhase('verifying');
        throwIfAborted(signal);
        check = await blobs.check(partial, digest, size);
      }
      if (!check.ok) {
        await blobs.removePartial(digest).catch(() => undefined);
        if (check.size !== size) throw new DeploymentFailure('size_mismatch', `the blob has ${check.size} bytes, the manifest says ${size}`);
        throw new DeploymentFailure('digest_mismatch', `the blob's SHA-256 is ${check.digest}, the manifest says ${digest}`);
      }
      const path = await blobs.commitPartial(digest);
      logger.info({ digest, size }, 'blob downloaded and verified');
      return path;
    } catch (err) {
      if (err instanceof DeploymentFailure || err instanceof SupersededError) throw err;
      // A file system error (EIO, ENOSPC…): the device's trouble, not the bundle's.
      throw new DeploymentFailure('download_failed', `cannot store the blob: ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  /**
   * Fetches every chunk the partial file lacks. `from`: `'resume'` keeps what the chunk record
   * claims; otherwise the download starts from zero and `from` is the note saying why. Resolves
   * with the number of chunks kept from before.
   */
  private async fetch(target: BlobTarget, signal: AbortSignal, onPhase: OnDownloadPhase, from: 'resume' | string): Promise<number> {
    const { blobs, logger } = this.options;
    const { digest, size } = target;
    const total = Math.ceil(size / BLOB_CHUNK_BYTES);
    const partial = blobs.partialPathOf(digest);

    const record = from === 'resume' ? await blobs.readChunkRecord(digest, size, BLOB_CHUNK_BYTES) : ({ kind: 'none' } as const);
    if (record.kind === 'unusable') logger.warn({ digest, why: record.why }, 'the chunk record of the partial download is unusable: starting the download again from zero');
    const received = record.kind === 'ok' ? record.chunks : new Uint8Array(total);
    const kept = received.reduce((n, r) => n + r, 0);
    // Nothing kept: no stale bytes or record may survive into this download.
    if (kept === 0) await blobs.removePartial(digest);
    await onPhase('downloading', from !== 'resume' ? from : kept > 0 ? `resuming: ${kept} of ${total} chunks are on disk from before` : undefined);
    throwIfAborted(signal);

    const missingBytes = size - Math.min(size, kept * BLOB_CHUNK_BYTES);
    const free = await blobs.freeBytes();
    if (free < missingBytes + DISK_MARGIN_BYTES) {
      throw new DeploymentFailure('insufficient_disk', `not enough free disk space: the blob needs ${missingBytes} more bytes (+${DISK_MARGIN_BYTES} margin), ${free} are available`);
    }
    const file = await open(partial, kept > 0 ? 'r+' : 'w', 0o600);
    let job!: Job;
    const done = new Promise<void>((resolve, reject) => {
      job = {
        digest,
        size,
        total,
        file,
        received,
        count: kept,
        writing: new Set(),
        writes: new Set(),
        outstanding: null,
        retries: 0,
        timer: null,
        sinceCheckpoint: 0,
        checkpoint: null,
        dirty: false,
        settled: false,
        resolve,
        reject,
      };
    });
    // Awaited below; until then a rejection (an abort during the truncate) must not go unhandled.
    done.catch(() => undefined);
    const onAbort = (): void => this.settle(job, new SupersededError());
    signal.addEventListener('abort', onAbort, { once: true });
    this.job = job;
    if (kept > 0) logger.info({ digest, received: kept, total }, 'resuming download');
    else logger.info({ digest, size, total }, 'downloading blob');

    try {
      // Bytes past the manifest size cannot be a chunk of this blob.
      if (kept > 0) await file.truncate(size);
      if (job.count === total) this.settle(job);
      else this.requestNext(job);
      await done;
      // Every chunk is in: recorded, a restart during verification fetches nothing.
      await this.finalCheckpoint(job);
    } catch (err) {
      this.settle(job, err as Error);
      await Promise.allSettled([...job.writes]);
      const keep = err instanceof SupersededError || (err instanceof DeploymentFailure && err.reason === 'download_failed');
      if (keep) await this.finalCheckpoint(job);
      else {
        while (job.checkpoint) await job.checkpoint;
        await file.close().catch(() => undefined);
        await blobs.removePartial(digest).catch(() => undefined);
      }
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (job.timer) clearTimeout(job.timer);
      if (this.job === job) this.job = null;
      while (job.checkpoint) await job.checkpoint;
      await file.close().catch(() => undefined);
    }
    return kept;
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
        if (++job.sinceCheckpoint >= this.window) this.checkpoint(job);
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
    this.options.logger.debug({ digest: job.digest, from, count }, 'requesting chunks');
    this.options.connection.publish('blob/req', { digest: job.digest, from, count }).catch((err: Error) => this.options.logger.debug({ err }, 'blob/req not acknowledged'));
  }

  private windowArrived(job: Job, window: { from: number; count: number }): boolean {
    for (let i = window.from; i < window.from + window.count; i++) {
      if (!job.received[i] && !job.writing.has(i)) return false;
    }
    return true;
  }

  /**
   * Records the chunks written so far, in the background while the download goes on. One
   * checkpoint at a time: asked for while one runs, another follows it.
   */
  private checkpoint(job: Job): void {
    job.sinceCheckpoint = 0;
    if (job.checkpoint) {
      job.dirty = true;
      return;
    }
    job.dirty = false;
    job.checkpoint = this.writeChunkRecord(job).finally(() => {
      job.checkpoint = null;
      if (job.dirty && !job.settled) this.checkpoint(job);
    });
  }

  /** Waits for the running checkpoint, then writes one that holds every completed write. */
  private async finalCheckpoint(job: Job): Promise<void> {
    while (job.checkpoint) await job.checkpoint;
    await this.writeChunkRecord(job);
  }

  /**
   * fsync first, record second: the record claims only chunks whose write completed before the
   * fsync began. A failure costs only the resume (those chunks are fetched again), not the
   * download.
   */
  private async writeChunkRecord(job: Job): Promise<void> {
    const chunks = job.received.slice();
    try {
      await job.file.sync();
      await this.options.blobs.writeChunkRecord(job.digest, job.size, BLOB_CHUNK_BYTES, chunks);
      this.options.logger.debug({ digest: job.digest, recorded: chunks.reduce((n, c) => n + c, 0), total: job.total }, 'download progress recorded');
    } catch (err) {
      this.options.logger.warn({ err, digest: job.digest }, 'could not record the download progress; a restart fetches these chunks again');
    }
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
    // A stalled window may never complete: keep what did arrive.
    this.checkpoint(job);
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
