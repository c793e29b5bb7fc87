/**
 * Writes a multi-layer perceptron as an ONNX model, and runs the same network in plain
 * TypeScript (`mlpForward`) so that the two can be checked against each other and the trainer
 * can evaluate without onnxruntime.
 *
 * Graph contract (what the int8 quantizer and the agent rely on):
 * - one float32 input `[batch, inputSize]` and one float32 output `[batch, outSize of the last
 *   layer]`; `batch` is a symbolic dimension;
 * - optional normalization inside the graph: `Sub(x, mean)` then `Div(·, std)`, mean and std are
 *   `[inputSize]` initializers, so a bundle carries its own feature scaling;
 * - each layer is `Gemm(h, W, B)` with W stored `[in, out]`, transA = transB = 0 and alpha = beta
 *   = 1 — the layout onnxruntime fuses into MatMulNBits once W is quantized (NOTES.md) — then
 *   `Relu` when the layer asks for it; every weight and bias is its own initializer;
 * - optional `Softmax(axis = -1)` at the end;
 * - ai.onnx opset 17 and IR version 8, so Debian's onnx checker (opsets ≤ 17) can check it.
 *
 * The bytes are a pure function of the spec: no timestamps, metadata sorted by key, floats
 * written little-endian whatever the host. Same spec → same digest → same bundle.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

export type Activation = 'relu' | 'none';

export interface MlpLayer {
  /** Row-major `[inSize, outSize]`: `weights[i * outSize + j]` connects input i to output j. */
  weights: Float32Array;
  bias: Float32Array;
  inSize: number;
  outSize: number;
  activation: Activation;
}

export interface MlpSpec {
  inputName: string;
  outputName: string;
  inputSize: number;
  /** Applied as `(x - mean) / std` inside the graph; every std must be finite and > 0. */
  normalization?: { mean: Float32Array; std: Float32Array };
  layers: MlpLayer[];
  softmax: boolean;
  /** Written as the model's metadata_props (sorted by key). */
  metadata?: Record<string, string>;
  producerVersion?: string;
}

export const MLP_OPSET = 17;
export const MLP_IR_VERSION = 8;
export const MLP_PRODUCER = 'cairn';
/** Name of the symbolic batch dimension of the input and output. */
export const BATCH_DIM = 'batch';

/** Prefix of every node and internal tensor name; the caller's input/output names cannot use it. */
const INTERNAL_PREFIX = 'cairn/';
const FLOAT = 1;
const ATTR_INT = 2;

/**
 * Checks that the spec describes a consistent network. Throws a RangeError naming the first
 * problem; both the writer and the forward pass call it, so they agree on what is valid.
 */
export function validateMlpSpec(spec: MlpSpec): void {
  const fail = (message: string): never => {
    throw new RangeError(`invalid MLP spec: ${message}`);
  };
  if (!spec.inputName) fail('inputName is empty');
  if (!spec.outputName) fail('outputName is empty');
  if (spec.inputName === spec.outputName) fail('inputName and outputName must differ');
  for (const name of [spec.inputName, spec.outputName]) {
    if (name.startsWith(INTERNAL_PREFIX)) fail(`${name}: names starting with ${INTERNAL_PREFIX} are reserved for the graph's own tensors`);
  }
  if (!isPositiveInt(spec.inputSize)) fail(`inputSize must be a positive integer, got ${spec.inputSize}`);
  if (spec.layers.length === 0) fail('at least one layer is required');
  if (spec.normalization) {
    const { mean, std } = spec.normalization;
    if (mean.length !== spec.inputSize) fail(`normalization.mean has ${mean.length} values, expected ${spec.inputSize}`);
    if (std.length !== spec.inputSize) fail(`normalization.std has ${std.length} values, expected ${spec.inputSize}`);
    if (!mean.every(Number.isFinite)) fail('normalization.mean has a non-finite value');
    if (!std.every((s) => Number.isFinite(s) && s > 0)) fail('normalization.std values must be finite and > 0');
  }
  let width = spec.inputSize;
  spec.layers.forEach((layer, i) => {
    if (!isPositiveInt(layer.inSize) || !isPositiveInt(layer.outSize)) fail(`layer ${i}: inSize and outSize must be positive integers`);
    if (layer.inSize !== width) fail(`layer ${i}: inSize is ${layer.inSize} but the previous width is ${width}`);
    if (layer.weights.length !== layer.inSize * layer.outSize) fail(`layer ${i}: weights has ${layer.weights.length} values, expected ${layer.inSize}×${layer.outSize}`);
    if (layer.bias.length !== layer.outSize) fail(`layer ${i}: bias has ${layer.bias.length} values, expected ${layer.outSize}`);
    if (!layer.weights.every(Number.isFinite) || !layer.bias.every(Number.isFinite)) fail(`layer ${i}: non-finite weight or bias`);
    if (layer.activation !== 'relu' && layer.activation !== 'none') fail(`layer ${i}: unknown activation ${String(layer.activation)}`);
    width = layer.outSize;
  });
}

