/**
 * The model runtime (contract in types.ts): every load gets a worker thread that owns one
 * onnxruntime session, unless `shareByDigest` lets loads of the same digest share one worker
 * (refcounted; the fleet simulator runs many agents with the same model in one process).
 *
 * Guarantees the rest of the agent builds on:
 * - Every failure is a rejected promise, never an exception on the event loop. Errors that come
 *   from onnxruntime carry its message unchanged; all are `ModelRuntimeError`s with a `code`.
 * - A load that fails or times out leaves no worker behind (the promise settles after the
 *   thread has exited).
 * - A worker that crashes or exits rejects its in-flight inferences and every later call on its
 *   sessions with a `CAIRN_RUNTIME_WORKER_EXITED` error; the runtime itself keeps working.
 * - Closing the last handle of a worker drains the inferences already posted, releases the
 *   session and terminates the thread (onnxruntime returns native memory reliably only then).
 *   `runtime.close()` rejects what is in flight at once and ends every worker as soon as the
 *   onnxruntime run it is in (if any) returns: terminating a thread inside `run` aborts the
 *   whole process (onnxruntime-node 1.30 throws a C++ exception nobody catches).
 * - Inputs are copied (only the view's bytes) into a fresh buffer that is transferred, so a
 *   caller may reuse its arrays (golden probes run the same input repeatedly); outputs are
 *   transferred from the worker without a copy.
 * - An aborted inference rejects at once (`CAIRN_RUNTIME_ABORTED`) and, if the worker has not
 *   started it, is skipped there: a rolled-back candidate does not spend the CPU its standby
 *   needs on answers nobody waits for.
 */
import { Worker } from 'node:worker_threads';
import type { TensorSpecT } from '@cairn/shared';
import { AgentError } from '../../errors.js';
import type { Feeds, InferOptions, Inference, ModelRuntime, ModelSession, Tensor } from './types.js';
import type { FromWorker, InferenceWorkerData, ToWorker } from './worker-protocol.js';

export type ModelRuntimeErrorCode =
  | 'CAIRN_RUNTIME_LOAD_FAILED'
  | 'CAIRN_RUNTIME_LOAD_TIMEOUT'
  | 'CAIRN_RUNTIME_INFER_FAILED'
  | 'CAIRN_RUNTIME_BAD_FEEDS'
  | 'CAIRN_RUNTIME_ABORTED'
  | 'CAIRN_RUNTIME_WORKER_EXITED'
  | 'CAIRN_RUNTIME_CLOSED';

/** Part of the agent's error catalogue (errors.ts); `code` says which guarantee was hit. */
export class ModelRuntimeError extends AgentError {
  declare readonly code: ModelRuntimeErrorCode;
  constructor(code: ModelRuntimeErrorCode, message: string) {
    super(code, message);
    this.name = 'ModelRuntimeError';
  }
}

export interface WorkerRuntimeOptions {
  /** onnxruntime intra-op threads per session; default 1 (edge boards share their few cores). */
  intraOpNumThreads?: number;
  /** Loads of the same digest share one worker and session; default false. */
  shareByDigest?: boolean;
  /** A load that has not finished after this long fails and its worker is terminated; default 60 s. */
  loadTimeoutMs?: number;
}

export interface WorkerRuntimeStats {
  /** Live worker threads, including those still loading or releasing. */
  workers: number;
  /** Open session handles. */
  sessions: number;
}

export type WorkerRuntime = ModelRuntime & { stats(): WorkerRuntimeStats };

/**
 * Test seam: `session[SIMULATE_WORKER_CRASH]()` makes the session's worker throw an uncaught
 * error, which is what a crash looks like from the main thread. Not for production use.
 */
export const SIMULATE_WORKER_CRASH = Symbol('cairn.runtime.simulateWorkerCrash');

