/**
 * Desired → reported (DESIGN §2, §4). Every `desired` message is decoded and verified against
 * the pinned root key and the persisted trust state; a refused document becomes a
 * `desired_rejected` event and changes nothing (the current model keeps serving). An accepted
 * one is made durable first (seq, fingerprint, keyring version and the target itself), then the
 * agent converges to it:
 *
 *   received → downloading → verifying → probing → trial → committed
 *                  (or → rolled_back / failed, with a reason code)
 *
 * every phase change being a `deployment` event and an updated `reported`. The candidate loads
 * beside the serving model, must pass the manifest's golden probes, then serves live traffic
 * in the other slot while the previous model stays loaded as a hot standby; a failed trial swaps
 * the standby back at once (ActiveModel), a passed one moves `activeSlot`. Only a committed
 * slot is served after a restart, so a crash during the trial is a rollback.
 *
 * A newer document supersedes a convergence in progress (its download keeps what it has for a
 * later resume; a candidate on trial is rolled back to its standby or, with none, keeps serving
 * uncommitted, and becomes the next candidate's standby). Because the target is persisted, a
 * restart or a retained re-delivery resumes an unfinished convergence: its first event says which
 * phase a restart interrupted, and a download goes on from the chunks already on disk. A digest
 * that failed here is quarantined under its deployment id: the hub's periodic re-signing (a new
 * seq, the same deployment) does not retry it; a new deployment asking for it does (no update
 * loops). Partial downloads of digests no longer wanted are deleted at start and after each
 * commit or rollback.
 */
import type { Logger } from 'pino';
import { TrustError, decodePayload, resolveHealthPolicy, verifyDesired, type DeploymentPhaseT, type DeploymentStatusT, type HealthPolicy, type ManifestT, type RejectionReason } from '@cairn/shared';
import type { BlobStore } from '../adapters/blob-store.js';
import type { ModelRuntime, ModelSession } from './runtime/types.js';
import type { ActiveModel, ServedBundle } from './active-model.js';
import type { Downloader } from './downloader.js';
import type { DropCounter } from './drop-counter.js';
import type { EventPublisher } from './events.js';
import { candidateSlot, committedOf, isQuarantined, otherSlot, quarantine, type ActiveStateT, type AgentState, type StateStore, type TargetStateT } from './state-store.js';
import { runGoldenProbes } from './health/golden-probes.js';
import { TrialMonitor, type TrialFailure, type TrialSummary } from './health/trial-monitor.js';
import { DeploymentFailure, SupersededError, clip, throwIfAborted } from '../errors.js';

export interface ReconcilerOptions {
  deviceId: string;
  rootPublicKey: Uint8Array;
  agentVersion: string;
  state: StateStore;
  blobs: BlobStore;
  downloader: Downloader;
  /** The model runtime (created when the agent starts). */
  runtime: () => ModelRuntime;
  active: ActiveModel;
  events: EventPublisher;
  drops: DropCounter;
  logger: Logger;
  clock: () => number;
  /** Called after every change of what `reported` shows. */
  onChange: () => void;
  /** What applies where a manifest's health policy is silent (default: DEFAULT_HEALTH_POLICY). */
  healthDefaults?: HealthPolicy;
}

const digestOf = (target: TargetStateT): string | null => target.bundle?.manifest.files[0]?.digest ?? null;

interface Job {
  target: TargetStateT;
  controller: AbortController;
  done: Promise<void>;
}

export class Reconciler {
  private job: Job | null = null;
  /** The deployment phase a restart interrupted, told by the resumed convergence's first event. */
  private interrupted: { seq: number; phase: DeploymentPhaseT } | null = null;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly rejections = new Map<string, number>();

  constructor(private readonly options: ReconcilerOptions) {}

