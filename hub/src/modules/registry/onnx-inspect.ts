/**
 * Validates an uploaded ONNX file the way a device will see it: by loading it with the agent's
 * own runtime (same onnxruntime, same worker isolation, so a model that crashes or blocks
 * onnxruntime cannot take the hub's event loop with it), and reads its input/output signatures
 * for the bundle manifest. No inference runs.
 *
 * Rejects, with an `OnnxLoadError` (`CAIRN_ONNX_INVALID`):
 * - a file onnxruntime cannot load — the message is onnxruntime's own;
 * - a model without inputs or outputs, or with a non-float32 (or non-tensor) input or output,
 *   because the agent feeds and reads float32 tensors only for now.
 * Errors reading the file itself (e.g. ENOENT) are not model problems and propagate unchanged.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { TensorSpecT } from '@cairn/shared';
import { createWorkerRuntime, ModelRuntimeError } from '@cairn/agent/components/runtime/worker-runtime.js';

export class OnnxLoadError extends Error {
  readonly code = 'CAIRN_ONNX_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'OnnxLoadError';
  }
}

export interface OnnxSignature {
  inputs: TensorSpecT[];
  outputs: TensorSpecT[];
}

/** The only element type the agent's pipeline produces and consumes. */
const SUPPORTED_TYPE = 'float32';

export async function inspectOnnx(modelPath: string): Promise<OnnxSignature> {
  const digest = await fileSha256(modelPath);
  const runtime = createWorkerRuntime();
  let signature: OnnxSignature;
  try {
    const session = await runtime.load(digest, modelPath);
    signature = { inputs: session.inputs, outputs: session.outputs };
  } catch (error) {
    if (error instanceof ModelRuntimeError && error.code !== 'CAIRN_RUNTIME_CLOSED') throw new OnnxLoadError(error.message);
    throw error;
  } finally {
    await runtime.close();
  }
  checkSupported(signature);
  return signature;
}

function checkSupported({ inputs, outputs }: OnnxSignature): void {
  if (inputs.length === 0) throw new OnnxLoadError('the model has no inputs');
  if (outputs.length === 0) throw new OnnxLoadError('the model has no outputs');
  const unsupported = [
    ...inputs.filter((t) => t.type !== SUPPORTED_TYPE).map((t) => `input '${t.name}' is ${t.type}`),
    ...outputs.filter((t) => t.type !== SUPPORTED_TYPE).map((t) => `output '${t.name}' is ${t.type}`),
  ];
  if (unsupported.length > 0) {
    throw new OnnxLoadError(`unsupported tensor types: ${unsupported.join(', ')}; Cairn agents feed and read ${SUPPORTED_TYPE} tensors only`);
  }
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