const DEFAULT_LOAD_TIMEOUT_MS = 60_000;
/** How long a release may take before the thread is terminated regardless. */
const RELEASE_TIMEOUT_MS = 5_000;
const WORKER_URL = new URL('./inference-worker.js', import.meta.url);
/**
 * V8's young generation of each model worker, in MB (V8 sizes it 3 × a semi-space; its default
 * on 64-bit is 3 × 16 MB). A worker's live JS data is a few tensors' wrappers (the tensor bytes are
 * ArrayBuffers outside the heap), but under steady traffic V8 grows the young generation to its
 * maximum and keeps it: ~25 MB of resident memory per worker that held nothing live (measured in
 * BENCHMARKS.md, agent memory). Scavenges of a space this small take microseconds.
 */
const WORKER_YOUNG_GENERATION_MB = 3;

type HostState = 'loading' | 'ready' | 'releasing' | 'gone';

interface Pending {
  resolve: (inference: Inference) => void;
  reject: (error: Error) => void;
}

/** One worker thread and the session it owns. */
class WorkerHost {
  state: HostState = 'loading';
  refs = 0;
  inputs: TensorSpecT[] = [];
  outputs: TensorSpecT[] = [];
  /** Set once the worker cannot serve any more; later calls reject with it. */
  failure: ModelRuntimeError | undefined;
  /** Settles once the session is loaded; rejects (after the thread has exited) when it cannot be. */
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private crashMessage: string | undefined;
  private onReleased: (() => void) | undefined;