  /** Serves the persisted active bundle (re-verified) before anything connects. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.restoreActive();
    const { deployment, target } = this.options.state.state;
    if (deployment && target && deployment.seq === target.seq && deployment.deploymentId === target.deploymentId && INTERRUPTIBLE_PHASES.has(deployment.phase)) {
      this.interrupted = { seq: deployment.seq, phase: deployment.phase };
    }
    await this.collectPartials();
  }

  /** Resumes an unfinished convergence to the persisted target, if any (call once the connection is started). */
  resume(): void {
    this.ensureConverging();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const job = this.job;
    job?.controller.abort();
    await this.queue;
    await job?.done;
  }

  /** Desired documents refused, by reason. */
  get rejected(): Record<string, number> {
    return Object.fromEntries(this.rejections);
  }

  get busy(): boolean {
    return this.job !== null;
  }

  /** A message on the `desired` topic. Messages are handled one at a time, in order. */
  onDesired(payload: Buffer): void {
    this.queue = this.queue.then(() => this.handleDesired(payload)).catch((err: Error) => this.options.logger.error({ err }, 'handling a desired document failed'));
  }

  private async handleDesired(payload: Buffer): Promise<void> {
    const { state, logger, drops } = this.options;
    if (this.stopped) return;
    if (payload.length === 0) {
      // The retained document was cleared on the broker: nothing new to converge to.
      logger.info('the retained desired document was cleared');
      return;
    }
    const decoded = decodePayload('desired', payload);
    if (!decoded.ok) {
      drops.drop('desired', decoded.reason, decoded.message);
      this.reject('schema', decoded.message);
      return;
    }
    const document = decoded.value.document;
    const s = state.state;
    let verdict;
    try {
      verdict = verifyDesired(decoded.value, {
        deviceId: this.options.deviceId,
        rootPublicKey: this.options.rootPublicKey,
        keyringVersion: s.keyringVersion,
        securityFloor: s.securityFloor ?? 0,
        lastSeq: s.lastDesiredSeq,
        lastFingerprint: s.lastFingerprint,
        agentVersion: this.options.agentVersion,
        now: this.options.clock(),
      });
    } catch (err) {
      if (!(err instanceof TrustError)) throw err;
      this.reject(err.reason, err.message, document.seq, document.deploymentId);
      return;
    }
    if (verdict.status === 'unchanged') {
      this.ensureConverging();
      return;
    }
    const target: TargetStateT = { deploymentId: verdict.document.deploymentId, seq: verdict.document.seq, bundle: verdict.document.bundle };
    const before = { lastDesiredSeq: s.lastDesiredSeq, lastFingerprint: s.lastFingerprint, keyringVersion: s.keyringVersion, securityFloor: s.securityFloor ?? 0, target: s.target };
    try {
      await state.update((draft) => {
        draft.lastDesiredSeq = target.seq;
        draft.lastFingerprint = verdict.fingerprint;
        draft.keyringVersion = verdict.keyring.version;
        draft.securityFloor = verdict.securityFloor;
        draft.target = target;
      });
    } catch (err) {
      // Not durable, so not acted on: the retained document is handled again on its next delivery.
      await state.update((draft) => Object.assign(draft, before)).catch(() => undefined);
      logger.error({ err, seq: target.seq }, 'could not persist an accepted desired document; ignoring it for now');
      return;
    }
    logger.info({ seq: target.seq, deploymentId: target.deploymentId, digest: target.bundle?.manifest.files[0]?.digest ?? null }, 'accepted desired state');
    const running = this.job;
    if (running && !running.controller.signal.aborted && running.target.deploymentId === target.deploymentId && digestOf(running.target) === digestOf(target)) {
      // A re-signed document of the deployment under way (the hub's periodic re-signing, a new
      // keyring): same deployment, same bundle. The convergence goes on — superseding it would
      // roll a healthy trial back — and when it ends, ensureConverging settles the new seq (a
      // relabel of what is already serving).
      logger.info({ seq: target.seq, deploymentId: target.deploymentId }, 're-signed document of the deployment under way: it goes on');
      return;
    }
    this.converge(target);
  }

