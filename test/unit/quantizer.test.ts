/**
 * The int8 quantizer against the real onnxruntime and Debian's official ONNX checker: every
 * quantized model loads, computes close to its fp32 parent, and — the point of the layout — is
 * FUSED by onnxruntime into com.microsoft:MatMulNBits (read back from the optimized model it
 * saves). Weights the quantizer must not touch are left in float and reported with a reason.
 *
 * Tolerances are measured, not assumed: the fused kernel quantizes activations as well as
 * weights (accuracy level 4), so a 16→32→4 softmax model moves by up to ~0.025 in probability
 * on standard-normal inputs; raw outputs move by about 1–2 % of their range.
 */
import { assertOnnxCheckerInstalled, assertOnnxConforms } from '../helpers/onnx-checker.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { writeMlpOnnx, type MlpLayer, type MlpSpec } from '@cairn/hub/training/onnx-writer.js';
import { concatBytes, fieldBytes, lengthDelimitedField, payloadBytes, readWireFields, stringField } from '@cairn/hub/training/onnx-graph.js';
import { QUANTIZATION_METADATA_KEY, QUANTIZATION_SCHEME, QuantizationError, quantizeInt8, type QuantizationResult } from '@cairn/hub/training/quantizer.js';
import { gaussianArray, mulberry32, type Rng } from '@cairn/shared';
import { clipModel, ifSubgraphModel, legacyEncodingModel, noWeightModel, nonConstantWeightModel, oddCasesModel, oldOpsetModel, pytorchStyleMlp, tiedWeightModel, type HandModel } from '../helpers/onnx-models.js';

const { onnx } = onnxProto;
const FUSED = 'com.microsoft:MatMulNBits';

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-quantizer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Loaded {
  session: ort.InferenceSession;
  /** Op types of the model onnxruntime optimized (`domain:` prefix outside the default domain). */
  optimizedOps: string[];
}

/** Loads like the agent does (optimization level `all`) and reads back the optimized graph. */
async function load(t: TestContext, bytes: Uint8Array): Promise<Loaded> {
  const dir = await tempDir(t);
  const path = join(dir, 'model.onnx');
  const optimized = join(dir, 'optimized.onnx');
  await writeFile(path, bytes);
  // logSeverityLevel 3: level `all` warns that a saved model may hold hardware-specific kernels.
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', optimizedModelFilePath: optimized, logSeverityLevel: 3 });
  t.after(() => session.release());
  const graph = onnx.ModelProto.decode(await readFile(optimized)).graph!;
  return { session, optimizedOps: (graph.node ?? []).map((n) => (n.domain ? `${n.domain}:${n.opType}` : n.opType!)) };
}

async function run(session: ort.InferenceSession, feeds: Record<string, Float32Array>, widths: Record<string, number>): Promise<Record<string, Float32Array>> {
  const tensors: Record<string, ort.Tensor> = {};
  for (const [name, data] of Object.entries(feeds)) tensors[name] = new ort.Tensor('float32', data, [data.length / widths[name]!, widths[name]!]);
  const results = await session.run(tensors);
  return Object.fromEntries(Object.entries(results).map(([name, tensor]) => [name, tensor.data as Float32Array]));
}

function randomFeeds(model: HandModel, rows: number, seed: number, std = 1): Record<string, Float32Array> {
  const rng = mulberry32(seed);
  return Object.fromEntries(Object.entries(model.inputs).map(([name, width]) => [name, gaussianArray(rng, rows * width, std)]));
}

/** Max |a − b| and max |a| over all values. */
function difference(a: Float32Array, b: Float32Array): { maxAbs: number; scale: number } {
  assert.equal(a.length, b.length);
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(a[i]!));
  }
  return { maxAbs, scale };
}

