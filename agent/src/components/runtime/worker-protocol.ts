/**
 * Messages between the runtime (main thread) and one inference worker. One worker owns exactly
 * one onnxruntime session, created from `workerData` at start-up; it answers requests in the
 * order they arrive, so a `release` is answered only after every `infer` posted before it.
 *
 * Float32Array payloads travel in buffers that the sender owns exclusively and transfers.
 */
import type { TensorSpecT } from '@cairn/shared';
import type { Tensor } from './types.js';

export interface InferenceWorkerData {
  modelPath: string;
  intraOpNumThreads: number;
}

export type ToWorker =
  | { kind: 'infer'; id: number; feeds: Record<string, Tensor> }
  /** Release the session and report `released`; the runtime terminates the thread afterwards. */
  | { kind: 'release' }
  /**
   * The caller no longer wants the answer to `id`: if it has not started, skip it without a
   * reply. Handled on receipt, ahead of the queued requests.
   */
  | { kind: 'cancel'; id: number }
  /** Throw an uncaught error in the worker: the tests' only way to produce a real crash. */
  | { kind: 'crash' };

export type FromWorker =
  | { kind: 'loaded'; inputs: TensorSpecT[]; outputs: TensorSpecT[] }
  | { kind: 'load-failed'; message: string }
  /** `computeMs`: wall time of `session.run` alone (see `Inference` in types.ts). */
  | { kind: 'result'; id: number; outputs: Record<string, Tensor>; computeMs: number }
  | { kind: 'error'; id: number; message: string }
  | { kind: 'released' };
