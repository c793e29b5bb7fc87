/**
 * A reference process for the memory benchmark: bare Node plus one worker thread holding an
 * onnxruntime session of the model given as argv[2] (bare-worker.js), after one inference —
 * what a model worker costs without any of the agent around it. Prints `ready`.
 */
import { Worker } from 'node:worker_threads';

const modelPath = process.argv[2];
if (!modelPath) throw new Error('usage: ort-reference <model.onnx>');
const worker = new Worker(new URL('./bare-worker.js', import.meta.url), { workerData: { modelPath } });
worker.once('message', () => {
  worker.once('message', () => process.stdout.write('ready\n'));
  const data = new Float32Array(19);
  worker.postMessage({ id: 1, data }, [data.buffer]);
});
setInterval(() => undefined, 1000);
