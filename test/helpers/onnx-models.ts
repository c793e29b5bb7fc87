/**
 * Hand-built ONNX models for the quantizer's tests: the shapes other exporters produce (PyTorch's
 * Gemm transB = 1), and the cases the quantizer must leave in float (tied weights, subgraphs,
 * weights that are not constant, odd Gemm attributes, old opsets). Built with onnx-proto like
 * hub/src/training/onnx-writer.ts, deterministic for a seed. Every model has float32 inputs with
 * a symbolic batch dimension, except where a test needs otherwise, and loads in onnxruntime.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import { gaussianArray, mulberry32, type Rng } from '@cairn/shared';

const { onnx } = onnxProto;

const FLOAT = 1;
const FLOAT16 = 10;
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_GRAPH = 5;
const ATTR_INTS = 7;

export interface HandModel {
  bytes: Uint8Array;
  /** Float32 inputs and their widths (all `[batch, width]`). */
  inputs: Record<string, number>;
  outputs: string[];
}

export function floatInit(name: string, dims: number[], values: Float32Array): OnnxTypes.ITensorProto {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return { name, dataType: FLOAT, dims, rawData: raw };
}

function randomInit(rng: Rng, name: string, dims: number[], std = 0.5): OnnxTypes.ITensorProto {
  return floatInit(name, dims, gaussianArray(rng, dims.reduce((a, b) => a * b, 1), std));
}

/** A float32 `[batch, width]` value info (width undefined: rank-2 with both dims symbolic). */
export function valueInfo(name: string, width?: number, elemType = FLOAT): OnnxTypes.IValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'batch' }, width === undefined ? { dimParam: `${name}_width` } : { dimValue: width }] } } } };
}

function intAttr(name: string, i: number): OnnxTypes.IAttributeProto {
  return { name, type: ATTR_INT, i };
}

function encode(graph: OnnxTypes.IGraphProto, opts: { opset?: number; irVersion?: number; metadata?: Record<string, string> } = {}): Uint8Array {
  return onnx.ModelProto.encode(
    onnx.ModelProto.create({
      irVersion: opts.irVersion ?? 8,
      opsetImport: [{ domain: '', version: opts.opset ?? 17 }],
      producerName: 'cairn-test',
      graph,
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    }),
  ).finish();
}

/**
 * How PyTorch exports `nn.Sequential(Linear, ReLU, Linear)`: Gemm with transB = 1 and the weight
 * stored `[out, in]`, names like `/fc1/Gemm` and `fc1.weight`.
 */
export function pytorchStyleMlp(seed = 1, sizes: [number, number, number] = [12, 24, 5]): HandModel {
  const rng = mulberry32(seed);
  const [inSize, hidden, outSize] = sizes;
  const graph: OnnxTypes.IGraphProto = {
    name: 'main_graph',
    node: [
      { name: '/fc1/Gemm', opType: 'Gemm', input: ['input', 'fc1.weight', 'fc1.bias'], output: ['/fc1/Gemm_output_0'], attribute: [{ name: 'alpha', type: ATTR_FLOAT, f: 1 }, { name: 'beta', type: ATTR_FLOAT, f: 1 }, intAttr('transB', 1)] },
      { name: '/act/Relu', opType: 'Relu', input: ['/fc1/Gemm_output_0'], output: ['/act/Relu_output_0'] },
      { name: '/fc2/Gemm', opType: 'Gemm', input: ['/act/Relu_output_0', 'fc2.weight', 'fc2.bias'], output: ['output'], attribute: [{ name: 'alpha', type: ATTR_FLOAT, f: 1 }, { name: 'beta', type: ATTR_FLOAT, f: 1 }, intAttr('transB', 1)] },
    ],
    initializer: [randomInit(rng, 'fc1.weight', [hidden, inSize]), randomInit(rng, 'fc1.bias', [hidden], 0.1), randomInit(rng, 'fc2.weight', [outSize, hidden]), randomInit(rng, 'fc2.bias', [outSize], 0.1)],
    input: [valueInfo('input', inSize)],
    output: [valueInfo('output', outSize)],
  };
  return { bytes: encode(graph, { metadata: { producer_note: 'pytorch-like' } }), inputs: { input: inSize }, outputs: ['output'] };
}

