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
 * - Once a trial has failed, no candidate answer is served while a standby serves: requests
 *   still in flight on the candidate are aborted at once (the worker skips those it has not
 *   started) and answered by the standby, so nobody waits for a model judged bad — slow, or
 *   answering NaN or a constant — and its worker stops computing answers nobody wants. The
 *   inference that proved the failure is answered by the standby too.
 * - During a trial at most `TRIAL_MAX_IN_FLIGHT` requests wait on the candidate; the others are
 *   answered by the standby (not counted by the trial). A slow candidate therefore delays a
 *   few requests by a few of its runs, not every request by its whole backlog.
 * - Trial requests also run on the standby in the background (every one at first, then one in
 *   `shadowEvery`), so the latency check compares both models on the same traffic and load.
 *   Both sides are judged by their compute time (`Inference.computeMs`; why: trial-monitor.ts).
 */
import type { Logger } from 'pino';
import type { ManifestT } from '@cairn/shared';
import type { Feeds, Inference, ModelSession, Tensor } from './runtime/types.js';
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
  /** Aborted when the trial fails and a standby takes over: the candidate's pending requests move to it. */
  abandon: AbortController;
}

/**
 * Requests waiting on a trial's candidate at most (queued in its worker or running). Enough to
 * keep its worker busy under load — the trial needs samples — and small enough that a slow
 * candidate costs a waiting client a few of its runs at most; the rest go to the standby.
 */
export const TRIAL_MAX_IN_FLIGHT = 4;

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
    this.trial = { candidate, hooks, requests: 0, failed: false, abandon: new AbortController() };
    this.install(candidate);
  }

  /** Keeps the candidate and releases the standby. */
  commitTrial(): void {
    this.endTrial('commit');
  }

  /**
   * Serves the standby again (nothing, if there was none) and retires the candidate, whose
   * requests in flight finish on it: for a rollback that is not a verdict on the candidate.
   */
  rollbackTrial(): void {
    this.endTrial('rollback');
  }

  /** The running trial failed on `failure`, judged outside an inference (the final verdict): as if an inference had proved it. */
  failTrial(failure: TrialFailure): void {
    if (this.trial) this.fail(this.trial, failure);
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
    if (trial && this.standby && slot.inflight >= TRIAL_MAX_IN_FLIGHT) return this.answerOn(this.standby, feeds);
    if (trial) return this.inferOnTrial(trial, feeds);
    return this.answerOn(slot, feeds);
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

  /** A request to the trial's candidate; every outcome is recorded by the trial's monitor. */
  private async inferOnTrial(trial: RunningTrial, feeds: Feeds): Promise<ModelResult> {
    const { candidate, hooks } = trial;
    let answer: Inference | null = null;
    let error: unknown;
    try {
      answer = await this.runOn(candidate, feeds, trial.abandon.signal);
    } catch (err) {
      // Bad feeds are the request's own fault: the standby would refuse them too.
      if ((err as { code?: string }).code === 'CAIRN_RUNTIME_BAD_FEEDS') throw err;
      error = err;
      // Aborted requests come only after the failure, and are not the candidate's errors.
      const failure = trial.failed ? null : hooks.monitor.recordError();
      if (failure) this.fail(trial, failure);
    }
    if (answer && !trial.failed) {
      if (hooks.monitor.shouldShadow(++trial.requests)) this.shadow(trial, feeds);
      const failure = hooks.monitor.recordSuccess(answer.computeMs, answer.outputs, feeds);
      if (failure) this.fail(trial, failure);
    }
    if (answer && !trial.failed && allFinite(answer.outputs)) return { outputs: answer.outputs, bundle: candidate.bundle };
    // The standby answers what the candidate could not (an error, NaN) or should not (anything
    // after the trial failed, including the answer that proved it).
    const standby = this.standbyOf(trial);
    if (standby) return this.answerOn(standby, feeds);
    // No standby (a first deployment): the candidate's answer is all there is.
    if (answer) return { outputs: answer.outputs, bundle: candidate.bundle };
    throw error;
  }

  private async answerOn(slot: Slot, feeds: Feeds): Promise<ModelResult> {
    return { outputs: (await this.runOn(slot, feeds)).outputs, bundle: slot.bundle };
  }

  private async runOn(slot: Slot, feeds: Feeds, signal?: AbortSignal): Promise<Inference> {
    slot.inflight++;
    try {
      return await slot.session.infer(feeds, signal ? { signal } : {});
    } finally {
      slot.inflight--;
      if (slot.retiring && slot.inflight === 0) void this.close(slot);
    }
  }

  private shadow(trial: RunningTrial, feeds: Feeds): void {
    const standby = this.standby;
    if (!standby || this.trial !== trial) return;
    this.runOn(standby, feeds).then(
      (result) => trial.hooks.monitor.recordBaseline(result.computeMs, result.outputs),
      () => undefined,
    );
  }

  private fail(trial: RunningTrial, failure: TrialFailure): void {
    if (trial.failed || this.trial !== trial) return;
    trial.failed = true;
    this.endTrial('rollback');
    // Only when a standby now serves: without one, the candidate's answers are all there is.
    if (this.slot) trial.abandon.abort();
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
