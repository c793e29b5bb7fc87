/**
 * The agent's durable state, `<stateDir>/state.json`, replaced atomically on every change
 * (temp file, fsync, rename, fsync of the directory).
 *
 * Changes apply in memory at once; writes are serialized and coalesced, and `update()` resolves
 * once a write that contains the change is on disk. A missing file starts clean; a corrupt one
 * is kept aside as `state.json.corrupt-<ts>`, saying why.
 *
 * After a corrupt file the counters the hub relies on restart from the clock (ms), not from 0:
 * the hub dedupes telemetry on (device, seq), so reusing old seqs would silently lose data.
 * A corrupt file falls back to `state.json.last-good`, the state this boot started from, so the
 * committed slot is still found.
 */
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Type, type Static } from 'typebox';
import { Compile, DeploymentStatus, Manifest, Seq, Sha256Hex, SignedManifest, describeErrors } from '@cairn/shared';
import { isAtomicTempOf, writeFileAtomic } from '../adapters/atomic-file.js';

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 2;

const closed = { additionalProperties: false } as const;

/** The last accepted desired state the agent converges to. */
export const TargetState = Type.Object(
  { deploymentId: Type.String({ maxLength: 64 }), seq: Seq, bundle: Type.Union([SignedManifest, Type.Null()]) },
  closed,
);
/** A bundle in a slot: what it is and which deployment put it there (its blob is `blobs/sha256/<digest>`). */
export const ActiveState = Type.Object({ manifest: Manifest, digest: Sha256Hex, deploymentId: Type.String({ maxLength: 64 }) }, closed);
export const SLOT_NAMES = ['A', 'B'] as const;
export const SlotName = Type.Enum(SLOT_NAMES);
/** A candidate serving live traffic in the other slot; `activeSlot` still names the committed one. */
export const TrialState = Type.Object({ slot: SlotName, deploymentId: Type.String({ maxLength: 64 }), seq: Seq, digest: Sha256Hex, startedAt: Type.Integer({ minimum: 0 }) }, closed);
/** A candidate being loaded and probed; `boots` counts the starts that found it here (a crash loop). */
export const LoadingState = Type.Object({ digest: Sha256Hex, deploymentId: Type.String({ maxLength: 64 }), boots: Type.Integer({ minimum: 0 }) }, closed);
/** A digest that failed here under a deployment: not retried until another deployment asks for it. */
export const QuarantineEntry = Type.Object({ digest: Sha256Hex, deploymentId: Type.String({ maxLength: 64 }), reason: Type.String({ maxLength: 64 }), ts: Type.Integer({ minimum: 0 }) }, closed);
export const QUARANTINE_LIMIT = 16;

export const PersistedState = Type.Object(
  {
    version: Type.Literal(STATE_VERSION),
    /** Connection counter; the Last Will and the birth of one connection carry the same epoch. */
    epoch: Seq,
    /** Seq of the last accepted desired document; -1 before the first. */
    lastDesiredSeq: Type.Integer({ minimum: -1, maximum: Number.MAX_SAFE_INTEGER }),
    lastFingerprint: Type.Union([Type.String(), Type.Null()]),
    keyringVersion: Type.Integer({ minimum: 0 }),
    /** Highest security floor seen in an accepted keyring (absent in files written before floors: 0). */
    securityFloor: Type.Optional(Seq),
    target: Type.Union([TargetState, Type.Null()]),
    /** Two slots (DESIGN §4); `activeSlot` is the committed one, served after a restart. */
    slots: Type.Object({ A: Type.Union([ActiveState, Type.Null()]), B: Type.Union([ActiveState, Type.Null()]) }, closed),
    activeSlot: Type.Union([SlotName, Type.Null()]),
    trial: Type.Union([TrialState, Type.Null()]),
    loading: Type.Union([LoadingState, Type.Null()]),
    quarantine: Type.Array(QuarantineEntry, { maxItems: QUARANTINE_LIMIT }),
    deployment: Type.Union([DeploymentStatus, Type.Null()]),
    /**
     * Every telemetry seq used so far is below this (telemetry.ts raises it a block at a time).
     * The counter itself lives in outbox.db; a lost outbox.db restarts above this ceiling.
     */
    telemetrySeqCeiling: Seq,
  },
  closed,
);

export type AgentState = Static<typeof PersistedState>;
export type TargetStateT = Static<typeof TargetState>;
export type ActiveStateT = Static<typeof ActiveState>;
export type SlotNameT = Static<typeof SlotName>;
export type QuarantineEntryT = Static<typeof QuarantineEntry>;

/** The committed bundle: what serves after a restart. */
export function committedOf(s: Readonly<AgentState>): ActiveStateT | null {
  return s.activeSlot ? s.slots[s.activeSlot] : null;
}

export function otherSlot(slot: SlotNameT): SlotNameT {
  return slot === 'A' ? 'B' : 'A';
}

/**
 * Where a candidate goes: the slot that is not committed; with no committed slot, the one not
 * holding `servingDigest` (a candidate kept serving after its trial was superseded).
 */
export function candidateSlot(s: Readonly<AgentState>, servingDigest: string | null): SlotNameT {
  if (s.activeSlot) return otherSlot(s.activeSlot);
  return s.slots.A !== null && s.slots.A.digest === servingDigest ? 'B' : 'A';
}

/** Records that `digest` failed under `deploymentId` (the newest entries are kept). */
export function quarantine(draft: AgentState, entry: QuarantineEntryT): void {
  draft.quarantine = [...draft.quarantine.filter((q) => q.digest !== entry.digest), entry].slice(-QUARANTINE_LIMIT);
}