/** Runs parent and child on the same feeds and checks each output within `relative` of the parent's range. */
async function assertCloseToParent(t: TestContext, parent: HandModel, child: Uint8Array, relative: number, feeds = randomFeeds(parent, 64, 11)): Promise<number> {
  const [p, c] = [await load(t, parent.bytes), await load(t, child)];
  const [po, co] = [await run(p.session, feeds, parent.inputs), await run(c.session, feeds, parent.inputs)];
  let worst = 0;
  for (const name of parent.outputs) {
    const { maxAbs, scale } = difference(po[name]!, co[name]!);
    assert.ok(maxAbs <= relative * Math.max(scale, 1e-6), `output ${name}: max |error| ${maxAbs} exceeds ${relative} × ${scale}`);
    worst = Math.max(worst, maxAbs / Math.max(scale, 1e-6));
  }
  return worst;
}

interface Attribute { name: string; i: number; f: number }
interface Node { name: string; opType: string; domain: string; input: string[]; output: string[]; attribute: Attribute[] }
interface Tensor { name: string; dataType: number; dims: number[]; rawData: Uint8Array }
interface Model {
  irVersion: number;
  producerName: string;
  opsetImport: { domain: string; version: number }[];
  metadataProps: { key: string; value: string }[];
  graph: { node: Node[]; initializer: Tensor[]; input: { name: string }[]; output: { name: string }[]; valueInfo: { name: string }[] };
}

/** Plain objects with every field present and int64 as numbers. */
function decode(bytes: Uint8Array): Model {
  return onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: Number, defaults: true }) as Model;
}

function randomLayer(rng: Rng, inSize: number, outSize: number, activation: MlpLayer['activation']): MlpLayer {
  return { weights: gaussianArray(rng, inSize * outSize, Math.sqrt(2 / inSize)), bias: gaussianArray(rng, outSize, 0.05), inSize, outSize, activation };
}

/** 64 → 256 → 256 → 8 with in-graph normalization: weights are ~99 % of the file. */
function biggerMlp(): { spec: MlpSpec; model: HandModel } {
  const rng = mulberry32(2024);
  const spec: MlpSpec = {
    inputName: 'x',
    outputName: 'y',
    inputSize: 64,
    normalization: { mean: gaussianArray(rng, 64, 0.5), std: Float32Array.from({ length: 64 }, () => 0.5 + rng()) },
    layers: [randomLayer(rng, 64, 256, 'relu'), randomLayer(rng, 256, 256, 'relu'), randomLayer(rng, 256, 8, 'none')],
    softmax: false,
    metadata: { 'cairn.model': 'bigger-test-mlp' },
  };
  return { spec, model: { bytes: writeMlpOnnx(spec), inputs: { x: 64 }, outputs: ['y'] } };
}

function demoHandModel(): HandModel {
  return { bytes: buildDemoModel().bytes, inputs: { features: 16 }, outputs: ['probabilities'] };
}

function count(items: string[], value: string): number {
  return items.filter((i) => i === value).length;
}

test('the demo model: both Gemm weights become per-channel int8, onnxruntime fuses both into MatMulNBits, outputs stay within 0.05', async (t) => {
  const demo = demoHandModel();
  const { model, report } = quantizeInt8(demo.bytes);
  assert.equal(report.scheme, QUANTIZATION_SCHEME);
  assert.deepEqual(
    report.quantized.map((q) => [q.node, q.weight, q.shape, q.transposed]),
    [
      ['cairn/layer0/gemm', 'cairn/layer0/weight', [16, 32], false],
      ['cairn/layer1/gemm', 'cairn/layer1/weight', [32, 4], false],
    ],
  );
  assert.deepEqual(report.skipped, []);
  // The hidden layer's Relu would keep onnxruntime from fusing layer 0 (see quantizer.ts).
  assert.deepEqual(report.rewritten, [{ node: 'cairn/layer0/relu', from: 'Relu', to: 'Max', after: 'cairn/layer0/gemm' }]);
  assert.deepEqual(report.opset, { before: 17, after: 17 });
  assert.equal(report.sizeBefore, demo.bytes.length);
  assert.equal(report.sizeAfter, model.length);
  assert.ok(model.length < demo.bytes.length);

  const { optimizedOps } = await load(t, model);
  assert.deepEqual(optimizedOps, [FUSED, 'Max', FUSED, 'Softmax']);
  const worst = await assertCloseToParent(t, demo, model, 0.05, randomFeeds(demo, 256, 5));
  t.diagnostic(`demo: size ratio ${(model.length / demo.bytes.length).toFixed(3)}, max |Δprobability| ${worst.toExponential(2)}`);
});

