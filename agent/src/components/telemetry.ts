/**
 * Interval telemetry (DESIGN §4): every `intervalMs` one summary — inferences, errors, latency
 * percentiles, RSS, CPU and the active bundle — with a per-device `seq` that is persisted
 * before the summary leaves, so a restart never reuses one (the hub dedupes on (device, seq)).
 *
 * Published at QoS 1. The durable outbox is a later issue: until then mqtt.js keeps QoS 1
 * messages in memory while offline and sends them after the next connect, which survives a
 * broker outage but not an agent restart. RSS and CPU are the whole process's (in the fleet
 * simulator, all agents share one process).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { TelemetryT } from '@cairn/shared';
import type { Connection } from './connection.js';
import type { InferenceStats } from './inference-stats.js';
import type { StateStore } from './state-store.js';
import { activeBundleOf } from './reported.js';

export interface TelemetryOptions {
  intervalMs: number;
  stats: InferenceStats;
  connection: Connection;
  state: StateStore;
  clock: () => number;
  logger: Logger;
}

export class TelemetryReporter {
  private timer: NodeJS.Timeout | null = null;
  private lastCpu = process.cpuUsage();
  private lastAt = performance.now();
  private running = false;
  private sent = 0;

  constructor(private readonly options: TelemetryOptions) {}

  start(): void {
    this.lastCpu = process.cpuUsage();
    this.lastAt = performance.now();
    this.options.stats.drain();
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get count(): number {
    return this.sent;
  }

  /** Builds, persists the seq of, and publishes one summary. Exposed for tests. */
  async tick(): Promise<TelemetryT | null> {
    if (this.running) return null;
    this.running = true;
    try {
      const { state, stats, connection, clock, logger } = this.options;
      const now = performance.now();
      const cpu = process.cpuUsage();
      const elapsedMs = Math.max(1, now - this.lastAt);
      const cpuMicros = cpu.user - this.lastCpu.user + (cpu.system - this.lastCpu.system);
      this.lastAt = now;
      this.lastCpu = cpu;
      const interval = stats.drain();
      const seq = state.state.nextTelemetrySeq;
      try {
        await state.update((draft) => {
          draft.nextTelemetrySeq = seq + 1;
        });
      } catch (err) {
        // Without a durable seq the summary could collide with one sent before a restart.
        logger.warn({ err }, 'telemetry skipped: its seq could not be persisted');
        return null;
      }
      const summary: TelemetryT = {
        seq,
        ts: clock(),
        intervalMs: Math.max(1, Math.round(elapsedMs)),
        inferences: interval.inferences,
        errors: interval.errors,
        latencyMs: interval.latencyMs,
        rssMb: Math.round((process.memoryUsage.rss() / 2 ** 20) * 10) / 10,
        cpuPct: Math.min(100_000, Math.round((cpuMicros / 1000 / elapsedMs) * 1000) / 10),
        active: activeBundleOf(state.state.active),
      };
      this.sent++;
      connection.publish('telemetry', summary).catch((err: Error) => logger.debug({ err, seq }, 'telemetry not acknowledged'));
      return summary;
    } finally {
      this.running = false;
    }
  }
}