  private reject(reason: RejectionReason, message: string, seq?: number, deploymentId?: string): void {
    this.rejections.set(reason, (this.rejections.get(reason) ?? 0) + 1);
    this.options.logger.warn({ reason, seq }, `rejected a desired document: ${message}`);
    this.options.events.publish({ type: 'desired_rejected', reason, message: clip(message), seq, deploymentId });
  }

  /** Starts converging to the persisted target unless it is reached, failed, or already under way. */
  private ensureConverging(): void {
    const s = this.options.state.state;
    const { target, deployment } = s;
    if (!target || this.stopped) return;
    if (this.job && this.job.target.seq === target.seq) return;
    const digest = target.bundle?.manifest.files[0]?.digest ?? null;
    const reached = (committedOf(s)?.digest ?? null) === digest && (this.options.active.current?.bundle.digest ?? null) === digest;
    const ended = deployment?.seq === target.seq && (deployment.phase === 'failed' || deployment.phase === 'rolled_back');
    const settled = deployment?.seq === target.seq && deployment.phase === 'committed';
    if (ended || (reached && settled)) return;
    this.converge(target);
  }

  /** Supersedes whatever convergence runs and starts one towards `target`. */
  private converge(target: TargetStateT): void {
    const previous = this.job;
    previous?.controller.abort();
    const controller = new AbortController();
    const done = (async () => {
      await previous?.done;
      if (controller.signal.aborted) return;
      await this.run(target, controller.signal);
    })().catch((err: Error) => this.options.logger.error({ err }, 'convergence crashed'));
    const job: Job = { target, controller, done };
    this.job = job;
    void done.finally(() => {
      if (this.job !== job) return;
      this.job = null;
      // A re-signed document arrived while this ran (see handleDesired): settle its seq now.
      if (this.options.state.state.target?.seq !== job.target.seq) this.ensureConverging();
    });
  }

