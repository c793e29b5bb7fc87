/**
 * The committed reference images (firmware-images/): a rebuild reproduces their model digests,
 * every manifest verifies with the demo release key, the recipe meets its accuracy and size
 * targets, and each faulty image misbehaves in exactly its one way, in real onnxruntime.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import { sha256Hex, signingKeyFromSeed, verifySignature, type SignedManifestT } from '@cairn/shared';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import { buildReferenceImages, readReleaseSeed, type ImageEntry } from '@cairn/hub/training/images.js';
import { assertOnnxCheckerInstalled, assertOnnxConforms } from '../helpers/onnx-checker.js';

const { onnx } = onnxProto;
const ROOT = resolve(import.meta.dirname, '../../..');
const IMAGES = join(ROOT, 'firmware-images');
const index = JSON.parse(readFileSync(join(IMAGES, 'index.json'), 'utf8')) as { releaseKey: string; images: ImageEntry[] };
const image = (id: string) => index.images.find((i) => i.id === id)!;
const manifestOf = (id: string) => JSON.parse(readFileSync(join(IMAGES, id, 'manifest.json'), 'utf8')) as SignedManifestT;
const modelPath = (id: string) => join(IMAGES, id, 'model.onnx');

test('a rebuild reproduces every committed model digest', { timeout: 600_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'cairn-images-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const rebuilt = await buildReferenceImages({ outDir: out, releaseKeySeed: readReleaseSeed(join(IMAGES, 'keys/demo-release.key')) });
  assert.deepEqual(
    rebuilt.map((e) => [e.id, e.digest, e.size]),
    index.images.map((e) => [e.id, e.digest, e.size]),
  );
});

test('every image is signed by the demo release key and its files match its manifest', () => {
  const key = signingKeyFromSeed(readReleaseSeed(join(IMAGES, 'keys/demo-release.key')), 'release', Number.MAX_SAFE_INTEGER);
  assert.equal(Buffer.from(key.publicKey).toString('base64'), index.releaseKey);
  for (const entry of index.images) {
    const signed = manifestOf(entry.id);
    assert.ok(verifySignature(signed.manifest, signed.signatures[0]!, key.publicKey), entry.id);
    const bytes = readFileSync(modelPath(entry.id));
    assert.equal(sha256Hex(bytes), signed.manifest.files[0]!.digest, entry.id);
    assert.equal(bytes.length, signed.manifest.files[0]!.size, entry.id);
    assert.equal(`${signed.manifest.name}@${signed.manifest.version}`, `${entry.name}@${entry.version}`);
    for (const section of ['features', 'lineage', 'driftReference', 'health'] as const) assert.ok(signed.manifest[section], `${entry.id} has ${section}`);
  }
});

test('the recipe meets its targets: fp32 ≥ 97 % held out, int8 within 0.5 points and ≤ 30 % of the size', () => {
  for (const version of ['1.0.0', '1.1.0']) {
    const fp32 = image(`pdm-vibration-${version}-fp32`);
    const int8 = image(`pdm-vibration-${version}-int8`);
    assert.ok(fp32.accuracy! >= 97, `${version} fp32 ${fp32.accuracy}`);
    assert.ok(fp32.accuracy! - int8.accuracy! <= 0.5, `${version} int8 ${int8.accuracy} vs ${fp32.accuracy}`);
    assert.ok(int8.size <= 0.3 * fp32.size, `${version} int8 ${int8.size} vs fp32 ${fp32.size}`);
    const q = manifestOf(int8.id).manifest.quantization as { parent: { digest: string }; skipped: unknown[] };
    assert.equal(q.parent.digest, fp32.digest, 'the int8 manifest names its fp32 parent');
    assert.deepEqual(q.skipped, []);
  }
});

test('onnxruntime fuses every layer of the int8 images into MatMulNBits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-fused-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const version of ['1.0.0', '1.1.0']) {
    const optimized = join(dir, `${version}.onnx`);
    const session = await ort.InferenceSession.create(modelPath(`pdm-vibration-${version}-int8`), { graphOptimizationLevel: 'all', optimizedModelFilePath: optimized, intraOpNumThreads: 1 });
    await session.release();
    const ops = onnx.ModelProto.decode(readFileSync(optimized)).graph!.node!.map((n) => `${n.domain ? `${n.domain}:` : ''}${n.opType}`);
    assert.equal(ops.filter((op) => op === 'com.microsoft:MatMulNBits').length, 3, `${version}: ${ops.join(', ')}`);
    assert.ok(!ops.some((op) => op === 'DequantizeLinear' || op === 'Gemm' || op === 'MatMul'), `${version}: ${ops.join(', ')}`);
  }
});

async function outputs(id: string, rows: number[][]): Promise<Float32Array> {
  const runtime = createWorkerRuntime();
  try {
    const session = await runtime.load(image(id).digest, modelPath(id));
    const result = await session.infer({ features: { dims: [rows.length, rows[0]!.length], data: Float32Array.from(rows.flat()) } });
    return result.outputs['probabilities']!.data;
  } finally {
    await runtime.close();
  }
}

const probes = manifestOf('pdm-vibration-1.0.0-fp32').manifest.health as { probes: { input: number[]; expected: number[] }[] };
const probeInputs = probes.probes.map((p) => p.input);

test('the fp32 image reproduces its golden probes; the int8 image stays within the probe tolerance', async () => {
  const expected = probes.probes.flatMap((p) => p.expected);
  const fp32 = await outputs('pdm-vibration-1.0.0-fp32', probeInputs);
  const int8 = await outputs('pdm-vibration-1.0.0-int8', probeInputs);
  expected.forEach((e, i) => {
    assert.ok(Math.abs(fp32[i]! - e) < 1e-4, `fp32 probe value ${i}`);
    assert.ok(Math.abs(int8[i]! - e) < 0.02, `int8 probe value ${i}: ${int8[i]} vs ${e}`);
  });
});

test('faulty images: nan emits NaN, collapsed always says "healthy", slow computes the same with thousands of times the work', async () => {
  const nan = await outputs('pdm-vibration-1.0.1-nan', probeInputs);
  assert.ok(nan.some(Number.isNaN), 'NaN outputs');

  const collapsed = await outputs('pdm-vibration-1.0.1-collapsed', probeInputs);
  for (let r = 0; r < probeInputs.length; r++) {
    const row = Array.from(collapsed.subarray(r * 5, r * 5 + 5));
    assert.equal(row.indexOf(Math.max(...row)), 0, `row ${r} predicts healthy`);
  }

  const base = await outputs('pdm-vibration-1.0.0-fp32', probeInputs);
  const slow = await outputs('pdm-vibration-1.0.1-slow', probeInputs);
  base.forEach((v, i) => assert.ok(Math.abs(v - slow[i]!) < 1e-4, `slow output ${i}`));
  // Structure, not timing (timings live in the benchmark: ≥ 20× slower through the agent's worker).
  assert.ok(multiplyAdds('pdm-vibration-1.0.1-slow') >= 1000 * multiplyAdds('pdm-vibration-1.0.0-fp32'));
});

/** Multiply-adds of one row through every Gemm/MatMul (from the weight shapes). */
function multiplyAdds(id: string): number {
  const graph = onnx.ModelProto.decode(readFileSync(modelPath(id))).graph!;
  const dims = new Map(graph.initializer!.map((i) => [i.name!, (i.dims ?? []).map(Number)]));
  return graph.node!.filter((n) => n.opType === 'Gemm' || n.opType === 'MatMul').reduce((sum, n) => sum + (dims.get(n.input![1]!) ?? [0, 0]).reduce((a, b) => a * b, 1), 0);
}

test('every image passes the official ONNX checker', () => {
  assertOnnxCheckerInstalled();
  for (const entry of index.images) assertOnnxConforms(modelPath(entry.id), entry.id);
});