/** `tied.weight` feeds two MatMuls (weight tying); `head.weight` is used once. */
export function tiedWeightModel(seed = 2): HandModel {
  const rng = mulberry32(seed);
  const graph: OnnxTypes.IGraphProto = {
    name: 'tied',
    node: [
      { name: 'first', opType: 'MatMul', input: ['x', 'tied.weight'], output: ['h1'] },
      { name: 'relu', opType: 'Relu', input: ['h1'], output: ['h2'] },
      { name: 'second', opType: 'MatMul', input: ['h2', 'tied.weight'], output: ['h3'] },
      { name: 'head', opType: 'MatMul', input: ['h3', 'head.weight'], output: ['y'] },
    ],
    initializer: [randomInit(rng, 'tied.weight', [8, 8]), randomInit(rng, 'head.weight', [8, 4])],
    input: [valueInfo('x', 8)],
    output: [valueInfo('y', 4)],
  };
  return { bytes: encode(graph), inputs: { x: 8 }, outputs: ['y'] };
}

/**
 * `encoder` (MatMul, main graph) feeds an If whose branches each hold a MatMul: the then-branch
 * with its own initializer, the else-branch reading the outer initializer `else.weight`. The
 * condition is sum(x) > 0, so both branches are reachable from float inputs.
 */
export function ifSubgraphModel(seed = 3): HandModel {
  const rng = mulberry32(seed);
  const branch = (name: string, weight: string, initializer: OnnxTypes.ITensorProto[]): OnnxTypes.IGraphProto => ({
    name,
    node: [{ name: `${name}/MatMul`, opType: 'MatMul', input: ['h', weight], output: [`${name}_y`] }],
    initializer,
    output: [valueInfo(`${name}_y`, 4)],
  });
  const graph: OnnxTypes.IGraphProto = {
    name: 'with_if',
    node: [
      { name: 'encoder', opType: 'MatMul', input: ['x', 'encoder.weight'], output: ['h'] },
      { name: 'sum', opType: 'ReduceSum', input: ['x'], output: ['total'], attribute: [intAttr('keepdims', 0)] },
      { name: 'positive', opType: 'Greater', input: ['total', 'zero'], output: ['cond'] },
      {
        name: 'branch',
        opType: 'If',
        input: ['cond'],
        output: ['y'],
        attribute: [
          { name: 'then_branch', type: ATTR_GRAPH, g: branch('then', 'then.weight', [randomInit(rng, 'then.weight', [8, 4])]) },
          { name: 'else_branch', type: ATTR_GRAPH, g: branch('else', 'else.weight', []) },
        ],
      },
    ],
    initializer: [randomInit(rng, 'encoder.weight', [8, 8]), floatInit('zero', [], new Float32Array([0])), randomInit(rng, 'else.weight', [8, 4])],
    input: [valueInfo('x', 8)],
    output: [valueInfo('y', 4)],
  };
  return { bytes: encode(graph), inputs: { x: 8 }, outputs: ['y'] };
}

/** One MatMul whose B is the graph input `w`, one whose B is computed by a Transpose: both not constant. */
export function nonConstantWeightModel(seed = 4): HandModel {
  const rng = mulberry32(seed);
  const graph: OnnxTypes.IGraphProto = {
    name: 'non_constant',
    node: [
      { name: 'by_input', opType: 'MatMul', input: ['x', 'w'], output: ['y1'] },
      { name: 'transpose', opType: 'Transpose', input: ['stored.weight'], output: ['computed.weight'], attribute: [{ name: 'perm', type: ATTR_INTS, ints: [1, 0] }] },
      { name: 'by_node', opType: 'MatMul', input: ['x', 'computed.weight'], output: ['y2'] },
    ],
    initializer: [randomInit(rng, 'stored.weight', [4, 8])],
    input: [valueInfo('x', 8), { name: 'w', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 8 }, { dimValue: 4 }] } } } }],
    output: [valueInfo('y1', 4), valueInfo('y2', 4)],
  };
  return { bytes: encode(graph), inputs: { x: 8 }, outputs: ['y1', 'y2'] };
}

/** Relu and an elementwise Mul by a constant: nothing a weight-only quantizer can touch. */
export function noWeightModel(): HandModel {
  const graph: OnnxTypes.IGraphProto = {
    name: 'no_weights',
    node: [
      { name: 'relu', opType: 'Relu', input: ['x'], output: ['r'] },
      { name: 'scale', opType: 'Mul', input: ['r', 'two'], output: ['y'] },
    ],
    initializer: [floatInit('two', [6], new Float32Array(6).fill(2))],
    input: [valueInfo('x', 6)],
    output: [valueInfo('y', 6)],
  };
  return { bytes: encode(graph), inputs: { x: 6 }, outputs: ['y'] };
}

/**
 * Five branches from `x [batch, 8]` to five outputs: one plain MatMul (quantized) and one of each
 * case the quantizer leaves alone: Gemm alpha ≠ 1, Gemm transA = 1, a FLOAT16 weight, a 3-D weight.
 */
