/**
 * Device events (deployment phase changes, rejected desired documents): each gets a unique
 * `eventId` so the hub can dedupe a re-delivery, and goes out through the durable outbox (so an
 * event raised offline, even before the first connect, is delivered). The last few are kept for
 * the agent's status.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DeviceEventT } from '@cairn/shared';
import type { Outbox } from './outbox.js';
import { clip } from '../errors.js';

export type NewEvent = Omit<DeviceEventT, 'eventId' | 'ts'>;

const RECENT = 50;

export class EventPublisher {
  private readonly recent: DeviceEventT[] = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly clock: () => number,
    private readonly logger: Logger,
  ) {}

  publish(event: NewEvent): void {
    const full: DeviceEventT = { eventId: randomUUID(), ts: this.clock(), ...event };
    if (full.reason !== undefined) full.reason = clip(full.reason, 200);
    if (full.message !== undefined) full.message = clip(full.message);
    for (const key of Object.keys(full) as Array<keyof DeviceEventT>) {
      if (full[key] === undefined) delete full[key];
    }
    this.recent.push(full);
    if (this.recent.length > RECENT) this.recent.shift();
    try {
      this.outbox.enqueueEvent(full);
      this.logger.info({ eventId: full.eventId, type: full.type, ...(full.phase ? { phase: full.phase } : {}), ...(full.reason ? { reason: full.reason } : {}) }, 'event queued');
    } catch (err) {
      this.logger.error({ err, type: full.type }, 'an event could not be stored in the outbox');
    }
  }

  get recentEvents(): readonly DeviceEventT[] {
    return this.recent;
  }
}