/** Serializes the network as an ONNX ModelProto (see the header for the graph contract). */
export function writeMlpOnnx(spec: MlpSpec): Uint8Array {
  validateMlpSpec(spec);
  const nodes: OnnxTypes.INodeProto[] = [];
  const initializers: OnnxTypes.ITensorProto[] = [];
  const internal = (name: string): string => `${INTERNAL_PREFIX}${name}`;

  let current = spec.inputName;
  if (spec.normalization) {
    const mean = internal('normalize/mean');
    const std = internal('normalize/std');
    initializers.push(floatTensor(mean, [spec.inputSize], spec.normalization.mean));
    initializers.push(floatTensor(std, [spec.inputSize], spec.normalization.std));
    const centered = internal('normalize/centered');
    const scaled = internal('normalize/output');
    nodes.push({ name: internal('normalize/sub'), opType: 'Sub', input: [current, mean], output: [centered] });
    nodes.push({ name: internal('normalize/div'), opType: 'Div', input: [centered, std], output: [scaled] });
    current = scaled;
  }

  spec.layers.forEach((layer, i) => {
    const w = internal(`layer${i}/weight`);
    const b = internal(`layer${i}/bias`);
    initializers.push(floatTensor(w, [layer.inSize, layer.outSize], layer.weights));
    initializers.push(floatTensor(b, [layer.outSize], layer.bias));
    const gemmOut = internal(`layer${i}/gemm_output`);
    nodes.push({
      name: internal(`layer${i}/gemm`),
      opType: 'Gemm',
      input: [current, w, b],
      output: [gemmOut],
      attribute: [intAttribute('transA', 0), intAttribute('transB', 0)],
    });
    current = gemmOut;
    if (layer.activation === 'relu') {
      const reluOut = internal(`layer${i}/relu_output`);
      nodes.push({ name: internal(`layer${i}/relu`), opType: 'Relu', input: [current], output: [reluOut] });
      current = reluOut;
    }
  });

  if (spec.softmax) {
    const softmaxOut = internal('softmax_output');
    nodes.push({ name: internal('softmax'), opType: 'Softmax', input: [current], output: [softmaxOut], attribute: [intAttribute('axis', -1)] });
    current = softmaxOut;
  }
  // The last node writes the graph output directly, so the graph needs no Identity node.
  const last = nodes[nodes.length - 1];
  if (!last?.output) throw new Error('unreachable: an MLP has at least one node');
  last.output = [spec.outputName];

  const outSize = spec.layers[spec.layers.length - 1]!.outSize;
  const metadata = Object.entries(spec.metadata ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value }));

  const model = onnx.ModelProto.create({
    irVersion: MLP_IR_VERSION,
    opsetImport: [{ domain: '', version: MLP_OPSET }],
    producerName: MLP_PRODUCER,
    producerVersion: spec.producerVersion ?? '',
    graph: {
      name: 'mlp',
      node: nodes,
      initializer: initializers,
      input: [floatValueInfo(spec.inputName, spec.inputSize)],
      output: [floatValueInfo(spec.outputName, outSize)],
    },
    metadataProps: metadata,
  });
  return onnx.ModelProto.encode(model).finish();
}

/**
 * The same network in plain TypeScript. `x` is row-major `[batch, inputSize]`; the result is
 * `[batch, outSize]`. Products are accumulated in float64 and every layer's output rounded to
 * float32, which keeps it within about 1e-6 of onnxruntime's float32 kernels for small nets.
 */
export function mlpForward(spec: MlpSpec, x: Float32Array, batch: number): Float32Array {
  validateMlpSpec(spec);
  if (!Number.isInteger(batch) || batch < 0) throw new RangeError(`batch must be a non-negative integer, got ${batch}`);
  if (x.length !== batch * spec.inputSize) throw new RangeError(`input has ${x.length} values, expected ${batch}×${spec.inputSize}`);

  let h = x;
  if (spec.normalization) {
    const { mean, std } = spec.normalization;
    const n = spec.inputSize;
    const scaled = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) scaled[i] = Math.fround(h[i]! - mean[i % n]!) / std[i % n]!;
    h = scaled;
  }
  for (const layer of spec.layers) {
    const { inSize, outSize, weights, bias } = layer;
    const next = new Float32Array(batch * outSize);
    for (let r = 0; r < batch; r++) {
      for (let j = 0; j < outSize; j++) {
        let sum = 0;
        for (let i = 0; i < inSize; i++) sum += h[r * inSize + i]! * weights[i * outSize + j]!;
        sum += bias[j]!;
        next[r * outSize + j] = layer.activation === 'relu' && sum < 0 ? 0 : sum;
      }
    }
    h = next;
  }
  if (spec.softmax) {
    const width = spec.layers[spec.layers.length - 1]!.outSize;
    for (let r = 0; r < batch; r++) softmaxRow(h, r * width, width);
  }
  return h;
}

function softmaxRow(values: Float32Array, offset: number, width: number): void {
  let max = -Infinity;
  for (let j = 0; j < width; j++) max = Math.max(max, values[offset + j]!);
  let total = 0;
  const exps = new Float64Array(width);
  for (let j = 0; j < width; j++) {
    exps[j] = Math.exp(values[offset + j]! - max);
    total += exps[j]!;
  }
  for (let j = 0; j < width; j++) values[offset + j] = exps[j]! / total;
}

function isPositiveInt(n: number): boolean {
  return Number.isInteger(n) && n > 0;
}

function intAttribute(name: string, value: number): OnnxTypes.IAttributeProto {
  return { name, type: ATTR_INT, i: value };
}

function floatTensor(name: string, dims: number[], values: Float32Array): OnnxTypes.ITensorProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return { name, dataType: FLOAT, dims, rawData: raw };
}

function floatValueInfo(name: string, width: number): OnnxTypes.IValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: BATCH_DIM }, { dimValue: width }] } } },
  };
}
