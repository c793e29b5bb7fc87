import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { verifyKeyring, verifyManifest } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { startTestHub } from '../helpers/hub.js';

const demo = buildDemoModel({ seed: 7 }).bytes;

test('every /api route needs the admin token, except trust; errors are coded', async (t) => {
  const hub = await startTestHub(t);
  for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Basic ${hub.token}` }] as Record<string, string>[]) {
    const response = await fetch(`${hub.httpUrl}/api/v1/devices`, { headers });
    assert.equal(response.status, 401);
    const body = (await response.json()) as { code: string };
    assert.equal(body.code, 'CAIRN_UNAUTHORIZED');
  }
  // Percent-encoded paths route to the same handlers and must meet the same check.
  for (const path of ['/%61pi/v1/devices', '/ap%69/v1/keys', '/api/v1/%64evices', '/API/v1/devices', '//api/v1/devices']) {
    const response = await fetch(`${hub.httpUrl}${path}`);
    const html = /text\/html/.test(response.headers.get('content-type') ?? ''); // the console's SPA fallback
    assert.ok(response.status === 401 || response.status === 404 || (response.status === 200 && html), `${path} answered ${response.status}`);
  }
  const encodedPost = await fetch(`${hub.httpUrl}/%61pi/v1/deployments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model":"a@1.0.0","selector":""}' });
  assert.equal(encodedPost.status, 401);
  const trust = (await (await fetch(`${hub.httpUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  assert.equal(Buffer.from(trust.rootPublicKey, 'base64').length, 32);
  assert.equal(trust.mqttUrl, hub.mqttUrl);
  assert.equal((await hub.api('GET', '/api/v1/devices')).status, 200);
  const keys = await hub.api('GET', '/api/v1/keys');
  assert.deepEqual(keys.body.keys.map((k: { role: string }) => k.role), ['root', 'release', 'director']);
  assert.equal(keys.body.keys[0].publicKey, trust.rootPublicKey);
  // No secret seed appears anywhere in the answer.
  const { readFileSync } = await import('node:fs');
  for (const role of ['root', 'release', 'director']) {
    const seed = readFileSync(`${hub.dataDir}/keys/${role}.key`, 'utf8').trim();
    assert.ok(!JSON.stringify(keys.body).includes(seed), role);
  }
});

test('push validates with onnxruntime, stores content-addressed and signs a manifest the agent verifier accepts', async (t) => {
  const hub = await startTestHub(t);
  const pushed = await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0&description=test', demo);
  assert.equal(pushed.status, 201, JSON.stringify(pushed.body));
  const digest = createHash('sha256').update(demo).digest('hex');
  assert.equal(pushed.body.digest, digest);
  assert.equal(pushed.body.size, demo.length);
  assert.deepEqual(pushed.body.inputs.map((i: { name: string }) => i.name), ['features']);
  assert.deepEqual(pushed.body.outputs.map((o: { name: string }) => o.name), ['probabilities']);
  const manifest = pushed.body.bundle.manifest;
  assert.equal(manifest.files[0].digest, digest);
  assert.equal(manifest.releaseCounter, 1);

  const trust = (await (await fetch(`${hub.httpUrl}/api/v1/trust`)).json()) as { rootPublicKey: string };
  const keyring = verifyKeyring(hub.ctx.keys.signedKeyring, Buffer.from(trust.rootPublicKey, 'base64'), 1, Date.now());
  assert.doesNotThrow(() => verifyManifest(pushed.body.bundle, keyring, Date.now()));
  assert.throws(() => verifyManifest({ ...pushed.body.bundle, manifest: { ...manifest, version: '9.9.9' } }, keyring, Date.now()), /release key/);

  const second = await hub.api('POST', '/api/v1/models?name=pdm&version=1.1.0', buildDemoModel({ seed: 8 }).bytes);
  assert.equal(second.body.releaseCounter, 2);
  const list = await hub.api('GET', '/api/v1/models');
  assert.deepEqual(list.body.models.map((m: { version: string }) => m.version), ['1.0.0', '1.1.0']);
  const shown = await hub.api('GET', '/api/v1/models/pdm/1.0.0');
  assert.deepEqual(shown.body.bundle, pushed.body.bundle);
  const pulled = await fetch(`${hub.httpUrl}/api/v1/models/pdm/1.0.0/blob`, { headers: { authorization: `Bearer ${hub.token}` } });
  assert.deepEqual(Buffer.from(await pulled.arrayBuffer()), Buffer.from(demo));
});

test('bad uploads are refused with a specific code and nothing is stored', async (t) => {
  const hub = await startTestHub(t);
  const garbage = await hub.api('POST', '/api/v1/models?name=bad&version=1.0.0', Buffer.from('this is not an onnx model'));
  assert.equal(garbage.status, 422);
  assert.equal(garbage.body.code, 'CAIRN_ONNX_INVALID');
  assert.ok(garbage.body.message.length > 10, garbage.body.message);
  const truncated = await hub.api('POST', '/api/v1/models?name=bad&version=1.0.1', demo.subarray(0, Math.floor(demo.length / 2)));
  assert.equal(truncated.status, 422);
  assert.equal((await hub.api('POST', '/api/v1/models?name=bad&version=1.0.2', new Uint8Array(0))).status, 422);
  assert.equal((await hub.api('POST', '/api/v1/models?name=Bad%20Name&version=1.0.0', demo)).status, 400);
  assert.equal((await hub.api('POST', '/api/v1/models?name=ok&version=one', demo)).status, 400);
  assert.equal((await hub.api('POST', '/api/v1/models?name=ok&version=1.0.0', { not: 'bytes' })).status, 400);
  assert.equal((await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', demo)).status, 201);
  const again = await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', demo);
  assert.equal(again.status, 409);
  assert.equal(again.body.code, 'CAIRN_MODEL_EXISTS');
  const list = await hub.api('GET', '/api/v1/models');
  assert.deepEqual(list.body.models.map((m: { name: string }) => m.name), ['pdm']);
});

test('deployment requests with unknown models, devices or bad selectors get coded 4xx errors', async (t) => {
  const hub = await startTestHub(t);
  await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', demo);
  const cases: [unknown, number, string][] = [
    [{ model: 'nope@1.0.0', selector: '' }, 404, 'CAIRN_MODEL_NOT_FOUND'],
    [{ model: 'pdm', selector: '' }, 400, 'CAIRN_BAD_MODEL_REF'],
    [{ model: 'pdm@1.0.0', deviceIds: ['ghost-1'] }, 404, 'CAIRN_DEVICE_NOT_FOUND'],
    [{ model: 'pdm@1.0.0', selector: 'site in (a' }, 400, 'CAIRN_BAD_SELECTOR'],
    [{ model: 'pdm@1.0.0', selector: 'site=nowhere' }, 400, 'CAIRN_NO_TARGETS'],
    [{ model: 'pdm@1.0.0' }, 400, 'CAIRN_BAD_REQUEST'],
    [{ model: 'pdm@1.0.0', selector: '', deviceIds: ['a'] }, 400, 'CAIRN_BAD_REQUEST'],
    [{ model: 'pdm@1.0.0', selector: '', extra: 1 }, 400, 'CAIRN_BAD_REQUEST'],
  ];
  for (const [body, status, code] of cases) {
    const response = await hub.api('POST', '/api/v1/deployments', body);
    assert.equal(response.status, status, JSON.stringify(body));
    assert.equal(response.body.code, code, JSON.stringify(body));
  }
  const raw = await fetch(`${hub.httpUrl}/api/v1/deployments`, { method: 'POST', headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' }, body: '{"model":' });
  assert.equal(raw.status, 400);
  assert.equal((await hub.api('GET', '/api/v1/deployments/dep_missing')).body.code, 'CAIRN_DEPLOYMENT_NOT_FOUND');
  assert.equal((await hub.api('GET', '/api/v1/devices/ghost')).body.code, 'CAIRN_DEVICE_NOT_FOUND');
  assert.equal((await hub.api('GET', '/api/v1/devices?selector=a%20in')).body.code, 'CAIRN_BAD_SELECTOR');
  assert.equal((await hub.api('GET', '/api/v1/devices/ghost/telemetry')).status, 404);
  for (const labels of [{ 'bad key!': 'x' }, { site: { nested: 1 } }, { site: 'has space' }]) {
    const response = await hub.api('PUT', '/api/v1/devices/ghost/labels', { labels });
    assert.equal(response.status, 400, JSON.stringify(labels));
    assert.equal(response.body.code, 'CAIRN_BAD_REQUEST');
  }
  assert.equal((await hub.api('PUT', '/api/v1/devices/ghost/labels', { labels: { site: 'ok' } })).body.code, 'CAIRN_DEVICE_NOT_FOUND');
});

test('the console is served at / with an SPA fallback, and unknown API paths stay 404 JSON', async (t) => {
  const hub = await startTestHub(t);
  const root = await fetch(`${hub.httpUrl}/`);
  assert.equal(root.status, 200);
  assert.match(root.headers.get('content-type') ?? '', /text\/html/);
  const deep = await fetch(`${hub.httpUrl}/devices/abc`);
  assert.equal(deep.status, 200);
  const api = await hub.api('GET', '/api/v1/nothing-here');
  assert.equal(api.status, 404);
  assert.equal(api.body.code, 'CAIRN_NOT_FOUND');
  const openapi = (await hub.api('GET', '/docs/json')).body as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.match(openapi.openapi, /^3\./);
  for (const path of ['/api/v1/devices', '/api/v1/models', '/api/v1/deployments', '/api/v1/devices/{id}/telemetry']) assert.ok(openapi.paths[path], path);
  assert.match((await hub.api('GET', '/metrics')).body, /cairn_hub_rejected_messages_total/);
});