test('a bigger MLP (64→256→256→8): the int8 file is ≤ 30 % of the fp32 file, all three layers fused, outputs within 3 % of their range', async (t) => {
  const { model: parent } = biggerMlp();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.equal(report.quantized.length, 3);
  assert.equal(report.rewritten.length, 2);
  const ratio = model.length / parent.bytes.length;
  assert.ok(ratio <= 0.3, `size ratio ${ratio}`);
  const { optimizedOps } = await load(t, model);
  assert.equal(count(optimizedOps, FUSED), 3);
  assert.equal(count(optimizedOps, 'DequantizeLinear'), 0);
  assert.equal(count(optimizedOps, 'Gemm') + count(optimizedOps, 'com.microsoft:FusedGemm') + count(optimizedOps, 'MatMul'), 0);
  const worst = await assertCloseToParent(t, parent, model, 0.03);
  t.diagnostic(`bigger MLP: ${parent.bytes.length} → ${model.length} bytes (ratio ${ratio.toFixed(3)}), max |error| ${(100 * worst).toFixed(2)} % of the output range`);
});

test('everything but the quantized weights keeps its bytes: names, order, metadata, inputs, outputs, biases; deterministic', () => {
  const { model: parent } = biggerMlp();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(quantizeInt8(parent.bytes).model, model, 'same input → same bytes');
  const before = decode(parent.bytes);
  const after = decode(model);
  assert.equal(after.producerName, before.producerName);
  assert.equal(after.irVersion, before.irVersion);
  assert.deepEqual(after.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 17]]);
  assert.deepEqual(onnx.ValueInfoProto.encode(after.graph.input[0]!).finish(), onnx.ValueInfoProto.encode(before.graph.input[0]!).finish());
  assert.deepEqual(onnx.ValueInfoProto.encode(after.graph.output[0]!).finish(), onnx.ValueInfoProto.encode(before.graph.output[0]!).finish());

  // Initializers: each quantized weight replaced in place by its int8 values and scales; the
  // scalar 0 of the rewritten Relus (now Max) last.
  const quantizedNames = new Map(report.quantized.map((q) => [q.weight, [q.quantized, q.scale]]));
  assert.deepEqual(
    after.graph.initializer.map((i) => i.name),
    [...before.graph.initializer.flatMap((i) => quantizedNames.get(i.name) ?? [i.name]), 'cairn/quantization/zero'],
  );
  assert.deepEqual(
    after.graph.node.filter((n) => n.opType === 'Max').map((n) => [n.name, n.input[1]]),
    [
      ['cairn/layer0/relu', 'cairn/quantization/zero'],
      ['cairn/layer1/relu', 'cairn/quantization/zero'],
    ],
  );
  for (const init of before.graph.initializer.filter((i) => !quantizedNames.has(i.name))) {
    const same = after.graph.initializer.find((i) => i.name === init.name)!;
    assert.deepEqual(onnx.TensorProto.encode(same).finish(), onnx.TensorProto.encode(init).finish(), `${init.name} keeps its bytes`);
  }
  for (const q of report.quantized) {
    const values = after.graph.initializer.find((i) => i.name === q.quantized)!;
    const scales = after.graph.initializer.find((i) => i.name === q.scale)!;
    assert.equal(values.dataType, 3);
    assert.deepEqual(values.dims.map(Number), q.shape);
    assert.equal(values.rawData.length, q.shape[0] * q.shape[1]);
    assert.equal(scales.dataType, 1);
    assert.deepEqual(scales.dims.map(Number), [q.shape[1]]);
  }
  // One DequantizeLinear per weight, right before its consumer, never shared.
  const nodes = after.graph.node;
  for (const q of report.quantized) {
    const dq = nodes.findIndex((n) => n.opType === 'DequantizeLinear' && n.output[0] === q.dequantized);
    assert.ok(dq >= 0);
    assert.deepEqual(nodes[dq]!.input, [q.quantized, q.scale]);
    assert.equal(Number(nodes[dq]!.attribute.find((a) => a.name === 'axis')?.i), 1);
    assert.equal(nodes[dq + 1]!.name, q.node);
    assert.equal(nodes[dq + 1]!.input[1], q.dequantized);
    assert.equal(nodes.filter((n) => n.input.includes(q.dequantized)).length, 1);
  }
  // Metadata: the original entries, then the scheme.
  assert.deepEqual(after.metadataProps.slice(0, -1), before.metadataProps);
  const entry = after.metadataProps.at(-1)!;
  assert.equal(entry.key, QUANTIZATION_METADATA_KEY);
  assert.equal(JSON.parse(entry.value).scheme, QUANTIZATION_SCHEME);
  assert.equal(JSON.parse(entry.value).quantized, 3);
});