  constructor(
    readonly digest: string,
    readonly modelPath: string,
    options: { intraOpNumThreads: number; loadTimeoutMs: number },
    private readonly onGone: (host: WorkerHost) => void,
  ) {
    const workerData: InferenceWorkerData = { modelPath, intraOpNumThreads: options.intraOpNumThreads };
    this.worker = new Worker(WORKER_URL, { workerData, resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } });
    this.worker.on('error', (error) => {
      this.crashMessage = error.message;
    });
    this.worker.on('messageerror', (error) => {
      this.crashMessage = `undecodable message from the worker: ${error.message}`;
    });
    this.exited = new Promise((resolve) => {
      this.worker.once('exit', (code) => {
        this.fail(
          new ModelRuntimeError(
            'CAIRN_RUNTIME_WORKER_EXITED',
            this.crashMessage
              ? `the model worker for ${shortDigest(digest)} crashed: ${this.crashMessage}`
              : `the model worker for ${shortDigest(digest)} exited unexpectedly (exit code ${code})`,
          ),
        );
        this.state = 'gone';
        this.onGone(this);
        resolve();
      });
    });
    this.ready = this.waitUntilLoaded(options.loadTimeoutMs);
    this.worker.on('message', (message: FromWorker) => this.onMessage(message));
  }

  infer(feeds: Feeds, signal: AbortSignal | undefined): Promise<Inference> {
    if (this.failure) return Promise.reject(this.failure);
    if (signal?.aborted) return Promise.reject(aborted(this.digest));
    const copies: Record<string, Tensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, tensor] of Object.entries(feeds)) {
      // Checked here because a structured clone would accept anything and fail obscurely later.
      if (!(tensor?.data instanceof Float32Array) || !Array.isArray(tensor.dims)) {
        return Promise.reject(new ModelRuntimeError('CAIRN_RUNTIME_BAD_FEEDS', `input '${name}' must be {dims: number[], data: Float32Array}`));
      }
      const data = new Float32Array(tensor.data);
      copies[name] = { dims: [...tensor.dims], data };
      transfer.push(data.buffer);
    }
    const id = this.nextId++;
    return new Promise<Inference>((resolve, reject) => {
      if (!signal) {
        this.pending.set(id, { resolve, reject });
      } else {
        const onAbort = (): void => {
          if (!this.pending.delete(id)) return;
          reject(aborted(this.digest));
          if (this.state !== 'gone') this.worker.postMessage({ kind: 'cancel', id } satisfies ToWorker);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        const settle =
          <T>(fn: (value: T) => void) =>
          (value: T): void => {
            signal.removeEventListener('abort', onAbort);
            fn(value);
          };
        this.pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      }
      this.worker.postMessage({ kind: 'infer', id, feeds: copies } satisfies ToWorker, transfer);
    });
  }

  /** Drains what was posted before, releases the session, then terminates the thread. */
  async release(): Promise<void> {
    if (this.state === 'gone' || this.state === 'releasing') return this.exited;
    this.state = 'releasing';
    let timer: NodeJS.Timeout | undefined;
    const released = new Promise<void>((resolve) => {
      this.onReleased = resolve;
      timer = setTimeout(resolve, RELEASE_TIMEOUT_MS);
    });
    this.worker.postMessage({ kind: 'release' } satisfies ToWorker);
    await Promise.race([released, this.exited]);
    clearTimeout(timer);
    await this.terminate(new ModelRuntimeError('CAIRN_RUNTIME_CLOSED', `the model session for ${shortDigest(this.digest)} is closed`));
  }

  /**
   * Ends the thread without cutting an onnxruntime run short: what is in flight rejects with
   * `reason` at once, the worker skips what it has not started, finishes its current run and
   * releases (or finishes the release it is in). A worker still loading is terminated (it is
   * not inside `run`).
   */
  async shutdown(reason: ModelRuntimeError): Promise<void> {
    if (this.state === 'loading' || this.state === 'gone') return this.terminate(reason);
    for (const id of this.pending.keys()) this.worker.postMessage({ kind: 'cancel', id } satisfies ToWorker);
    this.fail(reason);
    await this.release();
  }

  /** Ends the thread now; what is in flight rejects with `reason` (unless it already failed). Never while a run may be in progress (see `shutdown`). */
  async terminate(reason: ModelRuntimeError): Promise<void> {
    this.fail(reason);
    if (this.state !== 'gone') {
      this.state = 'releasing';
      await this.worker.terminate();
    }
    await this.exited;
  }

  simulateCrash(): void {
    this.worker.postMessage({ kind: 'crash' } satisfies ToWorker);
  }

  private waitUntilLoaded(loadTimeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: ModelRuntimeError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.worker.off('message', onMessage);
        void this.terminate(error).then(() => reject(this.failure ?? error));
      };
      const timer = setTimeout(
        () => fail(new ModelRuntimeError('CAIRN_RUNTIME_LOAD_TIMEOUT', `loading model ${shortDigest(this.digest)} from ${this.modelPath} did not finish within ${loadTimeoutMs} ms`)),
        loadTimeoutMs,
      );
      const onMessage = (message: FromWorker): void => {
        if (message.kind === 'loaded' && !settled) {
          settled = true;
          clearTimeout(timer);
          this.worker.off('message', onMessage);
          this.inputs = message.inputs;
          this.outputs = message.outputs;
          this.state = 'ready';
          resolve();
        } else if (message.kind === 'load-failed') {
          fail(new ModelRuntimeError('CAIRN_RUNTIME_LOAD_FAILED', message.message));
        }
      };
      this.worker.on('message', onMessage);
      // A crash during the load, or runtime.close() terminating it.
      void this.exited.then(() => fail(this.failure!));
    });
  }

  private onMessage(message: FromWorker): void {
    if (message.kind === 'result' || message.kind === 'error') {
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      if (message.kind === 'result') pending.resolve({ outputs: message.outputs, computeMs: message.computeMs });
      else pending.reject(new ModelRuntimeError('CAIRN_RUNTIME_INFER_FAILED', message.message));
    } else if (message.kind === 'released') {
      this.onReleased?.();
    }
  }

  /** Records the first reason the worker stopped serving and rejects what is in flight. */
  private fail(error: ModelRuntimeError): void {
    this.failure ??= error;
    for (const pending of this.pending.values()) pending.reject(this.failure);
    this.pending.clear();
  }
}

/** One caller's handle on a (possibly shared) worker. */
class WorkerSession implements ModelSession {
  private closing: Promise<void> | undefined;

  constructor(
    private readonly host: WorkerHost,
    private readonly onClose: (session: WorkerSession, host: WorkerHost) => Promise<void>,
  ) {}

