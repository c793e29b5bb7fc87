/**
 * The ONNX writer against the real onnxruntime and Debian's official ONNX checker: the graph
 * computes what `mlpForward` computes, keeps the layout the int8 quantizer relies on, and its
 * bytes are a pure function of the spec.
 */
import { assertOnnxCheckerInstalled, assertOnnxConforms } from '../helpers/onnx-checker.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { buildDemoModel, DEMO_CLASSES } from '@cairn/hub/training/demo-model.js';
import { mlpForward, writeMlpOnnx, type MlpLayer, type MlpSpec } from '@cairn/hub/training/onnx-writer.js';
import { gaussianArray, mulberry32, type Rng } from '@cairn/shared';

const { onnx } = onnxProto;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-onnx-writer-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function runOnnx(t: TestContext, bytes: Uint8Array, inputName: string, x: Float32Array, dims: number[]): Promise<ort.Tensor> {
  const dir = await tempDir(t);
  const path = join(dir, 'model.onnx');
  await writeFile(path, bytes);
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  t.after(() => session.release());
  const results = await session.run({ [inputName]: new ort.Tensor('float32', x, dims) });
  const output = results[session.outputNames[0]!];
  assert.ok(output);
  return output;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i]! - expected[i]!);
    assert.ok(diff <= tolerance, `element ${i}: ${actual[i]} vs ${expected[i]} (|diff| ${diff})`);
  }
}

function randomLayer(rng: Rng, inSize: number, outSize: number, activation: MlpLayer['activation']): MlpLayer {
  return { weights: gaussianArray(rng, inSize * outSize, Math.sqrt(2 / inSize)), bias: gaussianArray(rng, outSize, 0.1), inSize, outSize, activation };
}

function normalizedSpec(seed: number): MlpSpec {
  const rng = mulberry32(seed);
  const inputSize = 6;
  return {
    inputName: 'x',
    outputName: 'y',
    inputSize,
    normalization: {
      mean: gaussianArray(rng, inputSize, 5),
      std: Float32Array.from({ length: inputSize }, () => 0.5 + 3 * rng()),
    },
    layers: [randomLayer(rng, 6, 10, 'relu'), randomLayer(rng, 10, 8, 'relu'), randomLayer(rng, 8, 3, 'relu')],
    softmax: false,
  };
}

/** Null when Debian's python3-onnx is not installed (`apt-get install -y python3-onnx`). */
test('the demo model has the same bytes for the same seed and different bytes for another seed', () => {
  const a = buildDemoModel({ seed: 1 });
  const b = buildDemoModel({ seed: 1 });
  const c = buildDemoModel({ seed: 2 });
  assert.deepEqual(a.bytes, b.bytes);
  assert.notDeepEqual(a.bytes, c.bytes);
  assert.deepEqual(buildDemoModel().bytes, buildDemoModel().bytes);
  assert.deepEqual(a.classes, [...DEMO_CLASSES]);
  assert.deepEqual(a.classes, ['healthy', 'imbalance', 'misalignment', 'bearing_fault']);
});

test('the demo model runs in onnxruntime: [batch,16] features → [batch,4] probabilities equal to mlpForward', async (t) => {
  const { bytes, spec } = buildDemoModel({ seed: 7 });
  const rng = mulberry32(99);
  for (const batch of [1, 5, 33]) {
    const x = gaussianArray(rng, batch * 16, 2);
    const output = await runOnnx(t, bytes, 'features', x, [batch, 16]);
    assert.equal(output.type, 'float32');
    assert.deepEqual(output.dims, [batch, 4]);
    assertClose(output.data as Float32Array, mlpForward(spec, x, batch));
    for (let r = 0; r < batch; r++) {
      const row = Array.from((output.data as Float32Array).subarray(r * 4, r * 4 + 4));
      assert.ok(Math.abs(row.reduce((s, p) => s + p, 0) - 1) < 1e-5, 'softmax rows sum to 1');
    }
  }
});