test('fields onnx-proto does not know (newer ONNX versions) survive, in the model and in rewritten nodes', async (t) => {
  // NodeProto field 9 is metadata_props (IR 10), unknown to onnx-proto 8.0.1; ModelProto field 99 is unassigned.
  const nodeExtra = lengthDelimitedField(9, concatBytes([stringField(1, 'origin'), stringField(2, 'exporter-x')]));
  const modelExtra = stringField(99, 'future field');
  const withExtras = (model: Uint8Array): Uint8Array =>
    concatBytes([
      ...readWireFields(model, 'model').map((f) => {
        if (f.number !== 7) return fieldBytes(model, f);
        const graph = payloadBytes(model, f);
        const fields = readWireFields(graph, 'graph').map((g) => (g.number === 1 ? lengthDelimitedField(1, concatBytes([payloadBytes(graph, g), nodeExtra])) : fieldBytes(graph, g)));
        return lengthDelimitedField(7, concatBytes(fields));
      }),
      modelExtra,
    ]);
  const parent = pytorchStyleMlp();
  const bytes = withExtras(parent.bytes);
  const { model, report } = quantizeInt8(bytes);
  assert.equal(report.quantized.length, 2);
  const occurrences = (haystack: Uint8Array, needle: Uint8Array): number => {
    let n = 0;
    outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
      for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
      n++;
    }
    return n;
  };
  // Three nodes (two rewritten Gemms, one Relu rewritten as Max) keep their metadata; the model keeps its field.
  assert.equal(occurrences(model, nodeExtra), 3);
  assert.equal(occurrences(model, modelExtra), 1);
  await load(t, model);
});

test('weights in float_data, unnamed nodes and value_info entries for the weight are handled', async (t) => {
  const parent = legacyEncodingModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(report.quantized.map((q) => [q.node, q.weight]), [['MatMul#0', 'W1'], ['MatMul#2', 'W2']]);
  assert.deepEqual(report.rewritten.map((r) => r.node), ['Relu#1']);
  assert.deepEqual(decode(model).graph.valueInfo.map((v) => v.name), ['h'], 'the float weight is no longer declared');
  const { optimizedOps } = await load(t, model);
  assert.deepEqual(optimizedOps, [FUSED, 'Max', FUSED]);
  await assertCloseToParent(t, parent, model, 0.03);
});

