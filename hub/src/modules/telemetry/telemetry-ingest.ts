/**
 * Batched ingest. The broker handler enqueues each summary and awaits the returned promise,
 * which settles only when the batch holding it has committed (resolve) or failed (reject), so a
 * device's PUBACK always follows the store and a failed commit makes every waiting device resend
 * (infra/broker.ts). A batch commits when it holds `batchMaxRows` summaries or `batchMaxDelayMs`
 * after its first one, whichever comes first: one SQLite transaction per batch instead of one
 * per message is what makes fleet-scale rates possible.
 */
import { performance } from 'node:perf_hooks';
import type { TelemetryT } from '@cairn/shared';
import type { PendingSummary } from './telemetry.repository.js';

export interface IngestOptions {
  /** Stores a batch in one transaction; per item, whether it was new. Throws when nothing was stored. */
  store(items: readonly PendingSummary[]): boolean[];
  batchMaxRows: number;
  batchMaxDelayMs: number;
  /** Called after a commit (and after the waiting handlers were released) with the summaries that were new and the batch's facts; must not throw. */
  committed(fresh: readonly PendingSummary[], batch: { size: number; duplicates: number; lagsSeconds: readonly number[] }): void;
  failed(err: Error, size: number): void;
}

interface Waiting extends PendingSummary {
  /** performance.now() at receipt: the ingest lag is receipt → commit, on the monotonic clock. */
  receivedMono: number;
  resolve(): void;
  reject(err: Error): void;
}

export class TelemetryIngest {
  private pending: Waiting[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: IngestOptions) {}

  /** Resolves once the summary is durably stored (or was already), rejects if its batch failed. */
  enqueue(deviceId: string, summary: TelemetryT, receivedAt: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ deviceId, summary, receivedAt, receivedMono: performance.now(), resolve, reject });
      if (this.pending.length >= this.options.batchMaxRows) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.options.batchMaxDelayMs);
    });
  }

  /** Commits whatever waits now (also used at shutdown, so nothing received is left unanswered). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    let fresh: boolean[];
    try {
      fresh = this.options.store(batch);
    } catch (err) {
      this.options.failed(err as Error, batch.length);
      for (const item of batch) item.reject(err as Error);
      return;
    }
    const now = performance.now();
    for (const item of batch) item.resolve();
    const stored = batch.filter((_, i) => fresh[i]);
    this.options.committed(stored, { size: batch.length, duplicates: batch.length - stored.length, lagsSeconds: batch.map((item) => (now - item.receivedMono) / 1000) });
  }
}
