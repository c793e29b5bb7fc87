/**
 * System test: the real `cairn` and `cairn-agent` executables as separate processes, talking
 * over real sockets — what an operator and a device actually run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { generateDataset } from '@cairn/shared';
import { waitFor } from '../helpers/wait.js';
import { CAIRN, CAIRN_AGENT, IMAGES, freePort, spawnLogged } from '../helpers/processes.js';

const run = promisify(execFile);

test('cairn hub + cairn-agent run as processes: push, deploy, serve, graceful stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-system-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'hub-data');

  const hub = spawnLogged(t, [CAIRN, 'hub', '--data', dataDir, '--http', '0', '--mqtt', '0', '--log-level', 'warn']);
  const banner = await waitFor('hub banner', () => /API (http:\/\/\S+)\s+MQTT (mqtt:\/\/\S+)/.exec(hub.output()), { timeoutMs: 60_000 });
  const hubUrl = banner[1]!;
  const cli = async (...args: string[]) => JSON.parse((await run(process.execPath, [CAIRN, ...args, '--hub', hubUrl, '--data', dataDir, '--json'])).stdout);

  const modelFile = join(dir, 'model.onnx');
  writeFileSync(modelFile, buildDemoModel({ seed: 11 }).bytes);
  const pushed = await cli('model', 'push', modelFile, '--name', 'vib', '--version', '2.0.0');
  assert.equal(pushed.version, '2.0.0');

  // The quantization pipeline through the CLI: fp32 file + calibration data → gated int8 bundle.
  const data = generateDataset({ seed: 77, machines: ['pump-1800', 'fan-1200', 'motor-3600'], windowsPerClass: 30 });
  const calibrationFile = join(dir, 'calibration.json');
  const rows = Array.from({ length: data.count }, (_, r) => Array.from(data.features.subarray(r * data.featureCount, (r + 1) * data.featureCount)));
  writeFileSync(calibrationFile, JSON.stringify({ inputs: rows, labels: Array.from(data.labels) }));
  const quantized = await cli('model', 'push', join(IMAGES, 'pdm-vibration-1.0.0-fp32/model.onnx'), '--name', 'pdm', '--version', '1.0.0', '--quantize', 'int8', '--calibration', calibrationFile);
  assert.equal(quantized.gate.passed, true);
  assert.ok(quantized.size < quantized.gate.size.parent * 0.3);
  // A reference image directory keeps its manifest sections.
  const fromImage = await cli('model', 'push', join(IMAGES, 'pdm-vibration-1.1.0-int8'));
  assert.equal(`${fromImage.name}@${fromImage.version}`, 'pdm-vibration@1.1.0');
  assert.equal(fromImage.bundle.manifest.lineage.recipe, 'pdm-vibration');

  const trust = (await (await fetch(`${hubUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  const apiPort = await freePort();
  const config = join(dir, 'agent.yaml');
  writeFileSync(
    config,
    [
      'deviceId: pump-12',
      'stateDir: ./agent-state',
      `mqttUrl: ${trust.mqttUrl}`,
      `rootPublicKey: "${trust.rootPublicKey}"`,
      'labels: { site: plant-9, line: c }',
      `api: { host: 127.0.0.1, port: ${apiPort} }`,
      'telemetryIntervalMs: 500',
      'source: { kind: simulated, intervalMs: 50 }',
      'health: { trial: { durationMs: 1000, minInferences: 5 } }',
      'logLevel: warn',
      `enrollment: { hubUrl: "${hubUrl}", token: "${(await cli('device', 'enroll-token', '--uses', '1')).token}" }`,
    ].join('\n'),
  );
  const agent = spawnLogged(t, [CAIRN_AGENT, 'run', '--config', config]);
  await waitFor('pump-12 online', async () => (await cli('device', 'list', '--selector', 'site=plant-9')).devices[0]?.online === true, { timeoutMs: 60_000 });

  const deployment = await cli('deploy', '--model', 'vib@2.0.0', '--selector', 'line=c');
  assert.equal(deployment.devices.length, 1);
  await waitFor('committed', async () => (await cli('deployment', 'show', deployment.id)).devices[0].state === 'committed', { timeoutMs: 60_000 });

  const response = await fetch(`http://127.0.0.1:${apiPort}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: { features: { dims: [2, 16], data: Array.from({ length: 32 }, (_, i) => i / 32) } } }),
  });
  assert.equal(response.status, 200);
  const body = (await response.json()) as { outputs: { probabilities: { dims: number[]; data: number[] } } };
  assert.deepEqual(body.outputs.probabilities.dims, [2, 4]);
  const rowSum = body.outputs.probabilities.data.slice(0, 4).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(rowSum - 1) < 1e-4, 'softmax rows sum to 1');
  const bad = await fetch(`http://127.0.0.1:${apiPort}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"inputs":' });
  assert.equal(bad.status, 400);

  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  await waitFor('telemetry stored', async () => {
    const r = await fetch(`${hubUrl}/api/v1/devices/pump-12/telemetry`, { headers: { authorization: `Bearer ${token}` } });
    return ((await r.json()) as { points: unknown[] }).points.length > 0;
  });

  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
  await waitFor('graceful offline reaches the hub', async () => (await cli('device', 'show', 'pump-12')).online === false);

  const failing = await run(process.execPath, [CAIRN, 'deploy', '--model', 'vib@9.9.9', '--device', 'pump-12', '--hub', hubUrl, '--data', dataDir]).catch((e: { code: number; stderr: string }) => e);
  assert.equal((failing as { code: number }).code, 1);
  assert.match((failing as { stderr: string }).stderr, /^cairn: model vib@9\.9\.9 not found \(CAIRN_MODEL_NOT_FOUND\)\n$/);

  hub.child.kill('SIGTERM');
  assert.equal(await hub.exited, 0, hub.output());
});

test('cairn-agent run with a stdin source: JSON lines piped in are inferred and counted; the end of input leaves the agent serving', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-system-stdin-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'hub-data');
  const hub = spawnLogged(t, [CAIRN, 'hub', '--data', dataDir, '--http', '0', '--mqtt', '0', '--log-level', 'warn']);
  const hubUrl = (await waitFor('hub banner', () => /API (http:\/\/\S+)/.exec(hub.output()), { timeoutMs: 60_000 }))[1]!;
  const cli = async (...args: string[]) => JSON.parse((await run(process.execPath, [CAIRN, ...args, '--hub', hubUrl, '--data', dataDir, '--json'])).stdout);
  await cli('model', 'push', join(IMAGES, 'pdm-vibration-1.0.0-int8'));

  const trust = (await (await fetch(`${hubUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  const apiPort = await freePort();
  const env = {
    CAIRN_AGENT_DEVICE_ID: 'gateway-3',
    CAIRN_AGENT_STATE_DIR: join(dir, 'agent-state'),
    CAIRN_AGENT_MQTT_URL: trust.mqttUrl,
    CAIRN_AGENT_ROOT_PUBLIC_KEY: trust.rootPublicKey,
    CAIRN_AGENT_LABELS: '{"site":"plant-9"}',
    CAIRN_AGENT_API_PORT: String(apiPort),
    CAIRN_AGENT_SOURCE: '{"kind":"stdin"}',
    CAIRN_AGENT_HEALTH: '{"trial":{"durationMs":200,"minInferences":1,"maxDurationMs":300}}',
    CAIRN_AGENT_LOG_LEVEL: 'warn',
    CAIRN_AGENT_ENROLLMENT_HUB_URL: hubUrl,
  };
  // The device enrolls explicitly first (the token never sits in its config), then runs.
  const token = (await cli('device', 'enroll-token', '--uses', '1', '--label', 'line=z')).token as string;
  const enrolled = await run(process.execPath, [CAIRN_AGENT, 'enroll', '--token', token], { env: { ...process.env, ...env } });
  assert.match(enrolled.stdout, /^enrolled gateway-3: credentials stored/);
  const reused = await run(process.execPath, [CAIRN_AGENT, 'enroll', '--token', token], { env: { ...process.env, ...env } }).catch((e: { stderr: string }) => e);
  assert.match((reused as { stderr: string }).stderr, /CAIRN_ENROLL_TOKEN_INVALID|not valid/, 'a one-use token cannot enroll twice');
  const agent = spawnLogged(t, [CAIRN_AGENT, 'run'], env, 'pipe');
  await waitFor('gateway-3 online', async () => (await cli('device', 'show', 'gateway-3').catch(() => null))?.online === true, { timeoutMs: 60_000 });
  assert.equal((await cli('device', 'show', 'gateway-3')).labels.line, 'z', 'the token’s labels');
  await cli('deploy', '--model', 'pdm-vibration@1.0.0', '--device', 'gateway-3');
  await waitFor('ready', async () => (await fetch(`http://127.0.0.1:${apiPort}/readyz`)).status === 200, { timeoutMs: 60_000 });

  const features = Array.from({ length: 19 }, (_, i) => i / 19);
  const lines = [...Array.from({ length: 25 }, () => JSON.stringify({ features })), 'not json', JSON.stringify({ features: [1, 2] })];
  agent.child.stdin!.end(`${lines.join('\n')}\n`);
  const metric = async (series: string): Promise<number | undefined> => {
    const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };
  await waitFor('25 records accepted', async () => (await metric('cairn_agent_source_records{source="stdin",outcome="accepted"}')) === 25);
  assert.equal(await metric('cairn_agent_source_records{source="stdin",outcome="bad_json"}'), 1);
  assert.equal(await metric('cairn_agent_source_records{source="stdin",outcome="bad_shape"}'), 1);
  assert.equal((await fetch(`http://127.0.0.1:${apiPort}/readyz`)).status, 200, 'the end of stdin does not stop the agent');

  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
  hub.child.kill('SIGTERM');
  assert.equal(await hub.exited, 0, hub.output());
});