test('a model with in-graph normalization and no softmax matches mlpForward', async (t) => {
  const spec = normalizedSpec(3);
  const rng = mulberry32(4);
  const x = Float32Array.from({ length: 7 * 6 }, () => 10 * rng() - 2);
  const output = await runOnnx(t, writeMlpOnnx(spec), 'x', x, [7, 6]);
  assert.deepEqual(output.dims, [7, 3]);
  assertClose(output.data as Float32Array, mlpForward(spec, x, 7));
});

test('onnxruntime equals mlpForward within 1e-5 for random architectures and batches', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 2 ** 31 }),
      fc.array(fc.integer({ min: 1, max: 24 }), { minLength: 2, maxLength: 5 }),
      fc.integer({ min: 1, max: 9 }),
      fc.boolean(),
      fc.boolean(),
      async (seed, widths, batch, softmax, normalize) => {
        const rng = mulberry32(seed);
        const layers = widths.slice(1).map((w, i) => randomLayer(rng, widths[i]!, w, i < widths.length - 2 ? 'relu' : 'none'));
        const inputSize = widths[0]!;
        const spec: MlpSpec = {
          inputName: 'in',
          outputName: 'out',
          inputSize,
          layers,
          softmax,
          ...(normalize ? { normalization: { mean: gaussianArray(rng, inputSize), std: Float32Array.from({ length: inputSize }, () => 0.25 + rng()) } } : {}),
        };
        const x = gaussianArray(rng, batch * inputSize);
        const output = await runOnnx(t, writeMlpOnnx(spec), 'in', x, [batch, inputSize]);
        assertClose(output.data as Float32Array, mlpForward(spec, x, batch));
      },
    ),
    { numRuns: 25 },
  );
});

test('the graph keeps the layout the int8 quantizer fuses: Gemm with W [in,out], transB=0, opset 17, IR 8, batch dim', () => {
  const { bytes } = buildDemoModel({ seed: 5 });
  const model = onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: Number, defaults: true }) as {
    irVersion: number;
    opsetImport: { domain: string; version: number }[];
    producerName: string;
    graph: {
      node: { opType: string; input: string[]; attribute: { name: string; i: number }[] }[];
      initializer: { name: string; dataType: number; dims: number[]; rawData: Uint8Array }[];
      input: { name: string; type: { tensorType: { elemType: number; shape: { dim: { dimParam: string; dimValue: number }[] } } } }[];
      output: { name: string; type: { tensorType: { elemType: number; shape: { dim: { dimParam: string; dimValue: number }[] } } } }[];
    };
    metadataProps: { key: string; value: string }[];
  };
  assert.equal(model.irVersion, 8);
  assert.deepEqual(model.opsetImport.map((o) => [o.domain, o.version]), [['', 17]]);
  assert.deepEqual(model.graph.node.map((n) => n.opType), ['Gemm', 'Relu', 'Gemm', 'Softmax']);
  const gemms = model.graph.node.filter((n) => n.opType === 'Gemm');
  for (const gemm of gemms) {
    assert.equal(gemm.attribute.find((a) => a.name === 'transB')?.i, 0);
    assert.equal(gemm.attribute.find((a) => a.name === 'transA')?.i ?? 0, 0);
    assert.equal(gemm.attribute.find((a) => a.name === 'alpha'), undefined);
    assert.equal(gemm.attribute.find((a) => a.name === 'beta'), undefined);
  }
  const dims = (name: string): number[] | undefined => model.graph.initializer.find((i) => i.name === name)?.dims;
  assert.deepEqual(dims(gemms[0]!.input[1]!), [16, 32]);
  assert.deepEqual(dims(gemms[1]!.input[1]!), [32, 4]);
  // Every weight has its own initializer (a shared one would block the MatMulNBits fusion).
  assert.equal(new Set(gemms.map((g) => g.input[1])).size, gemms.length);
  for (const init of model.graph.initializer) {
    assert.equal(init.dataType, 1);
    assert.equal(init.rawData.length, 4 * init.dims.reduce((a, b) => a * b, 1));
  }
  const [input] = model.graph.input;
  const [output] = model.graph.output;
  assert.equal(input?.name, 'features');
  assert.deepEqual(input?.type.tensorType.shape.dim.map((d) => d.dimParam || d.dimValue), ['batch', 16]);
  assert.equal(output?.name, 'probabilities');
  assert.deepEqual(output?.type.tensorType.shape.dim.map((d) => d.dimParam || d.dimValue), ['batch', 4]);
  assert.deepEqual(
    model.metadataProps.map((p) => p.key),
    ['cairn.classes', 'cairn.model', 'cairn.seed'],
  );
  assert.deepEqual(JSON.parse(model.metadataProps[0]!.value), [...DEMO_CLASSES]);
});