test('PyTorch-style Gemm with transB = 1: weights are transposed to [in, out], transB becomes 0, and the layers fuse', async (t) => {
  const parent = pytorchStyleMlp();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(
    report.quantized.map((q) => [q.node, q.weight, q.shape, q.transposed]),
    [
      ['/fc1/Gemm', 'fc1.weight', [12, 24], true],
      ['/fc2/Gemm', 'fc2.weight', [24, 5], true],
    ],
  );
  for (const gemm of decode(model).graph.node.filter((n) => n.opType === 'Gemm')) {
    assert.equal(Number(gemm.attribute.find((a) => a.name === 'transB')?.i), 0);
    assert.equal(gemm.attribute.find((a) => a.name === 'alpha')?.f, 1, 'other attributes are kept');
  }
  const { optimizedOps } = await load(t, model);
  assert.deepEqual(optimizedOps, [FUSED, 'Max', FUSED]);
  const worst = await assertCloseToParent(t, parent, model, 0.03);
  t.diagnostic(`Gemm transB=1: max |error| ${(100 * worst).toFixed(2)} % of the output range`);
});

test('a tied weight (one initializer, two MatMuls) stays float and is reported; the rest is quantized and fused', async (t) => {
  const parent = tiedWeightModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(report.quantized.map((q) => q.weight), ['head.weight']);
  assert.deepEqual(report.skipped.map((s) => [s.node, s.weight, s.code]), [
    ['first', 'tied.weight', 'shared_weight'],
    ['second', 'tied.weight', 'shared_weight'],
  ]);
  assert.match(report.skipped[0]!.reason, /read 2 times \(first, second\)/);
  const tied = decode(model).graph.initializer.find((i) => i.name === 'tied.weight');
  assert.equal(tied?.dataType, 1, 'the tied weight is still float');
  const { optimizedOps } = await load(t, model);
  assert.deepEqual(optimizedOps, ['MatMul', 'Relu', 'MatMul', FUSED]);
  await assertCloseToParent(t, parent, model, 0.03);
});

test('MatMuls inside an If subgraph are left alone and reported; the main graph is quantized; both branches compute as before', async (t) => {
  const parent = ifSubgraphModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(report.quantized.map((q) => q.weight), ['encoder.weight']);
  assert.deepEqual(report.skipped.map((s) => [s.node, s.weight, s.code]), [
    ['branch.then_branch/then/MatMul', 'then.weight', 'in_subgraph'],
    ['branch.else_branch/else/MatMul', 'else.weight', 'in_subgraph'],
  ]);
  // The If node, subgraphs included, is byte-for-byte the original.
  const ifNode = (bytes: Uint8Array): Uint8Array => onnx.NodeProto.encode(decode(bytes).graph.node.find((n) => n.opType === 'If')!).finish();
  assert.deepEqual(ifNode(model), ifNode(parent.bytes));
  const { optimizedOps } = await load(t, model);
  assert.equal(optimizedOps[0], FUSED);
  assert.ok(optimizedOps.includes('If'));
  // Rows of all-positive and all-negative inputs take the then- and the else-branch.
  await assertCloseToParent(t, parent, model, 0.03, { x: Float32Array.from({ length: 8 * 4 }, (_, i) => 0.5 + (i % 5) / 4) });
  await assertCloseToParent(t, parent, model, 0.03, { x: Float32Array.from({ length: 8 * 4 }, (_, i) => -0.5 - (i % 3) / 4) });
});

test('a weight that is a graph input or computed by a node is not constant: skipped, model returned unchanged', async (t) => {
  const parent = nonConstantWeightModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.equal(model, parent.bytes, 'the very same bytes');
  assert.deepEqual(report.skipped.map((s) => [s.node, s.weight, s.code]), [
    ['by_input', 'w', 'not_initializer'],
    ['by_node', 'computed.weight', 'not_initializer'],
  ]);
  assert.match(report.skipped[0]!.reason, /graph input/);
  assert.match(report.skipped[1]!.reason, /computed by node transpose \(Transpose\)/);
  assert.match(report.unchangedReason ?? '', /no weight can be quantized: 2 left in float/);
  assert.equal(report.sizeAfter, report.sizeBefore);
  await load(t, model);
});

test('a model without MatMul or Gemm is returned unchanged with the reason', () => {
  const parent = noWeightModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.equal(model, parent.bytes);
  assert.deepEqual(report.quantized, []);
  assert.deepEqual(report.skipped, []);
  assert.equal(report.unchangedReason, 'the main graph has no MatMul or Gemm node with a weight to quantize');
});

