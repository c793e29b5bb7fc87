/**
 * JSON lines from a byte stream (the agent's stdin): one record per line (records.ts), `\n` or
 * `\r\n` terminated; blank lines are skipped; a last line without a newline counts at the end of
 * the stream.
 *
 * Contracts:
 * - Memory is bounded: a line longer than the intake's `maxRecordBytes` is counted once as
 *   `too_long` and skipped up to its newline, never buffered whole.
 * - Back-pressure, not loss: the stream is paused while the intake's queue is at its high-water
 *   mark and resumed when it drains, so a fast producer (`cat big.jsonl | cairn-agent run`) waits.
 * - The end of the stream ends the source, not the agent (the local API and MQTT go on).
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { RecordError } from './records.js';
import type { RecordIntake } from './record-intake.js';

export class LineSource {
  /** Received bytes not yet split into lines (held while the intake is full). */
  private backlog: Buffer | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Inside an over-long line: drop bytes up to the next newline. */
  private skipping = false;
  private ended = false;
  private readonly onData = (chunk: Buffer | string): void => this.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  private readonly onEnd = (): void => this.finish();
  private readonly onError = (err: Error): void => this.options.logger.warn({ err }, 'input stream failed; the source stops');
  private readonly onDrained = (): void => {
    this.drainBacklog();
    if (!this.backlog && this.options.stream.isPaused() && !this.ended) this.options.stream.resume();
  };

  constructor(private readonly options: { stream: Readable; intake: RecordIntake; logger: Logger }) {}

  start(): void {
    const { stream, intake } = this.options;
    intake.on('drained', this.onDrained);
    stream.on('data', this.onData);
    stream.on('end', this.onEnd);
    stream.on('error', this.onError);
  }

  stop(): void {
    const { stream, intake } = this.options;
    intake.off('drained', this.onDrained);
    stream.off('data', this.onData);
    stream.off('end', this.onEnd);
    stream.off('error', this.onError);
    stream.pause();
  }

  /** Whether the stream has ended (every line was offered). */
  get done(): boolean {
    return this.ended;
  }

  private push(chunk: Buffer): void {
    this.backlog = this.backlog ? Buffer.concat([this.backlog, chunk]) : chunk;
    this.drainBacklog();
  }

  /** Offers complete lines until the intake is at its high-water mark; keeps the rest (stream paused) for `drained`. */
  private drainBacklog(): void {
    const { intake, stream } = this.options;
    const chunk = this.backlog;
    if (!chunk) return;
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl !== -1; nl = chunk.indexOf(0x0a, start)) {
      this.append(chunk.subarray(start, nl));
      this.emitLine();
      start = nl + 1;
      if (intake.queued >= intake.highWater) {
        this.backlog = start < chunk.length ? chunk.subarray(start) : null;
        if (!stream.isPaused()) stream.pause();
        return;
      }
    }
    this.append(chunk.subarray(start));
    this.backlog = null;
  }

  private append(piece: Buffer): void {
    if (this.skipping || piece.length === 0) return;
    if (this.pendingBytes + piece.length > this.options.intake.maxRecordBytes) {
      this.options.intake.refuse(new RecordError('too_long', `a line exceeds ${this.options.intake.maxRecordBytes} bytes`));
      this.skipping = true;
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    this.pending.push(piece);
    this.pendingBytes += piece.length;
  }

  private emitLine(): void {
    const wasSkipping = this.skipping;
    this.skipping = false;
    const text = Buffer.concat(this.pending, this.pendingBytes).toString('utf8').trim();
    this.pending = [];
    this.pendingBytes = 0;
    if (wasSkipping || text.length === 0) return;
    this.options.intake.offer(text);
  }

  private finish(): void {
    this.emitLine();
    this.ended = true;
    this.options.logger.info('input stream ended; the source is done');
  }
}