test('initializers are little-endian float32 rawData holding exactly the spec values', () => {
  const spec = normalizedSpec(8);
  const model = onnx.ModelProto.decode(writeMlpOnnx(spec));
  const weight = model.graph?.initializer?.find((i) => i.name === 'cairn/layer0/weight');
  assert.ok(weight?.rawData);
  const view = new DataView(weight.rawData.buffer, weight.rawData.byteOffset, weight.rawData.byteLength);
  const decoded = Float32Array.from({ length: spec.layers[0]!.weights.length }, (_, i) => view.getFloat32(i * 4, true));
  assert.deepEqual(decoded, spec.layers[0]!.weights);
});

test('metadata order and repeated writes do not change the bytes', () => {
  const base = normalizedSpec(11);
  const one = writeMlpOnnx({ ...base, metadata: { b: '2', a: '1' }, producerVersion: '0.1.0' });
  const two = writeMlpOnnx({ ...base, metadata: { a: '1', b: '2' }, producerVersion: '0.1.0' });
  assert.deepEqual(one, two);
  assert.notDeepEqual(one, writeMlpOnnx({ ...base, metadata: { a: '1', b: '3' }, producerVersion: '0.1.0' }));
});

test('an inconsistent spec is refused with the reason', () => {
  const spec = normalizedSpec(12);
  assert.throws(() => writeMlpOnnx({ ...spec, layers: [] }), /at least one layer/);
  assert.throws(() => writeMlpOnnx({ ...spec, inputSize: 5 }), /normalization.mean has 6 values, expected 5/);
  const [first, ...rest] = spec.layers;
  assert.throws(() => writeMlpOnnx({ ...spec, layers: [{ ...first!, bias: new Float32Array(3) }, ...rest] }), /layer 0: bias has 3 values/);
  assert.throws(() => writeMlpOnnx({ ...spec, layers: rest }), /layer 0: inSize is 10 but the previous width is 6/);
  assert.throws(() => writeMlpOnnx({ ...spec, normalization: { mean: spec.normalization!.mean, std: new Float32Array(6) } }), /std values must be finite and > 0/);
  assert.throws(() => writeMlpOnnx({ ...spec, outputName: 'x' }), /must differ/);
  assert.throws(() => writeMlpOnnx({ ...spec, outputName: 'cairn/softmax' }), /reserved/);
  assert.throws(() => mlpForward(spec, new Float32Array(5), 1), /input has 5 values, expected 1×6/);
});

test('written models pass the official ONNX checker (full_check)', async (t) => {
  assertOnnxCheckerInstalled();
  const dir = await tempDir(t);
  const models: [string, Uint8Array][] = [
    ['demo.onnx', buildDemoModel().bytes],
    ['normalized.onnx', writeMlpOnnx(normalizedSpec(21))],
    ['single-layer.onnx', writeMlpOnnx({ inputName: 'a', outputName: 'b', inputSize: 3, layers: [randomLayer(mulberry32(1), 3, 2, 'relu')], softmax: false })],
  ];
  for (const [name, bytes] of models) {
    const path = join(dir, name);
    await writeFile(path, bytes);
    assertOnnxConforms(path, name);
  }
});