test('Gemm alpha ≠ 1, Gemm transA = 1, a FLOAT16 weight and a 3-D weight stay float with reasons; their outputs are bit-identical', async (t) => {
  const parent = oddCasesModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.deepEqual(report.quantized.map((q) => q.node), ['plain']);
  assert.deepEqual(report.skipped.map((s) => [s.node, s.code]), [
    ['scaled', 'gemm_attributes'],
    ['transposed_a', 'gemm_attributes'],
    ['half', 'not_float'],
    ['batched', 'not_2d'],
  ]);
  assert.match(report.skipped[0]!.reason, /alpha = 0.5/);
  assert.match(report.skipped[1]!.reason, /transA = 1/);
  assert.match(report.skipped[2]!.reason, /FLOAT16/);
  assert.match(report.skipped[3]!.reason, /\[2, 8, 4\]/);
  const feeds = randomFeeds(parent, 6, 3);
  const p = await run((await load(t, parent.bytes)).session, feeds, parent.inputs);
  const c = await load(t, model);
  assert.equal(c.optimizedOps[0], FUSED);
  const out = await run(c.session, feeds, parent.inputs);
  for (const name of ['y_scaled', 'y_ta', 'y_half', 'y_batched']) assert.deepEqual(out[name], p[name], name);
  const { maxAbs, scale } = difference(p.y_plain!, out.y_plain!);
  assert.ok(maxAbs <= 0.03 * scale);
});

test('Clip after a quantized MatMul is rewritten as Max/Min so that the layer fuses; values unchanged', async (t) => {
  const parent = clipModel();
  const { model, report } = quantizeInt8(parent.bytes);
  assert.equal(report.quantized.length, 4);
  assert.deepEqual(report.rewritten, [
    { node: 'relu6', from: 'Clip', to: 'Max+Min', after: 'a1' },
    { node: 'floor_only', from: 'Clip', to: 'Max', after: 'b1' },
  ]);
  const { optimizedOps } = await load(t, model);
  assert.equal(count(optimizedOps, FUSED), 4);
  assert.equal(count(optimizedOps, 'DequantizeLinear'), 0);
  await assertCloseToParent(t, parent, model, 0.03, randomFeeds(parent, 32, 9, 3));
});

test('onnxruntime 1.30 does not fuse a layer followed by Relu → node: with rewriteActivations false a DequantizeLinear stays', async (t) => {
  // Documents why the quantizer rewrites such a Relu. If this starts failing, onnxruntime fuses
  // the pattern itself and the rewrite can go.
  const { model, report } = quantizeInt8(buildDemoModel().bytes, { rewriteActivations: false });
  assert.deepEqual(report.rewritten, []);
  const { optimizedOps } = await load(t, model);
  assert.deepEqual(optimizedOps, ['DequantizeLinear', 'com.microsoft:FusedGemm', FUSED, 'Softmax']);
});

test('an opset 11 model is raised to opset 13 (IR 7) and fused; an IR 3 model drops the weights from its inputs', async (t) => {
  for (const parent of [oldOpsetModel(11), oldOpsetModel(9, { irVersion: 3 })]) {
    const before = decode(parent.bytes);
    const { model, report } = quantizeInt8(parent.bytes);
    assert.deepEqual(report.opset, { before: Number(before.opsetImport[0]!.version), after: 13 });
    assert.equal(report.quantized.length, 2);
    const after = decode(model);
    assert.deepEqual(after.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 13]]);
    assert.equal(Number(after.irVersion), 7);
    assert.deepEqual(after.graph.input.map((i) => i.name), ['x']);
    const { optimizedOps } = await load(t, model);
    assert.equal(count(optimizedOps, FUSED), 2);
    await assertCloseToParent(t, parent, model, 0.03);
  }
});

