/**
 * Counts what the agent refused to act on, by `<topic kind>:<reason>` (for example
 * `desired:not_json`, `blob/res:malformed`). The counts are part of the agent's status; every
 * drop is also logged, never with the payload itself.
 */
import type { Logger } from 'pino';

export class DropCounter {
  private readonly counts = new Map<string, number>();

  constructor(private readonly logger: Logger) {}

  drop(kind: string, reason: string, message: string, level: 'warn' | 'debug' = 'warn'): void {
    const key = `${kind}:${reason}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
    this.logger[level]({ kind, reason }, `dropped a ${kind} message: ${message}`);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
