/**
 * The intake behind the stdin and MQTT sources: a bounded queue of record texts, run through the
 * pipeline one at a time in arrival order (`Pipeline.process`, so the maintenance rules see
 * every window).
 *
 * Contracts:
 * - A bad record never stops the intake: it is refused with a RecordError reason, counted, and
 *   logged without its content (the first few of each reason, then one line per 1,000 so a
 *   misconfigured sender cannot flood the journal).
 * - `offer` refuses (reason `overloaded`) once `maxQueue` texts wait; a source that can push back
 *   (a stream) pauses while `queued >= highWater` and resumes on `drained` (emitted whenever the
 *   queue is below the high-water mark after a record).
 */
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ActiveModel } from '../active-model.js';
import type { Pipeline } from '../pipeline.js';
import { NoModelError } from '../../errors.js';
import { parseRecord, recordFeeds, RecordError, type RecordRejection } from './records.js';

export interface RecordIntakeOptions {
  /** Names the source in logs: `stdin`, `mqtt`. */
  source: string;
  active: ActiveModel;
  pipeline: Pipeline;
  clock: () => number;
  logger: Logger;
  /** Most texts waiting before `offer` refuses; default 1,024. */
  maxQueue?: number;
  /** Largest record in bytes; default 1 MiB. */
  maxRecordBytes?: number;
}

export interface RecordIntakeStats {
  accepted: number;
  rejected: Partial<Record<RecordRejection, number>>;
}

/** Refusals of one reason logged one by one before the log thins out. */
const LOGGED_PER_REASON = 5;
const LOG_EVERY = 1000;

export class RecordIntake extends EventEmitter<{ drained: [] }> {
  readonly maxRecordBytes: number;
  readonly highWater: number;
  private readonly queue: string[] = [];
  private readonly maxQueue: number;
  private running = false;
  private stopped = false;
  private accepted = 0;
  private readonly rejected = new Map<RecordRejection, number>();

  constructor(private readonly options: RecordIntakeOptions) {
    super();
    this.maxQueue = options.maxQueue ?? 1024;
    this.maxRecordBytes = options.maxRecordBytes ?? 1024 * 1024;
    this.highWater = Math.max(1, Math.floor(this.maxQueue / 2));
  }

  get queued(): number {
    return this.queue.length;
  }

  get stats(): RecordIntakeStats {
    return { accepted: this.accepted, rejected: Object.fromEntries(this.rejected) };
  }

  /** Queues one record's text; false (counted as `overloaded`) when the queue is full or stopped. */
  offer(text: string): boolean {
    if (this.stopped || this.queue.length >= this.maxQueue) {
      this.refuse(new RecordError('overloaded', `${this.queue.length} records already wait`));
      return false;
    }
    if (Buffer.byteLength(text) > this.maxRecordBytes) {
      this.refuse(new RecordError('too_long', `a record exceeds ${this.maxRecordBytes} bytes`));
      return true;
    }
    this.queue.push(text);
    void this.run();
    return true;
  }

  /** Counts a refusal found before the text reached the queue (an over-long line). */
  refuse(error: RecordError): void {
    const count = (this.rejected.get(error.reason) ?? 0) + 1;
    this.rejected.set(error.reason, count);
    if (count <= LOGGED_PER_REASON || count % LOG_EVERY === 0) {
      this.options.logger.warn({ source: this.options.source, reason: error.reason, count }, `refused a record: ${error.message.slice(0, 300)}`);
    }
  }

  /** Stops taking records; what is queued is discarded (the sources are best-effort streams). */
  stop(): void {
    this.stopped = true;
    this.queue.length = 0;
  }

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      let text: string | undefined;
      while (!this.stopped && (text = this.queue.shift()) !== undefined) {
        await this.processOne(text);
        if (this.queue.length < this.highWater) this.emit('drained');
      }
    } finally {
      this.running = false;
    }
  }

  private async processOne(text: string): Promise<void> {
    try {
      const record = parseRecord(text);
      const model = this.options.active.current;
      if (!model) throw new RecordError('no_model', 'no model is served yet');
      const feeds = recordFeeds(record, model);
      await this.options.pipeline.process(feeds, record.ts ?? this.options.clock());
      this.accepted++;
    } catch (err) {
      if (err instanceof RecordError) this.refuse(err);
      else if (err instanceof NoModelError) this.refuse(new RecordError('no_model', err.message));
      else this.refuse(new RecordError('inference_failed', (err as Error).message));
    }
  }
}