test('an opset 12 model whose Squeeze/Unsqueeze changed at opset 13 is not raised: unchanged, reason names them', () => {
  const parent = oldOpsetModel(12, { squeeze: true });
  const { model, report } = quantizeInt8(parent.bytes);
  assert.equal(model, parent.bytes);
  assert.deepEqual(report.skipped.map((s) => s.code), ['opset', 'opset']);
  assert.match(report.skipped[0]!.reason, /opset 13.*Unsqueeze changed at opset 13; Squeeze changed at opset 13/);
});

test('quantizing a quantized model changes nothing: its weights come from DequantizeLinear', () => {
  const { model: once } = quantizeInt8(buildDemoModel().bytes);
  const { model, report } = quantizeInt8(once);
  assert.equal(model, once);
  assert.deepEqual(report.skipped.map((s) => s.code), ['not_initializer', 'not_initializer']);
  assert.match(report.skipped[0]!.reason, /DequantizeLinear\) \(already quantized\)/);
});

test('exclude leaves named nodes or weights in float; unknown names are refused', () => {
  const bytes = buildDemoModel().bytes;
  const { report } = quantizeInt8(bytes, { exclude: ['cairn/layer1/weight'] });
  assert.deepEqual(report.quantized.map((q) => q.weight), ['cairn/layer0/weight']);
  assert.deepEqual(report.skipped.map((s) => [s.node, s.code]), [['cairn/layer1/gemm', 'excluded']]);
  assert.throws(
    () => quantizeInt8(bytes, { exclude: ['no/such/layer'] }),
    (e: unknown) => e instanceof QuantizationError && e.code === 'CAIRN_QUANT_BAD_OPTIONS' && /no\/such\/layer/.test(e.message),
  );
});

test('garbage, truncated and empty input, and protobuf that is not a model, throw QuantizationError naming the problem', () => {
  const demo = buildDemoModel().bytes;
  const cases: [string, Uint8Array, RegExp][] = [
    ['garbage', Uint8Array.from({ length: 200 }, (_, i) => (i * 131 + 7) % 256), /./],
    ['text', new TextEncoder().encode('this is not an onnx model'), /./],
    ['truncated', demo.subarray(0, Math.floor(demo.length / 2)), /truncated/],
    ['empty', new Uint8Array(0), /empty/],
    ['a TensorProto', onnx.TensorProto.encode({ name: 'w', dataType: 1, dims: [1], floatData: [1] }).finish(), /not a readable ONNX model/],
    ['a ModelProto without graph', onnx.ModelProto.encode({ irVersion: 8, producerName: 'x' }).finish(), /has no graph/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(
      () => quantizeInt8(bytes),
      (e: unknown) => e instanceof QuantizationError && e.code === 'CAIRN_QUANT_MALFORMED_MODEL' && message.test(e.message) && e.problems.length > 0,
      what,
    );
  }
});

test('quantized models pass the official ONNX checker (full_check)', async (t) => {
  assertOnnxCheckerInstalled();
  const dir = await tempDir(t);
  const results: [string, QuantizationResult][] = [
    ['demo', quantizeInt8(buildDemoModel().bytes)],
    ['bigger', quantizeInt8(biggerMlp().model.bytes)],
    ['pytorch', quantizeInt8(pytorchStyleMlp().bytes)],
    ['tied', quantizeInt8(tiedWeightModel().bytes)],
    ['if', quantizeInt8(ifSubgraphModel().bytes)],
    ['odd', quantizeInt8(oddCasesModel().bytes)],
    ['clip', quantizeInt8(clipModel().bytes)],
    ['opset11', quantizeInt8(oldOpsetModel(11).bytes)],
    ['ir3', quantizeInt8(oldOpsetModel(9, { irVersion: 3 }).bytes)],
    ['legacy', quantizeInt8(legacyEncodingModel().bytes)],
  ];
  for (const [name, { model, report }] of results) {
    assert.ok(report.quantized.length > 0, name);
    const path = join(dir, `${name}.onnx`);
    await writeFile(path, model);
    assertOnnxConforms(path, name);
  }
});