  get digest(): string {
    return this.host.digest;
  }
  get inputs(): TensorSpecT[] {
    return this.host.inputs;
  }
  get outputs(): TensorSpecT[] {
    return this.host.outputs;
  }

  infer(feeds: Feeds, options?: InferOptions): Promise<Inference> {
    if (this.closing) return Promise.reject(new ModelRuntimeError('CAIRN_RUNTIME_CLOSED', `the model session for ${shortDigest(this.digest)} is closed`));
    return this.host.infer(feeds, options?.signal);
  }

  close(): Promise<void> {
    this.closing ??= this.onClose(this, this.host);
    return this.closing;
  }

  [SIMULATE_WORKER_CRASH](): void {
    this.host.simulateCrash();
  }
}

export function createWorkerRuntime(options: WorkerRuntimeOptions = {}): WorkerRuntime {
  const intraOpNumThreads = options.intraOpNumThreads ?? 1;
  const shareByDigest = options.shareByDigest ?? false;
  const loadTimeoutMs = options.loadTimeoutMs ?? DEFAULT_LOAD_TIMEOUT_MS;
  if (!Number.isInteger(intraOpNumThreads) || intraOpNumThreads < 1) throw new RangeError(`intraOpNumThreads must be a positive integer, got ${intraOpNumThreads}`);
  if (!(loadTimeoutMs > 0)) throw new RangeError(`loadTimeoutMs must be positive, got ${loadTimeoutMs}`);

  const hosts = new Set<WorkerHost>();
  const sessions = new Set<WorkerSession>();
  /** Per digest, the loading or ready host that later loads may join (shareByDigest only). */
  const shared = new Map<string, WorkerHost>();
  let closed = false;

  const unshare = (host: WorkerHost): void => {
    if (shared.get(host.digest) === host) shared.delete(host.digest);
  };

  const spawn = (digest: string, modelPath: string): WorkerHost => {
    const host = new WorkerHost(digest, modelPath, { intraOpNumThreads, loadTimeoutMs }, (gone) => {
      hosts.delete(gone);
      unshare(gone);
    });
    hosts.add(host);
    return host;
  };

  const acquire = async (digest: string, modelPath: string): Promise<WorkerHost> => {
    if (!shareByDigest) {
      const host = spawn(digest, modelPath);
      await host.ready;
      return host;
    }
    for (;;) {
      let host = shared.get(digest);
      if (!host) {
        host = spawn(digest, modelPath);
        shared.set(digest, host);
      }
      await host.ready;
      // The shared worker may have started releasing, or crashed, while this load waited.
      if (host.state === 'ready' && !host.failure) return host;
      unshare(host);
      if (closed) throw new ModelRuntimeError('CAIRN_RUNTIME_CLOSED', 'the model runtime is closed');
    }
  };

  const closeSession = async (session: WorkerSession, host: WorkerHost): Promise<void> => {
    sessions.delete(session);
    host.refs--;
    if (host.refs > 0) return;
    // No handle uses it any more: nobody may join it while it releases.
    unshare(host);
    await host.release();
  };

  return {
    async load(digest, modelPath) {
      if (closed) throw new ModelRuntimeError('CAIRN_RUNTIME_CLOSED', 'the model runtime is closed');
      const host = await acquire(digest, modelPath);
      host.refs++;
      const session = new WorkerSession(host, closeSession);
      sessions.add(session);
      return session;
    },

    async close() {
      closed = true;
      shared.clear();
      sessions.clear();
      const error = new ModelRuntimeError('CAIRN_RUNTIME_CLOSED', 'the model runtime was closed');
      await Promise.all([...hosts].map((host) => host.shutdown(error)));
    },

    stats() {
      return { workers: hosts.size, sessions: sessions.size };
    },
  };
}

function aborted(digest: string): ModelRuntimeError {
  return new ModelRuntimeError('CAIRN_RUNTIME_ABORTED', `the inference on ${shortDigest(digest)} was aborted`);
}

function shortDigest(digest: string): string {
  return digest.length > 12 ? digest.slice(0, 12) : digest;
}
