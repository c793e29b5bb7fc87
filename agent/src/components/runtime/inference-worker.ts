/**
 * Worker-thread entry of the model runtime: owns one onnxruntime session (see
 * worker-protocol.ts for the messages). onnxruntime's create() and run() block the thread they
 * run on, which is why they run here and not on the agent's event loop.
 *
 * Requests are handled strictly one after another: run() is synchronous inside onnxruntime-node
 * anyway, and the ordering is what lets `release` drain the inferences posted before it.
 * A `cancel` is handled on receipt (between two runs: onnxruntime-node starts each run from a
 * setImmediate, so messages are received while a queue drains): a cancelled request that has
 * not started is skipped without a reply.
 * Each result carries the wall time of `session.run` alone (`computeMs`), measured here because
 * only here is the time a request waited in the queue separable from the model's own.
 * Every failure of a request becomes an `error` reply carrying onnxruntime's own message; the
 * worker never dies because of a bad request.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { TensorSpecT } from '@cairn/shared';
import type { Tensor } from './types.js';
import type { FromWorker, InferenceWorkerData, ToWorker } from './worker-protocol.js';

if (!parentPort) throw new Error('inference-worker must run in a worker thread');
const port = parentPort;
const data = workerData as InferenceWorkerData;

const post = (message: FromWorker, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

/**
 * onnxruntime-node 1.30 reports `{name, isTensor, type, shape}` per input and output, shape
 * entries being numbers or symbolic names ('' for an unnamed dynamic dimension). Older
 * runtimes have only the names; the specs then carry type 'unknown' and no dims.
 */
function toSpecs(names: readonly string[], metadata: readonly ort.InferenceSession.ValueMetadata[] | undefined): TensorSpecT[] {
  return names.map((name, i) => {
    const meta = metadata?.[i];
    if (!meta || meta.name !== name) return { name, type: 'unknown', dims: [] };
    if (!meta.isTensor) return { name, type: 'non-tensor', dims: [] };
    return { name, type: meta.type, dims: meta.shape.map((d) => (d === '' ? '?' : d)) };
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A buffer the worker can give away: onnxruntime's output may be a view into a larger one. */
function ownedCopyIfNeeded(values: Float32Array): Float32Array {
  const whole = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength && values.buffer instanceof ArrayBuffer;
  return whole ? values : values.slice();
}

async function run(session: ort.InferenceSession, id: number, feeds: Record<string, Tensor>): Promise<void> {
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor('float32', tensor.data, tensor.dims);
    const started = performance.now();
    const results = await session.run(ortFeeds);
    const computeMs = performance.now() - started;
    const outputs: Record<string, Tensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, value] of Object.entries(results)) {
      if (value.type !== 'float32' || !(value.data instanceof Float32Array)) {
        throw new Error(`output '${name}' has type ${value.type}; the Cairn runtime supports float32 outputs only`);
      }
      const values = ownedCopyIfNeeded(value.data);
      outputs[name] = { dims: [...value.dims], data: values };
      transfer.push(values.buffer as ArrayBuffer);
    }
    post({ kind: 'result', id, outputs, computeMs }, transfer);
  } catch (error) {
    post({ kind: 'error', id, message: messageOf(error) });
  }
}

async function main(): Promise<void> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(data.modelPath, {
      intraOpNumThreads: data.intraOpNumThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      executionMode: 'sequential',
    });
  } catch (error) {
    post({ kind: 'load-failed', message: messageOf(error) });
    // Stay alive until the runtime terminates us, so that the failure is what it sees first,
    // never an exit it would have to explain.
    port.on('message', () => undefined);
    return;
  }

  let queue: Promise<void> = Promise.resolve();
  // Ids of one worker increase in posting order, so a cancel for an id at or below the last one
  // started came too late and is dropped: the set holds only requests still queued.
  let lastStarted = 0;
  const cancelled = new Set<number>();
  port.on('message', (message: ToWorker) => {
    // Thrown synchronously in the listener: a genuine uncaught exception, and no message posted
    // after this one is ever answered.
    if (message.kind === 'crash') throw new Error('simulated crash of the inference worker');
    if (message.kind === 'cancel') {
      if (message.id > lastStarted) cancelled.add(message.id);
      return;
    }
    queue = queue.then(async () => {
      if (message.kind === 'infer') {
        lastStarted = message.id;
        if (cancelled.delete(message.id)) return;
        return run(session, message.id, message.feeds);
      }
      await session.release().catch(() => undefined);
      post({ kind: 'released' });
    });
  });
  post({
    kind: 'loaded',
    inputs: toSpecs(session.inputNames, session.inputMetadata),
    outputs: toSpecs(session.outputNames, session.outputMetadata),
  });
}

void main();