export function oddCasesModel(seed = 5): HandModel {
  const rng = mulberry32(seed);
  const f16 = (values: Float32Array): OnnxTypes.ITensorProto => {
    const raw = new Uint8Array(values.length * 2);
    const view = new DataView(raw.buffer);
    values.forEach((v, i) => view.setUint16(i * 2, toHalf(v), true));
    return { name: 'half.weight', dataType: FLOAT16, dims: [8, 4], rawData: raw };
  };
  const graph: OnnxTypes.IGraphProto = {
    name: 'odd_cases',
    node: [
      { name: 'plain', opType: 'MatMul', input: ['x', 'plain.weight'], output: ['y_plain'] },
      { name: 'scaled', opType: 'Gemm', input: ['x', 'scaled.weight'], output: ['y_scaled'], attribute: [{ name: 'alpha', type: ATTR_FLOAT, f: 0.5 }] },
      { name: 'xt', opType: 'Transpose', input: ['x'], output: ['x_t'], attribute: [{ name: 'perm', type: ATTR_INTS, ints: [1, 0] }] },
      { name: 'transposed_a', opType: 'Gemm', input: ['x_t', 'ta.weight'], output: ['y_ta'], attribute: [intAttr('transA', 1)] },
      { name: 'to_half', opType: 'Cast', input: ['x'], output: ['x_half'], attribute: [intAttr('to', FLOAT16)] },
      { name: 'half', opType: 'MatMul', input: ['x_half', 'half.weight'], output: ['y_half16'] },
      { name: 'from_half', opType: 'Cast', input: ['y_half16'], output: ['y_half'], attribute: [intAttr('to', FLOAT)] },
      { name: 'batched', opType: 'MatMul', input: ['x', 'batched.weight'], output: ['y_batched'] },
    ],
    initializer: [
      randomInit(rng, 'plain.weight', [8, 4]),
      randomInit(rng, 'scaled.weight', [8, 4]),
      randomInit(rng, 'ta.weight', [8, 4]),
      f16(gaussianArray(rng, 32, 0.5)),
      randomInit(rng, 'batched.weight', [2, 8, 4]),
    ],
    input: [valueInfo('x', 8)],
    output: [
      valueInfo('y_plain', 4),
      valueInfo('y_scaled', 4),
      valueInfo('y_ta', 4),
      valueInfo('y_half', 4),
      { name: 'y_batched', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 2 }, { dimParam: 'batch' }, { dimValue: 4 }] } } } },
    ],
  };
  return { bytes: encode(graph), inputs: { x: 8 }, outputs: ['y_plain', 'y_scaled', 'y_ta', 'y_half', 'y_batched'] };
}

/**
 * A two-MatMul model at an old opset (IR 6). With `squeeze`, it also holds Unsqueeze/Squeeze
 * with their axes as attributes, which opset 13 moved to inputs: raising the opset would break it.
 */
export function oldOpsetModel(opset: number, opts: { squeeze?: boolean; seed?: number; irVersion?: number } = {}): HandModel {
  const rng = mulberry32(opts.seed ?? 6);
  const node: OnnxTypes.INodeProto[] = [
    { name: 'mm1', opType: 'MatMul', input: ['x', 'w1'], output: ['h'] },
    { name: 'relu', opType: 'Relu', input: ['h'], output: ['r'] },
    { name: 'mm2', opType: 'MatMul', input: ['r', 'w2'], output: [opts.squeeze ? 'pre' : 'y'] },
  ];
  if (opts.squeeze) {
    node.push({ name: 'unsqueeze', opType: 'Unsqueeze', input: ['pre'], output: ['pre3'], attribute: [{ name: 'axes', type: ATTR_INTS, ints: [0] }] });
    node.push({ name: 'squeeze', opType: 'Squeeze', input: ['pre3'], output: ['y'], attribute: [{ name: 'axes', type: ATTR_INTS, ints: [0] }] });
  }
  const irVersion = opts.irVersion ?? 6;
  const fixed = (name: string, dims: number[]): OnnxTypes.IValueInfoProto => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  const graph: OnnxTypes.IGraphProto = {
    name: 'old_opset',
    node,
    initializer: [randomInit(rng, 'w1', [10, 16]), randomInit(rng, 'w2', [16, 3])],
    // Before IR 4, every initializer had to be declared as a graph input as well.
    input: [valueInfo('x', 10), ...(irVersion < 4 ? [fixed('w1', [10, 16]), fixed('w2', [16, 3])] : [])],
    output: [valueInfo('y', 3)],
  };
  return { bytes: encode(graph, { opset, irVersion }), inputs: { x: 10 }, outputs: ['y'] };
}