  private async run(target: TargetStateT, signal: AbortSignal): Promise<void> {
    const { state, logger } = this.options;
    const { deploymentId, seq, bundle } = target;
    const manifest = bundle?.manifest ?? null;
    const file = manifest?.files[0] ?? null;
    const digest = file?.digest ?? null;
    // An object, so that the phase set inside setPhase is seen by the catch below.
    const at: { phase: DeploymentPhaseT } = { phase: 'received' };
    const setPhase = async (next: DeploymentPhaseT, failure?: DeploymentFailure, note?: string): Promise<void> => {
      // A superseded deployment says nothing more: the newer one owns `deployment` now.
      throwIfAborted(signal);
      at.phase = next;
      const status: DeploymentStatusT = { deploymentId, seq, phase: next, digest };
      if (failure) {
        status.reason = failure.reason;
        status.message = clip(failure.message);
      }
      await state.update((draft) => {
        draft.deployment = status;
      }).catch(() => undefined);
      const message = failure?.message ?? note;
      this.options.events.publish({ type: 'deployment', deploymentId, seq, phase: next, ...(digest ? { digest } : {}), ...(failure ? { reason: failure.reason } : {}), ...(message ? { message } : {}) });
      this.options.onChange();
    };

    try {
      if (!manifest || !file || !digest) {
        // bundle: null — run no model.
        this.options.active.clear();
        await state.update((draft) => {
          draft.activeSlot = null;
        }).catch(() => undefined);
        await setPhase('committed');
        logger.info({ deploymentId, seq }, 'desired state has no bundle: model unloaded');
        return;
      }
      const served: ServedBundle = { manifest, digest, deploymentId };
      const current = this.options.active.current;
      if (current && current.bundle.digest === digest && !this.options.active.onTrial) {
        this.options.active.relabel(served);
        await state.update((draft) => {
          if (draft.activeSlot) draft.slots[draft.activeSlot] = { manifest, digest, deploymentId };
        }).catch(() => undefined);
        await setPhase('committed');
        return;
      }
      const quarantined = isQuarantined(state.state, digest, deploymentId);
      if (quarantined) {
        // A re-signed document of a deployment that already failed here: no update loop.
        await state.update((draft) => {
          if (draft.deployment?.deploymentId === deploymentId) draft.deployment.seq = seq;
        }).catch(() => undefined);
        this.options.onChange();
        logger.info({ deploymentId, seq, digest, reason: quarantined.reason }, 'the bundle failed here before under this deployment: not retrying it');
        return;
      }

      await setPhase('received', undefined, this.resumeNote(seq, digest));
      throwIfAborted(signal);
      let path: string | null = null;
      if (await this.options.blobs.has(digest)) {
        await setPhase('verifying');
        const check = await this.options.blobs.check(this.options.blobs.pathOf(digest), digest, file.size);
        if (check.ok) path = this.options.blobs.pathOf(digest);
        else {
          logger.warn({ digest }, 'a stored blob no longer matches its digest; downloading it again');
          await this.options.blobs.remove(digest);
        }
      }
      throwIfAborted(signal);
      if (!path) path = await this.options.downloader.download({ digest, size: file.size }, signal, (phase, note) => setPhase(phase, undefined, note));
      throwIfAborted(signal);

      // Loading native code can take the process down: count the starts that find us here.
      await state.update((draft) => {
        draft.loading = { digest, deploymentId, boots: draft.loading?.digest === digest ? draft.loading.boots : 0 };
      });
      const session = await this.loadCandidate(digest, path, manifest, signal);
      let policy: HealthPolicy;
      try {
        policy = resolveHealthPolicy(manifest.health, session, this.options.healthDefaults);
      } catch (err) {
        await session.close();
        throw new DeploymentFailure('health_policy', (err as Error).message);
      }

      await setPhase('probing').catch(async (err: unknown) => {
        await session.close();
        throw err;
      });
      const probes = await runGoldenProbes(session, policy);
      if (!probes.ok || signal.aborted) {
        await session.close();
        throwIfAborted(signal);
        if (!probes.ok) throw new DeploymentFailure(probes.reason, probes.message);
      }

      const slot = candidateSlot(state.state, this.options.active.current?.bundle.digest ?? null);
      await state.update((draft) => {
        draft.loading = null;
        draft.slots[slot] = { manifest, digest, deploymentId };
        draft.trial = { slot, deploymentId, seq, digest, startedAt: this.options.clock() };
      });
      const outcome = await this.runTrial(session, served, policy, signal, () =>
        setPhase('trial', undefined, probes.ok && probes.probes > 0 ? `passed ${probes.probes} golden probes (slowest ${probes.maxLatencyMs.toFixed(2)} ms)` : 'no golden probes in the manifest'),
      );
      if (outcome.kind === 'superseded') {
        await state.update((draft) => {
          draft.trial = null;
          // A candidate kept serving (there was nothing to roll back to) keeps its slot, uncommitted.
          if (!outcome.kept) draft.slots[slot] = null;
        }).catch(() => undefined);
        throw new SupersededError();
      }
      if (outcome.kind === 'failed') {
        const failure = new DeploymentFailure(outcome.failure.reason, outcome.failure.message);
        await state.update((draft) => {
          draft.trial = null;
          draft.slots[slot] = null;
          quarantine(draft, { digest, deploymentId, reason: failure.reason, ts: this.options.clock() });
        }).catch(() => undefined);
        logger.warn({ deploymentId, seq, reason: failure.reason, summary: outcome.summary }, `deployment rolled back: ${failure.message}`);
        await setPhase('rolled_back', failure);
        await this.collectGarbage();
        return;
      }
      await state.update((draft) => {
        draft.trial = null;
        draft.activeSlot = slot;
      });
      const s = outcome.summary;
      await setPhase('committed', undefined, `trial passed: ${s.inferences} inferences, ${s.errors} errors, p95 compute ${s.p95Ms?.toFixed(2) ?? '—'} ms${s.standbyP95Ms !== null ? ` (previous model ${s.standbyP95Ms.toFixed(2)} ms)` : ''}${outcome.timedOut ? `; committed after ${policy.trial.maxDurationMs} ms with fewer than ${policy.trial.minInferences} inferences` : ''}`);
      logger.info({ deploymentId, seq, model: `${manifest.name}@${manifest.version}`, digest, slot, summary: s }, 'deployment committed');
      await this.collectGarbage();
    } catch (err) {
      if (digest && state.state.loading?.digest === digest) {
        await state.update((draft) => {
          draft.loading = null;
        }).catch(() => undefined);
      }
      if (err instanceof SupersededError || signal.aborted) {
        logger.info({ deploymentId, seq, phase: at.phase }, 'deployment superseded');
        return;
      }
      const failure = err instanceof DeploymentFailure ? err : new DeploymentFailure(at.phase === 'downloading' ? 'download_failed' : 'load_failed', (err as Error).message);
      logger.warn({ deploymentId, seq, reason: failure.reason }, `deployment failed: ${failure.message}`);
      if (digest && !TRANSIENT_REASONS.has(failure.reason)) {
        await state.update((draft) => quarantine(draft, { digest, deploymentId, reason: failure.reason, ts: this.options.clock() })).catch(() => undefined);
      }
      await setPhase('failed', failure).catch(() => undefined);
    }
  }

