/**
 * The registry's ONNX validation with the real agent runtime: signatures of good models, and
 * OnnxLoadError (CAIRN_ONNX_INVALID) with onnxruntime's message or a clear reason otherwise.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { inspectOnnx, OnnxLoadError } from '@cairn/hub/modules/registry/onnx-inspect.js';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';

const { onnx } = onnxProto;
const FLOAT = 1;
const INT64 = 7;

async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-inspect-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

type Dim = { dimValue: number } | { dimParam: string } | Record<string, never>;

/** A one-node model `out = op(in)` with the given element types and dims. */
function oneNodeModel(opts: { op: 'Cast' | 'Identity'; inType: number; outType: number; dims: Dim[] }): Uint8Array {
  const attribute = opts.op === 'Cast' ? [{ name: 'to', type: 2, i: opts.outType }] : [];
  const valueInfo = (name: string, elemType: number) => ({ name, type: { tensorType: { elemType, shape: { dim: opts.dims } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'cairn-test',
    graph: {
      name: 'g',
      node: [{ opType: opts.op, input: ['in'], output: ['out'], attribute }],
      input: [valueInfo('in', opts.inType)],
      output: [valueInfo('out', opts.outType)],
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

async function assertInvalid(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof OnnxLoadError, `expected an OnnxLoadError, got ${String(error)}`);
    assert.equal(error.code, 'CAIRN_ONNX_INVALID');
    assert.match(error.message, message);
    return true;
  });
}

test('inspectOnnx reports the demo model’s float32 signature', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'demo.onnx');
  await writeFile(path, buildDemoModel().bytes);
  assert.deepEqual(await inspectOnnx(path), {
    inputs: [{ name: 'features', type: 'float32', dims: ['batch', 16] }],
    outputs: [{ name: 'probabilities', type: 'float32', dims: ['batch', 4] }],
  });
});

test('an unnamed dynamic dimension is reported as "?"', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'identity.onnx');
  await writeFile(path, oneNodeModel({ op: 'Identity', inType: FLOAT, outType: FLOAT, dims: [{}, { dimValue: 3 }] }));
  assert.deepEqual(await inspectOnnx(path), {
    inputs: [{ name: 'in', type: 'float32', dims: ['?', 3] }],
    outputs: [{ name: 'out', type: 'float32', dims: ['?', 3] }],
  });
});

test('a file onnxruntime cannot load is an OnnxLoadError with onnxruntime’s message', async (t) => {
  const dir = await tempDir(t);
  const garbage = join(dir, 'garbage.onnx');
  await writeFile(garbage, Buffer.from('definitely not an onnx model'));
  await assertInvalid(inspectOnnx(garbage), /Protobuf parsing failed/);

  const truncated = join(dir, 'truncated.onnx');
  const bytes = buildDemoModel().bytes;
  await writeFile(truncated, bytes.subarray(0, bytes.length - 37));
  await assertInvalid(inspectOnnx(truncated), /Load model from .*truncated\.onnx failed/);
});

test('a model with a non-float32 input or output is refused, naming the tensor and its type', async (t) => {
  const dir = await tempDir(t);
  const intIn = join(dir, 'int-input.onnx');
  await writeFile(intIn, oneNodeModel({ op: 'Cast', inType: INT64, outType: FLOAT, dims: [{ dimParam: 'batch' }, { dimValue: 4 }] }));
  await assertInvalid(inspectOnnx(intIn), /input 'in' is int64.*float32 tensors only/);

  const intOut = join(dir, 'int-output.onnx');
  await writeFile(intOut, oneNodeModel({ op: 'Cast', inType: FLOAT, outType: INT64, dims: [{ dimParam: 'batch' }, { dimValue: 4 }] }));
  await assertInvalid(inspectOnnx(intOut), /output 'out' is int64/);
});

test('a missing file is a file error, not an invalid model', async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(inspectOnnx(join(dir, 'missing.onnx')), (error: NodeJS.ErrnoException) => {
    assert.ok(!(error instanceof OnnxLoadError));
    assert.equal(error.code, 'ENOENT');
    return true;
  });
});
