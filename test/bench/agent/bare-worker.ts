/**
 * The pipeline benchmark's bare worker: one onnxruntime session in a worker thread with the
 * agent's session options, and the least protocol that can run it — `{id, data}` in,
 * `{id, data}` (the first output) out. What the agent's runtime adds on top of this is its own
 * cost; what this adds over `session.run` in the main thread is the worker hop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { SESSION_OPTIONS } from './session-options.js';

const port = parentPort!;
const session = await ort.InferenceSession.create((workerData as { modelPath: string }).modelPath, SESSION_OPTIONS);
const input = session.inputNames[0]!;
const output = session.outputNames[0]!;
port.on('message', (message: { id: number; data: Float32Array }) => {
  void session.run({ [input]: new ort.Tensor('float32', message.data, [1, message.data.length]) }).then((results) => {
    port.postMessage({ id: message.id, data: results[output]!.data as Float32Array });
  });
});
port.postMessage({ ready: true });