  /** Loads the candidate beside the serving model and checks its signature against the manifest. */
  private async loadCandidate(digest: string, path: string, manifest: ManifestT, signal: AbortSignal): Promise<ModelSession> {
    let session: ModelSession;
    try {
      session = await this.options.runtime().load(digest, path);
    } catch (err) {
      throw new DeploymentFailure('load_failed', (err as Error).message);
    }
    if (signal.aborted) {
      await session.close();
      throw new SupersededError();
    }
    const mismatch = signatureMismatch(manifest.inputs, session.inputs, 'input') ?? signatureMismatch(manifest.outputs, session.outputs, 'output');
    if (mismatch) {
      await session.close();
      throw new DeploymentFailure('load_failed', mismatch);
    }
    return session;
  }

  /**
   * The candidate serves live traffic, the current model stays loaded as its hot standby, until
   * the trial policy commits it or a failure has already swapped the standby back in.
   */
  private runTrial(session: ModelSession, served: ServedBundle, policy: HealthPolicy, signal: AbortSignal, announce: () => Promise<void>): Promise<TrialOutcome> {
    const { active, clock } = this.options;
    const monitor = new TrialMonitor(policy.trial, active.current !== null);
    return new Promise<TrialOutcome>((resolve, reject) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (outcome: TrialOutcome) => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const onAbort = () => finish({ kind: 'superseded', kept: active.abandonTrial() });
      const startedAt = clock();
      active.beginTrial(session, served, { monitor, onFailure: (failure) => finish({ kind: 'failed', failure, summary: monitor.summary() }) });
      signal.addEventListener('abort', onAbort);
      announce().catch((err: unknown) => {
        if (!settled) active.rollbackTrial();
        finish({ kind: 'superseded', kept: false });
        if (!(err instanceof SupersededError)) reject(err as Error);
      });
      timer = setInterval(
        () => {
          const readiness = monitor.readiness(clock() - startedAt);
          if (readiness === 'wait') return;
          const failure = monitor.finalVerdict();
          if (failure) {
            active.failTrial(failure); // calls onFailure, which finishes
            return;
          }
          active.commitTrial();
          finish({ kind: 'committed', summary: monitor.summary(), timedOut: readiness === 'timeout' });
        },
        Math.max(20, Math.min(1000, policy.trial.durationMs / 10)),
      );
    });
  }

  /** Deletes stored blobs no slot and no pending target refers to, and unwanted partial downloads. */
  private async collectGarbage(): Promise<void> {
    const s = this.options.state.state;
    const keep = new Set<string>();
    for (const slot of [s.slots.A, s.slots.B]) if (slot) keep.add(slot.digest);
    const targetDigest = s.target?.bundle?.manifest.files[0]?.digest;
    if (targetDigest) keep.add(targetDigest);
    await this.options.blobs.removeAllExcept(keep).catch((err: Error) => this.options.logger.warn({ err }, 'could not delete unused blobs'));
    await this.collectPartials();
  }

  /**
   * Deletes partial downloads (bytes and chunk records) of every digest but the target's, and the
   * target's too once its blob is stored. Only while no download runs (start, end of a convergence).
   */
  private async collectPartials(): Promise<void> {
    const { blobs, state, logger } = this.options;
    const digest = state.state.target?.bundle?.manifest.files[0]?.digest ?? null;
    const wanted = digest !== null && !(await blobs.has(digest)) ? digest : null;
    await blobs.removePartialsExcept(wanted).catch((err: Error) => logger.warn({ err }, 'could not delete unused partial downloads'));
  }

  /** The note of a resumed convergence's first event when a restart interrupted it (once). */
  private resumeNote(seq: number, digest: string): string | undefined {
    const interrupted = this.interrupted;
    this.interrupted = null;
    if (interrupted?.seq !== seq) return undefined;
    const loading = this.options.state.state.loading;
    const boots = loading?.digest === digest ? loading.boots : 0;
    const crashLoop = boots > 0 ? ` (${boots} restart${boots === 1 ? '' : 's'} while loading this model; at ${LOADING_BOOT_LIMIT} it is quarantined)` : '';
    return `the agent restarted during ${interrupted.phase}: resuming${crashLoop}`;
  }

  /**
   * Before anything connects: settles what a crash interrupted, then serves the committed slot
   * (re-verified), or the other slot when the committed one cannot serve.
   *
   * - A trial that was running rolls back (boot-count semantics): its candidate is quarantined
   *   and the committed slot serves.
   * - A candidate that was loading counts one boot; the second boot that finds it loading
   *   quarantines it (`crashed_while_loading`), so a model that crashes onnxruntime cannot
   *   crash-loop the agent.
   */
  private async restoreActive(): Promise<void> {
    const { state, logger } = this.options;
    const { trial, loading } = state.state;
    if (trial) {
      await this.settleInterrupted(
        { deploymentId: trial.deploymentId, seq: trial.seq, digest: trial.digest, phase: 'rolled_back', reason: 'crashed_in_trial', message: 'the agent restarted while this model was on trial; the previous model serves again' },
        (draft) => {
          draft.slots[trial.slot] = null;
          draft.trial = null;
        },
      );
    }
    if (loading) {
      const boots = loading.boots + 1;
      if (boots < LOADING_BOOT_LIMIT) {
        await state.update((draft) => {
          draft.loading = { ...loading, boots };
        });
      } else {
        const target = state.state.target;
        await this.settleInterrupted(
          {
            deploymentId: loading.deploymentId,
            seq: target?.deploymentId === loading.deploymentId ? target.seq : (state.state.deployment?.seq ?? 0),
            digest: loading.digest,
            phase: 'failed',
            reason: 'crashed_while_loading',
            message: `the agent restarted ${boots} times while loading this model; it is quarantined`,
          },
          (draft) => {
            draft.loading = null;
          },
        );
      }
    }

    const s = state.state;
    const order = s.activeSlot ? [s.activeSlot, otherSlot(s.activeSlot)] : [];
    for (const name of order) {
      const bundle = s.slots[name];
      if (!bundle) continue;
      try {
        const session = await this.loadVerified(bundle);
        this.options.active.swap(session, { manifest: bundle.manifest, digest: bundle.digest, deploymentId: bundle.deploymentId });
        if (name !== s.activeSlot) {
          await state.update((draft) => {
            draft.activeSlot = name;
          });
          logger.warn({ slot: name }, 'the committed slot cannot serve: serving the other slot');
        }
        logger.info({ slot: name, model: `${bundle.manifest.name}@${bundle.manifest.version}`, digest: bundle.digest }, 'serving the persisted bundle');
        return;
      } catch (err) {
        logger.error({ slot: name, digest: bundle.digest }, `cannot serve slot ${name}: ${(err as Error).message}`);
        await state.update((draft) => {
          draft.slots[name] = null;
        }).catch(() => undefined);
      }
    }
    if (s.activeSlot) {
      await state.update((draft) => {
        draft.activeSlot = null;
      }).catch(() => undefined);
    }
  }

  /** Ends a deployment that a crash interrupted: its digest is quarantined, `deployment` and an event say why. */
  private async settleInterrupted(
    end: { deploymentId: string; seq: number; digest: string; phase: 'rolled_back' | 'failed'; reason: 'crashed_in_trial' | 'crashed_while_loading'; message: string },
    change: (draft: AgentState) => void,
  ): Promise<void> {
    const { deploymentId, seq, digest, phase, reason, message } = end;
    await this.options.state.update((draft) => {
      change(draft);
      quarantine(draft, { digest, deploymentId, reason, ts: this.options.clock() });
      draft.deployment = { deploymentId, seq, phase, digest, reason, message };
    });
    this.options.logger.warn({ digest, deploymentId, reason }, message);
    this.options.events.publish({ type: 'deployment', deploymentId, seq, phase, digest, reason, message });
  }

  /** Re-hashes a stored blob and loads it; a blob that no longer matches is deleted. */
  private async loadVerified(bundle: ActiveStateT): Promise<ModelSession> {
    const { blobs } = this.options;
    const file = bundle.manifest.files[0];
    if (!file) throw new Error('the manifest lists no file');
    const path = blobs.pathOf(bundle.digest);
    const check = await blobs.check(path, bundle.digest, file.size).catch((err: Error) => {
      throw new Error(`cannot read ${path}: ${err.message}`);
    });
    if (!check.ok) {
      await blobs.remove(bundle.digest);
      throw new Error(`the stored blob no longer matches its digest (${check.digest}, ${check.size} bytes)`);
    }
    return this.options.runtime().load(bundle.digest, path);
  }
}

