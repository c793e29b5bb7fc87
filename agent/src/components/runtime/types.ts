/**
 * Contract of the model runtime: every onnxruntime session lives in its own worker thread
 * (onnxruntime blocks the event loop, and native memory is only reliably returned when the
 * worker that owns a session terminates). The main thread sees only this interface.
 */
import type { TensorSpecT } from '@cairn/shared';

/** A dense tensor crossing the worker boundary. Only float32 inputs/outputs are supported for now. */
export interface Tensor {
  dims: number[];
  data: Float32Array;
}

export type Feeds = Record<string, Tensor>;

/** One inference's answer. */
export interface Inference {
  outputs: Record<string, Tensor>;
  /**
   * Wall time of onnxruntime's `session.run` inside the worker, in ms: the model's own compute on
   * this machine, without the time the request waited in the worker's queue or crossed the
   * thread boundary. Health checks judge a model by it (golden-probes.ts, trial-monitor.ts);
   * what a caller waited in all is the caller's own measurement.
   */
  computeMs: number;
}

export interface InferOptions {
  /**
   * Aborting rejects the inference at once with `CAIRN_RUNTIME_ABORTED`; if the worker has not
   * started it yet, it never runs (a run already started finishes and its answer is dropped).
   */
  signal?: AbortSignal;
}

export interface ModelSession {
  /** Digest of the ONNX file this session was loaded from. */
  readonly digest: string;
  /** Input and output signatures as onnxruntime reports them. */
  readonly inputs: TensorSpecT[];
  readonly outputs: TensorSpecT[];
  /** Runs one inference in the worker. Rejects with the runtime's message on bad feeds; never blocks the caller's loop. */
  infer(feeds: Feeds, options?: InferOptions): Promise<Inference>;
  /** Releases this handle; the worker terminates when its last handle is closed. Idempotent. */
  close(): Promise<void>;
}

export interface ModelRuntime {
  /**
   * Loads the ONNX file at `modelPath` (whose SHA-256 is `digest`) in a worker thread.
   * Rejects with the runtime's own message when onnxruntime cannot load it.
   * A runtime may share one worker between loads of the same digest (the fleet simulator does).
   */
  load(digest: string, modelPath: string): Promise<ModelSession>;
  /** Terminates every worker. */
  close(): Promise<void>;
}
