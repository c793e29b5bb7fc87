/**
 * The publishing pipeline over the real HTTP API: upload, quantize to int8, gate against the
 * fp32 parent, drift reference, sign — and every refusal with its coded error, publishing nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generateDataset, verifyKeyring, verifyManifest, gaussianArray, mulberry32, FAULT_CLASSES, FEATURE_NAMES } from '@cairn/shared';
import { writeMlpOnnx } from '@cairn/hub/training/onnx-writer.js';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { noWeightModel } from '../helpers/onnx-models.js';

const IMAGES = resolve(import.meta.dirname, '../../../firmware-images');
const fp32 = readFileSync(join(IMAGES, 'pdm-vibration-1.0.0-fp32/model.onnx'));
const nan = readFileSync(join(IMAGES, 'pdm-vibration-1.0.1-nan/model.onnx'));
const data = generateDataset({ seed: 4242, machines: ['pump-1800', 'fan-1200', 'motor-3600'], windowsPerClass: 40 });
const rows = Array.from({ length: data.count }, (_, r) => Array.from(data.features.subarray(r * data.featureCount, (r + 1) * data.featureCount)));
const calibration = Buffer.from(JSON.stringify({ inputs: rows, labels: Array.from(data.labels) }));

async function upload(hub: TestHub, bytes: Uint8Array): Promise<string> {
  const response = await hub.api('POST', '/api/v1/uploads', bytes);
  assert.equal(response.status, 201, JSON.stringify(response.body));
  return response.body.digest;
}

test('publish --quantize int8: the gate passes, the int8 child is signed with its lineage to the fp32 parent and a drift reference', async (t) => {
  const hub = await startTestHub(t);
  const model = await upload(hub, fp32);
  const cal = await upload(hub, calibration);
  const response = await hub.api('POST', '/api/v1/models/publish', {
    name: 'pdm',
    version: '1.0.0',
    model,
    quantize: 'int8',
    calibration: cal,
    reference: cal,
    classes: [...FAULT_CLASSES],
    featureNames: [...FEATURE_NAMES],
    sections: { lineage: { recipe: 'test' } },
  });
  assert.equal(response.status, 201, JSON.stringify(response.body));
  const { manifest } = response.body.bundle;
  assert.notEqual(manifest.files[0].digest, model, 'the published blob is the int8 child');
  assert.ok(manifest.files[0].size < 0.3 * fp32.length);
  assert.equal(manifest.quantization.parent.digest, model);
  assert.ok(manifest.quantization.accuracyDropPoints <= 0.5);
  assert.equal(manifest.quantization.calibrationRows, data.count);
  assert.deepEqual(manifest.lineage, { recipe: 'test' });
  assert.deepEqual(manifest.driftReference.features.map((f: { name: string }) => f.name), [...FEATURE_NAMES]);
  assert.equal(manifest.driftReference.predictions.classes.length, 5);
  assert.equal(response.body.gate.passed, true);
  const keyring = verifyKeyring(hub.ctx.keys.signedKeyring, hub.ctx.keys.rootPublicKey, 1, Date.now());
  assert.doesNotThrow(() => verifyManifest(response.body.bundle, keyring, Date.now()));
  // The child is what devices download.
  const pulled = await fetch(`${hub.httpUrl}/api/v1/models/pdm/1.0.0/blob`, { headers: { authorization: `Bearer ${hub.token}` } });
  assert.equal(Buffer.from(await pulled.arrayBuffer()).length, manifest.files[0].size);
});

test('a gate failure is a 422 naming the breach, and nothing is published', async (t) => {
  const hub = await startTestHub(t);
  const model = await upload(hub, nan);
  const cal = await upload(hub, calibration);
  const response = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '1.0.1', model, quantize: 'int8', calibration: cal });
  assert.equal(response.status, 422);
  assert.equal(response.body.code, 'CAIRN_QUANTIZATION_GATE');
  assert.match(response.body.message, /nothing was published/);
  assert.match(response.body.message, /NaN/);
  assert.deepEqual((await hub.api('GET', '/api/v1/models')).body.models, []);
});

test('bad calibration data, missing uploads and unquantizable models get clear answers', async (t) => {
  const hub = await startTestHub(t);
  const model = await upload(hub, fp32);
  const narrow = await upload(hub, Buffer.from(JSON.stringify({ inputs: [[1, 2, 3]] })));
  const notJson = await upload(hub, Buffer.from('inputs: [1, 2]'));
  const badLabels = await upload(hub, Buffer.from(JSON.stringify({ inputs: rows.slice(0, 2), labels: [0] })));
  const cases: [Record<string, unknown>, number, string, RegExp?][] = [
    [{ model, quantize: 'int8' }, 400, 'CAIRN_BAD_REQUEST', /calibration/],
    [{ model, quantize: 'int8', calibration: narrow }, 400, 'CAIRN_BAD_CALIBRATION', /row 0 has 3 values, features takes 19/],
    [{ model, quantize: 'int8', calibration: notJson }, 400, 'CAIRN_BAD_CALIBRATION', /not JSON/],
    [{ model, quantize: 'int8', calibration: badLabels }, 400, 'CAIRN_BAD_CALIBRATION', /labels/],
    [{ model: 'f'.repeat(64) }, 404, 'CAIRN_UPLOAD_NOT_FOUND'],
    [{ model: narrow }, 422, 'CAIRN_ONNX_INVALID'],
    [{ model, reference: narrow }, 400, 'CAIRN_BAD_CALIBRATION'],
    // A health policy devices would refuse is refused at publish time.
    [{ model, sections: { health: { schema: 'cairn.health/v1', probes: [{ input: [1, 2] }] } } }, 422, 'CAIRN_HEALTH_POLICY_INVALID', /probe 0 has 2 input values, the model's input takes 19/],
    [{ model, sections: { health: { schema: 'cairn.health/v1', trial: { durationMs: -5 } } } }, 422, 'CAIRN_HEALTH_POLICY_INVALID', /durationMs/],
  ];
  for (const [body, status, code, message] of cases) {
    const response = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '2.0.0', ...body });
    assert.equal(response.status, status, JSON.stringify([body, response.body]));
    assert.equal(response.body.code, code);
    if (message) assert.match(response.body.message, message);
  }
  assert.deepEqual((await hub.api('GET', '/api/v1/models')).body.models, []);

  // A model with nothing to quantize is published unchanged, with the reason in its manifest.
  const plain = await upload(hub, noWeightModel().bytes);
  const cal = await upload(hub, Buffer.from(JSON.stringify({ inputs: [[1, 2, 3, 4, 5, 6]] })));
  const unchanged = await hub.api('POST', '/api/v1/models/publish', { name: 'plain', version: '1.0.0', model: plain, quantize: 'int8', calibration: cal });
  assert.equal(unchanged.status, 201, JSON.stringify(unchanged.body));
  assert.equal(unchanged.body.digest, plain);
  assert.match(unchanged.body.bundle.manifest.quantization.unchanged, /.+/);
});

test('the gate cannot be satisfied vacuously, and the hub signs only what it checked', async (t) => {
  const hub = await startTestHub(t);
  // A single-output regression model: without labels, "same argmax" is always true.
  const rng = mulberry32(3);
  const single = writeMlpOnnx({
    inputName: 'x',
    outputName: 'y',
    inputSize: 8,
    layers: [
      { inSize: 8, outSize: 16, weights: gaussianArray(rng, 128), bias: new Float32Array(16), activation: 'relu' },
      { inSize: 16, outSize: 1, weights: gaussianArray(rng, 16), bias: new Float32Array(1), activation: 'none' },
    ],
    softmax: false,
  });
  const model = await upload(hub, single);
  const cal = await upload(hub, Buffer.from(JSON.stringify({ inputs: Array.from({ length: 50 }, (_, r) => Array.from({ length: 8 }, (_, c) => Math.sin(r + c))) })));
  const vacuous = await hub.api('POST', '/api/v1/models/publish', { name: 'reg', version: '1.0.0', model, quantize: 'int8', calibration: cal });
  assert.equal(vacuous.status, 400);
  assert.match(vacuous.body.message, /maxAbsError/);
  const strict = await hub.api('POST', '/api/v1/models/publish', { name: 'reg', version: '1.0.0', model, quantize: 'int8', calibration: cal, maxAbsError: 1e-9 });
  assert.equal(strict.status, 422);
  assert.match(strict.body.message, /maxAbsError/);
  const bounded = await hub.api('POST', '/api/v1/models/publish', { name: 'reg', version: '1.0.0', model, quantize: 'int8', calibration: cal, maxAbsError: 1 });
  assert.equal(bounded.status, 201, JSON.stringify(bounded.body));

  const fp32Model = await upload(hub, fp32);
  const forged = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '1.0.0', model: fp32Model, sections: { quantization: { scheme: 'int8', accuracyDropPoints: 0 } } });
  assert.equal(forged.status, 400, 'a client cannot hand the hub a quantization result to sign');
  const badDrift = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '1.0.0', model: fp32Model, sections: { driftReference: { features: [{ name: 'a', edges: [2, 1], shares: [1] }] } } });
  assert.equal(badDrift.status, 400);
  assert.match(badDrift.body.message, /driftReference/);
  const huge = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '1.0.0', model: fp32Model, sections: { lineage: { notes: 'x'.repeat(300_000) } } });
  assert.equal(huge.status, 422);
  assert.equal(huge.body.code, 'CAIRN_MANIFEST_TOO_LARGE');
});

test('calibration values outside float32, labels beyond the outputs and NaN models under --reference are coded 4xx, never 500', async (t) => {
  const hub = await startTestHub(t);
  const model = await upload(hub, fp32);
  const overflow = await upload(hub, Buffer.from(JSON.stringify({ inputs: [rows[0]!.map((v, i) => (i === 0 ? 1e39 : v))] })));
  const wideLabels = await upload(hub, Buffer.from(JSON.stringify({ inputs: rows.slice(0, 3), labels: [0, 1, 9] })));
  const cal = await upload(hub, calibration);
  const nanModel = await upload(hub, nan);
  const cases: [Record<string, unknown>, number, string][] = [
    [{ model, quantize: 'int8', calibration: overflow }, 400, 'CAIRN_BAD_CALIBRATION'],
    [{ model, quantize: 'int8', calibration: wideLabels }, 400, 'CAIRN_BAD_CALIBRATION'],
    [{ model: nanModel, reference: cal }, 422, 'CAIRN_ONNX_INVALID'],
  ];
  for (const [body, status, code] of cases) {
    const response = await hub.api('POST', '/api/v1/models/publish', { name: 'pdm', version: '3.0.0', ...body });
    assert.equal(response.status, status, JSON.stringify([body, response.body]));
    assert.equal(response.body.code, code);
  }
});
