/**
 * Interval telemetry (DESIGN §4): every `intervalMs` one summary — inferences, errors, latency
 * percentiles, RSS, CPU, the active bundle, the outbox backlog and the drift of the sliding
 * window (`drift-monitor.ts`, when the active manifest carries a drift reference) — with a per-device `seq` the
 * outbox assigns in the transaction that stores the summary, so a restart or a crash never
 * reuses one and never leaves a gap (the hub dedupes on (device, seq)).
 *
 * Summaries go through the durable outbox: a broker outage or a restart loses none (up to the
 * outbox bound, which drops the oldest telemetry and reports how many in `outbox.dropped`). RSS
 * and CPU are the whole process's (in the fleet simulator, all agents share one process).
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { DriftSummaryT, TelemetryT } from '@cairn/shared';
import type { Outbox } from './outbox.js';
import type { InferenceStats } from './inference-stats.js';
import type { ServedBundle } from './active-model.js';
import type { StateStore } from './state-store.js';
import { activeBundleOf } from './reported.js';

/** Seqs reserved in state.json per write of its ceiling (what a lost outbox.db restarts above). */
export const SEQ_RESERVATION = 1000;

export interface TelemetryOptions {
  intervalMs: number;
  stats: InferenceStats;
  outbox: Outbox;
  state: StateStore;
  /** What serves right now (a candidate on trial included). */
  served: () => ServedBundle | null;
  /** The drift section for what serves (undefined: not monitored). */
  drift: (served: ServedBundle | null) => DriftSummaryT | undefined;
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
      const { state, stats, outbox, clock, logger } = this.options;
      const now = performance.now();
      const cpu = process.cpuUsage();
      const elapsedMs = Math.max(1, now - this.lastAt);
      const cpuMicros = cpu.user - this.lastCpu.user + (cpu.system - this.lastCpu.system);
      this.lastAt = now;
      this.lastCpu = cpu;
      const interval = stats.drain();
      const backlog = outbox.stats;
      const served = this.options.served();
      const drift = this.options.drift(served);
      const summary: Omit<TelemetryT, 'seq'> = {
        ts: clock(),
        intervalMs: Math.max(1, Math.round(elapsedMs)),
        inferences: interval.inferences,
        errors: interval.errors,
        latencyMs: interval.latencyMs,
        rssMb: Math.round((process.memoryUsage.rss() / 2 ** 20) * 10) / 10,
        cpuPct: Math.min(100_000, Math.round((cpuMicros / 1000 / elapsedMs) * 1000) / 10),
        active: activeBundleOf(served),
        outbox: { depth: backlog.depth, dropped: backlog.dropped },
        ...(drift ? { drift } : {}),
      };
      let sent: TelemetryT;
      try {
        // The seq is taken in the same transaction that stores the summary: no gap, no reuse.
        sent = outbox.enqueueTelemetry(summary);
      } catch (err) {
        logger.error({ err }, 'a telemetry summary could not be stored in the outbox');
        return null;
      }
      if (sent.seq >= state.state.telemetrySeqCeiling) {
        // Raised a block at a time: one state.json write per SEQ_RESERVATION summaries.
        state.update((draft) => {
          draft.telemetrySeqCeiling = sent.seq + SEQ_RESERVATION;
        }).catch((err: Error) => logger.warn({ err }, 'could not raise the telemetry seq ceiling'));
      }
      this.sent++;
      return sent;
    } finally {
      this.running = false;
    }
  }
}