/**
 * `MatMul → Clip(min, max) → MatMul`, and a second branch `MatMul → Clip(min only) → MatMul`:
 * the shapes (ReLU6-like, Hardtanh) whose Clip blocks onnxruntime's fusion of the first MatMul.
 */
export function clipModel(seed = 7): HandModel {
  const rng = mulberry32(seed);
  const graph: OnnxTypes.IGraphProto = {
    name: 'clip',
    node: [
      { name: 'a1', opType: 'MatMul', input: ['x', 'a1.weight'], output: ['a1_out'] },
      { name: 'relu6', opType: 'Clip', input: ['a1_out', 'zero', 'six'], output: ['a_clipped'] },
      { name: 'a2', opType: 'MatMul', input: ['a_clipped', 'a2.weight'], output: ['ya'] },
      { name: 'b1', opType: 'MatMul', input: ['x', 'b1.weight'], output: ['b1_out'] },
      { name: 'floor_only', opType: 'Clip', input: ['b1_out', 'minus_one'], output: ['b_clipped'] },
      { name: 'b2', opType: 'MatMul', input: ['b_clipped', 'b2.weight'], output: ['yb'] },
    ],
    initializer: [
      randomInit(rng, 'a1.weight', [8, 16], 1),
      randomInit(rng, 'a2.weight', [16, 4]),
      randomInit(rng, 'b1.weight', [8, 16], 1),
      randomInit(rng, 'b2.weight', [16, 4]),
      floatInit('zero', [], new Float32Array([0])),
      floatInit('six', [], new Float32Array([6])),
      floatInit('minus_one', [], new Float32Array([-1])),
    ],
    input: [valueInfo('x', 8)],
    output: [valueInfo('ya', 4), valueInfo('yb', 4)],
  };
  return { bytes: encode(graph), inputs: { x: 8 }, outputs: ['ya', 'yb'] };
}

/**
 * Encodings other writers use: unnamed nodes, a weight in `float_data` instead of `raw_data`,
 * and a `value_info` entry declaring the weight. `MatMul → Relu → MatMul`.
 */
export function legacyEncodingModel(seed = 8): HandModel {
  const rng = mulberry32(seed);
  const w1 = gaussianArray(rng, 6 * 12, 0.5);
  const graph: OnnxTypes.IGraphProto = {
    name: 'legacy',
    node: [
      { opType: 'MatMul', input: ['x', 'W1'], output: ['h'] },
      { opType: 'Relu', input: ['h'], output: ['r'] },
      { opType: 'MatMul', input: ['r', 'W2'], output: ['y'] },
    ],
    initializer: [{ name: 'W1', dataType: FLOAT, dims: [6, 12], floatData: Array.from(w1) }, randomInit(rng, 'W2', [12, 3])],
    input: [valueInfo('x', 6)],
    output: [valueInfo('y', 3)],
    valueInfo: [{ name: 'W1', type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimValue: 6 }, { dimValue: 12 }] } } } }, valueInfo('h', 12)],
  };
  return { bytes: encode(graph), inputs: { x: 6 }, outputs: ['y'] };
}

/** `[batch, inputSize] → [batch, outputSize]` of NaN: a broken child for the gate. */
export function nanOutputModel(inputName: string, inputSize: number, outputName: string, outputSize: number): HandModel {
  const graph: OnnxTypes.IGraphProto = {
    name: 'nan',
    node: [
      { name: 'project', opType: 'MatMul', input: [inputName, 'w'], output: ['projected'] },
      { name: 'poison', opType: 'Mul', input: ['projected', 'nan'], output: [outputName] },
    ],
    initializer: [floatInit('w', [inputSize, outputSize], new Float32Array(inputSize * outputSize).fill(0.1)), floatInit('nan', [], new Float32Array([NaN]))],
    input: [valueInfo(inputName, inputSize)],
    output: [valueInfo(outputName, outputSize)],
  };
  return { bytes: encode(graph), inputs: { [inputName]: inputSize }, outputs: [outputName] };
}

/** IEEE 754 half precision, round to nearest even (enough for test weights of moderate size). */
function toHalf(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = ((bits >>> 23) & 0xff) - 127 + 15;
  const mantissa = bits & 0x7fffff;
  if (exp <= 0) return sign; // flush tiny values to zero
  if (exp >= 31) return sign | 0x7c00;
  let half = sign | (exp << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return half;
}
