/**
 * The model being served: one session plus what it is (name, version, digest, deployment), and
 * during a trial the previous one as a hot standby (DESIGN §4).
 *
 * Contracts:
 * - A swap installs the new session first and retires the old one only once its in-flight
 *   inferences have finished, so inference never stops and no request is dropped by a swap.
 * - `beginTrial` makes the candidate serve and keeps the previous session loaded as the
 *   standby. Every candidate result goes to the trial's monitor; the inference that proves a
 *   failure swaps the standby back in synchronously (no await between the verdict and the
 *   swap), then tells the trial's owner.
 * - A trial never fails a request the standby could serve: when the candidate errs, or
 *   returns NaN/Inf, the request is run again on the standby and its answer returned.
 * - Trial requests also run on the standby in the background (every one at first, then one in
 *   `shadowEvery`), so the latency check compares both models on the same traffic and load.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { ManifestT } from '@cairn/shared';
import type { Feeds, ModelSession, Tensor } from './runtime/types.js';
import { NoModelError } from '../errors.js';
import { allFinite, type TrialFailure, type TrialMonitor } from './health/trial-monitor.js';

export interface ServedBundle {
  manifest: ManifestT;
  digest: string;
  deploymentId: string;
}

/** What serves right now: the session and what it is. */
export interface ServedModel {
  session: ModelSession;
  bundle: ServedBundle;
}

interface Slot {
  session: ModelSession;
  bundle: ServedBundle;
  inflight: number;
  retiring: boolean;
  closed?: Promise<void>;
}

export interface TrialHooks {
  monitor: TrialMonitor;
  /** Called once, after the standby already serves again. */
  onFailure(failure: TrialFailure): void;
}

interface RunningTrial {
  candidate: Slot;
  hooks: TrialHooks;
  requests: number;
  failed: boolean;
}

export interface ModelResult {
  outputs: Record<string, Tensor>;
  bundle: ServedBundle;
}

export class ActiveModel {
  private slot: Slot | null = null;
  private standby: Slot | null = null;
  private trial: RunningTrial | null = null;
  private readonly retiring = new Set<Slot>();
  private swaps = 0;

  constructor(private readonly logger: Logger) {}

  get current(): ServedModel | null {
    return this.slot ? { session: this.slot.session, bundle: this.slot.bundle } : null;
  }

  get onTrial(): boolean {
    return this.trial !== null;
  }

  /** Sessions swapped in so far (a trial's begin and its rollback count one each). */
  get swapCount(): number {
    return this.swaps;
  }

  /** Serves `session` from now on; the previous session closes when its last inference is done. A running trial is rolled back first. */
  swap(session: ModelSession, bundle: ServedBundle): void {
    this.endTrial('rollback');
    const old = this.slot;
    this.install({ session, bundle, inflight: 0, retiring: false });
    if (old) this.retire(old);
  }

  /** Updates what the current session is recorded as (same digest, new deployment). */
  relabel(bundle: ServedBundle): void {
    if (this.slot && this.slot.bundle.digest === bundle.digest) this.slot.bundle = bundle;
  }

  /** Stops serving; the session closes once idle. */
  clear(): void {
    this.endTrial('rollback');
    const old = this.slot;
    this.slot = null;
    if (old) this.retire(old);
  }

  /** The candidate serves from now on; the current session (if any) becomes the hot standby. */
  beginTrial(session: ModelSession, bundle: ServedBundle, hooks: TrialHooks): void {
    this.endTrial('rollback');
    this.standby = this.slot;
    const candidate: Slot = { session, bundle, inflight: 0, retiring: false };
    this.trial = { candidate, hooks, requests: 0, failed: false };
    this.install(candidate);
  }

  /** Keeps the candidate and releases the standby. */
  commitTrial(): void {
    this.endTrial('commit');
  }

  /** Serves the standby again (nothing, if there was none) and retires the candidate. */
  rollbackTrial(): void {
    this.endTrial('rollback');
  }

  /**
   * A newer deployment supersedes the trial. With a standby, the standby serves again; without
   * one the candidate keeps serving, uncommitted, rather than nothing. Returns whether it does.
   */
  abandonTrial(): boolean {
    if (!this.trial) return false;
    if (this.standby) {
      this.endTrial('rollback');
      return false;
    }
    this.trial = null;
    return true;
  }

