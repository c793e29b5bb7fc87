/**
 * The agent's durable state, `<stateDir>/state.json`, replaced atomically on every change
 * (temp file, fsync, rename, fsync of the directory).
 *
 * Changes apply in memory at once; writes are serialized and coalesced, and `update()` resolves
 * once a write that contains the change is on disk. A missing file starts clean; a corrupt one
 * is kept aside as `state.json.corrupt-<ts>` and also starts clean, saying why.
 *
 * After a corrupt file the counters the hub relies on restart from the clock (ms), not from 0:
 * the hub dedupes telemetry on (device, seq), so reusing old seqs would silently lose data.
 */
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Type, type Static } from 'typebox';
import { Compile, DeploymentStatus, Manifest, Seq, Sha256Hex, SignedManifest, describeErrors } from '@cairn/shared';
import { isAtomicTempOf, writeFileAtomic } from '../adapters/atomic-file.js';

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 1;

const closed = { additionalProperties: false } as const;

/** The last accepted desired state the agent converges to. */
export const TargetState = Type.Object(
  { deploymentId: Type.String({ maxLength: 64 }), seq: Seq, bundle: Type.Union([SignedManifest, Type.Null()]) },
  closed,
);
/** The bundle being served. (Slots A/B extend this later: the active slot and its standby.) */
export const ActiveState = Type.Object({ manifest: Manifest, digest: Sha256Hex, deploymentId: Type.String({ maxLength: 64 }) }, closed);

export const PersistedState = Type.Object(
  {
    version: Type.Literal(STATE_VERSION),
    /** Connection counter; the Last Will and the birth of one connection carry the same epoch. */
    epoch: Seq,
    /** Seq of the last accepted desired document; -1 before the first. */
    lastDesiredSeq: Type.Integer({ minimum: -1, maximum: Number.MAX_SAFE_INTEGER }),
    lastFingerprint: Type.Union([Type.String(), Type.Null()]),
    keyringVersion: Type.Integer({ minimum: 0 }),
    target: Type.Union([TargetState, Type.Null()]),
    active: Type.Union([ActiveState, Type.Null()]),
    deployment: Type.Union([DeploymentStatus, Type.Null()]),
    /** The seq the next telemetry summary takes; persisted before that summary is sent. */
    nextTelemetrySeq: Seq,
  },
  closed,
);

export type AgentState = Static<typeof PersistedState>;
export type TargetStateT = Static<typeof TargetState>;
export type ActiveStateT = Static<typeof ActiveState>;

const validator = Compile(PersistedState);

export function cleanState(counterFloor = 0): AgentState {
  return {
    version: STATE_VERSION,
    epoch: counterFloor,
    lastDesiredSeq: -1,
    lastFingerprint: null,
    keyringVersion: 0,
    target: null,
    active: null,
    deployment: null,
    nextTelemetrySeq: counterFloor,
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
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // Counters start from the clock, not 0: a reflashed or replaced device keeps its id, and
        // the hub already holds its old epochs and telemetry seqs.
        logger.info({ path: this.path }, 'no state.json: starting with clean state');
        return cleanState(Math.max(0, Math.floor(clock())));
      }
      throw err;
    }
    let why: string;
    try {
      const value: unknown = JSON.parse(text);
      if (validator.Check(value)) return value as AgentState;
      why = `it does not match the state schema (${describeErrors(validator, value)})`;
    } catch (err) {
      why = `it is not JSON (${(err as Error).message})`;
    }
    const aside = `${this.path}.corrupt-${clock()}`;
    await rename(this.path, aside).catch(() => undefined);
    logger.warn({ path: this.path, keptAs: aside }, `state.json is unusable, starting with clean state: ${why}`);
    return cleanState(Math.max(0, Math.floor(clock())));
  }

  private async removeStaleTempFiles(): Promise<void> {
    for (const entry of await readdir(this.options.stateDir).catch(() => [] as string[])) {
      if (isAtomicTempOf(this.path, entry)) await rm(join(this.options.stateDir, entry), { force: true });
    }
  }
}
