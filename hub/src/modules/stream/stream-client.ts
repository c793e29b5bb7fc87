/**
 * One live-stream connection. A resuming client first catches up from the journal, paced by its
 * socket's back-pressure, and turns live in the same tick as it finds the journal read to its
 * head: events journaled while it caught up are read from the journal, and every later one is
 * delivered live, so none is missed or sent twice. A live client whose socket takes less than
 * the hub produces is dropped once more than `maxBufferedBytes` wait in its buffer: memory per
 * client stays bounded, and the client resumes from its Last-Event-ID.
 */
import type { ServerResponse } from 'node:http';
import { sseFrame, sseIdOnly, SSE_HEARTBEAT } from './stream-events.js';
import type { StreamJournal } from './stream-journal.js';

export interface StreamClientOptions {
  journal: StreamJournal;
  maxBufferedBytes: number;
  /** The device whose telemetry this client asked for (`?device=`), if any. */
  device: string | null;
  /** Counts an event written to this client. */
  sent(event: string): void;
  /** Counts this client being dropped. */
  dropped(reason: 'slow'): void;
  /** Counts a resume answered with `reset`. */
  reset(reason: string): void;
}

/** Journal rows read per step of a catch-up. */
const REPLAY_PAGE = 256;

export class StreamClient {
  private live = false;
  private gone = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly options: StreamClientOptions,
  ) {
    res.once('close', () => (this.gone = true));
  }

  get device(): string | null {
    return this.options.device;
  }

  /** Starts live from the journal's head; the client learns the head as its last event id. */
  goLive(head: number, firstFrame: string = sseIdOnly(head)): void {
    this.live = true;
    this.write(firstFrame);
  }

  /**
   * Sends every journaled event after `lastEventId`, then goes live. When the journal does not
   * cover that id (another database's, or pruned), the client gets a `reset` event and goes live
   * at the head. Checked before every page: pruning can overtake a catch-up that waits on a slow
   * socket, and the check and the read are one synchronous step. Ends early if the connection closes.
   */
  async resume(lastEventId: string): Promise<void> {
    const { journal } = this.options;
    let after = lastEventId;
    while (!this.gone) {
      const point = journal.resumePoint(after);
      if (point.kind === 'reset') {
        this.options.reset(point.reason);
        const head = journal.head();
        this.goLive(head, sseFrame('reset', JSON.stringify({ reason: point.reason, lastEventId: lastEventId.slice(0, 32) }), head));
        return;
      }
      const page = journal.after(Number(after), REPLAY_PAGE);
      if (page.length === 0) {
        this.live = true; // the same tick as the read above: nothing was journaled in between
        return;
      }
      for (const row of page) {
        after = String(row.id);
        const accepted = this.write(sseFrame(row.event, row.data, row.id), row.event);
        if (!accepted) await this.drained();
        if (this.gone) return;
      }
    }
  }

  /** A new event for every live client (the frame is shared between clients). */
  deliver(event: string, frame: string): void {
    if (this.live && !this.gone) this.write(frame, event);
  }

  heartbeat(): void {
    if (!this.gone) this.write(SSE_HEARTBEAT);
  }

  /** Ends the response (hub shutdown); a client with unsent bytes is cut off rather than waited for. */
  end(): void {
    if (this.gone) return;
    this.gone = true;
    if (this.res.writableLength > 0) this.res.destroy();
    else this.res.end();
  }

  /** Writes a frame; false when the socket asks the writer to wait for 'drain'. */
  private write(frame: string, event?: string): boolean {
    const accepted = this.res.write(frame);
    if (event) this.options.sent(event);
    if (this.res.writableLength > this.options.maxBufferedBytes) {
      this.gone = true;
      this.options.dropped('slow');
      this.res.destroy();
    }
    return accepted;
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', done);
        resolve();
      };
      this.res.once('drain', done);
      this.res.once('close', done);
    });
  }
}
