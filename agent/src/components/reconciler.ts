/**
 * Desired → reported (DESIGN §2, §4). Every `desired` message is decoded and verified against
 * the pinned root key and the persisted trust state; a refused document becomes a
 * `desired_rejected` event and changes nothing (the current model keeps serving). An accepted
 * one is made durable first (seq, fingerprint, keyring version and the target itself), then the
 * agent converges to it:
 *
 *   received → downloading → verifying → committed        (or → failed, with a reason)
 *
 * every phase change being a `deployment` event and an updated `reported`. The new model is
 * loaded beside the old one and swapped in, so inference never stops. A newer document
 * supersedes a convergence in progress (its download keeps what it has for a later resume).
 *
 * Because the target is persisted, a restart or a retained re-delivery (`unchanged`) resumes
 * an unfinished convergence, while a failed one is not retried until newer desired state asks
 * again (no update loops). Probing, trial and rollback slot in between verifying and committed
 * later.
 */
import type { Logger } from 'pino';
import { TrustError, decodePayload, verifyDesired, type DeploymentPhaseT, type DeploymentStatusT, type RejectionReason } from '@cairn/shared';
import type { BlobStore } from '../adapters/blob-store.js';
import type { ModelRuntime, ModelSession } from './runtime/types.js';
import type { ActiveModel, ServedBundle } from './active-model.js';
import type { Downloader } from './downloader.js';
import type { DropCounter } from './drop-counter.js';
import type { EventPublisher } from './events.js';
import type { StateStore, TargetStateT } from './state-store.js';
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
}

interface Job {
  target: TargetStateT;
  controller: AbortController;
  done: Promise<void>;
}

export class Reconciler {
  private job: Job | null = null;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly rejections = new Map<string, number>();

  constructor(private readonly options: ReconcilerOptions) {}