  async infer(feeds: Feeds): Promise<ModelResult> {
    const slot = this.slot;
    if (!slot) throw new NoModelError();
    const trial = this.trial?.candidate === slot ? this.trial : null;
    slot.inflight++;
    const started = performance.now();
    let answer: ModelResult | null = null;
    let error: unknown;
    try {
      const outputs = await slot.session.infer(feeds);
      answer = { outputs, bundle: slot.bundle };
      if (trial && !trial.failed) {
        const latencyMs = performance.now() - started;
        if (trial.hooks.monitor.shouldShadow(++trial.requests)) this.shadow(trial, feeds);
        const failure = trial.hooks.monitor.recordSuccess(latencyMs, outputs, feeds);
        if (failure) this.failTrial(trial, failure);
      }
    } catch (err) {
      if (!trial || (err as { code?: string }).code === 'CAIRN_RUNTIME_BAD_FEEDS') throw err;
      error = err;
      const failure = trial.failed ? null : trial.hooks.monitor.recordError();
      if (failure) this.failTrial(trial, failure);
    } finally {
      slot.inflight--;
      if (slot.retiring && slot.inflight === 0) void this.close(slot);
    }
    if (trial && (answer === null || !allFinite(answer.outputs))) {
      // The standby answers what the candidate could not: an error, or NaN (also for requests
      // still in flight when the trial failed).
      const standby = this.standbyOf(trial);
      if (standby) return this.runOn(standby, feeds);
    }
    if (answer === null) throw error;
    return answer;
  }

  /** Closes every session, including retiring ones with work in flight. */
  async stop(): Promise<void> {
    const slots = [...this.retiring, ...(this.slot ? [this.slot] : []), ...(this.standby ? [this.standby] : [])];
    this.slot = null;
    this.standby = null;
    this.trial = null;
    await Promise.all(slots.map((s) => this.close(s)));
  }

  private install(slot: Slot): void {
    this.slot = slot;
    this.swaps++;
  }

  /** The standby of `trial` while that trial runs, or the session serving after its rollback. */
  private standbyOf(trial: RunningTrial): Slot | null {
    if (this.trial === trial) return this.standby;
    return this.slot && this.slot !== trial.candidate ? this.slot : null;
  }

  private async runOn(slot: Slot, feeds: Feeds): Promise<ModelResult> {
    slot.inflight++;
    try {
      return { outputs: await slot.session.infer(feeds), bundle: slot.bundle };
    } finally {
      slot.inflight--;
      if (slot.retiring && slot.inflight === 0) void this.close(slot);
    }
  }

  private shadow(trial: RunningTrial, feeds: Feeds): void {
    const standby = this.standby;
    if (!standby || this.trial !== trial) return;
    const started = performance.now();
    this.runOn(standby, feeds).then(
      (result) => trial.hooks.monitor.recordBaseline(performance.now() - started, result.outputs),
      () => undefined,
    );
  }

  private failTrial(trial: RunningTrial, failure: TrialFailure): void {
    if (trial.failed || this.trial !== trial) return;
    trial.failed = true;
    this.endTrial('rollback');
    this.logger.warn({ reason: failure.reason, digest: trial.candidate.bundle.digest }, `trial failed, previous model serving again: ${failure.message}`);
    trial.hooks.onFailure(failure);
  }

  private endTrial(outcome: 'commit' | 'rollback'): void {
    const trial = this.trial;
    if (!trial) return;
    this.trial = null;
    const standby = this.standby;
    this.standby = null;
    if (outcome === 'commit') {
      if (standby) this.retire(standby);
      return;
    }
    if (this.slot === trial.candidate) {
      if (standby) this.install(standby);
      else this.slot = null;
    } else if (standby) this.retire(standby);
    this.retire(trial.candidate);
  }

  private retire(slot: Slot): void {
    slot.retiring = true;
    this.retiring.add(slot);
    if (slot.inflight === 0) void this.close(slot);
  }

  private close(slot: Slot): Promise<void> {
    slot.closed ??= slot.session.close().then(
      () => {
        this.retiring.delete(slot);
      },
      (err: Error) => {
        this.retiring.delete(slot);
        this.logger.warn({ err, digest: slot.bundle.digest }, 'closing a model session failed');
      },
    );
    return slot.closed;
  }
}
