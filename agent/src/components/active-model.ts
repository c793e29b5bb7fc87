/**
 * The model being served: one session plus what it is (name, version, digest, deployment).
 *
 * A swap installs the new session first and retires the old one only once its in-flight
 * inferences have finished, so inference never stops and no request is dropped by a swap.
 * (Slots A/B and the trial's hot standby build on this later.)
 */
import type { Logger } from 'pino';
import type { ManifestT } from '@cairn/shared';
import type { Feeds, ModelSession, Tensor } from './runtime/types.js';
import { NoModelError } from '../errors.js';

export interface ServedBundle {
  manifest: ManifestT;
  digest: string;
  deploymentId: string;
}

interface Slot {
  session: ModelSession;
  bundle: ServedBundle;
  inflight: number;
  retiring: boolean;
  closed?: Promise<void>;
}

export class ActiveModel {
  private slot: Slot | null = null;
  private readonly retiring = new Set<Slot>();

  constructor(private readonly logger: Logger) {}

  get current(): { session: ModelSession; bundle: ServedBundle } | null {
    return this.slot ? { session: this.slot.session, bundle: this.slot.bundle } : null;
  }

  /** Serves `session` from now on; the previous session closes when its last inference is done. */
  swap(session: ModelSession, bundle: ServedBundle): void {
    const old = this.slot;
    this.slot = { session, bundle, inflight: 0, retiring: false };
    if (old) this.retire(old);
  }

  /** Updates what the current session is recorded as (same digest, new deployment). */
  relabel(bundle: ServedBundle): void {
    if (this.slot && this.slot.bundle.digest === bundle.digest) this.slot.bundle = bundle;
  }

  /** Stops serving; the session closes once idle. */
  clear(): void {
    const old = this.slot;
    this.slot = null;
    if (old) this.retire(old);
  }

  async infer(feeds: Feeds): Promise<{ outputs: Record<string, Tensor>; bundle: ServedBundle }> {
    const slot = this.slot;
    if (!slot) throw new NoModelError();
    slot.inflight++;
    try {
      return { outputs: await slot.session.infer(feeds), bundle: slot.bundle };
    } finally {
      slot.inflight--;
      if (slot.retiring && slot.inflight === 0) this.close(slot);
    }
  }

  /** Closes every session, including retiring ones with work in flight. */
  async stop(): Promise<void> {
    const slots = [...this.retiring, ...(this.slot ? [this.slot] : [])];
    this.slot = null;
    await Promise.all(slots.map((s) => this.close(s)));
  }

  private retire(slot: Slot): void {
    slot.retiring = true;
    this.retiring.add(slot);
    if (slot.inflight === 0) this.close(slot);
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