export function isQuarantined(s: Readonly<AgentState>, digest: string, deploymentId: string): QuarantineEntryT | null {
  return s.quarantine.find((q) => q.digest === digest && q.deploymentId === deploymentId) ?? null;
}

const validator = Compile(PersistedState);

export function cleanState(counterFloor = 0): AgentState {
  return {
    version: STATE_VERSION,
    epoch: counterFloor,
    lastDesiredSeq: -1,
    lastFingerprint: null,
    keyringVersion: 0,
    securityFloor: 0,
    target: null,
    slots: { A: null, B: null },
    activeSlot: null,
    trial: null,
    loading: null,
    quarantine: [],
    deployment: null,
    telemetrySeqCeiling: counterFloor,
  };
}

export interface StateStoreOptions {
  stateDir: string;
  logger: Logger;
  clock: () => number;
}

export class StateStore {
  private current: AgentState = cleanState();
  private chain: Promise<void> = Promise.resolve();
  private queued: Promise<void> | null = null;
  private readonly path: string;

  constructor(private readonly options: StateStoreOptions) {
    this.path = join(options.stateDir, STATE_FILE);
  }

  /** Creates the state directory and loads state.json (or starts clean). */
  async start(): Promise<void> {
    await mkdir(this.options.stateDir, { recursive: true, mode: 0o700 });
    await this.removeStaleTempFiles();
    this.current = await this.load();
  }

  async stop(): Promise<void> {
    await this.flush();
  }

  get state(): Readonly<AgentState> {
    return this.current;
  }

  /**
   * Applies `change` in memory now and persists it. The returned promise resolves once a write
   * containing the change is durable, and rejects if that write failed (the in-memory change stays).
   */
  update(change: (draft: AgentState) => void): Promise<void> {
    change(this.current);
    return this.schedule();
  }

  /** Resolves when every change made so far is on disk (or its write has failed). */
  async flush(): Promise<void> {
    await this.chain;
  }

  private schedule(): Promise<void> {
    if (this.queued) return this.queued;
    const write = this.chain.then(() => {
      // From here on, later changes need a write of their own.
      this.queued = null;
      return writeFileAtomic(this.path, `${JSON.stringify(this.current, null, 2)}\n`);
    });
    this.queued = write;
    this.chain = write.catch((err: Error) => {
      this.options.logger.error({ err }, `could not write ${this.path}`);
    });
    return write;
  }

  private async load(): Promise<AgentState> {
    const { logger, clock } = this.options;
    const floor = () => Math.max(0, Math.floor(clock()));
    const read = await this.read(this.path);
    if (read.kind === 'missing') {
      // Counters start from the clock, not 0: a reflashed or replaced device keeps its id, and
      // the hub already holds its old epochs and telemetry seqs.
      logger.info({ path: this.path }, 'no state.json: starting with clean state');
      return cleanState(floor());
    }
    if (read.kind === 'ok') {
      // The state this boot started from, kept so that a state.json damaged later (a failing
      // flash cell, a hand edit) still finds the slots: it cannot leave the device without a model.
      await writeFileAtomic(this.lastGoodPath, read.text).catch((err: Error) => logger.warn({ err }, 'could not keep a last-good copy of state.json'));
      return read.state;
    }
    const aside = `${this.path}.corrupt-${clock()}`;
    await rename(this.path, aside).catch(() => undefined);
    const lastGood = await this.read(this.lastGoodPath);
    if (lastGood.kind === 'ok') {
      logger.warn({ path: this.path, keptAs: aside }, `state.json is unusable (${read.why}); starting from the last-good copy of this boot`);
      const state = lastGood.state;
      // Counters may have moved on since that copy: restart them above anything used before.
      state.epoch = Math.max(state.epoch, floor());
      state.telemetrySeqCeiling = Math.max(state.telemetrySeqCeiling, floor());
      return state;
    }
    logger.warn({ path: this.path, keptAs: aside }, `state.json is unusable, starting with clean state: ${read.why}`);
    return cleanState(floor());
  }

  private get lastGoodPath(): string {
    return `${this.path}.last-good`;
  }

  private async read(path: string): Promise<{ kind: 'ok'; state: AgentState; text: string } | { kind: 'missing' } | { kind: 'bad'; why: string }> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
      throw err;
    }
    try {
      const value: unknown = migrate(JSON.parse(text));
      if (validator.Check(value)) return { kind: 'ok', state: value as AgentState, text };
      return { kind: 'bad', why: `it does not match the state schema (${describeErrors(validator, value)})` };
    } catch (err) {
      return { kind: 'bad', why: `it is not JSON (${(err as Error).message})` };
    }
  }

  private async removeStaleTempFiles(): Promise<void> {
    for (const entry of await readdir(this.options.stateDir).catch(() => [] as string[])) {
      if (isAtomicTempOf(this.path, entry)) await rm(join(this.options.stateDir, entry), { force: true });
    }
  }
}

/**
 * Upgrades an older state file in memory (it is written back in the new format on the next
 * change). Version 1 had one `active` bundle: it becomes slot A.
 */
function migrate(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || (value as { version?: unknown }).version !== 1) return value;
  const { active, nextTelemetrySeq, ...rest } = value as Record<string, unknown> & { active?: unknown; nextTelemetrySeq?: unknown };
  return { ...rest, version: STATE_VERSION, telemetrySeqCeiling: nextTelemetrySeq, slots: { A: active ?? null, B: null }, activeSlot: active ? 'A' : null, trial: null, loading: null, quarantine: [] };
}
