/**
 * Faulty variants of a trained model, for rollback drills: each is a valid, signed ONNX model
 * that loads and runs, and misbehaves in exactly one way an agent's health checks must catch.
 *
 *  - `nan`: the last layer's weights are scaled by 1e38, so logits overflow to ±Infinity and
 *    softmax returns NaN.
 *  - `collapsed`: the last layer ignores its input and always favours the first class (a
 *    "constant prediction" failure, like a model trained on a broken label column).
 *  - `slow`: the same function as the original, computed through a chain of wide identity
 *    layers (the ReLU activations they see are non-negative, so identity layers change
 *    nothing) that costs thousands of times the original's multiply-adds. The chain's layers
 *    share one weight initializer, so the file stays about 1 MiB.
 */
import onnxProto from 'onnx-proto';
import { writeMlpOnnx, type MlpLayer, type MlpSpec } from '../onnx-writer.js';

const { onnx } = onnxProto;

export type FaultyVariant = 'nan' | 'collapsed' | 'slow';

export const SLOW_WIDTH = 512;
export const SLOW_DEPTH = 256;

export function faultyModel(spec: MlpSpec, variant: FaultyVariant): Uint8Array {
  switch (variant) {
    case 'nan':
      return writeMlpOnnx(withLastLayer(spec, (last) => ({ ...last, weights: last.weights.map((w) => w * 1e38) })));
    case 'collapsed':
      return writeMlpOnnx(
        withLastLayer(spec, (last) => ({ ...last, weights: new Float32Array(last.weights.length), bias: Float32Array.from({ length: last.outSize }, (_, i) => (i === 0 ? 20 : 0)) })),
      );
    case 'slow':
      return shareIdenticalInitializers(writeMlpOnnx(slowSpec(spec)));
  }
}

function withLastLayer(spec: MlpSpec, change: (layer: MlpLayer) => MlpLayer): MlpSpec {
  const layers = [...spec.layers];
  layers[layers.length - 1] = change(layers[layers.length - 1]!);
  return { ...spec, layers };
}

/** Inserts the identity chain after the first hidden layer (whose ReLU output is ≥ 0). */
function slowSpec(spec: MlpSpec): MlpSpec {
  const [first, ...rest] = spec.layers;
  if (!first || first.activation !== 'relu' || rest.length === 0) throw new RangeError('the slow variant needs a first hidden layer with ReLU');
  const hidden = first.outSize;
  const identity = (inSize: number, outSize: number): MlpLayer => {
    const weights = new Float32Array(inSize * outSize);
    for (let i = 0; i < Math.min(inSize, outSize); i++) weights[i * outSize + i] = 1;
    return { inSize, outSize, weights, bias: new Float32Array(outSize), activation: 'relu' };
  };
  const chain = [identity(hidden, SLOW_WIDTH), ...Array.from({ length: SLOW_DEPTH }, () => identity(SLOW_WIDTH, SLOW_WIDTH)), identity(SLOW_WIDTH, hidden)];
  return { ...spec, layers: [first, ...chain, ...rest] };
}

/**
 * Points every node input that names an initializer identical in type, shape and bytes to an
 * earlier one at that earlier initializer, and drops the duplicates.
 */
export function shareIdenticalInitializers(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph!;
  const firstByKey = new Map<string, string>();
  const renamed = new Map<string, string>();
  const kept = [];
  for (const init of graph.initializer ?? []) {
    const key = `${init.dataType}|${(init.dims ?? []).join('x')}|${Buffer.from(init.rawData ?? new Uint8Array()).toString('base64')}`;
    const first = firstByKey.get(key);
    if (first === undefined) {
      firstByKey.set(key, init.name!);
      kept.push(init);
    } else {
      renamed.set(init.name!, first);
    }
  }
  graph.initializer = kept;
  for (const node of graph.node ?? []) node.input = (node.input ?? []).map((name) => renamed.get(name) ?? name);
  return onnx.ModelProto.encode(model).finish();
}
