/**
 * Device events (deployment phase changes, rejected desired documents): each gets a unique
 * `eventId` so the hub can dedupe a re-delivery, and goes out at QoS 1. The last few are kept
 * for the agent's status.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DeviceEventT } from '@cairn/shared';
import type { Connection } from './connection.js';
import { clip } from '../errors.js';

export type NewEvent = Omit<DeviceEventT, 'eventId' | 'ts'>;

const RECENT = 50;

export class EventPublisher {
  private readonly recent: DeviceEventT[] = [];

  constructor(
    private readonly connection: Connection,
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
    // While offline mqtt.js holds QoS 1 messages in memory until the next connect (the durable
    // outbox is a later issue); a process restart loses them.
    this.connection.publish('events', full).catch((err: Error) => this.logger.debug({ err, type: full.type }, 'event not acknowledged'));
  }

  get recentEvents(): readonly DeviceEventT[] {
    return this.recent;
  }
}