type TrialOutcome =
  | { kind: 'committed'; summary: TrialSummary; timedOut: boolean }
  | { kind: 'failed'; failure: TrialFailure; summary: TrialSummary }
  /** `kept`: with no standby to return to, the candidate still serves (uncommitted). */
  | { kind: 'superseded'; kept: boolean };

/** Failures that say nothing about the bundle: a later re-signed document may try again. */
const TRANSIENT_REASONS = new Set<string>(['download_failed', 'insufficient_disk']);
/** Phases a restart resumes (a trial is rolled back instead, see restoreActive). */
const INTERRUPTIBLE_PHASES = new Set<DeploymentPhaseT>(['received', 'downloading', 'verifying', 'probing']);
/** Boots that find the same candidate still loading before it is quarantined. */
const LOADING_BOOT_LIMIT = 2;

/** Names the first difference between the manifest's tensor names and the session's, if any. */
function signatureMismatch(declared: Array<{ name: string }>, actual: Array<{ name: string }>, what: string): string | null {
  const a = declared.map((t) => t.name).sort();
  const b = actual.map((t) => t.name).sort();
  if (a.length === b.length && a.every((name, i) => name === b[i])) return null;
  return `the model's ${what}s are [${b.join(', ')}], the manifest declares [${a.join(', ')}]`;
}