  /** Serves the persisted active bundle (re-verified) before anything connects. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.restoreActive();
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
    const before = { lastDesiredSeq: s.lastDesiredSeq, lastFingerprint: s.lastFingerprint, keyringVersion: s.keyringVersion, target: s.target };
    try {
      await state.update((draft) => {
        draft.lastDesiredSeq = target.seq;
        draft.lastFingerprint = verdict.fingerprint;
        draft.keyringVersion = verdict.keyring.version;
        draft.target = target;
      });
    } catch (err) {
      // Not durable, so not acted on: the retained document is handled again on its next delivery.
      await state.update((draft) => Object.assign(draft, before)).catch(() => undefined);
      logger.error({ err, seq: target.seq }, 'could not persist an accepted desired document; ignoring it for now');
      return;
    }
    logger.info({ seq: target.seq, deploymentId: target.deploymentId, digest: target.bundle?.manifest.files[0]?.digest ?? null }, 'accepted desired state');
    this.converge(target);
  }

  private reject(reason: RejectionReason, message: string, seq?: number, deploymentId?: string): void {
    this.rejections.set(reason, (this.rejections.get(reason) ?? 0) + 1);
    this.options.logger.warn({ reason, seq }, `rejected a desired document: ${message}`);
    this.options.events.publish({ type: 'desired_rejected', reason, message: clip(message), seq, deploymentId });
  }

  /** Starts converging to the persisted target unless it is reached, failed, or already under way. */
  private ensureConverging(): void {
    const { target, active, deployment } = this.options.state.state;
    if (!target || this.stopped) return;
    if (this.job && this.job.target.seq === target.seq) return;
    const digest = target.bundle?.manifest.files[0]?.digest ?? null;
    const reached = (active?.digest ?? null) === digest && (this.options.active.current?.bundle.digest ?? null) === digest;
    const settled = deployment?.seq === target.seq && (deployment.phase === 'committed' || deployment.phase === 'failed');
    if (deployment?.seq === target.seq && deployment.phase === 'failed') return;
    if (reached && settled) return;
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
      if (this.job === job) this.job = null;
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
    const setPhase = async (next: DeploymentPhaseT, failure?: DeploymentFailure): Promise<void> => {
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
      this.options.events.publish({ type: 'deployment', deploymentId, seq, phase: next, ...(digest ? { digest } : {}), ...(failure ? { reason: failure.reason, message: failure.message } : {}) });
      this.options.onChange();
    };

    try {
      if (!manifest || !file || !digest) {
        // bundle: null — run no model.
        this.options.active.clear();
        await state.update((draft) => {
          draft.active = null;
        }).catch(() => undefined);
        await setPhase('committed');
        logger.info({ deploymentId, seq }, 'desired state has no bundle: model unloaded');
        return;
      }
      const served: ServedBundle = { manifest, digest, deploymentId };
      const current = this.options.active.current;
      if (current && current.bundle.digest === digest) {
        this.options.active.relabel(served);
        await state.update((draft) => {
          draft.active = { manifest, digest, deploymentId };
        }).catch(() => undefined);
        await setPhase('committed');
        return;
      }

      await setPhase('received');
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
      if (!path) {
        await setPhase('downloading');
        path = await this.options.downloader.download({ digest, size: file.size }, signal, () => setPhase('verifying'));
      }
      throwIfAborted(signal);

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
      // The new session serves from here on; the old one closes once its inferences are done.
      this.options.active.swap(session, served);
      await state.update((draft) => {
        draft.active = { manifest, digest, deploymentId };
      }).catch(() => undefined);
      await setPhase('committed');
      logger.info({ deploymentId, seq, model: `${manifest.name}@${manifest.version}`, digest }, 'deployment committed');
    } catch (err) {
      if (err instanceof SupersededError || signal.aborted) {
        logger.info({ deploymentId, seq, phase: at.phase }, 'deployment superseded');
        return;
      }
      const failure = err instanceof DeploymentFailure ? err : new DeploymentFailure(at.phase === 'verifying' ? 'load_failed' : 'download_failed', (err as Error).message);
      logger.warn({ deploymentId, seq, reason: failure.reason }, `deployment failed: ${failure.message}`);
      await setPhase('failed', failure);
    }
  }

  /** Loads the persisted active bundle after re-verifying its blob; clears it when it cannot serve. */
  private async restoreActive(): Promise<void> {
    const { state, blobs, logger } = this.options;
    const active = state.state.active;
    if (!active) return;
    const file = active.manifest.files[0];
    const path = blobs.pathOf(active.digest);
    try {
      if (!file) throw new Error('the manifest lists no file');
      const check = await blobs.check(path, active.digest, file.size).catch((err: Error) => {
        throw new Error(`cannot read ${path}: ${err.message}`);
      });
      if (!check.ok) {
        await blobs.remove(active.digest);
        throw new Error(`the stored blob no longer matches its digest (${check.digest}, ${check.size} bytes)`);
      }
      const session = await this.options.runtime().load(active.digest, path);
      this.options.active.swap(session, { manifest: active.manifest, digest: active.digest, deploymentId: active.deploymentId });
      logger.info({ model: `${active.manifest.name}@${active.manifest.version}`, digest: active.digest }, 'serving the persisted active bundle');
    } catch (err) {
      logger.error({ digest: active.digest }, `cannot serve the persisted active bundle: ${(err as Error).message}`);
      await state.update((draft) => {
        draft.active = null;
      }).catch(() => undefined);
    }
  }
}

/** Names the first difference between the manifest's tensor names and the session's, if any. */
function signatureMismatch(declared: Array<{ name: string }>, actual: Array<{ name: string }>, what: string): string | null {
  const a = declared.map((t) => t.name).sort();
  const b = actual.map((t) => t.name).sort();
  if (a.length === b.length && a.every((name, i) => name === b[i])) return null;
  return `the model's ${what}s are [${b.join(', ')}], the manifest declares [${a.join(', ')}]`;
}
